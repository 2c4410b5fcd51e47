# Clipboard and file transfer end to end, with real components only:
# sessiond (relay filter, policy, audit), TLS, PAM users, sandboxed agents
# with their Xvfb, a real xterm and xclip inside the session, and svclient.
# What a user would observe is asserted: the text that lands in xterm, the
# bytes an app in the session reads, the files in ~/Downloads and their
# hashes, the refusal a restricted user sees, and the audit log.
"""svclient clipboard get/set and files put/get against a real session."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import subprocess
import time
from collections.abc import Iterator

import pytest

from session_shell import app_copies, give, in_session
from svtest import VENV_BIN, Server, TestUser, sessionctl, start_sessiond, stop_sessiond, svclient, user_name

pytestmark = [pytest.mark.integration, pytest.mark.root]

TEXT = "grüße, мир, 日本語 ✓ 🚀"
RESTRICTED = "svt-cw-r"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # PRIMARY goes to the client here (off by default) so xterm's mouse selection can be read back;
    # one user may not copy anything out of the session: [clipboard] to_client=false closes
    # PRIMARY and files to the client too.
    restricted = user_name(RESTRICTED)
    extra = f"[clipboard]\nprimary_to_client = true\nusers = {restricted}: to_client=false\n"
    server = start_sessiond(str(tmp_path_factory.mktemp("transfers")), extra=extra)
    yield server
    stop_sessiond(server)


@pytest.fixture(scope="module")
def carol(user_factory: object) -> TestUser:
    return user_factory("svt-cw-c")  # type: ignore[operator, no-any-return]


@pytest.fixture(scope="module")
def rita(user_factory: object) -> TestUser:
    return user_factory(RESTRICTED)  # type: ignore[operator, no-any-return]


def ok(done: subprocess.CompletedProcess[str], server: Server) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, f"{done.args}: {done.stderr}\n--- sessiond log ---\n{server.log()[-3000:]}"
    return done


def wait_for(check: object, seconds: float = 10) -> object:
    deadline = time.monotonic() + seconds
    while True:
        value = check()  # type: ignore[operator]
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def audit_events(server: Server, user: TestUser) -> list[dict[str, object]]:
    entries = json.loads(ok(sessionctl(server, "audit", "--json"), server).stdout)
    return [e for e in entries if e.get("user") == user.name]


def test_text_set_by_svclient_is_pasted_into_xterm(server: Server, carol: TestUser) -> None:
    ok(svclient(server, carol, "launch", "xterm"), server)
    target = os.path.join(pwd.getpwnam(carol.name).pw_dir, "pasted.txt")
    ok(svclient(server, carol, "type", 'read -r x && printf %s "$x" > ~/pasted.txt\n'), server)
    done = ok(svclient(server, carol, "clipboard", "set", TEXT), server)
    assert "set the session's clipboard" in done.stderr
    ok(svclient(server, carol, "click", "60", "60", "--button", "2"), server)  # middle-click pastes PRIMARY
    ok(svclient(server, carol, "key", "Return"), server)

    def pasted() -> str:
        try:
            with open(target, encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    assert wait_for(pasted) == TEXT
    # The same text is the session's CLIPBOARD, as an app reads it.
    read = in_session(carol, "xclip", "-o", "-selection", "clipboard")
    assert read.stdout.decode() == TEXT  # type: ignore[union-attr]


def test_xterm_selection_is_read_back(server: Server, carol: TestUser) -> None:
    ok(svclient(server, carol, "type", "clear; echo SELECT-ME-42\n"), server)
    time.sleep(0.5)
    # A triple-click on xterm's first line (the command line) selects it and xterm owns
    # PRIMARY; three svclient runs are slower than xterm's multi-click time, so the clicks
    # are made with XTEST from inside the session.
    clicks = ("import os\nfrom Xlib import X, display\nfrom Xlib.ext import xtest\n"
              "d = display.Display(os.environ['DISPLAY'])\nxtest.fake_input(d, X.MotionNotify, x=40, y=8)\n"
              "for _ in range(3):\n    xtest.fake_input(d, X.ButtonPress, 1)\n"
              "    xtest.fake_input(d, X.ButtonRelease, 1)\n"
              "d.sync()\n")  # fmt: skip
    done = in_session(carol, os.path.join(VENV_BIN, "python"), "-c", clicks)
    assert done.returncode == 0, done.stderr  # type: ignore[union-attr]
    time.sleep(0.5)
    got = ok(svclient(server, carol, "clipboard", "get", "--selection", "primary"), server)
    assert "SELECT-ME-42" in got.stdout


def test_image_copied_in_the_session_comes_back_byte_identical(server: Server, carol: TestUser,
                                                                tmp_path: object) -> None:  # fmt: skip
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.effect_noise((300, 200), 60).convert("RGB").save(buffer, "PNG")
    png = buffer.getvalue()
    app_copies(carol, give(carol, "copied.png", png), "image/png")
    out = os.path.join(str(tmp_path), "out.png")
    ok(svclient(server, carol, "clipboard", "get", "--type", "image", "-o", out), server)
    with open(out, "rb") as handle:
        assert handle.read() == png


def test_one_mib_of_text_round_trips(server: Server, carol: TestUser, tmp_path: object) -> None:
    text = "ĀĒĪŌŪ " * 100_000  # 1.1 MB of UTF-8
    data = text.encode()
    assert len(data) >= 1024 * 1024
    source = os.path.join(str(tmp_path), "big.txt")
    with open(source, "wb") as handle:
        handle.write(data)
    ok(svclient(server, carol, "clipboard", "set", "--file", source), server)
    read = in_session(carol, "xclip", "-o", "-selection", "clipboard")  # an app pastes it (INCR from the agent)
    assert hashlib.sha256(read.stdout).hexdigest() == hashlib.sha256(data).hexdigest()  # type: ignore[union-attr]
    app_copies(carol, give(carol, "big.txt", data), "UTF8_STRING")  # and copies it back
    got = svclient(server, carol, "clipboard", "get", timeout=120)
    assert got.returncode == 0, got.stderr
    assert got.stdout == text


def test_files_put_lands_in_downloads(server: Server, carol: TestUser, tmp_path: object) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    source = os.path.join(str(tmp_path), "report ü.bin")
    with open(source, "wb") as handle:
        handle.write(data)
    done = ok(svclient(server, carol, "files", "put", source), server)
    assert "sent" in done.stderr and "Downloads/report ü.bin" in done.stderr
    saved = os.path.join(pwd.getpwnam(carol.name).pw_dir, "Downloads", "report ü.bin")
    with open(saved, "rb") as handle:
        assert hashlib.sha256(handle.read()).digest() == hashlib.sha256(data).digest()
    assert os.stat(saved).st_uid == pwd.getpwnam(carol.name).pw_uid
    again = ok(svclient(server, carol, "files", "put", source), server)  # never overwrites
    assert "report ü (1).bin" in again.stderr


def test_sessiond_send_reaches_files_get(server: Server, carol: TestUser, tmp_path: object) -> None:
    data = os.urandom(2 * 1024 * 1024 + 5)
    path = give(carol, "result.dat", data)
    sent = in_session(carol, os.path.join(VENV_BIN, "sessiond-send"), path)
    assert sent.returncode == 0, sent.stderr  # type: ignore[union-attr]
    out = os.path.join(str(tmp_path), "got")
    got = ok(svclient(server, carol, "files", "get", "--dir", out), server)
    assert "saved" in got.stdout
    with open(os.path.join(out, "result.dat"), "rb") as handle:
        assert hashlib.sha256(handle.read()).digest() == hashlib.sha256(data).digest()


def test_policy_off_to_client_stops_that_direction_only(server: Server, rita: TestUser, tmp_path: object) -> None:
    ok(svclient(server, rita, "launch", "xterm"), server)
    ok(svclient(server, rita, "clipboard", "set", TEXT), server)  # into the session: allowed
    read = in_session(rita, "xclip", "-o", "-selection", "clipboard")
    assert read.stdout.decode() == TEXT  # type: ignore[union-attr]
    app_copies(rita, give(rita, "secret.txt", b"secret"), "UTF8_STRING")
    for selection in ("clipboard", "primary"):
        got = svclient(server, rita, "clipboard", "get", "--selection", selection)
        assert got.returncode != 0 and "secret" not in got.stdout
        assert "withheld" in got.stderr or "holds no" in got.stderr, got.stderr
    sent = in_session(rita, os.path.join(VENV_BIN, "sessiond-send"), give(rita, "secret.dat", b"secret"))
    assert sent.returncode != 0  # type: ignore[union-attr]
    out = os.path.join(str(tmp_path), "none")
    got = ok(svclient(server, rita, "files", "get", "--dir", out, "--wait", "1"), server)
    assert os.listdir(out) == []
    source = os.path.join(str(tmp_path), "in.txt")
    with open(source, "w", encoding="utf-8") as handle:
        handle.write("inbound")
    ok(svclient(server, rita, "files", "put", source), server)  # files into the session: allowed


def test_audit_records_each_transfer(server: Server, carol: TestUser, rita: TestUser) -> None:
    events = audit_events(server, carol)
    kinds = [e["event"] for e in events]
    assert "clipboard_from_client" in kinds and "clipboard_to_client" in kinds
    assert "file_from_client" in kinds and "file_to_client" in kinds
    details = " ".join(str(e.get("detail", "")) for e in events)
    assert "type=image/png" in details and "bytes=" in details
    assert TEXT not in details  # never the content
    refused = [e for e in audit_events(server, rita) if e["event"] in ("clipboard_refused",)]
    assert refused, audit_events(server, rita)


def test_an_upload_cut_off_leaves_no_partial_file(server: Server, carol: TestUser, tmp_path: object) -> None:
    source = os.path.join(str(tmp_path), "cut-off.bin")
    with open(source, "wb") as handle:
        handle.truncate(1024 * 1024 * 1024)  # sparse: long enough to be cut off mid-way
    downloads = os.path.join(pwd.getpwnam(carol.name).pw_dir, "Downloads")
    argv = [os.path.join(VENV_BIN, "svclient"), "--server", server.address, "--user", carol.name,
            "--password-file", carol.password_file, "--known-hosts", server.known_hosts, "--no-resume",
            "files", "put", source]  # fmt: skip
    upload = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        partial = os.path.join(downloads, "cut-off.bin")
        assert wait_for(lambda: os.path.exists(partial) and os.path.getsize(partial) > 0, 30), "the upload never began"
    finally:
        upload.kill()
        upload.wait()
    assert wait_for(lambda: not os.path.exists(partial), 10), "the partial file stayed in ~/Downloads"
    events = [e for e in audit_events(server, carol) if e["event"] == "file_aborted"]
    assert events and "cut-off.bin" in str(events[-1]["detail"])

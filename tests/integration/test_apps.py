# Published applications with real components only: the installed sessiond
# with a catalog directory this test owns, entitlements naming real Linux
# users and a real Linux group, svclient over TLS, and a hand-built LAUNCH
# frame for an app the user was never offered.  Assertions are on what a
# user observes: the listing, the refusal, the windows mapped on the
# session's X screen, the PNG written, and the listing after a file is
# removed while sessiond keeps running.
"""Integration: entitlements, forged launches, two apps in one session, live reload, icons."""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from protocol.frames import FrameDecoder
from protocol.messages import Auth, Launch
from svtest import (
    HELLO,
    LISTEN_RE,
    REPO,
    VENV_BIN,
    Server,
    TestUser,
    frame,
    start_sessiond,
    stop_sessiond,
    svclient,
    tls_connect,
)

pytestmark = [pytest.mark.integration, pytest.mark.root]

# Names unique per run: several checkouts may run this module at once on one host.
RUN = secrets.token_hex(3)
GROUP = f"svt-apps-staff-{RUN}"
STAFF_USER = f"svt-apps-a-{RUN}"  # member of GROUP
OTHER_USER = f"svt-apps-b-{RUN}"  # not a member
LAST_APP_USER = f"svt-apps-c-{RUN}"
ENTITLEMENTS = f"""
[entitlements]
default = nobody
rules =
    xterm: @{GROUP}
    xclock xcalc: *
    removable: *
"""
RELOAD_DEADLINE = 8.0  # seconds: "within a few seconds" with a 0.5 s poll and slow CI


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("apps")
    for name in ("xterm", "xclock", "xcalc"):
        shutil.copy(os.path.join(REPO, "conf", "apps", f"{name}.desktop"), directory)
    (directory / "removable.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Removable\nExec=xlogo\nIcon=xterm\n"
    )
    os.chmod(directory, 0o755)
    return directory


@pytest.fixture(scope="module")
def staff_group() -> Iterator[str]:
    subprocess.run(["groupdel", GROUP], capture_output=True)
    subprocess.run(["groupadd", GROUP], check=True)
    yield GROUP
    subprocess.run(["groupdel", GROUP], capture_output=True)


@pytest.fixture(scope="module")
def staff(user_factory: object, staff_group: str) -> TestUser:
    user: TestUser = user_factory(STAFF_USER)  # type: ignore[operator]
    subprocess.run(["usermod", "-a", "-G", staff_group, user.name], check=True)
    return user


@pytest.fixture(scope="module")
def other(user_factory: object, staff_group: str) -> TestUser:
    return user_factory(OTHER_USER)  # type: ignore[operator, no-any-return]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path) -> Iterator[Server]:
    """The installed sessiond on this module's catalog directory and entitlements."""
    tmp = tmp_path_factory.mktemp("sessiond-apps")
    state = tmp / "state"
    runtime = f"/run/sessiond-test-{secrets.token_hex(4)}"
    config = tmp / "sessiond.conf"
    config.write_text(
        f"[server]\nlisten = 127.0.0.1:0\nstate_dir = {state}\nruntime_dir = {runtime}\non_stop = logoff\n"
        f"[session]\nwidth = 800\nheight = 600\npython = {VENV_BIN}/python\n"
        f"[apps]\ndirectories = {catalog_dir}\nreload_interval = 0.5\n{ENTITLEMENTS}"
    )
    log_path = tmp / "sessiond.log"
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen([os.path.join(VENV_BIN, "sessiond"), "run", "--config", str(config)],
                                   stdout=log, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    started: Server | None = None
    try:
        deadline = time.monotonic() + 20
        while started is None and time.monotonic() < deadline and process.poll() is None:
            match = LISTEN_RE.search(log_path.read_text(errors="replace"))
            if match:
                started = Server(host=match.group(1), port=int(match.group(2)), process=process,
                                 log_path=str(log_path), state_dir=str(state), runtime_dir=runtime,
                                 known_hosts=str(tmp / "known_hosts"), config=str(config))  # fmt: skip
            else:
                time.sleep(0.05)
    finally:
        if started is None:
            process.kill()
            process.wait()
    if started is None:
        raise RuntimeError(f"sessiond did not start:\n{log_path.read_text(errors='replace')}")
    yield started
    stop_sessiond(started)


def listed(server: Server, user: TestUser, *extra: str) -> list[dict[str, object]]:
    done = svclient(server, user, "apps", "--json", *extra)
    assert done.returncode == 0, done.stderr + server.log()
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_listing_follows_entitlements_and_locale(server: Server, staff: TestUser, other: TestUser) -> None:
    assert [a["id"] for a in listed(server, staff)] == ["removable", "xcalc", "xclock", "xterm"]
    assert [a["id"] for a in listed(server, other)] == ["removable", "xcalc", "xclock"]
    german = {a["id"]: a for a in listed(server, other, "--locale", "de_DE.UTF-8")}
    assert german["xcalc"]["name"] == "Taschenrechner"
    assert german["xclock"]["comment"] == "Zeigt die Uhrzeit als Analoguhr (aus x11-apps)"
    assert german["xcalc"]["icon_available"] is True and german["xcalc"]["categories"] == ["Utility", "Calculator"]


def test_launch_of_an_app_not_offered_is_refused_and_audited(server: Server, other: TestUser) -> None:
    refused = svclient(server, other, "launch", "xterm")
    assert refused.returncode == 1
    assert f"user '{other.name}' is not entitled to the application 'xterm'" in refused.stderr

    # A forged LAUNCH straight on the wire, as a hostile client would send it.
    sock = tls_connect(server)
    decoder = FrameDecoder()
    sock.sendall(HELLO + frame(0, Auth(method="password", user=other.name, password=other.password)))
    results: dict[str, object] = {}
    deadline = time.monotonic() + 30
    sent = False
    while time.monotonic() < deadline and "launch" not in results:
        for f in decoder.feed(sock.recv(65536)):
            if f.channel == 0 and f.type == 0x03:
                assert json.loads(f.payload)["ok"] is True
                sock.sendall(frame(0, Launch(request=77, app="xterm", args=("--forged",))))
                sent = True
            elif f.channel == 0 and f.type == Launch.TYPE + 1 and sent:
                results["launch"] = json.loads(f.payload)
    sock.close()
    answer = results["launch"]
    assert isinstance(answer, dict)
    assert answer["request"] == 77 and answer["ok"] is False and answer["code"] == 16  # NOT_ENTITLED
    log = server.log()
    assert f"{other.name} from" in log and "not published to them" in log
    with sqlite3.connect(os.path.join(server.state_dir, "registry.sqlite3")) as db:
        audited = db.execute("SELECT user, detail FROM audit WHERE event = 'launch_refused'").fetchall()
    assert audited.count((other.name, "not entitled to xterm")) == 2  # svclient's and the forged one
    no_xterm = subprocess.run(["pgrep", "-u", other.name, "-x", "xterm"], capture_output=True)
    assert no_xterm.returncode == 1, "an xterm runs for a user who was refused"


def _viewable_classes(user: str) -> set[str]:
    """WM_CLASS of every viewable top-level window on the user's session screen."""
    pids = subprocess.run(["pgrep", "-u", user, "-f", "sessiond.agent"], capture_output=True, text=True).stdout.split()
    assert len(pids) == 1, f"expected one agent for {user}, found {pids}"
    script = (
        "import os\n"
        "from Xlib import display, X\n"
        "d = display.Display(':' + sorted(os.listdir('/tmp/.X11-unix'))[0][1:])\n"
        "for w in d.screen().root.query_tree().children:\n"
        "    if w.get_attributes().map_state == X.IsViewable:\n"
        "        c = w.get_wm_class()\n"
        "        print(c[1] if c else '')\n"
    )
    done = subprocess.run(["nsenter", "-t", pids[0], "-m", "--", os.path.join(VENV_BIN, "python"), "-c", script],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_two_apps_in_one_session_both_on_screen(server: Server, staff: TestUser) -> None:
    first = svclient(server, staff, "launch", "xterm")
    second = svclient(server, staff, "launch", "xclock")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr + server.log()
    assert "window mapped" in first.stdout and "window mapped" in second.stdout
    logins = {svclient(server, staff, "login").stdout.strip() for _ in range(2)}
    assert len(logins) == 1  # one session
    assert {"XTerm", "XClock"} <= _viewable_classes(staff.name)


def test_launch_wait_reports_the_exit(server: Server, staff: TestUser) -> None:
    waiting = subprocess.Popen(
        [os.path.join(VENV_BIN, "svclient"), "--server", server.address, "--user", staff.name,
         "--password-file", staff.password_file, "--known-hosts", server.known_hosts, "--no-resume",
         "launch", "xcalc", "--wait"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and subprocess.run(["pgrep", "-u", staff.name, "-x", "xcalc"],
                                                         capture_output=True).returncode != 0:  # fmt: skip
        time.sleep(0.1)
    time.sleep(0.5)  # let svclient print "launched" and start waiting
    subprocess.run(["pkill", "-TERM", "-u", staff.name, "-x", "xcalc"], check=True)
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 0, err
    assert "launched xcalc" in out and "exited with status -15" in out


def test_icon_is_written_as_png(server: Server, other: TestUser, tmp_path: Path) -> None:
    target = tmp_path / "icon.png"
    done = svclient(server, other, "icon", "xcalc", "--size", "48", "-o", str(target))
    assert done.returncode == 0, done.stderr + server.log()
    with Image.open(io.BytesIO(target.read_bytes())) as image:
        assert image.format == "PNG" and image.size == (48, 48)
        assert image.convert("RGBA").getextrema()[3][1] == 255  # something opaque is drawn
    refused = svclient(server, other, "icon", "xterm", "-o", str(tmp_path / "no.png"))
    assert refused.returncode == 1 and "not entitled" in refused.stderr
    assert not (tmp_path / "no.png").exists()


def test_removed_desktop_file_disappears_without_restart(server: Server, other: TestUser, catalog_dir: Path) -> None:
    assert "removable" in [a["id"] for a in listed(server, other)]
    pid = server.process.pid
    (catalog_dir / "removable.desktop").unlink()
    deadline = time.monotonic() + RELOAD_DEADLINE
    ids = ["removable"]
    while time.monotonic() < deadline and "removable" in ids:
        ids = [str(a["id"]) for a in listed(server, other)]
    assert "removable" not in ids, f"still listed after {RELOAD_DEADLINE} s"
    assert server.alive() and server.process.pid == pid


def test_session_ends_with_its_last_app_when_configured(user_factory: object,
                                                        tmp_path_factory: pytest.TempPathFactory) -> None:  # fmt: skip
    user: TestUser = user_factory(LAST_APP_USER)  # type: ignore[operator]
    server = start_sessiond(str(tmp_path_factory.mktemp("last-app")), extra="end_session_with_last_app = true\n")
    try:
        launched = svclient(server, user, "launch", "xcalc")
        assert launched.returncode == 0, launched.stderr + server.log()
        first = svclient(server, user, "login").stdout.strip()
        subprocess.run(["pkill", "-TERM", "-u", user.name, "-x", "xcalc"], check=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and "its last app exited" not in server.log():
            time.sleep(0.1)
        assert "its last app exited; ending it" in server.log()
        while time.monotonic() < deadline and subprocess.run(["pgrep", "-u", user.name, "-f", "sessiond.agent"],
                                                             capture_output=True).returncode == 0:  # fmt: skip
            time.sleep(0.1)
        second = svclient(server, user, "login").stdout.strip()
        assert first and second and first != second, "the session should have ended with xcalc"
    finally:
        stop_sessiond(server)

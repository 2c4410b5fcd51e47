# Sessions that outlive connections and sessiond itself, observed the way a
# user and an admin would: the painted pixels after a reconnect, the session
# listing in sessionctl and the JSON admin API, the audit log, and the
# policies firing.
"""Session lifecycle: resume tokens, kill -9 re-adoption, sessionctl, admin API, policies."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from typing import Iterator

import pytest
from PIL import Image

from protocol.errors import ReasonCode
from protocol.frames import FrameDecoder
from protocol.messages import Auth, ChannelKind, ChannelOpen
from svtest import (
    HELLO,
    VENV_BIN,
    Server,
    TestUser,
    frame,
    free_port,
    read_close,
    sessionctl,
    start_sessiond,
    stop_sessiond,
    svclient,
    tls_connect,
    wait_auth,
)

pytestmark = [pytest.mark.integration, pytest.mark.root]

XTERM_RED = (205, 0, 0)
PAINT = "printf '\\033[41m%400s\\033[0m\\n' ''"
MIN_RED = 400 * 6 * 13


@pytest.fixture(scope="module")
def dave(user_factory: object) -> TestUser:
    return user_factory("svt-life-d")  # type: ignore[operator, no-any-return]


@pytest.fixture(scope="module")
def erin(user_factory: object) -> TestUser:
    return user_factory("svt-life-e")  # type: ignore[operator, no-any-return]


def red_pixels(path: str) -> int:
    with Image.open(path) as image:
        colours = image.convert("RGB").getcolors(1 << 24) or []
    return sum(n for n, c in colours if c == XTERM_RED)


def paint_red(server: Server, user: TestUser, shot: str) -> None:
    assert svclient(server, user, "launch", "xterm").returncode == 0
    assert svclient(server, user, "type", PAINT).returncode == 0
    assert svclient(server, user, "key", "Return").returncode == 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert svclient(server, user, "screenshot", shot).returncode == 0
        if red_pixels(shot) >= MIN_RED:
            return
        time.sleep(0.2)
    raise AssertionError("the red block never appeared")


def listing(server: Server, *args: str) -> list[dict[str, object]]:
    done = sessionctl(server, "list", "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def session_of(server: Server, user: TestUser) -> dict[str, object]:
    rows = listing(server, "--user", user.name)
    assert len(rows) == 1, rows
    return rows[0]


def hold_connection(server: Server, user: TestUser) -> ssl.SSLSocket:
    """A logged-in raw connection with the display open (an attached client)."""
    sock = tls_connect(server)
    decoder = FrameDecoder()
    sock.sendall(HELLO + frame(0, Auth(method="password", user=user.name, password=user.password)))
    assert wait_auth(sock, decoder)
    sock.sendall(frame(0, ChannelOpen(channel=1, kind=int(ChannelKind.DISPLAY), window=8 << 20)))
    return sock


def processes_of(user: str) -> list[str]:
    out = subprocess.run(["pgrep", "-a", "-u", user], capture_output=True, text=True)
    return out.stdout.splitlines()


@pytest.fixture()
def restartable(tmp_path: object) -> Iterator[dict[str, object]]:
    where = {"tmp": str(tmp_path), "port": free_port(), "runtime": f"/run/sessiond-test-{os.getpid()}-r"}
    servers: list[Server] = []
    where["servers"] = servers
    yield where
    for server in servers:
        stop_sessiond(server)


def test_client_killed_then_resumed_with_token(sessiond_server: Server, dave: TestUser, tmp_path: object) -> None:
    shot = os.path.join(str(tmp_path), "before.png")
    paint_red(sessiond_server, dave, shot)
    # A client that dies without a goodbye (network drop, kill -9).
    sock = hold_connection(sessiond_server, dave)
    assert session_of(sessiond_server, dave)["state"] == "active"
    sock.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_LINGER, b"\1\0\0\0\0\0\0\0")
    sock.close()
    deadline = time.monotonic() + 10
    while session_of(sessiond_server, dave)["state"] != "disconnected" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert session_of(sessiond_server, dave)["state"] == "disconnected"
    # Resume with the stored token: the password file is wrong on purpose.
    wrong = os.path.join(str(tmp_path), "wrong")
    with open(wrong, "w") as handle:
        handle.write("not-the-password\n")
    after = os.path.join(str(tmp_path), "after.png")
    resumed = svclient(sessiond_server, dave, "screenshot", after, password_file=wrong, resume=True)
    assert resumed.returncode == 0, resumed.stderr
    assert red_pixels(after) >= MIN_RED
    with Image.open(shot) as a, Image.open(after) as b:
        assert a.convert("RGB").tobytes() == b.convert("RGB").tobytes()


def test_resume_tokens_are_single_use_and_never_logged(sessiond_server: Server, dave: TestUser) -> None:
    sock = tls_connect(sessiond_server)
    decoder = FrameDecoder()
    sock.sendall(HELLO + frame(0, Auth(method="password", user=dave.name, password=dave.password)))
    token = None
    deadline = time.monotonic() + 30
    while token is None and time.monotonic() < deadline:
        for f in decoder.feed(sock.recv(65536)):
            if f.channel == 0 and f.type == 0x03:
                token = json.loads(f.payload)["resume_token"]
    sock.close()
    assert token and len(token) >= 22  # >= 128 bits, URL-safe base64
    for attempt in range(2):
        sock = tls_connect(sessiond_server)
        decoder = FrameDecoder()
        sock.sendall(HELLO + frame(0, Auth(method="resume", user=dave.name, token=token)))
        ok = wait_auth(sock, decoder)
        sock.close()
        assert ok is (attempt == 0), f"attempt {attempt}: token {'refused' if attempt == 0 else 'reused'}"
    assert token not in sessiond_server.log()
    with open(os.path.join(sessiond_server.state_dir, "registry.sqlite3"), "rb") as handle:
        assert token.encode() not in handle.read()
    audit = sessionctl(sessiond_server, "audit", "--json")
    assert token not in audit.stdout


def test_sessionctl_list_show_audit_and_errors(sessiond_server: Server, dave: TestUser) -> None:
    row = session_of(sessiond_server, dave)
    for key in ("id", "user", "state", "apps", "client_address", "started", "idle_seconds", "memory_bytes",
                "cpu_seconds"):  # fmt: skip
        assert key in row
    assert "xterm" in row["apps"]  # type: ignore[operator]
    assert row["memory_bytes"] > 10 * 2**20  # type: ignore[operator]  # agent + Xvfb + xterm
    assert listing(sessiond_server, "--state", "ended") == []
    shown = sessionctl(sessiond_server, "show", str(row["id"]), "--json")
    assert json.loads(shown.stdout)["id"] == row["id"]
    table = sessionctl(sessiond_server, "list")
    assert table.returncode == 0 and str(row["id"]) in table.stdout and "MEMORY" in table.stdout
    unknown = sessionctl(sessiond_server, "show", "nope")
    assert unknown.returncode == 2 and "no session with id 'nope'" in unknown.stderr
    events = {e["event"] for e in json.loads(sessionctl(sessiond_server, "audit", "--json").stdout)}
    assert {"login", "connect", "reconnect", "launch", "disconnect"} <= events
    future = sessionctl(sessiond_server, "audit", "--since", "2999-01-01T00:00", "--json")
    assert json.loads(future.stdout) == []
    as_user = subprocess.run(["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", "--",
                              os.path.join(VENV_BIN, "sessionctl"), "--config", sessiond_server.config, "list"],
                             capture_output=True, text=True)  # fmt: skip
    assert as_user.returncode == 2 and "root" in as_user.stderr
    gone = subprocess.run([os.path.join(VENV_BIN, "sessionctl"), "--socket", "/run/nonexistent.sock", "list"],
                          capture_output=True, text=True)  # fmt: skip
    assert gone.returncode == 3 and "not running" in gone.stderr


def test_admin_api_and_metrics(sessiond_server: Server, dave: TestUser) -> None:
    with open(os.path.join(sessiond_server.state_dir, "admin-token"), encoding="utf-8") as handle:
        token = handle.read().strip()
    assert os.stat(os.path.join(sessiond_server.state_dir, "admin-token")).st_mode & 0o777 == 0o600
    context = ssl._create_unverified_context()  # noqa: SLF001 - self-signed test server

    def get(path: str, auth: str | None) -> tuple[int, bytes]:
        request = urllib.request.Request(f"https://{sessiond_server.address}{path}")
        if auth:
            request.add_header("Authorization", f"Bearer {auth}")
        try:
            with urllib.request.urlopen(request, context=context, timeout=20) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    assert get("/admin/sessions", None)[0] == 401
    assert get("/admin/sessions", "wrong")[0] == 401
    status, body = get("/admin/sessions", token)
    assert status == 200
    rows = json.loads(body)
    assert any(r["user"] == dave.name for r in rows)
    assert get("/admin/sessions/nope", token)[0] == 404
    status, body = get("/metrics", token)
    assert status == 200
    text = body.decode()
    assert 'sessiond_sessions{state="disconnected"}' in text
    assert 'sessiond_logins_total{result="ok"}' in text
    assert "sessiond_display_frames_total" in text and f'user="{dave.name}"' in text
    frames = [line for line in text.splitlines() if line.startswith("sessiond_display_frames_total ")]
    assert int(frames[0].split()[1]) > 0


def test_admin_disconnect_and_logoff(sessiond_server: Server, erin: TestUser) -> None:
    assert svclient(sessiond_server, erin, "launch", "xterm").returncode == 0
    sock = hold_connection(sessiond_server, erin)
    row = session_of(sessiond_server, erin)
    assert row["state"] == "active"
    done = sessionctl(sessiond_server, "disconnect", str(row["id"]))
    assert done.returncode == 0, done.stderr
    code, message = read_close(sock, FrameDecoder())
    assert code == ReasonCode.NORMAL and "administrator" in message
    assert session_of(sessiond_server, erin)["state"] == "disconnected"
    assert any("xterm" in p for p in processes_of(erin.name))
    done = sessionctl(sessiond_server, "logoff", str(row["id"]))
    assert done.returncode == 0, done.stderr
    assert listing(sessiond_server, "--user", erin.name) == []
    deadline = time.monotonic() + 10
    while processes_of(erin.name) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_of(erin.name) == []
    events = [e["event"] for e in json.loads(sessionctl(sessiond_server, "audit", "--json").stdout)]
    assert "admin_disconnect" in events and "admin_logoff" in events


def test_user_logoff_ends_everything(sessiond_server: Server, erin: TestUser) -> None:
    assert svclient(sessiond_server, erin, "launch", "xterm").returncode == 0
    first = session_of(sessiond_server, erin)["id"]
    done = svclient(sessiond_server, erin, "logoff")
    assert done.returncode == 0, done.stderr
    assert "logged off" in done.stdout
    assert processes_of(erin.name) == []
    again = svclient(sessiond_server, erin, "login")
    assert again.returncode == 0 and again.stdout.strip() != first
    history = listing(sessiond_server, "--all", "--user", erin.name)
    ended = [r for r in history if r["id"] == first]
    assert len(ended) == 1 and ended[0]["state"] == "ended"


def test_kill_9_sessiond_then_readopt(restartable: dict[str, object], dave: TestUser) -> None:
    tmp, port, runtime = str(restartable["tmp"]), int(restartable["port"]), str(restartable["runtime"])  # type: ignore[call-overload]
    servers: list[Server] = restartable["servers"]  # type: ignore[assignment]
    first = start_sessiond(tmp, port=port, runtime=runtime)
    servers.append(first)
    before = os.path.join(tmp, "before.png")
    paint_red(first, dave, before)
    session_id = session_of(first, dave)["id"]
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    assert any("xterm" in p for p in processes_of(dave.name)), "the session died with sessiond"
    second = start_sessiond(tmp, port=port, runtime=runtime)
    servers.append(second)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not listing(second, "--user", dave.name):
        time.sleep(0.1)
    sock = hold_connection(second, dave)  # reconnect while sessiond is the new one
    row = session_of(second, dave)
    assert row["id"] == session_id and row["state"] == "active"
    sock.close()
    after = os.path.join(tmp, "after.png")
    # The resume token issued by the first sessiond still works after the restart.
    shot = svclient(second, dave, "screenshot", after, resume=True)
    assert shot.returncode == 0, shot.stderr + second.log()
    with Image.open(before) as a, Image.open(after) as b:
        assert a.convert("RGB").tobytes() == b.convert("RGB").tobytes()
    events = [e["event"] for e in json.loads(sessionctl(second, "audit", "--json").stdout)]
    assert "adopted" in events


def test_dead_agent_is_cleaned_up_on_restart(restartable: dict[str, object], erin: TestUser) -> None:
    tmp, port, runtime = str(restartable["tmp"]), int(restartable["port"]), str(restartable["runtime"])  # type: ignore[call-overload]
    servers: list[Server] = restartable["servers"]  # type: ignore[assignment]
    first = start_sessiond(tmp, port=port, runtime=runtime)
    servers.append(first)
    assert svclient(first, erin, "login").returncode == 0
    row = session_of(first, erin)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    os.kill(int(row["agent_pid"]), signal.SIGKILL)  # type: ignore[call-overload]
    second = start_sessiond(tmp, port=port, runtime=runtime)
    servers.append(second)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(os.path.join(runtime, "sessions", str(row["id"]))):
        time.sleep(0.1)
    assert listing(second, "--user", erin.name) == []
    assert not os.path.exists(os.path.join(runtime, "sessions", str(row["id"])))
    events = [e["event"] for e in json.loads(sessionctl(second, "audit", "--json").stdout)]
    assert "adopt_failed" in events
    stop_sessiond(second)


def test_policies_idle_disconnect_then_disconnected_logoff(tmp_path: object, erin: TestUser) -> None:
    server = start_sessiond(str(tmp_path), extra="[policy]\nidle_disconnect = 1\ndisconnected_logoff = 2\n"
                                                 "check_interval = 0.2\n")  # fmt: skip
    try:
        sock = hold_connection(server, erin)
        started = time.monotonic()
        code, message = read_close(sock, FrameDecoder())
        assert code == ReasonCode.NORMAL and "idle" in message
        assert 0.9 <= time.monotonic() - started <= 5
        assert session_of(server, erin)["state"] == "disconnected"
        deadline = time.monotonic() + 10
        while listing(server, "--user", erin.name) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert listing(server, "--user", erin.name) == []
        events = [e["event"] for e in json.loads(sessionctl(server, "audit", "--json").stdout)]
        assert "policy_idle_disconnect" in events and "policy_disconnected_logoff" in events
        assert "policy_idle_disconnect" in server.log()
    finally:
        stop_sessiond(server)

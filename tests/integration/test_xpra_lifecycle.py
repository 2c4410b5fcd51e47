# Issue 17, the parts of an xpra session's life that are sessiond's: idle
# policies, kill -9 of sessiond and re-adoption, launching apps into an
# attached xpra client, and the warm pool. Each with the real xpra client
# (the one `make install` builds) under a client-side Xvfb, as a user would
# run it: what is asserted is what the user or the admin observes (windows
# on the client's display, the client staying connected or being
# disconnected, sessionctl's listing).
"""xpra sessions: idle policies see xpra input, re-adoption, svclient launch while attached, warm pool."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from sessiond.agent.xserver import XServer
from svtest import VENV_BIN, Server, TestUser, free_port, sessionctl, start_sessiond, stop_sessiond, svclient
from test_warm_pool import served_by, wait_for_slot
import test_xpra
from test_xpra import WAIT_S, XPRA, attach, detach, wait_for, windows_of_class

pytestmark = [pytest.mark.integration, pytest.mark.root]
client_display = test_xpra.client_display  # the client-side Xvfb fixture

# Seconds without input before [policy] idle_disconnect fires: long against
# the agent's activity poll (2 s) and the typing gaps below, so that typing
# keeps the session even on a loaded machine, and long enough for the xpra
# client to show the first window (the idle clock starts at the attach).
IDLE_S = 24
# Typing through xpra for this long (past the idle limit), a key every TYPE_GAP_S.
TYPE_FOR_S = IDLE_S + 12
TYPE_GAP_S = 2.0


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        stop_sessiond(server)


def xpra_session(tmp: str, **kwargs: object) -> str:
    """The [session] lines of an xpra server (more lines in kwargs["extra_session"])."""
    if not os.access(XPRA, os.X_OK):
        pytest.fail(f"{XPRA} is missing: `make install` builds xpra (see its output)")
    return f"display = xpra\nxpra = {XPRA}\n{kwargs.get('extra_session', '')}"


def row_of(server: Server, user: TestUser) -> dict[str, object]:
    rows = json.loads(sessionctl(server, "list", "--json", "--user", user.name).stdout or "[]")
    return rows[0] if rows else {}


def svclient_argv(server: Server, user: TestUser, *command: str) -> list[str]:
    """svclient as svtest.svclient runs it (password login), for a process the test watches."""
    return [os.path.join(VENV_BIN, "svclient"), "--server", server.address, "--user", user.name, "--password-file",
            user.password_file, "--known-hosts", server.known_hosts, "--no-resume", *command]


def audit_events(server: Server) -> list[str]:
    return [e["event"] for e in json.loads(sessionctl(server, "audit", "--json").stdout)]


def finish(process: subprocess.Popen[str]) -> str:
    """Detach if still running; the output either way."""
    if process.poll() is None:
        return detach(process)
    return process.stdout.read() if process.stdout else ""


def type_on(display: str, window: str, text: str) -> None:
    """Type into the client's window of the session's app (the real xpra client forwards it)."""
    env = {**os.environ, "DISPLAY": display}
    subprocess.run(["xdotool", "windowfocus", "--sync", window], env=env, timeout=30, check=True)
    subprocess.run(["xdotool", "type", "--delay", "40", text], env=env, timeout=60, check=True)


def test_typing_through_xpra_keeps_the_session_and_no_input_disconnects_it(
        tmp_path: object, servers: list[Server], user_factory: object, client_display: XServer) -> None:  # fmt: skip
    server = start_sessiond(str(tmp_path), session=xpra_session(str(tmp_path)),
                            extra=f"[policy]\nidle_disconnect = {IDLE_S}\ncheck_interval = 1\n")  # fmt: skip
    servers.append(server)
    user: TestUser = user_factory("svt-xi-a")  # type: ignore[operator]
    display = client_display.display
    process = attach(server, user, display, "--launch", "xterm")
    try:
        window = wait_for(lambda: windows_of_class(display, "xterm"), "xterm on the client display")[0]  # type: ignore[index]
        typed_until = time.monotonic() + TYPE_FOR_S
        while time.monotonic() < typed_until:
            type_on(display, window, "x")
            time.sleep(TYPE_GAP_S)
        # Twice the idle limit of typing and nothing else: still attached, never idle-disconnected.
        assert process.poll() is None, process.stdout.read() if process.stdout else ""  # type: ignore[union-attr]
        assert row_of(server, user)["state"] == "active"
        assert "policy_idle_disconnect" not in audit_events(server)
        # Now the user stops typing: xpra's own traffic (pings) must not count as input.
        process.wait(timeout=IDLE_S + WAIT_S)
    finally:
        out = finish(process)
    assert row_of(server, user)["state"] == "disconnected", out
    assert "policy_idle_disconnect" in audit_events(server)
    assert svclient(server, user, "logoff").returncode == 0


def test_kill_9_of_sessiond_then_the_readopted_xpra_session_shows_the_same_window(
        tmp_path: object, servers: list[Server], user_factory: object, client_display: XServer) -> None:  # fmt: skip
    tmp, port, runtime = str(tmp_path), free_port(), f"/run/sessiond-test-{os.getpid()}-xr"
    first = start_sessiond(tmp, port=port, runtime=runtime, session=xpra_session(tmp))
    servers.append(first)
    user: TestUser = user_factory("svt-xr-a")  # type: ignore[operator]
    display = client_display.display
    process = attach(first, user, display, "--launch", "xterm")
    try:
        wait_for(lambda: windows_of_class(display, "xterm"), "xterm on the client display")
        session_id = row_of(first, user)["id"]
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        # The client loses its connection and says so, and takes the local xpra client with it
        # (which would otherwise sit on a frozen window until its own ping timeout, a minute);
        # the session (agent, xpra, xterm) lives on.
        process.wait(timeout=WAIT_S)
    finally:
        out = finish(process)
    assert process.returncode == 1 and "connection ended" in out, out
    wait_for(lambda: not windows_of_class(display, "xterm"), "the window to go with the client")
    # Restarted with a config that no longer says xpra: the session still runs xpra and says so.
    second = start_sessiond(tmp, port=port, runtime=runtime)
    servers.append(second)
    wait_for(lambda: row_of(second, user).get("state") == "disconnected", "the session to be re-adopted")
    row = row_of(second, user)
    assert row["id"] == session_id and row["display"] == "xpra", row
    assert "xpra" in sessionctl(second, "list").stdout
    assert "adopted" in audit_events(second)
    again = attach(second, user, display)
    try:
        wait_for(lambda: windows_of_class(display, "xterm"), "the same xterm after re-attaching")
    finally:
        detach(again)
    assert svclient(second, user, "logoff").returncode == 0


def test_svclient_launch_while_attached_shows_the_app_in_the_xpra_client(
        tmp_path: object, servers: list[Server], user_factory: object, client_display: XServer) -> None:  # fmt: skip
    server = start_sessiond(str(tmp_path), session=xpra_session(str(tmp_path)))
    servers.append(server)
    user: TestUser = user_factory("svt-xl-a")  # type: ignore[operator]
    display = client_display.display
    process = attach(server, user, display, "--launch", "xterm")  # xterm keeps the session when xcalc exits
    try:
        wait_for(lambda: windows_of_class(display, "xterm"), "xterm in the xpra client")
        # From another terminal: a second connection of the same user launches beside the attached
        # xpra client (protocol.xpra.LAUNCH_BESIDE) instead of taking the session over; entitlements apply.
        # With --wait it waits beside the attached client too: sessiond tells launchers of app exits.
        launcher = subprocess.Popen(svclient_argv(server, user, "launch", "--wait", "xcalc"), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)  # fmt: skip
        wait_for(lambda: windows_of_class(display, "xcalc"), "xcalc in the attached xpra client")
        assert process.poll() is None  # still attached: not taken over
        assert launcher.poll() is None  # waiting for xcalc to exit
        session = str(row_of(server, user)["id"])
        for pid in test_xpra.session_pids(session):
            if os.path.basename(test_xpra.cmdline(pid).split(" ")[0]) == "xcalc":
                os.kill(pid, signal.SIGTERM)
        out, err = launcher.communicate(timeout=WAIT_S)
        assert launcher.returncode == 0, err
        assert "it shows in your xpra client, now or once one attaches" in out, out
        assert "xcalc (pid" in out and "exited with status" in out, out
        assert process.poll() is None
        refused = svclient(server, user, "launch", "not-published", resume=False)
        assert refused.returncode != 0 and process.poll() is None
    finally:
        out = detach(process)
    assert "taken over" not in out and "opened from another connection" not in out, out
    assert svclient(server, user, "logoff").returncode == 0


def test_a_warm_sandbox_serves_an_xpra_login(
        tmp_path: object, servers: list[Server], user_factory: object, client_display: XServer) -> None:  # fmt: skip
    server = start_sessiond(str(tmp_path), session=xpra_session(str(tmp_path), extra_session="zygote = true\n"
                                                                                            "warm_pool = 1\n"))
    servers.append(server)
    wait_for_slot(server)
    user: TestUser = user_factory("svt-xw-a")  # type: ignore[operator]
    display = client_display.display
    process = attach(server, user, display, "--launch", "xterm")
    try:
        wait_for(lambda: windows_of_class(display, "xterm"), "xterm from a warm sandbox")
        assert row_of(server, user)["display"] == "xpra"
    finally:
        detach(process)
    assert served_by(server, user)[1], server.log()  # the login took the waiting warm sandbox
    assert svclient(server, user, "logoff").returncode == 0

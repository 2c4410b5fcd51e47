# A seamless session gives back its windows' capture segment and still sends
# exact pixels afterwards (composite.WindowPixels, idle_release.py). A real
# session (sessiond, TLS, PAM, the sandboxed agent, Xvfb, an xterm shown as a
# client window): as an administrator sees it in /proc/PID/smaps, the pages
# that showing the xterm made resident in the agent's window capture segment
# are no longer resident once it is shown -- long before the idle release (a
# session whose [session] idle_release_seconds is an hour) -- and after an
# idle spell (2 s) the release runs and the segment stays free. Showing it may
# read it whole twice: the new window (released at its frame's end) and, on a
# loaded machine, the xterm's first paint landing in a later frame (released
# once no large read came for xshm.QUIET_RELEASE_SECONDS); the test waits for
# the pages to go, however its frames fall. The same holds when the user makes
# the xterm redraw its whole window (reverse video). Then the user types: the
# echo arrives, and the client's windows -- built only from this connection's
# regions, never refreshed -- compose to exactly the pixels captured inside
# the session.
"""Release of the seamless windows' capture segment (after a whole window, when idle), and exact pixels after it."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sessiond.agent.xshm import MAX_CAPTURE_PIXELS
from svtest import VENV_BIN, Server
from test_end_to_end import assert_png_is_the_session
from test_idle_release import RELEASE_GRACE_SECONDS, _agent, agent_logs, idle_server, sysv_rss_kib

pytestmark = [pytest.mark.integration, pytest.mark.root]

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keystroke_client.py")
# The window capture segment: one column of MAX_CAPTURE_PIXELS pixels (xshm.ShmRegionCapture).
SEGMENT_KIB = MAX_CAPTURE_PIXELS * 4 // 1024
# The session's [session] idle_release_seconds: short, the test polls until the release.
IDLE_SECONDS = 2
# ... and for the release after a whole window: no idle release during the test.
NEVER_IDLE_SECONDS = 3600
# What may stay resident after the release.
RELEASED_LIMIT_KIB = 32
# Seconds between two looks at the agent's smaps.
POLL_SECONDS = 0.05
# Typed into the xterm: two letters; or a command making it redraw its whole window (reverse video).
LETTERS = "ok"
REDRAW_WHOLE = "printf '\\033[?5h'\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from idle_server(tmp_path_factory, "seamless", IDLE_SECONDS)


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from idle_server(tmp_path_factory, "seamless", NEVER_IDLE_SECONDS)


def test_an_idle_seamless_session_releases_its_window_captures_and_stays_exact(
    server: Server, user_factory: Any, tmp_path: Any
) -> None:
    released_and_exact(server, user_factory("svt-idle-sl"), tmp_path, IDLE_SECONDS, LETTERS)


def test_a_window_sent_whole_gives_its_capture_pages_back_at_once(
    busy_server: Server, user_factory: Any, tmp_path: Any
) -> None:
    released_and_exact(busy_server, user_factory("svt-whole-sl"), tmp_path, None, LETTERS)


def test_a_window_its_app_redraws_whole_gives_its_capture_pages_back(
    busy_server: Server, user_factory: Any, tmp_path: Any
) -> None:
    released_and_exact(busy_server, user_factory("svt-redraw-sl"), tmp_path, None, REDRAW_WHOLE)


def released_and_exact(server: Server, user: Any, tmp_path: Any, idle: int | None, text: str) -> None:
    """USER's xterm shown: its capture pages are released (by the idle release after IDLE s, or,
    with IDLE None, without one), then TEXT is typed, each letter echoes and the windows are exact;
    the pages are released again after the typing (REDRAW_WHOLE: after the xterm redrew itself whole)."""
    shot, go = str(tmp_path / "client.png"), str(tmp_path / "go")
    argv = [os.path.join(VENV_BIN, "python"), DRIVER, "--server", f"{server.host}:{server.port}",
            "--user", user.name, "--password-file", user.password_file, "--known-hosts",
            str(tmp_path / "known_hosts"), "--text", text, "--save-screen", shot, "--seamless",
            "--wait-for", go]  # fmt: skip
    client = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert client.stdout is not None
        line = client.stdout.readline()  # "shown" once the xterm's window is on the client
        assert line.strip() == "shown", f"the client did not show the xterm: {line!r} {client.stderr.read()[-3000:]}"
        agent = _agent(user.name)
        assert_released(server, agent, idle, "shown")
    finally:
        open(go, "w").close()  # the client types now (or, after a failure, ends)
    out, err = client.communicate(timeout=300)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"no result from the client (rc {client.returncode}): {err[-3000:]}"
    result = json.loads(lines[-1])
    assert "error" not in result, f"{result['error']}\n{server.log()[-3000:]}"
    assert result["echoed"] == len(text), f"echoes seen after the release: {result}"
    assert_png_is_the_session(user.name, shot, "after typing into an idle-released window")
    assert_released(server, agent, idle, f"{text!r} typed")


def assert_released(server: Server, agent: int, idle: int | None, when: str) -> None:
    """The agent's window capture segment is released (by the idle release after IDLE s, or, with
    IDLE None, without one) within RELEASE_GRACE_SECONDS; polled, however the machine's load delays it."""
    deadline = time.monotonic() + (idle or 0) + RELEASE_GRACE_SECONDS
    now, logged = -1, False
    while time.monotonic() < deadline:
        now = sysv_rss_kib(agent, SEGMENT_KIB)
        logged = idle is None or f"display idle {idle} s: buffers released" in agent_logs(server)
        if 0 <= now < RELEASED_LIMIT_KIB and logged:
            break
        time.sleep(POLL_SECONDS)
    assert 0 <= now < RELEASED_LIMIT_KIB, f"{when}: the agent still holds {now} KiB of window captures\n" + \
        agent_logs(server)  # fmt: skip
    assert logged, agent_logs(server)
    if idle is None:
        assert "display idle" not in agent_logs(server), agent_logs(server)

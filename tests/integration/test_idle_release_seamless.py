# An idle seamless session gives back its windows' capture segment and still
# sends exact pixels afterwards (idle_release.py, composite.WindowPixels). A
# real session (sessiond, TLS, PAM, the sandboxed agent, Xvfb, an xterm
# shown as a client window) is left without changes for longer than its
# [session] idle_release_seconds; then, as an administrator sees it in
# /proc/PID/smaps, the pages of the agent's window capture segment that
# capturing the xterm made resident are no longer resident. Then the user
# types: the echo arrives, and the client's windows -- built only from this
# connection's regions, never refreshed -- compose to exactly the pixels
# captured inside the session.
"""Idle release of the seamless windows' capture segment, and exact pixels after it."""

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
# An xterm's first capture (the whole window, ~480x320) makes this much of it resident at least.
SHOWN_MIN_KIB = 256
# The session's [session] idle_release_seconds: short, the test polls until the release.
IDLE_SECONDS = 2
# What may stay resident after the release.
RELEASED_LIMIT_KIB = 32
# Seconds between two looks at the agent's smaps.
POLL_SECONDS = 0.05


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from idle_server(tmp_path_factory, "seamless", IDLE_SECONDS)


def test_an_idle_seamless_session_releases_its_window_captures_and_stays_exact(
    server: Server, user_factory: Any, tmp_path: Any
) -> None:
    user = user_factory("svt-idle-sl")
    shot, go = str(tmp_path / "client.png"), str(tmp_path / "go")
    argv = [os.path.join(VENV_BIN, "python"), DRIVER, "--server", f"{server.host}:{server.port}",
            "--user", user.name, "--password-file", user.password_file, "--known-hosts",
            str(tmp_path / "known_hosts"), "--text", "ok", "--save-screen", shot, "--seamless",
            "--wait-for", go]  # fmt: skip
    client = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert client.stdout is not None
        line = client.stdout.readline()  # "shown" once the xterm's window is on the client
        assert line.strip() == "shown", f"the client did not show the xterm: {line!r} {client.stderr.read()[-3000:]}"
        agent = _agent(user.name)
        deadline = time.monotonic() + IDLE_SECONDS + RELEASE_GRACE_SECONDS
        most, now = -1, -1
        while time.monotonic() < deadline:
            now = sysv_rss_kib(agent, SEGMENT_KIB)
            most = max(most, now)
            if most >= SHOWN_MIN_KIB and 0 <= now < RELEASED_LIMIT_KIB:
                break
            time.sleep(POLL_SECONDS)
        assert most >= SHOWN_MIN_KIB, f"the xterm's capture never showed in the segment: {most} KiB"
        assert 0 <= now < RELEASED_LIMIT_KIB, f"an idle agent still holds {now} KiB of window captures\n" + \
            agent_logs(server)  # fmt: skip
        assert f"display idle {IDLE_SECONDS} s: buffers released" in agent_logs(server), agent_logs(server)
    finally:
        open(go, "w").close()  # the client types now (or, after a failure, ends)
    out, err = client.communicate(timeout=300)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"no result from the client (rc {client.returncode}): {err[-3000:]}"
    result = json.loads(lines[-1])
    assert "error" not in result, f"{result['error']}\n{server.log()[-3000:]}"
    assert result["echoed"] == 2, f"echoes seen after the release: {result}"
    assert_png_is_the_session(user.name, shot, "after typing into an idle-released window")

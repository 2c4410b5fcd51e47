# A slow link end to end (issue 15): the real sessiond on the host side of an
# emulated 40 ms RTT / 10 Mbit/s / 1% loss link (tests/netem_link.py: real IP
# packets, real TCP and TLS on both sides), a real PAM user and session with
# Xvfb and xterm, and the real client library in the link's namespace
# (netem_client.py, its own process).
#
# What must hold, as the user sees it:
#   - every letter typed at the prompt is echoed on screen (a server waiting
#     for an ack the client holds, or a byte budget that never reopens, would
#     stop the echo: it would never come);
#   - a flood of output keeps scrolling on screen (frames keep arriving);
#   - Ctrl+C typed during the flood, then a command painting a red block: the
#     red is on screen within RED_BOUND_SECONDS. The flood produces far more
#     than the link carries (10 Mbit/s); a display that queued instead of
#     pacing by acknowledgements would have tens of seconds of frames queued
#     after FLOOD_SECONDS, and the red would come only after them.
#   - scrolling paced lines after the frame window widened for the long
#     round trip (sessiond/agent/frame_window.py) leaves the client's screen,
#     built only from the regions it received (COPY among them), byte-
#     identical to the session's own screen.
# The bounds are many times what a correct run takes (well under 2 s for the
# red on this machine), so load on a shared machine does not fail the test.
"""Typing echo and a flood scroll over an emulated slow link."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from netem_link import NetemLink
from svtest import VENV_BIN, Server, start_sessiond, stop_sessiond
from test_end_to_end import assert_png_is_the_session

pytestmark = [pytest.mark.integration, pytest.mark.root]

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "netem_client.py")
KEYSTROKES = 10
FLOOD_SECONDS = 10.0
# Generous: RTT 40 ms; a correct run shows the red in well under 2 s.
RED_BOUND_SECONDS = 8.0
# The flood must keep the screen moving: at least this many frames per second on average.
MIN_FLOOD_FPS = 2.0
# The link's least round trip (20 ms each way): what the client's lower bound of the server's window assumes.
LINK_RTT = 0.040
# [display] frames_in_flight by default: a window seen wider than this was widened.
CONFIGURED_WINDOW = 2
# The paced scroll must be sent mostly as copies: at least this many COPY regions.
MIN_COPIES = 5


@pytest.fixture(scope="module")
def link() -> Iterator[NetemLink]:
    with NetemLink(delay_ms=20, rate_mbit=10, loss_percent=1) as emulated:
        yield emulated


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, link: NetemLink) -> Iterator[Server]:
    started = start_sessiond(str(tmp_path_factory.mktemp("sessiond")), host=link.host_address,
                             session="mode = desktop\n")  # fmt: skip
    yield started
    stop_sessiond(started)


def run_client(link: NetemLink, server: Server, user: Any, tmp_path: Any, *extra: str) -> dict[str, Any]:
    argv = link.inside([os.path.join(VENV_BIN, "python"), DRIVER, "--server", f"{server.host}:{server.port}",
                        "--user", user.name, "--password-file", user.password_file,
                        "--known-hosts", str(tmp_path / "known_hosts"), "--keystrokes", str(KEYSTROKES),
                        *extra])  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result from the client (rc {done.returncode}): {done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert "error" not in result, f"{result['error']}\n{server.log()[-3000:]}"
    return result


def test_typing_echoes_and_a_flood_scroll_stays_responsive(link: NetemLink, server: Server, user_factory: Any,
                                                           tmp_path: Any) -> None:  # fmt: skip
    user = user_factory("svt-netem")
    result = run_client(link, server, user, tmp_path, "--flood-seconds", str(FLOOD_SECONDS))
    print(f"slow link: {result}")  # shown with -s: echo latencies, flood frames, red delay
    echoes = result["echo_seconds"]
    assert len(echoes) == KEYSTROKES and None not in echoes, f"echoes that never came: {echoes}"
    fps = result["flood_frames"] / result["flood_seconds"]
    assert fps >= MIN_FLOOD_FPS, f"the flood scroll stalled: {result}"
    assert result["red_after_seconds"] <= RED_BOUND_SECONDS, f"the display lagged behind a queue: {result}"


def test_a_scroll_through_a_widened_window_leaves_the_client_screen_exact(link: NetemLink, server: Server,
                                                                          user_factory: Any,
                                                                          tmp_path: Any) -> None:  # fmt: skip
    user = user_factory("svt-netem-w")
    client_png = str(tmp_path / "client.png")
    result = run_client(link, server, user, tmp_path, "--flood-seconds", "0", "--scroll-screen", client_png,
                        "--link-rtt", str(LINK_RTT))  # fmt: skip
    print(f"slow link scroll: {result}")
    assert result["scroll_window_at_least"] > CONFIGURED_WINDOW, f"the frame window never widened: {result}"
    assert result["scroll_copies"] >= MIN_COPIES, f"the scroll was not copied: {result}"
    assert_png_is_the_session(user.name, client_png, "after scrolling through a widened window")

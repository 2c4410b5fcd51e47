# A video through the native viewer ends pixel-exact: ffplay plays ffmpeg's
# lavfi test pattern in a real seamless session, the agent streams it as
# H.264 (it loads PyAV only for a stream), the installed `svclient view` on
# a client-side Xvfb decodes it and paints only the rows each picture
# changed (client/viewer/damage.py), and once the input ends (ffplay keeps
# its last picture) the local window shows exactly the session's pixels:
# the lossless refinement went through the viewer's paint path too.
# Real components only; the session is inspected from inside.
"""svclient view: an H.264 video's still picture ends exactly as the session shows it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from svtest import Server, TestUser
from test_display_video import agent_maps_libavcodec
from test_viewer import _wait_same_pixels
from viewer_desktop import ClientDesktop
from viewer_session import Viewer, type_into, viewer_argv, xterm_title

pytestmark = [pytest.mark.integration, pytest.mark.root]

TITLE = "svtest-video"
# 5 s of 640x360 test pattern at 30 fps, then the last picture stays (no -autoexit).
PLAY = f"ffplay -loglevel error -an -window_title {TITLE} -f lavfi testsrc=size=640x360:rate=30:duration=5"


@pytest.fixture(scope="module")
def desktop() -> Iterator[ClientDesktop]:
    desk = ClientDesktop()
    yield desk
    desk.stop()


def test_a_video_through_the_viewer_ends_exactly_as_the_session_shows_it(
        sessiond_server: Server, user_factory: Any, desktop: ClientDesktop, tmp_path: Any) -> None:  # fmt: skip
    user: TestUser = user_factory("svt-vview")
    view = Viewer(desktop, viewer_argv(sessiond_server, user, "--launch", "xterm"), str(tmp_path / "viewer.log"))
    try:
        desktop.wait_for(lambda: desktop.run("xdotool", "search", "--onlyvisible", "--name", "@").stdout, 60,
                         "the viewer's xterm")  # (its title is user@host: dir)
        term = desktop.window(xterm_title(user), 30)
        assert not agent_maps_libavcodec(user.name), "the agent loaded PyAV before any video played"
        type_into(desktop, term, PLAY)
        desktop.window(TITLE, 60)
        desktop.wait_for(lambda: agent_maps_libavcodec(user.name), 30, "an H.264 stream (PyAV in the agent)")
        _wait_same_pixels(desktop, user, TITLE, tmp_path)  # waits (30 s) for the still picture to be exact
    except AssertionError:
        print(view.log())
        raise
    finally:
        view.stop()

# The native viewer's seamless start (docs/viewer.md "Start-up"), through the
# real thing: the installed sessiond and viewer, a real PAM user, a real
# sandbox and Xvfb, and a client desktop (Xvfb + openbox) with a panel that
# takes the bottom of its screen, as a user's desktop has. What a user and an
# admin observe: the xterm shows on the local desktop; the session started
# at the local screen's free area (the screen less the panel), not at the
# server's configured size and then resized; the xterm was started with the
# login (the agent's start-up line says so, before its set-up, so before the
# link and the AUTH_RESULT); and the session's screen is the free area.
"""Integration: the seamless viewer's login carries the local screen and its first launch."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from svtest import VENV_BIN, Server, TestUser, sessionctl
from test_login_launch import start_up_marks
from test_seamless import agent_pid
from viewer_desktop import SCREEN, ClientDesktop
from viewer_session import Viewer, inside, viewer_argv, xterm_title

pytestmark = [pytest.mark.integration, pytest.mark.root]

# The panel: a dock window at the bottom of the client screen with a strut, so openbox's work area leaves it out.
PANEL_HEIGHT = 100
FREE_AREA = (SCREEN[0], SCREEN[1] - PANEL_HEIGHT)
_PANEL = (
    "import sys\n"
    "from Xlib import display, Xatom\n"
    "d = display.Display()\n"
    "s = d.screen()\n"
    "h = int(sys.argv[1])\n"
    "w = s.root.create_window(0, s.height_in_pixels - h, s.width_in_pixels, h, 0, s.root_depth)\n"
    "w.change_property(d.intern_atom('_NET_WM_WINDOW_TYPE'), Xatom.ATOM, 32,\n"
    "                  [d.intern_atom('_NET_WM_WINDOW_TYPE_DOCK')])\n"
    "w.change_property(d.intern_atom('_NET_WM_STRUT_PARTIAL'), Xatom.CARDINAL, 32,\n"
    "                  [0, 0, 0, h, 0, 0, 0, 0, 0, 0, 0, s.width_in_pixels - 1])\n"
    "w.map()\n"
    "d.sync()\n"
    "sys.stdin.read()\n"  # until the test closes our stdin
)
# Runs inside the session: the size of its X screen.
_SCREEN_INSIDE = (
    "import os\n"
    "from Xlib import display\n"
    "s = display.Display(':' + sorted(os.listdir('/tmp/.X11-unix'))[0][1:]).screen()\n"
    "print(s.width_in_pixels, s.height_in_pixels)\n"
)


@pytest.fixture
def panelled_desktop() -> Iterator[ClientDesktop]:
    """The client desktop with a panel: _NET_WORKAREA is the screen less PANEL_HEIGHT at the bottom."""
    desk = ClientDesktop()
    panel = subprocess.Popen([os.path.join(VENV_BIN, "python"), "-c", _PANEL, str(PANEL_HEIGHT)], env=desk.env,
                             stdin=subprocess.PIPE)  # fmt: skip
    try:
        desk.wait_for(lambda: re.search(rf"=\s*0, 0, {FREE_AREA[0]}, {FREE_AREA[1]}\b",
                                        desk.run("xprop", "-root", "_NET_WORKAREA").stdout),
                      30, "openbox's work area to leave the panel out")  # fmt: skip
        yield desk
    finally:
        panel.communicate(b"")
        desk.stop()


def session_screen(user: TestUser) -> tuple[int, int]:
    done = subprocess.run(["nsenter", "-t", str(agent_pid(user.name)), "-m", "--", os.path.join(VENV_BIN, "python"),
                           "-c", _SCREEN_INSIDE], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    width, height = done.stdout.split()
    return int(width), int(height)


def test_the_seamless_viewer_logs_in_with_the_local_free_area_and_its_first_app(
        sessiond_server: Server, user_factory: Any, panelled_desktop: ClientDesktop,
        tmp_path: Any) -> None:  # fmt: skip
    user = user_factory("svt-vstart")
    viewer = Viewer(panelled_desktop, viewer_argv(sessiond_server, user, "--launch", "xterm"),
                    str(tmp_path / "viewer.log"))  # fmt: skip
    try:
        try:
            panelled_desktop.wait_for(lambda: subprocess.run(["pgrep", "-u", user.name, "-x", "xterm"]).returncode == 0
                                      and any(not w["override"] for w in inside(user)), 60,
                                      "the xterm in the session")  # fmt: skip
            panelled_desktop.window(xterm_title(user), 60)
        except AssertionError:
            raise AssertionError(f"no local xterm:\n{viewer.log()}\n{sessiond_server.log()[-3000:]}") from None
        # The session started at the free area (what the admin's list says it started at), not at the
        # server's configured size: the login said it, before any resize could.
        listed = sessionctl(sessiond_server, "list", "--json")
        assert listed.returncode == 0, listed.stderr
        (row,) = [r for r in json.loads(listed.stdout) if r["user"] == user.name]
        assert (row["width"], row["height"]) == FREE_AREA, row
        assert session_screen(user) == FREE_AREA
        # The xterm went with the login: started right after the X server, before the agent's set-up.
        marks = start_up_marks(sessiond_server, user)
        assert marks["Xvfb ready"] <= marks["first launch"] < marks["set up"], marks
    finally:
        viewer.stop()

# Resizing a real session's screen with svclient: real sessiond, the
# sandboxed agent with its Xvfb (started at the maximum size, set smaller
# with RandR), real xterm. Assertions are on what the user observes: the
# size svclient reports, the size of its screenshot, the X screen as apps
# see it from inside the session, and typed text reaching xterm.
"""svclient resize: the session's X screen follows; apps fit and still work."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from PIL import Image

from svtest import VENV_BIN, Server, TestUser, svclient

pytestmark = [pytest.mark.integration, pytest.mark.root]

XTERM_RED = (205, 0, 0)
PAINT_COMMAND = "printf '\\033[41m%1200s\\033[0m\\n' ''"
# 1200 cells (15 rows of the 80x24 xterm) of the default 6x13 font.
MIN_RED_PIXELS = 1200 * 6 * 13
# The [session] max_width/max_height defaults (the test config sets neither).
DEFAULT_MAX = (2560, 1440)
MIN_SIDE = 64


@pytest.fixture(scope="module")
def rita(user_factory: object) -> TestUser:
    return user_factory("svt-resize-r")  # type: ignore[operator, no-any-return]


def inside_session(user: str, script: str) -> str:
    """Run a python-xlib SCRIPT in the user's session (its private /tmp holds the X socket)."""
    pids = subprocess.run(["pgrep", "-u", user, "-f", "sessiond.agent"], capture_output=True, text=True).stdout.split()
    assert len(pids) == 1, f"expected one agent for {user}, found {pids}"
    prelude = (
        "import os, json\n"
        "from Xlib import display\n"
        "d = display.Display(':' + sorted(os.listdir('/tmp/.X11-unix'))[0][1:])\n"
        "root = d.screen().root\n"
    )
    done = subprocess.run(["nsenter", "-t", pids[0], "-m", "--", os.path.join(VENV_BIN, "python"), "-c",
                           prelude + script], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


SCREEN_AND_WINDOWS = (
    "g = root.get_geometry()\n"
    "wins = []\n"
    "for w in root.query_tree().children:\n"
    "    a = w.get_attributes()\n"
    "    if a.map_state == 2:\n"
    "        wg = w.get_geometry()\n"
    "        wins.append([wg.x, wg.y, wg.width + 2 * wg.border_width, wg.height + 2 * wg.border_width])\n"
    "print(json.dumps({'screen': [g.width, g.height], 'windows': wins}))\n"
)


def resize(server: Server, user: TestUser, width: int, height: int) -> tuple[int, int]:
    done = svclient(server, user, "resize", str(width), str(height))
    assert done.returncode == 0, done.stderr + server.log()
    words = done.stdout.split()
    assert words[:2] == ["desktop", "is"], done.stdout
    w, h = words[2].split("x")
    return int(w), int(h)


def screenshot_size(server: Server, user: TestUser, path: str) -> tuple[int, int]:
    taken = svclient(server, user, "screenshot", path)
    assert taken.returncode == 0, taken.stderr
    with Image.open(path) as image:
        return image.size


def count_red(path: str) -> int:
    with Image.open(path) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 24) or []
    return sum(count for count, value in colours if value == XTERM_RED)


def test_resize_then_an_app_fits_and_typing_works(sessiond_server: Server, rita: TestUser, tmp_path: object) -> None:
    shot = os.path.join(str(tmp_path), "shot.png")
    assert svclient(sessiond_server, rita, "login").returncode == 0
    assert screenshot_size(sessiond_server, rita, shot) == (1024, 768)  # the configured initial size

    assert resize(sessiond_server, rita, 800, 600) == (800, 600)
    assert screenshot_size(sessiond_server, rita, shot) == (800, 600)
    seen = json.loads(inside_session(rita.name, SCREEN_AND_WINDOWS))
    assert seen["screen"] == [800, 600], "apps must see the new size"

    launched = svclient(sessiond_server, rita, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + sessiond_server.log()
    seen = json.loads(inside_session(rita.name, SCREEN_AND_WINDOWS))
    assert seen["windows"], "xterm mapped no window"
    for x, y, w, h in seen["windows"]:
        assert x >= 0 and y >= 0 and x + w <= 800 and y + h <= 600, f"window {w}x{h}+{x}+{y} is cut off"

    assert svclient(sessiond_server, rita, "type", PAINT_COMMAND).returncode == 0
    assert svclient(sessiond_server, rita, "key", "Return").returncode == 0
    deadline = time.monotonic() + 15
    red = 0
    while time.monotonic() < deadline and red < MIN_RED_PIXELS:
        assert screenshot_size(sessiond_server, rita, shot) == (800, 600)
        red = count_red(shot)
        time.sleep(0.1)
    assert red >= MIN_RED_PIXELS, f"typing after the resize did not reach xterm ({red} red pixels)"


def test_resize_is_clamped_and_can_grow_back(sessiond_server: Server, rita: TestUser, tmp_path: object) -> None:
    shot = os.path.join(str(tmp_path), "shot.png")
    assert resize(sessiond_server, rita, 10, 5) == (MIN_SIDE, MIN_SIDE)
    assert screenshot_size(sessiond_server, rita, shot) == (MIN_SIDE, MIN_SIDE)
    assert resize(sessiond_server, rita, 65535, 65535) == DEFAULT_MAX
    capped = svclient(sessiond_server, rita, "resize", "3840", "2160")
    assert capped.returncode == 0 and f"desktop is {DEFAULT_MAX[0]}x{DEFAULT_MAX[1]}" in capped.stdout
    assert f"capped it at {DEFAULT_MAX[0]}x{DEFAULT_MAX[1]}" in capped.stderr, capped.stderr
    assert json.loads(inside_session(rita.name, SCREEN_AND_WINDOWS))["screen"] == list(DEFAULT_MAX)
    assert resize(sessiond_server, rita, 1280, 720) == (1280, 720)
    assert screenshot_size(sessiond_server, rita, shot) == (1280, 720)


def test_resize_usage_errors(sessiond_server: Server, rita: TestUser) -> None:
    done = svclient(sessiond_server, rita, "resize", "0", "600")
    assert done.returncode == 2
    assert "width and height must be 1..65535" in done.stderr

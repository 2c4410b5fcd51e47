# The spine, end to end, with real components only: sessiond from the
# installed venv, TLS 1.3, PAM against a user this test creates, the
# sandboxed agent with its own Xvfb, a real xterm, and svclient. Assertions
# are on what the user observes: the pixels in the client's screenshot.
"""End-to-end: svclient launches xterm, types, and sees the pixels."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import time

import pytest
from PIL import Image

from svtest import VENV_BIN, Server, TestUser, svclient

pytestmark = [pytest.mark.integration, pytest.mark.root]

# xterm's default colour 1 (red3), used by the ANSI background 41.
XTERM_RED = (205, 0, 0)
PAINT_COMMAND = "printf '\\033[41m%1200s\\033[0m\\n' ''"
# 1200 cells (15 rows of the 80x24 xterm) of the default 6x13 font.
MIN_RED_PIXELS = 1200 * 6 * 13


@pytest.fixture(scope="module")
def alice(user_factory: object) -> TestUser:
    return user_factory("svt-e2e-a")  # type: ignore[operator, no-any-return]


def count_colour(path: str, colour: tuple[int, int, int]) -> int:
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 24) or []
    return sum(count for count, value in colours if value == colour)


def agent_pid(user: str) -> int:
    out = subprocess.run(["pgrep", "-u", user, "-f", "sessiond.agent"], capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 1, f"expected one agent for {user}, found {pids}"
    return pids[0]


def capture_inside_session(user: str, path: str) -> None:
    """Capture the session's X screen from inside its mount namespace."""
    pid = agent_pid(user)
    script = (
        "import os,sys\n"
        "from Xlib import display, X\n"
        "from PIL import Image\n"
        "name = ':' + sorted(os.listdir('/tmp/.X11-unix'))[0][1:]\n"
        "d = display.Display(name); root = d.screen().root; g = root.get_geometry()\n"
        "raw = root.get_image(0, 0, g.width, g.height, X.ZPixmap, 0xffffffff).data\n"
        "screen = Image.frombytes('RGB', (g.width, g.height), raw, 'raw', 'BGRX')\n"
        # Seamless mode: the agent (the WM) redirects windows, so the root
        # shows nothing; compose each viewable window's own pixels in stacking
        # order, as the client does.
        "if d.get_selection_owner(d.intern_atom('WM_S0')) != X.NONE:\n"
        "    screen = Image.new('RGB', (g.width, g.height))\n"
        "    for w in root.query_tree().children:\n"
        "        if w.get_attributes().map_state != X.IsViewable: continue\n"
        "        wg = w.get_geometry(); b = wg.border_width\n"
        "        data = w.get_image(0, 0, wg.width, wg.height, X.ZPixmap, 0xffffffff).data\n"
        "        tile = Image.frombytes('RGB', (wg.width, wg.height), data, 'raw', 'BGRX')\n"
        "        screen.paste(tile, (wg.x + b, wg.y + b))\n"
        "screen.save(sys.stdout.buffer, 'PNG')\n"
    )
    # The session's /tmp is private, so the PNG comes back on stdout.
    done = subprocess.run(["nsenter", "-t", str(pid), "-m", "--", os.path.join(VENV_BIN, "python"), "-c", script],
                          capture_output=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    with open(path, "wb") as handle:
        handle.write(done.stdout)


def assert_png_is_the_session(user: str, client_png: str, after: str) -> None:
    """The client's screen saved at CLIENT_PNG has exactly the session's pixels (captured inside it)."""
    inside = client_png + ".session.png"
    capture_inside_session(user, inside)
    with Image.open(client_png) as client_screen, Image.open(inside) as session_screen:
        assert client_screen.size == session_screen.size
        assert client_screen.convert("RGB").tobytes() == session_screen.convert("RGB").tobytes(), \
            f"the client's screen differs from the session's {after}"


def test_launch_type_and_see_pixels(sessiond_server: Server, alice: TestUser, tmp_path: object) -> None:
    launched = svclient(sessiond_server, alice, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + sessiond_server.log()
    assert "launched xterm" in launched.stdout

    typed = svclient(sessiond_server, alice, "type", PAINT_COMMAND)
    assert typed.returncode == 0, typed.stderr
    pressed = svclient(sessiond_server, alice, "key", "Return")
    assert pressed.returncode == 0, pressed.stderr

    shot = os.path.join(str(tmp_path), "client.png")
    deadline = time.monotonic() + 15
    red = 0
    while time.monotonic() < deadline:
        taken = svclient(sessiond_server, alice, "screenshot", shot)
        assert taken.returncode == 0, taken.stderr
        red = count_colour(shot, XTERM_RED)
        if red >= MIN_RED_PIXELS:
            break
        time.sleep(0.2)
    assert red >= MIN_RED_PIXELS, f"only {red} red pixels in the client's screenshot"

    # The lossless path is pixel-exact: the client's framebuffer equals a
    # capture taken inside the session (xterm's cursor does not blink).
    inside = os.path.join(str(tmp_path), "inside.png")
    capture_inside_session(alice.name, inside)
    taken = svclient(sessiond_server, alice, "screenshot", shot)
    assert taken.returncode == 0, taken.stderr
    with Image.open(shot) as a, Image.open(inside) as b:
        assert a.size == b.size
        assert a.convert("RGB").tobytes() == b.convert("RGB").tobytes(), "client framebuffer differs from the session"


def test_session_survives_disconnect(sessiond_server: Server, alice: TestUser) -> None:
    first = svclient(sessiond_server, alice, "login")
    second = svclient(sessiond_server, alice, "login")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout.strip() == second.stdout.strip() != ""


def test_apps_lists_demo_catalog(sessiond_server: Server, alice: TestUser) -> None:
    listed = svclient(sessiond_server, alice, "apps")
    assert listed.returncode == 0, listed.stderr
    assert any(line.split("\t")[0] == "xterm" for line in listed.stdout.splitlines())


def test_unknown_app_is_refused(sessiond_server: Server, alice: TestUser) -> None:
    refused = svclient(sessiond_server, alice, "launch", "no-such-app")
    assert refused.returncode == 1
    assert "no published application 'no-such-app'" in refused.stderr


def test_click_focuses_and_raises_the_window_under_the_pointer(sessiond_server: Server, user_factory: object,
                                                               tmp_path: object) -> None:  # fmt: skip
    """No window manager: the agent focuses new windows and the clicked one."""
    frank = user_factory("svt-e2e-f")  # type: ignore[operator]
    assert svclient(sessiond_server, frank, "launch", "xterm").returncode == 0
    # xclock maps on top of xterm's top-left corner and takes the focus.
    assert svclient(sessiond_server, frank, "launch", "xclock").returncode == 0
    shot = os.path.join(str(tmp_path), "shot.png")
    # Click inside xterm but outside xclock (xterm is 80x24 cells of 6x13).
    clicked = svclient(sessiond_server, frank, "click", "300", "200")
    assert clicked.returncode == 0, clicked.stderr
    assert svclient(sessiond_server, frank, "type", PAINT_COMMAND).returncode == 0
    assert svclient(sessiond_server, frank, "key", "Return").returncode == 0
    deadline = time.monotonic() + 15
    red = 0
    while time.monotonic() < deadline and red < MIN_RED_PIXELS:
        assert svclient(sessiond_server, frank, "screenshot", shot).returncode == 0
        red = count_colour(shot, XTERM_RED)
        time.sleep(0.2)
    assert red >= MIN_RED_PIXELS, f"typing after the click did not reach xterm ({red} red pixels)"
    # Raised: xterm's red block now covers the corner where xclock was.
    with Image.open(shot) as image:
        assert image.convert("RGB").getpixel((60, 60)) == XTERM_RED


def test_a_session_starts_while_host_sockets_hold_the_first_display_names(
        sessiond_server: Server, user_factory: object, tmp_path: object) -> None:  # fmt: skip
    """X clients (libxcb) try the abstract socket "\\0/tmp/.X11-unix/XN" before the file and do
    not fall back when Landlock refuses a name bound outside the session (EPERM). With a host X
    server (or anyone) on :0..:3, the session's Xvfb must take another number: the session starts,
    the user sees xterm's pixels, and nothing reaches the host's sockets."""
    user = user_factory("svt-e2e-x")  # type: ignore[operator]
    holders = []
    try:
        for number in range(4):
            holder = socket.socket(socket.AF_UNIX)
            try:
                holder.bind(f"\0/tmp/.X11-unix/X{number}")
            except OSError as exc:  # another host X server holds it already: the same condition
                holder.close()
                assert exc.errno == errno.EADDRINUSE, exc
                continue
            holder.listen(8)
            holder.setblocking(False)
            holders.append(holder)
        launched = svclient(sessiond_server, user, "launch", "xterm")
        assert launched.returncode == 0, launched.stderr + sessiond_server.log()
        assert svclient(sessiond_server, user, "type", PAINT_COMMAND).returncode == 0
        assert svclient(sessiond_server, user, "key", "Return").returncode == 0
        shot = os.path.join(str(tmp_path), "client.png")
        deadline, red = time.monotonic() + 15, 0
        while time.monotonic() < deadline and red < MIN_RED_PIXELS:
            taken = svclient(sessiond_server, user, "screenshot", shot)
            assert taken.returncode == 0, taken.stderr
            red = count_colour(shot, XTERM_RED)
            time.sleep(0.2)
        assert red >= MIN_RED_PIXELS, f"only {red} red pixels in the client's screenshot"
        for holder in holders:
            with pytest.raises(BlockingIOError):
                holder.accept()
    finally:
        for holder in holders:
            holder.close()

# The web client decodes video regions in a real browser: Debian's chromium
# (headless, driven by Playwright) against the installed sessiond in desktop
# mode, a real PAM user, a real session with Xvfb, xterm and ffplay playing
# ffmpeg's lavfi test pattern. While it plays, Chromium's WebCodecs decodes
# the H264 regions onto the canvas (the page counts decoded frames, and the
# canvas shows the pattern's saturated colours); once the input ends (ffplay
# keeps its last picture) the lossless refinement makes the canvas equal,
# byte for byte, to the session's root window read inside the session.
"""Web client: H264 through WebCodecs, then the exact still frame (desktop and seamless mode)."""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from svtest import VENV_BIN, Server, TestUser, start_sessiond, stop_sessiond
from test_end_to_end import agent_pid
from test_web_client import UI_TIMEOUT_MS, log_in

pytestmark = [pytest.mark.integration, pytest.mark.root]

PLAY_COMMAND = "ffplay -loglevel error -an -noborder -left 0 -top 0 -f lavfi testsrc=size=640x360:rate=30:duration=6"
# The canvas as RGB bytes, base64 (alpha dropped: the canvas is opaque).
CANVAS_RGB_JS = """() => {
  const c = document.getElementById('screen');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const rgb = new Uint8Array(c.width * c.height * 3);
  for (let i = 0, j = 0; i < d.length; i += 4, j += 3) { rgb[j] = d[i]; rgb[j + 1] = d[i + 1]; rgb[j + 2] = d[i + 2]; }
  let s = '';
  for (let i = 0; i < rgb.length; i += 0x8000) s += String.fromCharCode.apply(null, rgb.subarray(i, i + 0x8000));
  return [c.width, c.height, btoa(s)];
}"""
# Pixels of strongly saturated colour (the test pattern's bars; xterm is black on white).
SATURATED_JS = """() => {
  const c = document.getElementById('screen');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    const hi = Math.max(d[i], d[i + 1], d[i + 2]), lo = Math.min(d[i], d[i + 1], d[i + 2]);
    if (hi - lo > 150) n++;
  }
  return n;
}"""
# The page's VIDEO_CAPS has the H264 bit (bit 0; bit 1 is TILE, announced by every page).
ANNOUNCED_H264_JS = "() => (Number(document.getElementById('screen').dataset.videoCodecs) & 1) === 1"
ROOT_CAPTURE = (
    "import os,sys\n"
    "from Xlib import display, X\n"
    "from PIL import Image\n"
    "name = ':' + sorted(os.listdir('/tmp/.X11-unix'))[0][1:]\n"
    "d = display.Display(name); root = d.screen().root; g = root.get_geometry()\n"
    "raw = root.get_image(0, 0, g.width, g.height, X.ZPixmap, 0xffffffff).data\n"
    "Image.frombytes('RGB', (g.width, g.height), raw, 'raw', 'BGRX').save(sys.stdout.buffer, 'PNG')\n"
)


@pytest.fixture(scope="module")
def sessiond_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Desktop mode: one canvas, whose pixels are the session's root window."""
    server = start_sessiond(str(tmp_path_factory.mktemp("sessiond")), session="mode = desktop\n")
    yield server
    stop_sessiond(server)


@pytest.fixture(scope="module")
def viewer_user(user_factory: Any) -> TestUser:
    return user_factory("svt-webvid-w")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from test_web_client import CHROMIUM, CHROMIUM_ARGS, playwright_sync

    with playwright_sync.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def root_window(user: str, path: str) -> Image.Image:
    done = subprocess.run(["nsenter", "-t", str(agent_pid(user)), "-m", "--", os.path.join(VENV_BIN, "python"), "-c",
                           ROOT_CAPTURE], capture_output=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    with open(path, "wb") as handle:
        handle.write(done.stdout)
    with Image.open(path) as image:
        return image.convert("RGB")


def video_frames(page: Any) -> int:
    return int(page.evaluate("Number(document.getElementById('screen').dataset.videoFrames || 0)"))


def test_chromium_decodes_h264_then_shows_the_exact_still(sessiond_server: Server, viewer_user: TestUser,
                                                         browser: Any, tmp_path: Any) -> None:  # fmt: skip
    page = browser.new_page(viewport={"width": 1024, "height": 700})
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text))
    log_in(page, sessiond_server, viewer_user)
    xterm = page.locator('#apps button[data-app="xterm"]')
    xterm.wait_for(timeout=UI_TIMEOUT_MS)
    xterm.click()
    page.wait_for_selector("#screen[data-frames]", timeout=UI_TIMEOUT_MS)
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Connected as')",
                           timeout=UI_TIMEOUT_MS)  # fmt: skip
    # This Chromium's WebCodecs decodes H.264, so the page announced it (VIDEO_CAPS).
    page.wait_for_function(ANNOUNCED_H264_JS, timeout=UI_TIMEOUT_MS)
    page.wait_for_timeout(1500)  # xterm maps
    page.locator("#screen").click(position={"x": 100, "y": 100})
    page.keyboard.type(PLAY_COMMAND)
    page.keyboard.press("Enter")

    deadline = time.monotonic() + 60
    saturated = 0
    while time.monotonic() < deadline and video_frames(page) < 10:
        page.wait_for_timeout(200)
    frames = video_frames(page)
    assert frames >= 10, f"Chromium decoded {frames} H.264 frames; console: {console}\n{sessiond_server.log()[-3000:]}"
    saturated = int(page.evaluate(SATURATED_JS))
    assert saturated >= 640 * 360 // 3, f"the decoded video is not on the canvas ({saturated} saturated pixels)"

    # The input ends after 6 s; wait until no more video frames arrive.
    last, still_since = video_frames(page), time.monotonic()
    while time.monotonic() - still_since < 2.0 and time.monotonic() < deadline + 60:
        page.wait_for_timeout(250)
        now = video_frames(page)
        if now != last:
            last, still_since = now, time.monotonic()
    session = root_window(viewer_user.name, os.path.join(str(tmp_path), "root.png"))
    equal = False
    width = height = 0
    canvas = b""
    for _ in range(40):  # the refinement follows the stream's END within a frame or two
        width, height, data = page.evaluate(CANVAS_RGB_JS)
        canvas = base64.b64decode(data)
        if (width, height) == session.size and canvas == session.tobytes():
            equal = True
            break
        page.wait_for_timeout(250)
    assert (width, height) == session.size, f"canvas {width}x{height}, session {session.size}"
    if not equal:
        Image.frombytes("RGB", (width, height), canvas).save(os.path.join(str(tmp_path), "canvas.png"))
    assert equal, f"the canvas differs from the session's still frame (see {tmp_path}); console: {console}"
    page.close()


# Seamless mode: the video is a window of its own on the page (a canvas per window).
WINDOW_RGB_JS = """() => {
  for (const c of document.querySelectorAll('.sv-window canvas')) {
    if (c.width !== 640 || c.height !== 360) continue;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const rgb = new Uint8Array(c.width * c.height * 3);
    for (let i = 0, j = 0; i < d.length; i += 4, j += 3) {
      rgb[j] = d[i]; rgb[j + 1] = d[i + 1]; rgb[j + 2] = d[i + 2];
    }
    let s = '';
    for (let i = 0; i < rgb.length; i += 0x8000) s += String.fromCharCode.apply(null, rgb.subarray(i, i + 0x8000));
    return [Number(c.closest('.sv-window').dataset.window), btoa(s)];
  }
  return null;
}"""
WINDOW_CAPTURE = (
    "import os,sys\n"
    "from Xlib import display, X\n"
    "from PIL import Image\n"
    "name = ':' + sorted(os.listdir('/tmp/.X11-unix'))[0][1:]\n"
    "d = display.Display(name); w = d.create_resource_object('window', int(sys.argv[1])); g = w.get_geometry()\n"
    "raw = w.get_image(0, 0, g.width, g.height, X.ZPixmap, 0xffffffff).data\n"
    "Image.frombytes('RGB', (g.width, g.height), raw, 'raw', 'BGRX').save(sys.stdout.buffer, 'PNG')\n"
)


@pytest.fixture(scope="module")
def seamless_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_sessiond(str(tmp_path_factory.mktemp("sessiond-seamless")), session="mode = seamless\n")
    yield server
    stop_sessiond(server)


@pytest.fixture(scope="module")
def window_user(user_factory: Any) -> TestUser:
    return user_factory("svt-webvid-s")  # type: ignore[no-any-return]


def test_seamless_window_decodes_h264_then_shows_the_exact_still(seamless_server: Server, window_user: TestUser,
                                                                 browser: Any, tmp_path: Any) -> None:  # fmt: skip
    page = browser.new_page(viewport={"width": 1024, "height": 700})
    log_in(page, seamless_server, window_user)
    xterm = page.locator('#apps button[data-app="xterm"]')
    xterm.wait_for(timeout=UI_TIMEOUT_MS)
    xterm.click()
    # The desktop canvas is hidden in seamless mode; it still carries the counters.
    page.wait_for_function(ANNOUNCED_H264_JS, timeout=UI_TIMEOUT_MS)
    page.locator(".sv-window canvas").first.wait_for(timeout=UI_TIMEOUT_MS)
    page.wait_for_timeout(1500)
    page.locator(".sv-window canvas").first.click(position={"x": 50, "y": 50})
    page.keyboard.type(PLAY_COMMAND)
    page.keyboard.press("Enter")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and video_frames(page) < 10:
        page.wait_for_timeout(200)
    assert video_frames(page) >= 10, "Chromium decoded no H.264 into the video's window"
    last, still_since = video_frames(page), time.monotonic()
    while time.monotonic() - still_since < 2.0 and time.monotonic() < deadline + 60:
        page.wait_for_timeout(250)
        if video_frames(page) != last:
            last, still_since = video_frames(page), time.monotonic()
    found = page.evaluate(WINDOW_RGB_JS)
    assert found is not None, "no 640x360 window canvas on the page"
    window = found[0]
    done = subprocess.run(["nsenter", "-t", str(agent_pid(window_user.name)), "-m", "--",
                           os.path.join(VENV_BIN, "python"), "-c", WINDOW_CAPTURE, str(window)],
                          capture_output=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    path = os.path.join(str(tmp_path), "window.png")
    with open(path, "wb") as handle:
        handle.write(done.stdout)
    with Image.open(path) as image:
        session = image.convert("RGB").tobytes()
    equal = False
    for _ in range(40):
        found = page.evaluate(WINDOW_RGB_JS)
        if found is not None and base64.b64decode(found[1]) == session:
            equal = True
            break
        page.wait_for_timeout(250)
    assert equal, "the video window's canvas differs from the window's still frame in the session"
    page.close()

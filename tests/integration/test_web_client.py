# The web client end to end in a real browser: Debian's chromium (headless,
# driven by Playwright, which never downloads a browser) against the installed
# sessiond, a real PAM user, a real session with Xvfb and xterm. Assertions
# are on what the user sees: the canvas pixels read back from the page, the
# status line, the error text.
"""Web client: log in, launch xterm from the launcher, see its pixels; survive a dropped connection."""

from __future__ import annotations

import http.client
import ssl
import struct
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from svtest import Server, TestUser, start_sessiond, stop_sessiond, svclient

pytestmark = [pytest.mark.integration, pytest.mark.root]

from playwright import sync_api as playwright_sync  # noqa: E402 - pinned in requirements-test.txt

CHROMIUM = "/usr/bin/chromium"
# As root chromium needs --no-sandbox; the network is closed, so no background traffic;
# sessiond's certificate is self-signed (users trust it once, see docs/web.md).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-gpu", "--no-first-run", "--ignore-certificate-errors"]  # fmt: skip
# xterm's colour 1 (red3) as ANSI background 41: 1200 cells of the 6x13 font.
XTERM_RED = (205, 0, 0)
PAINT_COMMAND = "printf '\\033[41m%1200s\\033[0m\\n' ''"
MIN_RED_PIXELS = 1200 * 6 * 13
# Generous: the first session start includes Xvfb, the agent and xterm.
UI_TIMEOUT_MS = 30_000

# Counts the pixels of one colour on the session canvas, in session coordinates.
COUNT_JS = """([r, g, b]) => {
  const c = document.getElementById('screen');
  if (!c.width) return 0;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] === r && d[i + 1] === g && d[i + 2] === b) n++;
  return n;
}"""


# True once the session canvas has the size of the session view and is drawn 1:1 (no scaling).
FOLLOWS_JS = """() => {
  const c = document.getElementById('screen');
  const box = document.getElementById('session-view').getBoundingClientRect();
  return c.width === Math.floor(box.width) && c.height === Math.floor(box.height)
    && c.getBoundingClientRect().width === c.width && c.getBoundingClientRect().height === c.height;
}"""


@pytest.fixture(scope="module")
def sessiond_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Desktop mode: these tests check the one-canvas client (seamless mode: test_web_windows.py)."""
    server = start_sessiond(str(tmp_path_factory.mktemp("sessiond")), session="mode = desktop\n")
    yield server
    stop_sessiond(server)


@pytest.fixture(scope="module")
def web_user(user_factory: Any) -> TestUser:
    return user_factory("svt-web-a")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


# The frame header (protocol/frames.py) and the input channel's KEY, KEY_TAP and KEY_TAP_ACK types.
FRAME_HEADER = struct.Struct(">IHBB")
KEY_TYPE, KEY_TAP_TYPE, KEY_TAP_ACK_TYPE = 0x01, 0x07, 0x0B


class SentFrames:
    """(channel, type, payload length) of every frame the page sent on its WebSocket
    (one WebSocket message may carry several frames)."""

    def __init__(self, page: Any) -> None:
        self.frames: list[tuple[int, int, int]] = []
        page.on("websocket", lambda ws: ws.on("framesent", self._sent))

    def _sent(self, payload: Any) -> None:
        data = payload if isinstance(payload, bytes) else b""
        offset = 0
        while offset + FRAME_HEADER.size <= len(data):
            length, channel, type_, _flags = FRAME_HEADER.unpack_from(data, offset)
            self.frames.append((channel, type_, length))
            offset += FRAME_HEADER.size + length

    def count(self, type_: int, length: int) -> int:
        """Frames of this type and payload length on a channel other than control."""
        return sum(1 for channel, t, n in self.frames if channel != 0 and t == type_ and n == length)


def url(server: Server, path: str = "/web/") -> str:
    return f"https://{server.host}:{server.port}{path}"


def red_pixels(page: Any) -> int:
    return int(page.evaluate(COUNT_JS, list(XTERM_RED)))


def wait_for_red(page: Any, at_least: int, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    red = 0
    while time.monotonic() < deadline:
        red = red_pixels(page)
        if red >= at_least:
            return red
        page.wait_for_timeout(200)
    return red


def log_in(page: Any, server: Server, user: TestUser) -> None:
    page.goto(url(server))
    page.fill("#user", user.name)
    page.fill("#password", user.password)
    page.click("#login-button")


def open_xterm(page: Any, server: Server, user: TestUser) -> None:
    """Log in, launch xterm from the launcher, wait until the canvas follows the page."""
    log_in(page, server, user)
    xterm = page.locator('#apps button[data-app="xterm"]')
    xterm.wait_for(timeout=UI_TIMEOUT_MS)
    xterm.click()
    page.wait_for_selector("#screen[data-frames]", timeout=UI_TIMEOUT_MS)
    page.wait_for_function(FOLLOWS_JS, timeout=UI_TIMEOUT_MS)


def test_login_launch_type_and_see_pixels_then_survive_a_drop(sessiond_server: Server, web_user: TestUser,
                                                              browser: Any) -> None:  # fmt: skip
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text))
    sent = SentFrames(page)
    log_in(page, sessiond_server, web_user)

    # The launcher lists xterm with its icon (ICON answered as a PNG data: URL).
    xterm = page.locator('#apps button[data-app="xterm"]')
    xterm.wait_for(timeout=UI_TIMEOUT_MS)
    page.locator('#apps button[data-app="xterm"] img').wait_for(timeout=UI_TIMEOUT_MS)
    assert page.locator('#apps button[data-app="xterm"] img').get_attribute("src").startswith("data:image/png;base64,")
    xterm.click()

    page.wait_for_selector("#screen[data-frames]", timeout=UI_TIMEOUT_MS)
    # The session takes the size of the page's session view (not the configured 1024x768), drawn 1:1.
    page.wait_for_function(FOLLOWS_JS, timeout=UI_TIMEOUT_MS)
    assert page.evaluate("document.getElementById('screen').width") == 1280
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Connected as')",
                           timeout=UI_TIMEOUT_MS)  # fmt: skip
    # xterm needs a moment to map; typing goes to the focused window under the pointer.
    page.wait_for_timeout(1500)
    page.locator("#screen").click(position={"x": 100, "y": 100})
    page.keyboard.type(PAINT_COMMAND)
    page.keyboard.press("Enter")
    red = wait_for_red(page, MIN_RED_PIXELS)
    assert red >= MIN_RED_PIXELS, (f"only {red} red pixels on the canvas; console: {console}\n"
                                   f"{sessiond_server.log()[-3000:]}")
    # Typed text went out as KEY_TAPs (one 4-byte message per character, or a 2- or 3-byte
    # KEY_TAP_ACK carrying the held frame ack), not KEY down + up pairs.
    taps = sent.count(KEY_TAP_TYPE, 4) + sent.count(KEY_TAP_ACK_TYPE, 2) + sent.count(KEY_TAP_ACK_TYPE, 3)
    keys = sent.count(KEY_TYPE, 5)
    assert taps >= len(PAINT_COMMAND) + 1 and keys == 0, f"{taps} KEY_TAP and {keys} KEY frames for the command"

    # The resume token is in sessionStorage, never in the URL.
    token = page.evaluate("sessionStorage.getItem('sessiond.token')")
    assert token and token not in page.url

    # Drop the network: kill the browser's TCP connection to sessiond (an RST, no WebSocket close).
    page.evaluate("document.getElementById('screen').getContext('2d').fillRect(0, 0, 1024, 768)")
    assert red_pixels(page) == 0
    killed = subprocess.run(["ss", "-K", "dst", sessiond_server.host, "dport", "=", str(sessiond_server.port)],
                            capture_output=True, text=True)  # fmt: skip
    assert killed.returncode == 0, killed.stderr
    page.wait_for_function("() => document.getElementById('status').textContent.includes('econnect')",
                           timeout=UI_TIMEOUT_MS)  # fmt: skip
    back = wait_for_red(page, MIN_RED_PIXELS)
    assert back >= MIN_RED_PIXELS, f"after the drop only {back} red pixels; console: {console}"
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Connected as')",
                           timeout=UI_TIMEOUT_MS)  # fmt: skip
    assert page.evaluate("sessionStorage.getItem('sessiond.token')") not in (None, token), "token not rotated"
    assert page.evaluate("document.body.dataset.view") == "session"

    # A reload of the tab resumes too (sessionStorage survives it) and shows the same screen.
    page.reload()
    assert wait_for_red(page, MIN_RED_PIXELS) >= MIN_RED_PIXELS
    assert "sessiond.token" not in page.url
    page.close()


def test_wrong_password_says_so(sessiond_server: Server, web_user: TestUser, browser: Any) -> None:
    page = browser.new_page()
    page.goto(url(sessiond_server))
    page.fill("#user", web_user.name)
    page.fill("#password", "not-the-password")
    page.click("#login-button")
    error = page.locator("#login-error")
    error.wait_for(state="visible", timeout=UI_TIMEOUT_MS)
    assert error.text_content() == "Wrong user name or password."
    assert page.evaluate("sessionStorage.getItem('sessiond.token')") is None
    page.close()


def test_unreachable_server_says_so(browser: Any, tmp_path: Any) -> None:
    server = start_sessiond(str(tmp_path))
    page = browser.new_page()
    try:
        page.goto(url(server))
    finally:
        stop_sessiond(server)  # the page is loaded; now the server is gone
    page.fill("#user", "nobody")
    page.fill("#password", "x")
    page.click("#login-button")
    error = page.locator("#login-error")
    error.wait_for(state="visible", timeout=UI_TIMEOUT_MS)
    assert "Cannot reach the server" in (error.text_content() or "")
    page.close()


def test_security_headers_and_cross_origin_websocket(sessiond_server: Server) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(sessiond_server.host, sessiond_server.port, context=context, timeout=10)
    conn.request("GET", "/web/")
    page = conn.getresponse()
    body = page.read()
    assert page.status == 200 and b'<script type="module" src="js/app.js">' in body
    assert "script-src 'self'" in page.getheader("content-security-policy", "")
    assert "frame-ancestors 'none'" in page.getheader("content-security-policy", "")
    assert page.getheader("x-frame-options") == "DENY"
    assert page.getheader("cache-control") == "no-store"
    assert page.getheader("strict-transport-security") is None  # self-signed certificate
    conn.request("GET", "/web/test/protocol.test.js")
    hidden = conn.getresponse()
    hidden.read()
    assert hidden.status == 404
    conn.request("GET", "/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                        "Origin": "https://evil.example"})  # fmt: skip
    refused = conn.getresponse()
    refused.read()
    assert refused.status == 403
    conn.close()


def test_the_session_follows_the_browser_window(sessiond_server: Server, web_user: TestUser, browser: Any,
                                                tmp_path: Any) -> None:  # fmt: skip
    """Resizing the browser window resizes the session's X screen (RESIZE_REQUEST, debounced)."""
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    open_xterm(page, sessiond_server, web_user)
    assert page.evaluate("document.getElementById('screen').width") == 1100

    page.set_viewport_size({"width": 900, "height": 640})
    page.wait_for_function(FOLLOWS_JS, timeout=UI_TIMEOUT_MS)
    width, height = page.evaluate("[document.getElementById('screen').width, document.getElementById('screen').height]")
    assert width == 900 and 500 < height < 640, (width, height)
    page.close()
    # The session itself has that size: another client, connecting afterwards, sees it.
    shot = f"{tmp_path}/shot.png"
    taken = svclient(sessiond_server, web_user, "screenshot", shot, password_file=web_user.password_file)
    assert taken.returncode == 0, taken.stderr
    assert f"({width}x{height})" in taken.stdout

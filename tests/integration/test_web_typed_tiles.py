# The compact keystroke path of issue 15 in the browser: Debian's chromium
# (headless, Playwright) runs the web client against the installed sessiond
# in desktop mode. Letters typed on the page go up as KEY_TAP_ACK (the held
# frame ack inside the keystroke's message), echoes come down as TILE
# frames (counted from the WebSocket's received bytes), and the canvas --
# read back from the page as a lossless PNG -- ends byte-identical to a
# capture taken inside the session. The native client: test_typed_tiles.py.
"""Web client: typed letters arrive as TILE frames and the canvas is pixel-exact."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from PIL import Image

from protocol.frames import FrameDecoder
from svtest import Server, TestUser
from test_end_to_end import capture_inside_session
from test_web_client import (  # noqa: F401 - fixtures: browser, sessiond_server (desktop mode), web_user
    KEY_TAP_ACK_TYPE,
    UI_TIMEOUT_MS,
    SentFrames,
    browser,
    open_xterm,
    sessiond_server,
    web_user,
)

pytestmark = [pytest.mark.integration, pytest.mark.root]

DISPLAY_CHANNEL = 1
TILE_TYPE = 0x09
TEXT = "tiles"
# The canvas as a PNG (lossless), base64.
CANVAS_PNG_JS = "() => document.getElementById('screen').toDataURL('image/png').split(',')[1]"
# Frames the page has counted so far (data-frames of the canvas); and "more than n of them".
FRAMES_JS = "() => Number(document.getElementById('screen').dataset.frames || 0)"
MORE_FRAMES_JS = "(n) => Number(document.getElementById('screen').dataset.frames || 0) > n"


class ReceivedDisplay:
    """(type, payload) of the display channel's frames among what the page's WebSocket
    received (a frame may span WebSocket messages: one stream decoder)."""

    def __init__(self, page: Any) -> None:
        self.decoder = FrameDecoder()
        self.frames: list[tuple[int, bytes]] = []
        page.on("websocket", lambda ws: ws.on("framereceived", self._received))

    def _received(self, payload: Any) -> None:
        if isinstance(payload, bytes):
            self.frames += [(item.type, bytes(item.payload)) for item in self.decoder.feed(payload)
                            if item.channel == DISPLAY_CHANNEL]  # fmt: skip

    def count(self, type_: int) -> int:
        """Frames of this type received so far."""
        return sum(1 for t, _ in self.frames if t == type_)


def canvas(page: Any) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(page.evaluate(CANVAS_PNG_JS)))).convert("RGB")


def test_typed_letters_arrive_as_tiles_and_the_canvas_is_pixel_exact(
    sessiond_server: Server,  # noqa: F811 - the fixtures imported above
    web_user: TestUser,  # noqa: F811
    browser: Any,  # noqa: F811
    tmp_path: Any,
) -> None:
    page = browser.new_page(viewport={"width": 1024, "height": 700})
    sent = SentFrames(page)
    received = ReceivedDisplay(page)
    open_xterm(page, sessiond_server, web_user)
    page.wait_for_timeout(1500)  # xterm maps and draws its prompt
    page.locator("#screen").click(position={"x": 100, "y": 100})
    page.wait_for_timeout(500)
    for char in TEXT:
        before = page.evaluate(FRAMES_JS)
        page.keyboard.type(char)
        page.wait_for_function(MORE_FRAMES_JS, arg=before, timeout=UI_TIMEOUT_MS)
        page.wait_for_timeout(150)  # a typist's pause: the echo's ack is held for the next key
    page.wait_for_timeout(1000)  # nothing moves after the last echo (xterm's cursor does not blink)

    tiles = received.count(TILE_TYPE)
    assert tiles >= len(TEXT) - 1, f"only {tiles} TILE frames for {len(TEXT)} echoed letters"
    # Letters are Latin-1 keysyms: a 2-byte KEY_TAP_ACK (ack, keysym) each.
    assert sent.count(KEY_TAP_ACK_TYPE, 2) >= 1, "no keystroke carried the held frame ack"
    inside = str(tmp_path / "inside.png")
    capture_inside_session(web_user.name, inside)
    shown = canvas(page)
    with Image.open(inside) as session_screen:
        assert shown.size == session_screen.size
        assert shown.tobytes() == session_screen.convert("RGB").tobytes(), \
            "the canvas differs from the session after typing"
    page.close()

# Terminal text as GLYPHS regions in the browser (docs/protocol.md section
# 7c): Debian's chromium (headless, Playwright) runs the web client, which
# announces GLYPHS in VIDEO_CAPS, against the installed sessiond in desktop
# mode. An xterm in the session scrolls 300 distinct lines in 30 bursts; the
# agent sends the text as GLYPHS regions (counted on the page's WebSocket),
# the page draws every one of them (its canvas's data-glyph-regions) with no
# error on the status line, and the canvas -- read back as a lossless PNG --
# ends byte-identical to a capture taken inside the session. The same in
# seamless mode (the default), where the regions go to the xterm window's
# own canvas on the page and are compared with that window in the session.
"""Web client: scrolling terminal text arrives as GLYPHS regions and the canvas is pixel-exact."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from svtest import Server, TestUser, start_sessiond, stop_sessiond
from test_end_to_end import assert_png_is_the_session, capture_inside_session
from test_web_client import (  # noqa: F401 - fixtures: browser, sessiond_server (desktop mode), web_user
    UI_TIMEOUT_MS,
    browser,
    log_in,
    open_xterm,
    sessiond_server,
    web_user,
)
from test_web_typed_tiles import FRAMES_JS, ReceivedDisplay, canvas
from test_web_windows import by_class

pytestmark = [pytest.mark.integration, pytest.mark.root]

REGION_TYPE = 0x02
GLYPHS_ENCODING = 8
# REGION's encoding follows x, y, w, h (u16 each).
REGION_ENCODING_AT = 8
# Distinct lines in bursts (many frames, later ones reusing the glyphs earlier ones defined),
# enough to scroll xterm's 24 rows many times over.
SCROLL_COMMAND = ("for b in $(seq 30); do seq -f \"burst $b line %g: The quick brown fox jumps over the lazy dog\""
                  " 1 10; sleep 0.1; done")
GLYPH_REGIONS_JS = "() => Number(document.getElementById('screen').dataset.glyphRegions || 0)"
STATUS_JS = "() => document.getElementById('status').textContent"
# How long the page must show no new frame to count as settled, and the most to wait for it.
QUIET_SECONDS = 2.0
SETTLE_SECONDS = 90.0


def wait_until_settled(page: Any) -> None:
    """Until the page has drawn no new frame for QUIET_SECONDS (xterm's cursor does not blink)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    frames, since = page.evaluate(FRAMES_JS), time.monotonic()
    while time.monotonic() < deadline:
        page.wait_for_timeout(250)
        now = page.evaluate(FRAMES_JS)
        if now != frames:
            frames, since = now, time.monotonic()
        elif time.monotonic() - since >= QUIET_SECONDS:
            return
    raise AssertionError(f"the page kept drawing for {SETTLE_SECONDS} s")


def scroll_and_count(page: Any, received: ReceivedDisplay) -> None:
    """Run SCROLL_COMMAND in the focused xterm; the page must draw every GLYPHS region
    it received, more than before the text scrolled, and show no error."""
    page.wait_for_function("() => (Number(document.getElementById('screen').dataset.videoCodecs) & 4) === 4",
                           timeout=UI_TIMEOUT_MS)  # fmt: skip
    page.keyboard.type(SCROLL_COMMAND)
    wait_until_settled(page)
    before = page.evaluate(GLYPH_REGIONS_JS)
    page.keyboard.press("Enter")
    page.wait_for_timeout(500)
    wait_until_settled(page)
    drawn = page.evaluate(GLYPH_REGIONS_JS)
    status = page.evaluate(STATUS_JS)
    assert "could not draw" not in status, status
    assert drawn > before, f"the page drew {drawn} GLYPHS regions, {before} before the text scrolled"
    sent = [payload[REGION_ENCODING_AT] for t, payload in received.frames if t == REGION_TYPE].count(GLYPHS_ENCODING)
    assert drawn == sent, f"{sent} GLYPHS regions received, {drawn} drawn"


def test_scrolling_text_arrives_as_glyphs_and_the_canvas_is_pixel_exact(
    sessiond_server: Server,  # noqa: F811 - the fixtures imported above
    web_user: TestUser,  # noqa: F811
    browser: Any,  # noqa: F811
    tmp_path: Any,
) -> None:
    page = browser.new_page(viewport={"width": 1024, "height": 700})
    received = ReceivedDisplay(page)
    open_xterm(page, sessiond_server, web_user)
    page.wait_for_timeout(1500)  # xterm maps and draws its prompt
    page.locator("#screen").click(position={"x": 100, "y": 100})
    scroll_and_count(page, received)
    shown = str(tmp_path / "canvas.png")
    canvas(page).save(shown)
    assert_png_is_the_session(web_user.name, shown, "after the text scrolled")
    page.close()


@pytest.fixture(scope="module")
def seamless_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_sessiond(str(tmp_path_factory.mktemp("sessiond")), session="mode = seamless\n")
    yield server
    stop_sessiond(server)


@pytest.fixture(scope="module")
def seamless_user(user_factory: Any) -> TestUser:
    return user_factory("svt-web-gs")  # type: ignore[no-any-return]


def test_seamless_xterm_window_gets_glyphs_and_its_canvas_is_pixel_exact(
    seamless_server: Server,
    seamless_user: TestUser,
    browser: Any,  # noqa: F811
    tmp_path: Any,
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    received = ReceivedDisplay(page)
    log_in(page, seamless_server, seamless_user)
    page.click('#apps button[data-app="xterm"]', timeout=UI_TIMEOUT_MS)
    window = page.locator('.sv-window[data-app="xterm"] canvas')
    window.wait_for(timeout=UI_TIMEOUT_MS)
    page.wait_for_timeout(1500)  # xterm maps and draws its prompt
    window.click()
    scroll_and_count(page, received)
    shown = Image.open(io.BytesIO(base64.b64decode(window.evaluate("c => c.toDataURL('image/png').split(',')[1]"))))
    x, y, w, h = by_class(seamless_user.name, "XTerm")[:4]
    inside = str(tmp_path / "inside.png")
    capture_inside_session(seamless_user.name, inside)  # every window composed where it is
    with Image.open(inside) as session_screen:
        xterm = session_screen.convert("RGB").crop((x, y, x + w, y + h))
    assert shown.size == xterm.size
    assert shown.convert("RGB").tobytes() == xterm.tobytes(), "xterm's canvas differs from its window in the session"
    page.close()

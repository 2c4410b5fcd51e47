# Seamless mode in a real browser (Debian's chromium driven by Playwright).
#
# Two parts. First, the page's window manager UI (client/web/js/windows.js)
# in chromium against a scripted window manager (test/fixtures/windows-harness.js,
# served from the client's own files): what a drag, a button, the taskbar do
# on the page and which requests go out. This needs no session and can fail
# on its own. Second, the real thing against the installed sessiond: XTerm and
# XCalc launched from the launcher, moved, resized, closed, queried inside the
# session with python-xlib through nsenter.
"""Web client seamless mode: windows on the page, title bar drags, buttons, taskbar, reconnect."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = [pytest.mark.integration]

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-gpu", "--no-first-run", "--ignore-certificate-errors"]  # fmt: skip
WEB_ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "client", "web")
SHOTS = os.environ.get("SVTEST_SHOTS", "")
TITLE_HEIGHT = 26


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        """No access log on the test output."""


@pytest.fixture(scope="module")
def web_root_url() -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=os.path.abspath(WEB_ROOT))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def shot(page: Any, name: str) -> None:
    """Keep a screenshot for a human to look at when SVTEST_SHOTS names a directory."""
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"))


def box(page: Any, selector: str) -> dict[str, float]:
    found = page.locator(selector).bounding_box()
    assert found is not None, f"{selector} is not on the page"
    return found  # type: ignore[no-any-return]


@pytest.fixture
def harness(browser: Any, web_root_url: str) -> Iterator[Any]:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{web_root_url}/test/fixtures/windows-harness.html")
    page.wait_for_selector("body[data-ready]")
    page.evaluate("""() => {
      harness.open({id: 11, x: 0, y: 0, width: 484, height: 316, title: 'xterm', app_id: 'xterm', colour: '#000',
                    size_hints: {base_width: 4, base_height: 4, width_inc: 6, height_inc: 13, min_width: 10, min_height: 17}});
      harness.open({id: 22, x: 500, y: 0, width: 226, height: 290, title: 'Calculator', app_id: 'xcalc', colour: '#c33'});
    }""")
    yield page
    assert not errors, errors
    page.close()


def test_page_windows_title_bar_drag_moves_by_the_pointer(harness: Any) -> None:
    page = harness
    before = box(page, '.sv-window[data-window="22"]')
    bar = box(page, '.sv-window[data-window="22"] .sv-title')
    x, y = bar["x"] + 20, bar["y"] + bar["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 150, y + 100, steps=5)
    page.mouse.move(x + 300, y + 200, steps=5)
    page.mouse.up()
    after = box(page, '.sv-window[data-window="22"]')
    assert (after["x"] - before["x"], after["y"] - before["y"]) == (300, 200)
    moves = [r["fields"] for r in page.evaluate("harness.requests") if r["name"] == "WINDOW_MOVE_RESIZE"]
    assert moves == [{"window": 22, "x": 800, "y": 200, "width": 226, "height": 290}], moves
    shot(page, "harness-moved")


def test_page_windows_corner_resize_snaps_to_the_hints(harness: Any) -> None:
    page = harness
    corner = box(page, '.sv-window[data-window="11"] .sv-edge-se')
    x, y = corner["x"] + corner["width"] / 2, corner["y"] + corner["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 100, y + 50, steps=8)
    page.mouse.up()
    last = [r["fields"] for r in page.evaluate("harness.requests") if r["name"] == "WINDOW_MOVE_RESIZE"][-1]
    assert last["window"] == 11 and (last["x"], last["y"]) == (0, 0)
    assert (last["width"] - 4) % 6 == 0 and (last["height"] - 4) % 13 == 0, last
    assert 484 + 94 <= last["width"] <= 484 + 100 and 316 + 39 <= last["height"] <= 316 + 52, last
    page.wait_for_function("document.querySelector('.sv-window[data-window=\"11\"] canvas').width === %d" % last["width"])
    content = box(page, '.sv-window[data-window="11"] canvas')
    assert (content["width"], content["height"]) == (last["width"], last["height"])


def test_page_windows_click_raises_and_focuses(harness: Any) -> None:
    page = harness
    page.mouse.click(100, TITLE_HEIGHT + 150)  # inside xterm's canvas (the desktop starts below a title bar)
    raised = [r["fields"]["window"] for r in page.evaluate("harness.requests") if r["name"] == "WINDOW_RAISE"]
    assert raised == [11]
    assert page.locator('.sv-window[data-window="11"]').evaluate("e => e.classList.contains('sv-focused')")
    z11 = int(page.locator('.sv-window[data-window="11"]').evaluate("e => e.style.zIndex"))
    z22 = int(page.locator('.sv-window[data-window="22"]').evaluate("e => e.style.zIndex"))
    assert z11 > z22
    assert page.evaluate("document.activeElement.id") == "desktop", "keys go to the session, not a button"


def test_page_windows_minimize_then_restore_from_the_taskbar(harness: Any) -> None:
    page = harness
    page.click('.sv-window[data-window="22"] .sv-min')
    page.wait_for_selector('.sv-window[data-window="22"]', state="hidden")
    assert page.locator('.sv-task[data-window="22"]').evaluate("e => e.classList.contains('sv-minimized')")
    shot(page, "harness-minimized")
    page.click('.sv-task[data-window="22"]')
    page.wait_for_selector('.sv-window[data-window="22"]', state="visible")
    names = [r["name"] for r in page.evaluate("harness.requests")]
    assert names[-3:] == ["WINDOW_MINIMIZE", "WINDOW_RESTORE", "WINDOW_RAISE"], names


def test_page_windows_close_asks_then_offers_force(harness: Any) -> None:
    page = harness
    page.click('.sv-window[data-window="22"] .sv-close')
    page.wait_for_selector('.sv-window[data-window="22"]', state="detached")
    assert page.locator('.sv-task[data-window="22"]').count() == 0
    page.evaluate("harness.open({id: 33, x: 600, y: 300, width: 200, height: 100, title: 'stubborn', colour: '#36c'})")
    page.click('.sv-window[data-window="33"] .sv-close')
    force = page.locator('.sv-window[data-window="33"] .sv-force')
    force.wait_for(state="visible")
    shot(page, "harness-force")
    force.click()
    page.wait_for_selector('.sv-window[data-window="33"]', state="detached")
    page.click('.sv-window[data-window="11"] .sv-close')
    page.wait_for_selector(".sv-window", state="detached")
    assert page.evaluate("harness.lastClosed()") == 1
    assert page.locator("#taskbar").is_hidden()


def test_page_windows_menu_undecorated_on_top_dialog_above_parent(harness: Any) -> None:
    page = harness
    page.evaluate("""() => {
      harness.open({id: 44, x: 120, y: 80, width: 250, height: 90, kind: 'dialog', transient_for: 11, modal: true,
                    title: 'xmessage', colour: '#3a3'});
      harness.open({id: 55, x: 60, y: 60, width: 140, height: 180, kind: 'override-redirect', managed: false,
                    transient_for: 11, colour: '#aa3'});
    }""")
    z = {i: int(page.locator(f'.sv-window[data-window="{i}"]').evaluate("e => e.style.zIndex")) for i in (11, 22, 44, 55)}
    assert z[55] > z[44] > z[11] and z[55] > z[22], z
    assert page.locator('.sv-window[data-window="55"] .sv-titlebar').count() == 0
    menu = box(page, '.sv-window[data-window="55"]')
    assert (menu["x"], menu["y"] - TITLE_HEIGHT) == (60, 60)
    assert page.locator('.sv-task[data-window="44"]').count() == 0, "a dialog travels with its parent"
    # Picking the parent gives the keyboard to its modal dialog.
    page.click('.sv-task[data-window="11"]')
    raised = [r["fields"]["window"] for r in page.evaluate("harness.requests") if r["name"] == "WINDOW_RAISE"]
    assert raised[-1] == 44
    shot(page, "harness-menu-dialog")
    page.evaluate("harness.destroy(55)")
    assert page.locator('.sv-window[data-window="55"]').count() == 0

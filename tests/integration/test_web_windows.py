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
import json
import os
import pwd
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from svtest import VENV_BIN, sessionctl, start_sessiond, stop_sessiond

pytestmark = [pytest.mark.integration]

from playwright import sync_api as playwright_sync  # noqa: E402 - pinned in requirements-test.txt

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
                    size_hints: {base_width: 4, base_height: 4, width_inc: 6, height_inc: 13,
                                 min_width: 10, min_height: 17}});
      harness.open({id: 22, x: 500, y: 0, width: 226, height: 290, title: 'Calculator', app_id: 'xcalc',
                    colour: '#c33'});
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
    width_js = "document.querySelector('.sv-window[data-window=\"11\"] canvas').width === %d"
    page.wait_for_function(width_js % last["width"])
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


def test_page_windows_icon_from_window_icon_on_bar_and_taskbar(harness: Any) -> None:
    page = harness
    bar_icon = page.locator('.sv-window[data-window="22"] .sv-icon')
    assert bar_icon.get_attribute("src") is None, "no icon before WINDOW_ICON (no launcher icon in the harness)"
    page.evaluate("harness.icon(22, '#0f0')")
    page.wait_for_function(
        "() => document.querySelector('.sv-window[data-window=\"22\"] .sv-icon').naturalWidth === 16")
    assert bar_icon.get_attribute("src").startswith("blob:")
    assert page.locator('.sv-task[data-window="22"] img').get_attribute("src") == bar_icon.get_attribute("src")
    shot(page, "harness-icon")


def test_page_windows_menu_undecorated_on_top_dialog_above_parent(harness: Any) -> None:
    page = harness
    page.evaluate("""() => {
      harness.open({id: 44, x: 120, y: 80, width: 250, height: 90, kind: 'dialog', transient_for: 11, modal: true,
                    title: 'xmessage', colour: '#3a3'});
      harness.open({id: 55, x: 60, y: 60, width: 140, height: 180, kind: 'override-redirect', managed: false,
                    transient_for: 11, colour: '#aa3'});
    }""")
    z = {
        i: int(page.locator(f'.sv-window[data-window="{i}"]').evaluate("e => e.style.zIndex")) for i in (11, 22, 44, 55)
    }
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


# -- the real session ------------------------------------------------------------------------------

UI_TIMEOUT_MS = 30_000
# Lists the session's mapped top-level windows as JSON {id: [x, y, width, height, wm_class, mapped]}, from inside
# its mount namespace (the agent is the WM and does not reparent, so root's children are the app windows).
XQUERY = (
    "import json,os\n"
    "from Xlib import display, X\n"
    "name = ':' + sorted(os.listdir('/tmp/.X11-unix'))[0][1:]\n"
    "d = display.Display(name); root = d.screen().root; out = {}\n"
    "for w in root.query_tree().children:\n"
    "    a = w.get_attributes()\n"
    "    if a.override_redirect: continue\n"
    "    cls = w.get_wm_class()\n"
    "    if not cls: continue\n"
    "    g = w.get_geometry(); t = w.translate_coords(root, 0, 0)\n"
    "    out[w.id] = [-t.x, -t.y, g.width, g.height, cls[1], a.map_state == X.IsViewable]\n"
    "print(json.dumps(out))\n"
)


def agent_pid(user: str) -> int:
    out = subprocess.run(["pgrep", "-u", user, "-f", "sessiond.agent"], capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 1, f"expected one agent for {user}, found {pids}"
    return pids[0]


def session_windows(user: str) -> dict[int, list[Any]]:
    """The X server's own view of the session's top-level windows."""
    done = subprocess.run(["nsenter", "-t", str(agent_pid(user)), "-m", "--", os.path.join(VENV_BIN, "python"),
                           "-c", XQUERY], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return {int(k): v for k, v in json.loads(done.stdout).items()}


MENUS = (
    "import os\n"
    "from Xlib import display, X\n"
    "d = display.Display(':' + sorted(os.listdir('/tmp/.X11-unix'))[0][1:])\n"
    "print([hex(w.id) for w in d.screen().root.query_tree().children"
    " if w.get_attributes().override_redirect and w.get_attributes().map_state == X.IsViewable])\n"
)


def mapped_menus(user: str) -> str:
    """The session's mapped override-redirect windows (for a failure message)."""
    done = subprocess.run(["nsenter", "-t", str(agent_pid(user)), "-m", "--", os.path.join(VENV_BIN, "python"),
                           "-c", MENUS], capture_output=True, text=True, timeout=30)  # fmt: skip
    return done.stdout.strip() or done.stderr.strip()


def by_class(user: str, wm_class: str) -> list[Any]:
    found = [v for v in session_windows(user).values() if v[4] == wm_class]
    assert len(found) == 1, f"{wm_class}: {found}"
    return found[0]  # type: ignore[no-any-return]


def page_rect(page: Any, title_part: str) -> tuple[int, int, int, int]:
    """A window's content rectangle on the page, in desktop (session) coordinates."""
    return tuple(page.evaluate("""(selector) => {
      const d = document.getElementById('desktop').getBoundingClientRect();
      const f = document.querySelector(selector);
      if (!f) return null;
      const r = f.querySelector('canvas').getBoundingClientRect();
      return [Math.round(r.left - d.left), Math.round(r.top - d.top), Math.round(r.width), Math.round(r.height)];
    }""", sel(title_part)))  # fmt: skip


def sel(key: str) -> str:
    """A window's element: by the app that launched it, else by a part of its title."""
    return f'.sv-window[data-app="{key}"]' if key in ("xterm", "xcalc") else f'.sv-window[aria-label*="{key}"]'


def frame(page: Any, key: str) -> Any:
    return page.locator(sel(key))


def wait_until(check: Any, timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: last {last!r}")


def type_line(page: Any, text: str) -> None:
    page.keyboard.type(text)
    page.keyboard.press("Enter")


@pytest.fixture(scope="module")
def sessiond_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Seamless mode whatever $SVTEST_MODE says (desktop mode: test_web_client.py)."""
    server = start_sessiond(str(tmp_path_factory.mktemp("sessiond")), session="mode = seamless\n")
    yield server
    stop_sessiond(server)


@pytest.fixture(scope="module")
def seamless_user(user_factory: Any) -> Any:
    return user_factory("svt-webwin")


@pytest.fixture(scope="module")
def seamless(sessiond_server: Any, seamless_user: Any, browser: Any) -> Iterator[Any]:
    """A logged-in page with XTerm and XCalc launched from the launcher."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"https://{sessiond_server.host}:{sessiond_server.port}/web/")
    page.fill("#user", seamless_user.name)
    page.fill("#password", seamless_user.password)
    page.click("#login-button")
    page.locator('#apps button[data-app="xterm"]').wait_for(timeout=UI_TIMEOUT_MS)
    for app, title in (("xterm", "xterm"), ("xcalc", "xcalc")):
        if page.locator("#launcher-view").is_hidden():
            page.click("#show-apps")  # the launcher stays reachable while apps run
        page.click(f'#apps button[data-app="{app}"]', timeout=UI_TIMEOUT_MS)
        try:
            frame(page, title).wait_for(timeout=UI_TIMEOUT_MS)
        except playwright_sync.Error as error:
            shot(page, f"launch-{app}-failed")
            windows = page.evaluate(
                "[...document.querySelectorAll('.sv-window')].map((w) => w.outerHTML.slice(0, 300))"
            )
            status = page.evaluate("document.getElementById('status').textContent")
            raise AssertionError(f"{app}: {windows} status {status!r}\n{sessiond_server.log()[-3000:]}") from error
    page.wait_for_timeout(1000)  # both apps have drawn
    yield page
    page.close()


pytest_root = pytest.mark.root


@pytest_root
def test_two_apps_open_side_by_side_where_the_session_has_them(seamless: Any, seamless_user: Any) -> None:
    page = seamless
    shot(page, "session-two-apps")
    assert page.evaluate("document.body.dataset.mode") == "seamless"
    term, calc = page_rect(page, "xterm"), page_rect(page, "xcalc")
    overlap_x = min(term[0] + term[2], calc[0] + calc[2]) - max(term[0], calc[0])
    overlap_y = min(term[1] + term[3], calc[1] + calc[3]) - max(term[1], calc[1])
    assert overlap_x <= 0 or overlap_y <= 0, (term, calc)
    assert list(term) == by_class(seamless_user.name, "XTerm")[:4]
    assert list(calc) == by_class(seamless_user.name, "XCalc")[:4]
    assert page.locator(".sv-task").count() == 2


@pytest_root
def test_drag_xcalc_title_bar_moves_it_on_the_page_and_in_the_session(seamless: Any, seamless_user: Any) -> None:
    page = seamless
    before = page_rect(page, "xcalc")
    x_before = by_class(seamless_user.name, "XCalc")
    bar = box(page, '.sv-window[data-app="xcalc"] .sv-title')
    x, y = bar["x"] + 10, bar["y"] + bar["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 300, y + 200, steps=10)
    page.mouse.up()
    after = page_rect(page, "xcalc")
    assert (after[0] - before[0], after[1] - before[1]) == (300, 200)
    moved = wait_until(lambda: (v := by_class(seamless_user.name, "XCalc"))[:2] != x_before[:2] and v,
                       what="xcalc to move in the session")  # fmt: skip
    assert (moved[0] - x_before[0], moved[1] - x_before[1]) == (300, 200)
    page.wait_for_timeout(300)
    assert page_rect(page, "xcalc") == after, "the server's answer kept the page's copy where it was dropped"
    shot(page, "session-xcalc-moved")


@pytest_root
def test_resize_xterm_from_its_corner_changes_rows_and_columns(seamless: Any, seamless_user: Any) -> None:
    page = seamless
    home = pwd.getpwnam(seamless_user.name).pw_dir
    out = os.path.join(home, "stty.txt")
    page.mouse.click(*centre(page, "xterm"))
    type_line(page, "stty size > ~/stty.txt")
    before = wait_until(lambda: os.path.exists(out) and open(out).read().split(), what="stty size")
    os.unlink(out)
    corner = box(page, '.sv-window[data-app="xterm"] .sv-edge-se')
    x, y = corner["x"] + corner["width"] / 2, corner["y"] + corner["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 120, y + 130, steps=10)
    page.mouse.up()
    page.wait_for_timeout(1000)
    page.mouse.click(*centre(page, "xterm"))
    type_line(page, "stty size > ~/stty.txt")
    after = wait_until(lambda: os.path.exists(out) and open(out).read().split(), what="stty size after")
    rows, cols = int(after[0]) - int(before[0]), int(after[1]) - int(before[1])
    assert rows >= 8 and cols >= 18, (before, after)  # 130 px / 13 px rows, 120 px / 6 px columns, roughly
    assert list(page_rect(page, "xterm")) == by_class(seamless_user.name, "XTerm")[:4]
    shot(page, "session-xterm-resized")


def centre(page: Any, title_part: str) -> tuple[float, float]:
    b = box(page, f"{sel(title_part)} canvas")
    return b["x"] + b["width"] / 2, b["y"] + b["height"] / 2


def canvas_png(page: Any, title_part: str) -> str:
    return str(page.locator(f"{sel(title_part)} canvas").evaluate("c => c.toDataURL()"))


@pytest_root
def test_typing_goes_to_the_clicked_window_only(seamless: Any, seamless_user: Any) -> None:
    page = seamless
    out = os.path.join(pwd.getpwnam(seamless_user.name).pw_dir, "focused.txt")
    calc_before = canvas_png(page, "xcalc")
    page.mouse.click(*centre(page, "xterm"))
    assert frame(page, "xterm").evaluate("e => e.classList.contains('sv-focused')") or page.wait_for_selector(
        '.sv-window.sv-focused[data-app="xterm"]', timeout=5000
    )
    type_line(page, "echo focused > ~/focused.txt")
    assert wait_until(lambda: os.path.exists(out) and open(out).read(), what="the echo") == "focused\n"
    page.wait_for_timeout(500)
    assert canvas_png(page, "xcalc") == calc_before, "xcalc's display changed while typing into xterm"


@pytest_root
def test_minimize_then_restore_from_the_taskbar(seamless: Any, seamless_user: Any) -> None:
    page = seamless
    page.click('.sv-window[data-app="xcalc"] .sv-min')
    frame(page, "xcalc").wait_for(state="hidden", timeout=UI_TIMEOUT_MS)
    wait_until(lambda: not by_class(seamless_user.name, "XCalc")[5], what="xcalc unmapped")
    shot(page, "session-minimized")
    page.click('.sv-task[data-app="xcalc"]')
    frame(page, "xcalc").wait_for(state="visible", timeout=UI_TIMEOUT_MS)
    wait_until(lambda: by_class(seamless_user.name, "XCalc")[5], what="xcalc mapped again")


@pytest_root
def test_xterm_ctrl_click_menu_appears_at_the_pointer_undecorated(
    seamless: Any, seamless_user: Any, sessiond_server: Any
) -> None:
    page = seamless
    x, y = centre(page, "xterm")
    page.mouse.move(x, y)
    page.keyboard.down("Control")
    page.mouse.down()
    menu = page.locator(".sv-window:not(:has(.sv-titlebar))")
    try:
        menu.first.wait_for(timeout=UI_TIMEOUT_MS)
    finally:
        shot(page, "session-menu")
    m = menu.first.bounding_box()
    page.mouse.up()
    page.keyboard.up("Control")
    # xterm centres its menu on the pointer horizontally, its top just above it.
    assert m is not None and m["x"] <= x <= m["x"] + m["width"] and abs(m["y"] - y) < 40, (m, x, y)
    try:
        menu.first.wait_for(state="detached", timeout=UI_TIMEOUT_MS)
    except playwright_sync.Error as error:
        listed = sessionctl(sessiond_server, "list").stdout
        session_id = next((line.split()[0] for line in listed.splitlines() if seamless_user.name in line), "")
        agent = sessionctl(sessiond_server, "show", session_id).stdout
        raise AssertionError(f"menu still on the page; mapped in X: {mapped_menus(seamless_user.name)}; "
                             f"the agent's model: {agent}") from error  # fmt: skip


@pytest_root
def test_xmessage_dialog_appears_above_xterm(seamless: Any) -> None:
    page = seamless
    page.mouse.click(*centre(page, "xterm"))
    type_line(page, "xmessage -title sv-dialog 'hello from a dialog' &")
    dialog = frame(page, "sv-dialog")
    dialog.wait_for(timeout=UI_TIMEOUT_MS)
    z = lambda t: int(frame(page, t).evaluate("e => e.style.zIndex"))  # noqa: E731
    assert z("sv-dialog") > z("xterm")
    shot(page, "session-dialog")
    # xmessage may not answer WM_DELETE_WINDOW: then the page offers to force it.
    page.click('.sv-window[aria-label*="sv-dialog"] .sv-close')
    force = page.locator('.sv-window[aria-label*="sv-dialog"] .sv-force')
    wait_until(lambda: dialog.count() == 0 or force.is_visible(), timeout=30, what="close or the force offer")
    if dialog.count():
        shot(page, "session-force-offer")
        force.click()
    dialog.wait_for(state="detached", timeout=UI_TIMEOUT_MS)


# A dialog of xterm's (WM_TRANSIENT_FOR, _NET_WM_WINDOW_TYPE_DIALOG) made inside the session; it lives until killed.
TRANSIENT = (
    "import os,sys,time\n"
    "from Xlib import display, X, Xatom\n"
    "name = ':' + sorted(os.listdir('/tmp/.X11-unix'))[0][1:]\n"
    "d = display.Display(name); s = d.screen()\n"
    "w = s.root.create_window(0, 0, 240, 90, 0, s.root_depth, X.InputOutput, X.CopyFromParent,"
    " background_pixel=s.white_pixel)\n"
    "w.set_wm_name('sv-transient'); w.set_wm_class('svdialog', 'SvDialog')\n"
    "w.set_wm_transient_for(d.create_resource_object('window', int(sys.argv[1])))\n"
    "w.change_property(d.intern_atom('_NET_WM_WINDOW_TYPE'), Xatom.ATOM, 32,"
    " [d.intern_atom('_NET_WM_WINDOW_TYPE_DIALOG')])\n"
    "w.map(); d.flush(); time.sleep(120)\n"
)


@pytest_root
def test_a_transient_dialog_opens_above_its_parent_centred_and_leaves_with_its_app(
    seamless: Any, seamless_user: Any
) -> None:
    page = seamless
    xterm_id = next(k for k, v in session_windows(seamless_user.name).items() if v[4] == "XTerm")
    app = subprocess.Popen(["nsenter", "-t", str(agent_pid(seamless_user.name)), "-m", "--",
                            os.path.join(VENV_BIN, "python"), "-c", TRANSIENT, str(xterm_id)])  # fmt: skip
    try:
        dialog = frame(page, "sv-transient")
        dialog.wait_for(timeout=UI_TIMEOUT_MS)
        shot(page, "session-transient")
        assert dialog.get_attribute("data-kind") == "dialog"
        assert dialog.locator(".sv-titlebar").count() == 1
        z = lambda key: int(frame(page, key).evaluate("e => e.style.zIndex"))  # noqa: E731
        assert z("sv-transient") > z("xterm")
        d, p = page_rect(page, "sv-transient"), page_rect(page, "xterm")
        assert abs((d[0] + d[2] / 2) - (p[0] + p[2] / 2)) <= 2 and abs((d[1] + d[3] / 2) - (p[1] + p[3] / 2)) <= 2
        assert page.locator(".sv-task").count() == 2, "a dialog travels with its parent, not on the taskbar"
    finally:
        app.kill()
        app.wait()
    wait_until(lambda: all(v[4] != "SvDialog" for v in session_windows(seamless_user.name).values()),
               what="the dialog to leave the X server")  # fmt: skip
    frame(page, "sv-transient").wait_for(state="detached", timeout=UI_TIMEOUT_MS)


@pytest_root
def test_every_window_comes_back_where_it_was_after_a_drop(seamless: Any, sessiond_server: Any) -> None:
    page = seamless
    page.click('.sv-window[data-app="xcalc"] .sv-min')
    frame(page, "xcalc").wait_for(state="hidden", timeout=UI_TIMEOUT_MS)
    layout = page.evaluate("""() => [...document.querySelectorAll('.sv-window')].map((w) =>
      [w.getAttribute('aria-label'), w.style.left, w.style.top, w.querySelector('canvas').width,
       w.querySelector('canvas').height, w.style.zIndex, w.hidden])""")
    killed = subprocess.run(["ss", "-K", "dst", sessiond_server.host, "dport", "=", str(sessiond_server.port)],
                            capture_output=True, text=True)  # fmt: skip
    assert killed.returncode == 0, killed.stderr
    status = lambda: str(page.evaluate("document.getElementById('status').textContent"))  # noqa: E731
    wait_until(lambda: "econnect" in status(), what="the page to notice the drop")  # the page's CSP forbids eval
    wait_until(lambda: status().startswith("Connected as"), timeout=30, what="the page to reconnect")
    page.wait_for_timeout(1000)
    again = page.evaluate("""() => [...document.querySelectorAll('.sv-window')].map((w) =>
      [w.getAttribute('aria-label'), w.style.left, w.style.top, w.querySelector('canvas').width,
       w.querySelector('canvas').height, w.style.zIndex, w.hidden])""")
    assert sorted(again) == sorted(layout)
    shot(page, "session-after-drop")
    page.click('.sv-task[data-app="xcalc"]')
    frame(page, "xcalc").wait_for(state="visible", timeout=UI_TIMEOUT_MS)


@pytest_root
def test_xcalc_close_button_ends_xcalc_and_the_last_window_shows_the_launcher(seamless: Any,
                                                                              seamless_user: Any) -> None:  # fmt: skip
    page = seamless
    page.click('.sv-window[data-app="xcalc"] .sv-close')
    frame(page, "xcalc").wait_for(state="detached", timeout=UI_TIMEOUT_MS)
    wait_until(lambda: subprocess.run(["pgrep", "-u", seamless_user.name, "-x", "xcalc"]).returncode == 1,
               what="xcalc to exit")  # fmt: skip
    page.mouse.click(*centre(page, "xterm"))
    type_line(page, "exit")
    try:
        page.wait_for_selector("#launcher-view:not([hidden])", timeout=UI_TIMEOUT_MS)
    except playwright_sync.Error as error:
        shot(page, "session-last-closed-failed")
        left = page.evaluate("[...document.querySelectorAll('.sv-window')].map((w) => w.outerHTML.slice(0, 200))")
        raise AssertionError(f"windows left on the page: {left}") from error
    assert page.locator(".sv-window").count() == 0

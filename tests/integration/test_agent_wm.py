# The agent's window manager against a real Xvfb and real X apps (xterm,
# xcalc): it owns WM_S0, places windows side by side, honours size
# increments, closes politely or by force, centres dialogs on their parent.
# Apps are real; waiting is on conditions with a deadline, never fixed sleeps.
"""Integration tests for sessiond.agent.{wm,x_wm}."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import Xlib.error
from wm_harness import APP_TIMEOUT_SECONDS, RunningWm, start_app, stop_apps
from Xlib import XK, X, Xatom
from Xlib.display import Display

from sessiond.agent.window_model import WindowKind, WindowState
from sessiond.agent.wm_backend import WmSelectionError
from sessiond.agent.x_wm import XlibWmBackend
from sessiond.agent.xserver import XServer

pytestmark = pytest.mark.integration


@pytest.fixture
def wm(xvfb: XServer) -> Iterator[RunningWm]:
    running = RunningWm(xvfb.display)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def apps() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    stop_apps(started)


def x_geometry(display: Display, window: int) -> tuple[int, int, int, int]:
    geom = display.create_resource_object("window", window).get_geometry()
    return geom.x, geom.y, geom.width, geom.height


def test_wm_owns_wm_s0_and_a_second_wm_is_refused(xvfb: XServer, wm: RunningWm) -> None:
    other = Display(xvfb.display)
    try:
        owner = other.get_selection_owner(other.intern_atom("WM_S0"))
        assert owner.id != X.NONE
        check = other.screen().root.get_full_property(other.intern_atom("_NET_SUPPORTING_WM_CHECK"), Xatom.WINDOW)
        assert check is not None and check.value[0] == owner.id
        with pytest.raises(WmSelectionError, match="WM_S0"):
            XlibWmBackend(other).acquire_wm_selection()
        # A WM that ignores the selection is refused by the server itself.
        catcher = Xlib.error.CatchError(Xlib.error.BadAccess)
        other.screen().root.change_attributes(event_mask=X.SubstructureRedirectMask, onerror=catcher)
        other.sync()
        assert catcher.get_error() is not None
    finally:
        other.close()


def test_two_xterms_do_not_overlap(xvfb: XServer, wm: RunningWm, apps: list[Any]) -> None:
    first = start_app(["xterm", "-geometry", "40x12"], xvfb.display, apps)
    a = wm.window_of(first.pid)
    second = start_app(["xterm", "-geometry", "40x12"], xvfb.display, apps)
    b = wm.window_of(second.pid)
    wm.pump()
    ax, ay, aw, ah = x_geometry(wm.display, a.id)
    bx, by, bw, bh = x_geometry(wm.display, b.id)
    assert ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay, ((ax, ay, aw, ah), (bx, by, bw, bh))
    assert (ax, ay, aw, ah) == (a.geometry.x, a.geometry.y, a.geometry.width, a.geometry.height)
    assert wm.wm.model.focus == b.id  # the newest window has the keyboard
    assert a.wm_class == ("xterm", "XTerm") and a.polite_close and a.kind is WindowKind.NORMAL
    client_list = wm.display.screen().root.get_full_property(wm.display.intern_atom("_NET_CLIENT_LIST"), Xatom.WINDOW)
    assert sorted(client_list.value) == sorted([a.id, b.id])


def test_xterm_resize_honours_its_size_increments(xvfb: XServer, wm: RunningWm, apps: list[Any],
                                                  tmp_path: Path) -> None:  # fmt: skip
    # The xterm asks to become 100x30 characters itself (a ConfigureRequest),
    # then reports the size its tty got.
    size_file = tmp_path / "size"
    script = f"printf '\\033[8;30;100t'; sleep 1; stty size > {size_file}.tmp; mv {size_file}.tmp {size_file}; sleep 60"
    proc = start_app(["xterm", "-xrm", "XTerm*allowWindowOps: true", "-geometry", "40x10", "-e", "sh", "-c", script],
                     xvfb.display, apps)  # fmt: skip
    window = wm.window_of(proc.pid)
    # Xt may map the window before it has written its final WM_NORMAL_HINTS: the
    # WM follows the PropertyNotify, so wait for the character cell to arrive.
    wm.wait_for(lambda: wm.wm.model.get(window.id).size_hints.width_inc > 1, "xterm's size increments")
    hints = wm.wm.model.get(window.id).size_hints
    assert hints.width_inc > 1 and hints.height_inc > 1  # xterm's character cell
    wm.wait_for(size_file.exists, "xterm's stty size")
    assert size_file.read_text().split() == ["30", "100"]
    g = wm.wm.model.get(window.id).geometry
    assert (g.width - hints.base_width) % hints.width_inc == 0
    assert (g.height - hints.base_height) % hints.height_inc == 0
    # A client-side resize request (the browser's drag) is snapped to whole cells too.
    wm.wm.move_resize(window.id, type(g)(g.x, g.y, g.width + hints.width_inc // 2 + 3 * hints.width_inc,
                                         g.height + 1))  # fmt: skip
    wm.pump()
    _, _, width, height = x_geometry(wm.display, window.id)
    assert width == g.width + 3 * hints.width_inc and height == g.height


def test_wm_delete_window_closes_xcalc(xvfb: XServer, wm: RunningWm, apps: list[Any]) -> None:
    proc = start_app(["xcalc"], xvfb.display, apps)
    window = wm.window_of_class("XCalc")
    # Xt sets WM_PROTOCOLS just after asking for the map: seen through PropertyNotify.
    wm.wait_for(lambda: wm.wm.model.get(window.id).polite_close, "xcalc's WM_PROTOCOLS")
    assert "calc" in window.title.lower()
    wm.wm.close(window.id)
    wm.wait_for(lambda: proc.poll() is not None, "xcalc to exit after WM_DELETE_WINDOW")
    wm.wait_for(lambda: window.id not in wm.wm.model, "xcalc's window to go")


def make_client(display: Display, w: int, h: int, *, transient_for: int = 0, protocols: bool = False) -> Any:
    screen = display.screen()
    win = screen.root.create_window(0, 0, w, h, 0, screen.root_depth, background_pixel=screen.white_pixel)
    if transient_for:
        win.change_property(Xatom.WM_TRANSIENT_FOR, Xatom.WINDOW, 32, [transient_for])
    if protocols:
        win.change_property(display.intern_atom("WM_PROTOCOLS"), Xatom.ATOM, 32,
                            [display.intern_atom("WM_DELETE_WINDOW")])  # fmt: skip
    win.map()
    display.sync()
    return win


def test_dialog_centred_above_parent_and_force_close(xvfb: XServer, wm: RunningWm) -> None:
    app = Display(xvfb.display)
    try:
        parent = make_client(app, 400, 300)
        wm.wait_for(lambda: parent.id in wm.wm.model, "the parent window")
        dialog = make_client(app, 100, 50, transient_for=parent.id)
        wm.wait_for(lambda: dialog.id in wm.wm.model, "the dialog")
        px, py, pw, ph = x_geometry(wm.display, parent.id)
        dx, dy, dw, dh = x_geometry(wm.display, dialog.id)
        assert (dx + dw // 2, dy + dh // 2) == (px + pw // 2, py + ph // 2)
        assert wm.wm.model.get(dialog.id).kind is WindowKind.DIALOG
        children = [c.id for c in wm.display.screen().root.query_tree().children]
        assert children.index(dialog.id) > children.index(parent.id)
        wm.wm.minimize(parent.id)
        wm.pump()
        assert app.create_resource_object("window", dialog.id).get_attributes().map_state == X.IsUnmapped
        assert wm.wm.model.get(parent.id).state is WindowState.MINIMIZED
        wm.wm.restore(parent.id)
        wm.pump()
        assert parent.get_attributes().map_state == X.IsViewable
        # No WM_DELETE_WINDOW: close forces; the app's connection is cut.
        wm.wm.close(parent.id)
        wm.pump()
        with pytest.raises(Xlib.error.ConnectionClosedError):
            for _ in range(100):
                app.sync()
        wm.wait_for(lambda: len(wm.wm.model) == 0, "the killed app's windows to go", APP_TIMEOUT_SECONDS)
    finally:
        with contextlib.suppress(Exception):  # the connection was killed on purpose
            app.close()


def test_override_redirect_windows_are_tracked_not_managed(xvfb: XServer, wm: RunningWm) -> None:
    app = Display(xvfb.display)
    try:
        owner = make_client(app, 200, 200)
        wm.wait_for(lambda: owner.id in wm.wm.model, "the owner window")
        screen = app.screen()
        menu = screen.root.create_window(300, 310, 50, 60, 1, screen.root_depth, override_redirect=True)
        menu.change_property(Xatom.WM_TRANSIENT_FOR, Xatom.WINDOW, 32, [owner.id])
        menu.map()
        app.sync()
        wm.wait_for(lambda: menu.id in wm.wm.model, "the menu")
        info = wm.wm.model.get(menu.id)
        assert not info.managed and info.transient_for == owner.id and not info.decorated
        assert x_geometry(wm.display, menu.id) == (300, 310, 50, 60)  # placed by the app, not us
        assert wm.wm.model.focus == owner.id
        menu.unmap()
        app.sync()
        wm.wait_for(lambda: menu.id not in wm.wm.model, "the menu to go")
    finally:
        app.close()


def test_xterm_popup_menu_is_tracked_above_and_goes(xvfb: XServer, wm: RunningWm, apps: list[Any]) -> None:
    proc = start_app(["xterm", "-geometry", "40x10"], xvfb.display, apps)
    term = wm.window_of(proc.pid)
    g = term.geometry
    user = Display(xvfb.display)
    try:
        control = user.keysym_to_keycode(XK.XK_Control_L)
        user.xtest_fake_input(X.MotionNotify, x=g.x + g.width // 2, y=g.y + g.height // 2)
        user.xtest_fake_input(X.KeyPress, control)
        user.xtest_fake_input(X.ButtonPress, 1)
        user.sync()
        wm.wait_for(lambda: any(not w.managed for w in wm.wm.model.windows()), "xterm's Ctrl+click menu")
        menu = next(w for w in wm.wm.model.windows() if not w.managed)
        assert wm.wm.model.stacking[-1] == menu.id and not menu.decorated
        assert menu.kind in (WindowKind.OVERRIDE_REDIRECT, WindowKind.MENU)
        assert wm.wm.model.focus == term.id  # a menu never takes the keyboard
        user.xtest_fake_input(X.ButtonRelease, 1)
        user.xtest_fake_input(X.KeyRelease, control)
        user.sync()
        wm.wait_for(lambda: menu.id not in wm.wm.model, "the menu to go after the release")
    finally:
        user.close()

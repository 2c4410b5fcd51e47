# The window manager state machine against a recorder fake X (tests/unit/wm_fakes.py):
# what it maps, where, at which size, what it stacks and focuses, how it
# closes, and that its bounds hold.  No X server, no sleeps.
"""Unit tests for sessiond.agent.wm.WindowManager."""

from __future__ import annotations

import pytest
from wm_fakes import FakeClock, FakeX

from sessiond.agent.ewmh import ICONIC_STATE, NORMAL_STATE, WITHDRAWN_STATE
from sessiond.agent.icccm import ICON_READ_ITEMS, TITLE_READ_BYTES
from sessiond.agent.window_model import (
    MAX_ICON_SIDE,
    MAX_TITLE_BYTES,
    MAX_WINDOWS,
    CloseUnanswered,
    FocusChanged,
    Rect,
    UnknownWindowError,
    WindowDestroyed,
    WindowGeometryChanged,
    WindowKind,
    WindowMetadataChanged,
    WindowNew,
    WindowState,
)
from sessiond.agent.wm import CLOSE_GRACE_SECONDS, WindowManager
from sessiond.agent.wm_backend import (
    ClientMessage,
    ConfigureNotify,
    ConfigureRequest,
    DestroyNotify,
    MapNotify,
    MapRequest,
    PropertyNotify,
    UnmapNotify,
    WmSelectionError,
)

SCREEN = Rect(0, 0, 1280, 800)
# xterm's WM_NORMAL_HINTS: min, inc 6x13, base 4x4 (flags PMinSize|PResizeInc|PBaseSize).
XTERM_HINTS = [16 | 64 | 256, 0, 0, 0, 0, 10, 17, 0, 0, 6, 13, 0, 0, 0, 0, 4, 4, 1]


class Harness:
    def __init__(self, **kwargs: object) -> None:
        self.x = FakeX()
        self.clock = FakeClock()
        self.events: list[object] = []
        self.wm = WindowManager(self.x, SCREEN, self.events.append, self.clock.call_later, **kwargs)  # type: ignore[arg-type]
        self.wm.start()

    def open(self, wid: int, w: int = 200, h: int = 100, **props: object) -> None:
        self.x.add(wid, w, h, **props)
        self.wm.handle(MapRequest(wid))

    def of(self, kind: type) -> list[object]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_start_refused_when_another_wm_runs() -> None:
    wm = WindowManager(FakeX(wm_running=True), SCREEN, lambda e: None, FakeClock().call_later)
    with pytest.raises(WmSelectionError, match="WM_S0"):
        wm.start()


def test_start_advertises_support_and_adopts_mapped_windows() -> None:
    x = FakeX()
    x.add(5, 300, 200, x=40, y=30, mapped=True)
    x.add(6, 50, 20, mapped=True, override_redirect=True)
    x.add(7, 50, 20)  # unmapped: ignored until it asks
    events: list[object] = []
    wm = WindowManager(x, SCREEN, events.append, FakeClock().call_later)
    wm.start()
    assert "_NET_CLOSE_WINDOW" in x.root["_NET_SUPPORTED"]
    assert wm.model.stacking == (5, 6)  # bottom to top, as the server had them
    assert wm.model.get(5).geometry == Rect(40, 30, 300, 200)  # adopted where it was
    assert not wm.model.get(6).managed
    assert x.root["_NET_CLIENT_LIST"] == [5]
    assert x.root["_NET_ACTIVE_WINDOW"] == [5]


def test_map_request_manages_maps_and_focuses(h: Harness) -> None:
    h.open(10, text={"_NET_WM_NAME": "Terminal ✓".encode(), "WM_CLASS": b"xterm\0XTerm\0"},
           cards={"_NET_WM_PID": [4242]}, atoms={"WM_PROTOCOLS": ["WM_DELETE_WINDOW"]})  # fmt: skip
    assert ("map", 10) in h.x.calls
    assert h.x.props[(10, "WM_STATE")] == [NORMAL_STATE, 0]
    (new,) = h.of(WindowNew)
    info = new.window  # type: ignore[attr-defined]
    expected = ("Terminal ✓", ("xterm", "XTerm"), 4242, WindowKind.NORMAL)
    assert (info.title, info.wm_class, info.pid, info.kind) == expected
    assert info.polite_close and info.decorated and info.managed
    assert h.x.focus == 10 and h.wm.model.focus == 10
    assert h.x.root["_NET_ACTIVE_WINDOW"] == [10] and h.x.root["_NET_CLIENT_LIST"] == [10]


def test_new_windows_do_not_cover_existing_ones(h: Harness) -> None:
    for wid in (1, 2, 3, 4):
        h.open(wid, 500, 300)
    rects = [h.wm.model.get(w).geometry for w in (1, 2, 3, 4)]
    for i, a in enumerate(rects):
        assert 0 <= a.x and a.x + a.width <= SCREEN.width and a.y + a.height <= SCREEN.height
        for b in rects[i + 1:]:
            assert not a.intersects(b), (a, b)


def test_configure_request_honours_size_increments(h: Harness) -> None:
    h.open(1, 490, 316, cards={"WM_NORMAL_HINTS": XTERM_HINTS})
    h.wm.handle(ConfigureRequest(1, width=500, height=300))
    g = h.wm.model.get(1).geometry
    assert (g.width - 4) % 6 == 0 and (g.height - 4) % 13 == 0
    assert 494 <= g.width <= 500 and 287 <= g.height <= 300
    assert h.of(WindowGeometryChanged)[-1] == WindowGeometryChanged(1, g)
    # A request that changes nothing still hears back (ICCCM 4.1.5).
    h.wm.handle(ConfigureRequest(1, width=g.width, height=g.height))
    assert h.x.requests("synthetic_configure")[-1] == ("synthetic_configure", 1, g)
    # Below the minimum and above the screen: clamped, never trusted.
    h.wm.handle(ConfigureRequest(1, width=1, height=100000))
    g = h.wm.model.get(1).geometry
    assert g.width >= 10 and g.height <= SCREEN.height


def test_configure_request_of_unmanaged_window_is_granted(h: Harness) -> None:
    h.x.add(9, 100, 100)
    h.wm.handle(ConfigureRequest(9, x=7, width=321))
    assert h.x.requests("configure")[-1] == ("configure", 9, Rect(7, 0, 321, 100))


def test_dialog_centred_on_parent_and_stacked_above(h: Harness) -> None:
    h.open(1, 600, 400)
    h.open(2, 300, 300)
    parent = h.wm.model.get(1).geometry
    h.open(3, 200, 100, cards={"WM_TRANSIENT_FOR": [1]})
    dialog = h.wm.model.get(3)
    assert dialog.kind is WindowKind.DIALOG and dialog.transient_for == 1
    assert (dialog.geometry.x + 100, dialog.geometry.y + 50) == (parent.x + 300, parent.y + 200)
    h.wm.raise_focus(2)
    h.wm.raise_focus(1)  # raising the parent brings its dialog along, above it
    assert h.wm.model.stacking == (2, 1, 3)
    assert h.x.requests("restack")[-1] == ("restack", (2, 1, 3))


def test_modal_dialog_keeps_focus_over_parent(h: Harness) -> None:
    h.open(1, 600, 400)
    h.open(3, 200, 100, cards={"WM_TRANSIENT_FOR": [1]}, atoms={"_NET_WM_STATE": ["_NET_WM_STATE_MODAL"]})
    h.open(2, 300, 300)
    assert h.wm.model.focus == 2
    h.wm.raise_focus(1)
    assert h.wm.model.focus == 3 and h.x.focus == 3
    h.wm.handle(ClientMessage(1, "_NET_ACTIVE_WINDOW", (2, 0, 0, 0, 0)))
    assert h.wm.model.focus == 3


def test_close_with_wm_delete_window(h: Harness) -> None:
    h.open(1, atoms={"WM_PROTOCOLS": ["WM_DELETE_WINDOW", "WM_TAKE_FOCUS"]})
    h.wm.close(1)
    assert ("protocol", 1, "WM_DELETE_WINDOW") in h.x.calls and not h.x.killed
    h.clock.advance(CLOSE_GRACE_SECONDS)
    assert h.of(CloseUnanswered) == [CloseUnanswered(1)] and not h.x.killed
    h.wm.force_close(1)
    assert h.x.killed == [1]


def test_close_answered_in_time_reports_nothing(h: Harness) -> None:
    h.open(1, atoms={"WM_PROTOCOLS": ["WM_DELETE_WINDOW"]})
    h.wm.handle(ClientMessage(1, "_NET_CLOSE_WINDOW", (0, 2, 0, 0, 0)))
    h.wm.handle(DestroyNotify(1))
    h.clock.advance(CLOSE_GRACE_SECONDS * 2)
    assert not h.of(CloseUnanswered) and h.of(WindowDestroyed) == [WindowDestroyed(1)]


def test_close_without_wm_delete_window_forces() -> None:
    h = Harness()
    h.open(1)
    h.wm.close(1)
    assert h.x.killed == [1] and not h.x.requests("protocol")


def test_unanswered_close_forced_when_configured() -> None:
    h = Harness(force_unanswered_close=True)
    h.open(1, atoms={"WM_PROTOCOLS": ["WM_DELETE_WINDOW"]})
    h.wm.close(1)
    h.clock.advance(CLOSE_GRACE_SECONDS)
    assert h.x.killed == [1]


def test_window_limit_refuses_before_managing(h: Harness) -> None:
    for wid in range(1, MAX_WINDOWS + 1):
        h.open(wid, 50, 50)
    assert len(h.wm.model) == MAX_WINDOWS
    maps = len(h.x.requests("map"))
    h.open(MAX_WINDOWS + 1, 50, 50)
    h.x.add(MAX_WINDOWS + 2, 10, 10, override_redirect=True, mapped=True)
    h.wm.handle(MapNotify(MAX_WINDOWS + 2, override_redirect=True))
    assert len(h.wm.model) == MAX_WINDOWS and h.wm.refused == 2
    assert len(h.x.requests("map")) == maps  # the refused window was never mapped
    h.wm.handle(DestroyNotify(1))
    h.open(MAX_WINDOWS + 3, 50, 50)  # room again
    assert MAX_WINDOWS + 3 in h.wm.model


def test_title_bound_is_read_limit_and_cut_on_characters(h: Harness) -> None:
    h.open(1, text={"_NET_WM_NAME": "é".encode() * 100_000})
    assert h.x.read_limits["_NET_WM_NAME"] == TITLE_READ_BYTES
    title = h.wm.model.get(1).title
    assert len(title.encode()) <= MAX_TITLE_BYTES and set(title) == {"é"}
    assert len(title.encode()) >= MAX_TITLE_BYTES - 1


def test_icon_bounds(h: Harness) -> None:
    small = [16, 16] + [0xFF0000FF] * 256
    medium = [48, 48] + [0xFF00FF00] * (48 * 48)
    huge = [1000, 1000] + [0] * 10  # claims a million pixels, truncated by the read limit
    h.open(1, cards={"_NET_WM_ICON": small + medium + huge})
    assert h.x.read_limits["_NET_WM_ICON"] == ICON_READ_ITEMS
    icon = h.wm.model.icon(1)
    assert icon is not None and (icon.width, icon.height) == (48, 48) and len(icon.argb) == 48 * 48 * 4
    side = MAX_ICON_SIDE + 1
    h.open(2, cards={"_NET_WM_ICON": [side, side] + [1] * (side * side)})
    assert h.wm.model.icon(2) is None
    h.open(3, cards={"_NET_WM_ICON": [2**31, 2**31, 1, 2, 3]})
    assert h.wm.model.icon(3) is None


def test_override_redirect_tracked_with_owner(h: Harness) -> None:
    h.open(1, cards={"_NET_WM_PID": [77]})
    h.x.add(50, 80, 120, x=10, y=20, override_redirect=True, mapped=True, cards={"_NET_WM_PID": [77]})
    h.wm.handle(MapNotify(50, override_redirect=True))
    menu = h.wm.model.get(50)
    assert not menu.managed and menu.transient_for == 1 and menu.kind is WindowKind.OVERRIDE_REDIRECT
    assert h.wm.model.stacking[-1] == 50 and h.wm.model.focus == 1  # never focused
    h.open(2)
    assert h.wm.model.stacking[-1] == 50  # menus stay on top
    h.wm.handle(ConfigureNotify(50, Rect(30, 40, 80, 120), 1, True))
    assert h.wm.model.get(50).geometry == Rect(30, 40, 82, 122)  # the border is part of what shows
    h.wm.handle(UnmapNotify(50))
    assert 50 not in h.wm.model


def test_minimize_restore_and_focus_fallback(h: Harness) -> None:
    h.open(1)
    h.open(2)
    h.wm.minimize(2)
    assert ("unmap", 2) in h.x.calls and h.x.props[(2, "WM_STATE")] == [ICONIC_STATE, 0]
    h.wm.handle(UnmapNotify(2))  # our own unmap: the window stays
    assert h.wm.model.get(2).state is WindowState.MINIMIZED and h.wm.model.focus == 1
    assert h.x.props[(2, "_NET_WM_STATE")] == ["_NET_WM_STATE_HIDDEN"]
    h.wm.restore(2)
    assert h.wm.model.get(2).state is WindowState.NORMAL and h.wm.model.focus == 2
    assert h.x.calls.count(("map", 2)) == 2


def test_maximize_and_restore(h: Harness) -> None:
    h.open(1, 300, 200, cards={"WM_NORMAL_HINTS": XTERM_HINTS})
    before = h.wm.model.get(1).geometry
    h.wm.handle(ClientMessage(1, "_NET_WM_STATE", (1, 1, 2, 0, 0)))
    g = h.wm.model.get(1).geometry
    assert h.wm.model.get(1).state is WindowState.MAXIMIZED and (g.x, g.y) == (0, 0)
    assert (g.width, g.height) == (SCREEN.width, SCREEN.height)  # the whole screen: cell increments not honoured
    h.wm.restore(1)
    assert h.wm.model.get(1).geometry == before and h.wm.model.get(1).state is WindowState.NORMAL


def test_a_screen_resize_refits_maximized_windows_only(h: Harness) -> None:
    h.open(1, 300, 200, cards={"WM_NORMAL_HINTS": XTERM_HINTS})
    h.open(2, 300, 200)
    before = h.wm.model.get(1).geometry
    h.wm.maximize(1)
    normal = h.wm.model.get(2).geometry
    h.wm.set_screen(Rect(0, 0, 1601, 1177))
    assert h.wm.model.get(1).geometry == Rect(0, 0, 1601, 1177) and h.wm.model.get(2).geometry == normal
    assert h.wm.screen == Rect(0, 0, 1601, 1177)
    h.wm.restore(1)
    assert h.wm.model.get(1).state is WindowState.NORMAL and h.wm.model.get(1).geometry == before


def test_client_withdraw_and_property_change(h: Harness) -> None:
    h.open(1, text={"WM_NAME": b"one"})
    h.x.windows[1].text["WM_NAME"] = b"two"
    h.wm.handle(PropertyNotify(1, "WM_NAME"))
    assert h.of(WindowMetadataChanged)[-1].window.title == "two"  # type: ignore[attr-defined]
    h.wm.handle(UnmapNotify(1, synthetic=True))
    assert h.x.props[(1, "WM_STATE")] == [WITHDRAWN_STATE, 0]
    assert h.of(WindowDestroyed) == [WindowDestroyed(1)] and h.of(FocusChanged)[-1] == FocusChanged(0)
    assert h.x.root["_NET_CLIENT_LIST"] == []


def test_requests_for_unknown_windows_raise(h: Harness) -> None:
    for request in (h.wm.close, h.wm.force_close, h.wm.minimize, h.wm.maximize, h.wm.restore, h.wm.raise_focus):
        with pytest.raises(UnknownWindowError):
            request(999)
    with pytest.raises(UnknownWindowError):
        h.wm.move_resize(999, Rect(0, 0, 10, 10))


def test_move_resize_request_clamps(h: Harness) -> None:
    h.open(1, cards={"WM_NORMAL_HINTS": XTERM_HINTS})
    h.wm.move_resize(1, Rect(300, 200, 2**20, 0))
    g = h.wm.model.get(1).geometry
    assert (g.x, g.y) == (300, 200) and g.width <= SCREEN.width and g.height >= 17


def test_client_messages_from_apps(h: Harness) -> None:
    h.open(1)
    h.open(2)
    h.wm.handle(ClientMessage(2, "WM_CHANGE_STATE", (ICONIC_STATE, 0, 0, 0, 0)))
    assert h.wm.model.get(2).state is WindowState.MINIMIZED
    h.wm.handle(ClientMessage(2, "_NET_ACTIVE_WINDOW", (1, 0, 0, 0, 0)))
    assert h.wm.model.get(2).state is WindowState.NORMAL and h.wm.model.focus == 2
    h.wm.handle(ClientMessage(2, "_NET_WM_STATE", (2, 1, 2, 0, 0)))  # toggle maximized: on
    assert h.wm.model.get(2).state is WindowState.MAXIMIZED
    h.wm.handle(ClientMessage(2, "_NET_WM_STATE", (0, 1, 0, 0, 0)))  # remove: restored
    assert h.wm.model.get(2).state is WindowState.NORMAL
    h.wm.handle(ClientMessage(2, "_NET_WM_STATE", (1, 4, 0, 0, 0)))  # add modal
    assert h.wm.model.get(2).modal and h.x.props[(2, "_NET_WM_STATE")] == ["_NET_WM_STATE_MODAL"]
    h.wm.handle(ClientMessage(2, "_NET_WM_STATE", (1, 3, 0, 0, 0)))  # hidden
    assert h.wm.model.get(2).state is WindowState.MINIMIZED
    h.wm.handle(ClientMessage(999, "_NET_CLOSE_WINDOW", (0,)))  # a stranger: ignored
    h.wm.handle(ClientMessage(1, "_NET_WM_STATE", ()))  # short data: ignored
    assert not h.x.killed


def test_configure_request_above_raises_without_focus(h: Harness) -> None:
    h.open(1)
    h.open(2)
    h.wm.handle(ConfigureRequest(1, stack_mode="above"))
    assert h.wm.model.stacking == (2, 1) and h.wm.model.focus == 2


def test_map_request_of_minimized_window_restores_it(h: Harness) -> None:
    h.open(1)
    h.wm.minimize(1)
    h.wm.handle(UnmapNotify(1))
    h.wm.handle(MapRequest(1))
    assert h.wm.model.get(1).state is WindowState.NORMAL and h.wm.model.focus == 1

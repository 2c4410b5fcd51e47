# The X-agnostic parts of window management: the model's events and bounds,
# placement and size-hint constraints (also by property), and the pure
# ICCCM/EWMH decoders.
"""Unit tests for sessiond.agent.{window_model,placement,icccm}."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessiond.agent import icccm
from sessiond.agent.placement import MAX_PLACEMENT_WINDOWS, centre_on, constrain_size, maximized, place
from sessiond.agent.window_model import (
    MAX_CLASS_BYTES,
    MAX_ICON_SIDE,
    MAX_TITLE_BYTES,
    MAX_WINDOWS,
    FocusChanged,
    Icon,
    Rect,
    SizeHints,
    WindowDestroyed,
    WindowGeometryChanged,
    WindowIconChanged,
    WindowInfo,
    WindowKind,
    WindowLimitError,
    WindowMetadataChanged,
    WindowModel,
    WindowNew,
    WindowRestacked,
)

SCREEN = Rect(0, 0, 1280, 800)


def test_model_emits_one_event_per_change_and_none_for_no_change() -> None:
    events: list[object] = []
    model = WindowModel(events.append)
    model.add(WindowInfo(1, Rect(0, 0, 10, 10), title="a"))
    model.add(WindowInfo(2, Rect(5, 5, 10, 10)))
    model.update(1, title="a")
    model.set_geometry(1, Rect(0, 0, 10, 10))
    model.restack([1, 2])
    assert [type(e) for e in events] == [WindowNew, WindowNew]
    model.update(1, title="b")
    model.set_geometry(1, Rect(1, 1, 10, 10))
    model.restack([2, 1])
    model.set_focus(1)
    model.remove(1)
    assert [type(e) for e in events[2:]] == [WindowMetadataChanged, WindowGeometryChanged, WindowRestacked,
                                             FocusChanged, WindowDestroyed, FocusChanged]  # fmt: skip
    assert list(model.replay()) == [WindowNew(model.get(2)), WindowRestacked((2,)), FocusChanged(0)]


def test_model_bounds() -> None:
    model = WindowModel(lambda e: None)
    for wid in range(1, MAX_WINDOWS + 1):
        model.add(WindowInfo(wid, Rect(0, 0, 1, 1)))
    with pytest.raises(WindowLimitError):
        model.add(WindowInfo(MAX_WINDOWS + 1, Rect(0, 0, 1, 1)))
    with pytest.raises(ValueError):
        WindowModel(lambda e: None).add(WindowInfo(2**32, Rect(0, 0, 1, 1)))
    info = model.update(1, title="x" * (MAX_TITLE_BYTES + 10), wm_class=("i" * 1000, "c"), app_id="a" * 1000)
    assert len(info.title) == MAX_TITLE_BYTES and len(info.wm_class[0]) == MAX_CLASS_BYTES
    assert len(info.app_id) == MAX_CLASS_BYTES
    with pytest.raises(ValueError):
        model.set_icon(1, Icon(1000, 1, b"\0" * 4000))
    with pytest.raises(ValueError):
        model.restack([1])


def test_icon_events() -> None:
    events: list[object] = []
    model = WindowModel(events.append)
    icon = Icon(1, 1, b"\1\2\3\4")
    model.add(WindowInfo(1, Rect(0, 0, 1, 1)), icon)
    assert events[-1] == WindowIconChanged(1, icon)
    model.set_icon(1, icon)
    assert len(events) == 2
    assert WindowIconChanged(1, icon) in list(model.replay())


def test_constrain_size_xterm_like() -> None:
    hints = SizeHints(min_width=10, min_height=17, base_width=4, base_height=4, width_inc=6, height_inc=13)
    assert constrain_size(500, 300, hints) == (496, 290)
    assert constrain_size(1, 1, hints) == (10, 17)
    capped = SizeHints(min_width=50, min_height=50, max_width=100, max_height=80)
    assert constrain_size(500, 10, capped) == (100, 50)
    assert constrain_size(5000, 5000, SizeHints(), 1280, 800) == (1280, 800)
    square = SizeHints(min_aspect=(1, 1), max_aspect=(1, 1))
    assert constrain_size(300, 200, square) == (200, 200)


def test_maximized_fills_the_screen_within_min_and_max_only() -> None:
    screen = Rect(0, 0, 1601, 1177)
    xterm = SizeHints(min_width=10, min_height=17, base_width=4, base_height=4, width_inc=6, height_inc=13)
    assert maximized(screen, xterm) == screen  # increments are not honoured: the app pads the rest
    assert maximized(screen, SizeHints(min_aspect=(1, 1), max_aspect=(1, 1))) == screen
    assert maximized(screen, SizeHints(max_width=500, max_height=400)) == Rect(0, 0, 500, 400)
    assert maximized(Rect(0, 0, 300, 200), SizeHints(min_width=640, min_height=480)) == Rect(0, 0, 300, 200)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 700), st.integers(1, 500)), max_size=8))
def test_place_never_overlaps_while_there_is_room(sizes: list[tuple[int, int]]) -> None:
    placed: list[Rect] = []
    for w, h in sizes:
        x, y = place(w, h, placed, SCREEN)
        rect = Rect(x, y, w, h)
        free = not any(rect.intersects(r) for r in placed)
        fits = x + w <= SCREEN.width and y + h <= SCREEN.height and x >= 0 and y >= 0
        # Either a free spot was found, or none existed among the candidates and it cascades.
        assert fits or w > SCREEN.width or h > SCREEN.height or not free
        placed.append(rect)
    assert place(10, 10, [], SCREEN) == (0, 0)


def test_place_side_by_side_and_cascade_past_bound() -> None:
    assert place(500, 300, [Rect(0, 0, 500, 300)], SCREEN) == (500, 0)
    many = [Rect(i, i, 10, 10) for i in range(MAX_PLACEMENT_WINDOWS + 1)]
    x, y = place(100, 100, many, SCREEN)
    assert 0 <= x and 0 <= y


def test_centre_on_parent_clamped_to_screen() -> None:
    assert centre_on(100, 50, Rect(100, 100, 300, 150), SCREEN) == (200, 150)
    assert centre_on(400, 400, Rect(1200, 700, 80, 80), SCREEN) == (880, 400)


def test_decode_titles_and_class() -> None:
    assert icccm.decode_title("Ünïcode".encode(), b"ignored") == "Ünïcode"
    assert icccm.decode_title(None, b"caf\xe9") == "café"
    assert icccm.decode_title(b"\xff\xfe", None) == "\ufffd\ufffd"
    assert icccm.decode_title(None, None) == ""
    assert icccm.decode_wm_class(b"xterm\0XTerm\0") == ("xterm", "XTerm")
    assert icccm.decode_wm_class(b"solo") == ("solo", "")


def test_decode_size_hints_rejects_nonsense() -> None:
    hints = icccm.decode_size_hints([16 | 32 | 64, 0, 0, 0, 0, 2**32 - 5, 3, 10**9, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0])
    assert hints.min_width == 1 and hints.min_height == 3  # a negative INT32 is not a size
    assert hints.max_width == 32767 and hints.width_inc == 1 and hints.height_inc == 7
    assert icccm.decode_size_hints(None) == SizeHints()
    assert icccm.decode_size_hints([16, 0, 0, 0, 0, 20, 30]).base_width == 20  # short (pre-ICCCM) hints


def test_window_kind_and_decorations() -> None:
    assert icccm.window_kind(["_NET_WM_WINDOW_TYPE_FOO", "_NET_WM_WINDOW_TYPE_UTILITY"], False, 0) is WindowKind.UTILITY
    assert icccm.window_kind([], False, 5) is WindowKind.DIALOG
    assert icccm.window_kind([], True, 0) is WindowKind.OVERRIDE_REDIRECT
    assert icccm.window_kind(["_NET_WM_WINDOW_TYPE_POPUP_MENU"], True, 0) is WindowKind.MENU
    assert icccm.decorations_wanted(WindowKind.NORMAL, None)
    assert not icccm.decorations_wanted(WindowKind.NORMAL, [2, 0, 0, 0, 0])
    assert not icccm.decorations_wanted(WindowKind.TOOLTIP, None)


def test_choose_icon_walks_safely() -> None:
    assert icccm.choose_icon([]) is None
    assert icccm.choose_icon([0, 5, 1, 2]) is None
    assert icccm.choose_icon([3, 3, 1, 2]) is None  # claims 9 pixels, has 2
    icon = icccm.choose_icon([1, 1, 0xFFFFFFFF, 2, 1, 0x01020304, 0x05060708])
    assert icon == Icon(2, 1, bytes([4, 3, 2, 1, 8, 7, 6, 5]))


u32 = st.integers(0, 2**32 - 1)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(u32, st.integers(0, 300)), max_size=400))
def test_property_icon_decoder_never_exceeds_bounds(values: list[int]) -> None:
    icon = icccm.choose_icon(values)
    if icon is not None:
        assert 0 < icon.width <= MAX_ICON_SIDE and 0 < icon.height <= MAX_ICON_SIDE
        assert len(icon.argb) == 4 * icon.width * icon.height


@settings(max_examples=300, deadline=None)
@given(st.lists(u32, max_size=20), st.integers(-(2**31), 2**31), st.integers(-(2**31), 2**31))
def test_property_hinted_sizes_fit_the_screen(values: list[int], width: int, height: int) -> None:
    hints = icccm.decode_size_hints(values)
    w, h = constrain_size(width, height, hints, SCREEN.width, SCREEN.height)
    assert 1 <= w <= SCREEN.width and 1 <= h <= SCREEN.height
    # ICCCM: without a base size the minimum stands in for it.
    base = hints.base_width or hints.min_width
    if hints.width_inc > 1 and base < w < SCREEN.width and hints.max_width == 0 and hints.min_aspect is None:
        assert (w - base) % hints.width_inc == 0

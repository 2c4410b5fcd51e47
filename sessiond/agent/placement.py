# Where a window goes, what size it may have, what is stacked above what and
# who gets the keyboard: pure rules over rectangles and the window model.
#
# Why: placement, size constraints, stacking and focus are the part of a
# window manager users notice ("every app opens on top of the last one", "the
# terminal resized to half a character", "the dialog hid behind its parent",
# "the modal dialog lost the keyboard").  They are pure functions, tested
# without any display server, and the X WM and a later Wayland compositor
# share them.
"""Placement, size-hint constraints, transient groups, raise order and focus rules."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Final

from sessiond.agent.window_model import Rect, SizeHints, WindowKind, WindowModel, WindowState

# Offset between windows stacked in a cascade when no free spot is left.
CASCADE_STEP: Final = 32
# Smallest side we ever give a window (an app asking for 0 gets this).
MIN_WINDOW_SIDE: Final = 1
# Windows beyond which no free spot is searched for (the search costs
# candidates x windows; with this many shown, a cascade is as good).
MAX_PLACEMENT_WINDOWS: Final = 64
# X11 coordinates and sizes are 16-bit; nothing we compute may exceed this.
MAX_COORDINATE: Final = 32767


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def constrain_size(width: int, height: int, hints: SizeHints, max_width: int = MAX_COORDINATE,
                   max_height: int = MAX_COORDINATE) -> tuple[int, int]:  # fmt: skip
    """The size closest to (width, height) that honours the hints (ICCCM 4.1.2.3).

    Min and max bound the size; the size is base + n * increment; the aspect
    ratio, if given, is kept between min and max aspect.  The result never
    exceeds max_width x max_height (the screen), even if the minimum does.
    """
    min_w, min_h = max(MIN_WINDOW_SIDE, hints.min_width), max(MIN_WINDOW_SIDE, hints.min_height)
    hi_w = min(hints.max_width, max_width) if hints.max_width > 0 else max_width
    hi_h = min(hints.max_height, max_height) if hints.max_height > 0 else max_height
    w = _clamp(width, min_w, max(min_w, hi_w))
    h = _clamp(height, min_h, max(min_h, hi_h))
    w, h = _aspect(w, h, hints)
    inc_w, inc_h = max(1, hints.width_inc), max(1, hints.height_inc)
    base_w = hints.base_width if hints.base_width > 0 else (hints.min_width if inc_w > 1 else 0)
    base_h = hints.base_height if hints.base_height > 0 else (hints.min_height if inc_h > 1 else 0)
    if inc_w > 1 and w > base_w:
        w = base_w + (w - base_w) // inc_w * inc_w
    if inc_h > 1 and h > base_h:
        h = base_h + (h - base_h) // inc_h * inc_h
    # Rounding down may have dropped below the minimum: step back up.
    while w < min_w and w + inc_w <= max(min_w, hi_w):
        w += inc_w
    while h < min_h and h + inc_h <= max(min_h, hi_h):
        h += inc_h
    return _clamp(w, MIN_WINDOW_SIDE, max_width), _clamp(h, MIN_WINDOW_SIDE, max_height)


def maximized(screen: Rect, hints: SizeHints) -> Rect:
    """A maximized window's geometry: the whole screen, bounded only by the app's
    min and max size. Increments and aspect are not honoured (as GNOME and KDE
    do): a terminal fills the screen and pads the part-cell left over, so a
    client showing the screen's size shows the window's pixels everywhere."""
    free = dataclasses.replace(hints, width_inc=1, height_inc=1, min_aspect=None, max_aspect=None)
    w, h = constrain_size(screen.width, screen.height, free, screen.width, screen.height)
    return Rect(screen.x, screen.y, w, h)


def outer(geometry: Rect, border_width: int) -> Rect:
    """An unmanaged window's box as the user sees it: border included."""
    return Rect(geometry.x, geometry.y, geometry.width + 2 * border_width, geometry.height + 2 * border_width)


def pick(value: int | None, default: int) -> int:
    """VALUE, or DEFAULT when a request left it out (None)."""
    return default if value is None else value


def coord(value: int) -> int:
    """A position clamped to X's 16-bit coordinate range."""
    return max(-MAX_COORDINATE, min(MAX_COORDINATE, value))


def _aspect(w: int, h: int, hints: SizeHints) -> tuple[int, int]:
    """Shrink one side so that min_aspect <= w/h <= max_aspect."""
    if hints.min_aspect is not None:
        num, den = hints.min_aspect
        if num > 0 and den > 0 and w * den < num * h:
            h = max(MIN_WINDOW_SIDE, w * den // num)
    if hints.max_aspect is not None:
        num, den = hints.max_aspect
        if num > 0 and den > 0 and w * den > num * h:
            w = max(MIN_WINDOW_SIDE, h * num // den)
    return w, h


def place(width: int, height: int, occupied: list[Rect], screen: Rect) -> tuple[int, int]:
    """A top-left corner for a width x height window that covers none of the
    occupied rectangles, if there is room; else a cascade position.

    Candidates are the screen's corner and the right/bottom edges of the
    windows already there, tried top to bottom, left to right: the first that
    fits wins, so windows fill the screen in rows.
    """
    if len(occupied) > MAX_PLACEMENT_WINDOWS:
        return _cascade(width, height, len(occupied), screen)
    xs = sorted({screen.x} | {r.x + r.width for r in occupied})
    ys = sorted({screen.y} | {r.y + r.height for r in occupied})
    for y in ys:
        for x in xs:
            candidate = Rect(x, y, width, height)
            if (x + width <= screen.x + screen.width and y + height <= screen.y + screen.height
                    and not any(candidate.intersects(r) for r in occupied)):  # fmt: skip
                return x, y
    return _cascade(width, height, len(occupied), screen)


def _cascade(width: int, height: int, count: int, screen: Rect) -> tuple[int, int]:
    room_x = max(1, screen.width - width)
    room_y = max(1, screen.height - height)
    step = CASCADE_STEP * count
    return screen.x + step % room_x, screen.y + step % room_y


def centre_on(width: int, height: int, parent: Rect, screen: Rect) -> tuple[int, int]:
    """The top-left corner that centres a window on parent, kept on screen."""
    x = parent.x + (parent.width - width) // 2
    y = parent.y + (parent.height - height) // 2
    return clamp_onto(x, y, width, height, screen)


def clamp_onto(x: int, y: int, width: int, height: int, screen: Rect) -> tuple[int, int]:
    """Move (x, y) the least so a width x height window lies on screen
    (its top-left corner stays visible if the window is larger)."""
    x = min(x, screen.x + screen.width - width)
    y = min(y, screen.y + screen.height - height)
    return max(screen.x, x), max(screen.y, y)


# -- stacking and focus ---------------------------------------------------------------
def group(model: WindowModel, window: int) -> list[int]:
    """window and its managed transients (recursively), in stacking order."""
    order = model.stacking
    members, frontier = [window], [window]
    while frontier:
        parent = frontier.pop()
        kids = [w for w in order if w not in members and model.get(w).managed
                and model.get(w).transient_for == parent]  # fmt: skip
        members.extend(kids)
        frontier.extend(kids)
    return sorted(members, key=order.index)


def raised(model: WindowModel, window: int) -> list[int]:
    """The stacking order (bottom to top) after raising window: it and its
    dialogs go above every other managed window, keeping their own order;
    unmanaged windows (menus, tooltips) stay above all managed ones."""
    members = group(model, window)
    rest = [w for w in model.stacking if w not in members]
    managed = [w for w in rest if model.get(w).managed]
    unmanaged = [w for w in rest if not model.get(w).managed]
    return managed + members + unmanaged


def modal_for(model: WindowModel, window: int) -> int:
    """The window that should get the keyboard when window is activated: its
    topmost shown modal dialog (recursively), else window itself."""
    for w in reversed(group(model, window)):
        info = model.get(w)
        if w != window and info.modal and info.state is not WindowState.MINIMIZED:
            return modal_for(model, w)
    return window


def focus_candidate(model: WindowModel, focusable: Collection[WindowKind]) -> int:
    """The topmost shown managed window of a focusable kind, 0 if none."""
    for info in reversed(list(model.windows())):
        if info.managed and info.kind in focusable and info.state is not WindowState.MINIMIZED:
            return info.id
    return 0

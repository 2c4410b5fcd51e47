# Which parts of the screen changed since the last frame (XDamage).
#
# Why: the display pipeline captures and encodes only what changed.  The X
# server reports every drawn rectangle (DamageReportRawRectangles); this
# module accumulates them between frames and hands the pipeline a short list
# of merged, screen-clipped rectangles.  The list is kept short on purpose:
# each rectangle costs a region header on the wire and an encoder call, so
# past MAX_RECTS we trade a little extra area for fewer rectangles.  The
# merge logic is a pure function so it can be tested without an X server.

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import Xlib.display
from Xlib.ext import damage as xdamage

Rect = tuple[int, int, int, int]

# Most rectangles one frame may carry; beyond this, rows merge into bands.
MAX_RECTS = 32
# Raw rectangles buffered before they are merged eagerly (bounds memory and
# keeps merge_rects' quadratic pass cheap when a client draws many tiny bits).
MAX_PENDING_RECTS = 256


class DamageError(RuntimeError):
    """The X server lacks the DAMAGE extension."""


def _touch(a: Rect, b: Rect) -> bool:
    """True if the rectangles overlap or share an edge."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax <= bx + bw and bx <= ax + aw and ay <= by + bh and by <= ay + ah


def _union(a: Rect, b: Rect) -> Rect:
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1 = max(a[0] + a[2], b[0] + b[2])
    y1 = max(a[1] + a[3], b[1] + b[3])
    return (x0, y0, x1 - x0, y1 - y0)


def _clip(rects: Iterable[Rect], width: int, height: int) -> list[Rect]:
    out = []
    for x, y, w, h in rects:
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(width, x + w), min(height, y + h)
        if x1 > x0 and y1 > y0:
            out.append((x0, y0, x1 - x0, y1 - y0))
    return out


def _merge_touching(rects: list[Rect]) -> list[Rect]:
    """Replace every group of overlapping/adjacent rectangles by its bounding
    box, repeating until no two rectangles touch."""
    merged: list[Rect] = []
    for rect in rects:
        current = rect
        changed = True
        while changed:
            changed = False
            for i, other in enumerate(merged):
                if _touch(current, other):
                    current = _union(current, merged.pop(i))
                    changed = True
                    break
        merged.append(current)
    return merged


def _bands(rects: list[Rect]) -> list[Rect]:
    """Merge rectangles whose rows overlap into full-span horizontal bands."""
    bands: list[Rect] = []
    for rect in sorted(rects, key=lambda r: r[1]):
        if bands and rect[1] <= bands[-1][1] + bands[-1][3]:
            bands[-1] = _union(bands[-1], rect)
        else:
            bands.append(rect)
    return bands


def merge_rects(rects: Iterable[Rect], width: int, height: int) -> list[Rect]:
    """Clip (x, y, w, h) rectangles to a width x height screen and merge them.

    Overlapping or adjacent rectangles become their bounding box.  If more
    than MAX_RECTS remain, they are merged into horizontal bands, and if that
    is still too many, into one bounding box.  The result never overlaps and
    covers every input pixel that lies on the screen.
    """
    clipped = _clip(rects, width, height)
    merged = _merge_touching(clipped)
    if len(merged) > MAX_RECTS:
        merged = _bands(merged)
    if len(merged) > MAX_RECTS:
        box = merged[0]
        for rect in merged[1:]:
            box = _union(box, rect)
        merged = [box]
    return sorted(merged, key=lambda r: (r[1], r[0]))


class DamageTracker:
    """Accumulates XDamage rectangles of the root window between frames."""

    def __init__(self, display: Xlib.display.Display) -> None:
        if not display.has_extension(xdamage.extname):
            raise DamageError("the X server has no DAMAGE extension")
        self._display = display
        # Must precede damage_create, or the server rejects the request and
        # python-xlib mis-decodes the error (MACHINE-NOTES).  python-xlib
        # 0.33 always asks for version 1.1 and takes no arguments.
        display.damage_query_version()
        self._event_type = display.query_extension(xdamage.extname).first_event + (
            xdamage.DamageNotifyCode
        )
        root = display.screen().root
        self._damage = root.damage_create(xdamage.DamageReportRawRectangles)
        self._rects: list[Rect] = []
        self._all = False
        # Screen size used for eager merges; refreshed by take().
        geometry = root.get_geometry()
        self._size = (geometry.width, geometry.height)

    def handle_event(self, ev: Any) -> bool:
        """Accumulate ev if it is a DamageNotify for our damage object."""
        if getattr(ev, "type", None) != self._event_type:
            return False
        if getattr(ev, "damage", self._damage) != self._damage:
            return False
        area = ev.area
        self._rects.append((area.x, area.y, area.width, area.height))
        if len(self._rects) > MAX_PENDING_RECTS:
            self._rects = merge_rects(self._rects, *self._size)
        return True

    def pending(self) -> bool:
        """True if some damage has accumulated since the last take()."""
        return self._all or bool(self._rects)

    def mark_all(self) -> None:
        """Treat the whole screen as damaged (new client, resize, refresh)."""
        self._all = True

    def take(self, width: int, height: int) -> list[Rect]:
        """Return the merged damage clipped to width x height and clear it."""
        self._size = (width, height)
        if self._all:
            result = [(0, 0, width, height)] if width > 0 and height > 0 else []
        else:
            result = merge_rects(self._rects, width, height)
        self._rects = []
        self._all = False
        # Empty the server-side region so it cannot grow complex over time;
        # raw-rectangle reporting does not depend on it.
        self._display.damage_subtract(self._damage)
        return result

    def close(self) -> None:
        """Destroy the server-side damage object."""
        self._display.damage_destroy(self._damage)

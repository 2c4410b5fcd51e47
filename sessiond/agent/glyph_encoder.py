# GLYPHS regions for the agent's encoder (docs/protocol.md 7c): the whole
# text cells of a damaged rectangle as glyph-cache slots and one byte per
# cell; the rest of the rectangle is left to the other encodings.
#
# Why: a scrolling terminal repaints whole screens of new text, and as a
# 1-bit PALETTE/PNG that is ~27 kB a 180x50 screen; as GLYPHS it is the
# few glyphs the client lacks plus ~1 byte a character, deflated.
#
# How the server chooses (the client only decodes): for a client that set
# VIDEO_CAPS bit 2, with [display] glyphs on, a rectangle of a surface with
# at least GLYPH_MIN_CELLS cells' worth of pixels is cut along the
# surface's grid (glyph_grid.py; found once from content, kept per
# surface).  Its whole cells, if exactly two colours, become GLYPHS
# regions, striped by whole rows of cells so that each stays under
# MAX_REGION_RAW_BYTES and names at most GLYPH_MAX_USED glyphs; the parts
# that are not whole cells go out as before.  A stripe that defines many
# new glyphs (not text, or a wrong grid) is also encoded the old way and
# the smaller is sent; a grid that keeps losing is dropped and found anew
# later.  A grid found on a few lines of text may be a pixel off the font
# (a 12-pixel row fits 4 lines of 13 as well): it still wins over PALETTE
# once the cache holds its half-glyphs, so losing never drops it.  It is
# looked for again on the first rectangle twice its text's area where it
# makes many distinct cells (GRID_SUSPECT_SHARE), and replaced if the new
# grid makes fewer.  Small rectangles (a keystroke's echo) never become GLYPHS: they
# stay one PALETTE region, which the TILE fold carries best.
#
# The client's glyph cache is mirrored here (SlotMirror): a GLYPHS region
# may name a slot only if an earlier region on the same display channel (or
# itself) defined it.  The agent decides every slot's content, so it knows
# the client's cache exactly as long as regions reach the client in order
# (they do: one ordered channel; encoder.forget() relies on the same).  Free
# slots are used first, then the least recently used glyph is replaced --
# never one the region being built uses.  Assigning is split from
# committing, so a region the encoder then drops (PALETTE was smaller)
# leaves no trace.
"""GlyphEncoder: GLYPHS regions of the whole text cells of a rectangle; SlotMirror: the client's glyph slots."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import field
from typing import TYPE_CHECKING, Any, Final, Union

from PIL import Image

from media import glyphs
from protocol.frozen import plain_dataclass
from protocol.limits import MAX_REGION_RAW_BYTES
from protocol.media import GLYPH_MAX_USED, GLYPH_SLOTS
from protocol.messages import Encoding, Region
from sessiond.agent import glyph_native
from sessiond.agent.glyph_grid import Grid, Rect, cut_band, detect, margins, to_column_major, two_colours

if TYPE_CHECKING:
    from array import array

# A rectangle smaller than this many cells of its grid (or, to look for a
# grid, than this many 6x13 cells) is left to PALETTE (and TILE).
GLYPH_MIN_CELLS: Final = 24
DETECT_MIN_PIXELS: Final = GLYPH_MIN_CELLS * 6 * 13
# A surface where no grid was found is looked at again after this long, or
# at once in a rectangle DETECT_RETRY_GROWTH times larger (a screen of text
# after a prompt line); a detection costs ~10 ms on a 1084x654 xterm.
DETECT_RETRY_SECONDS: Final = 0.5
DETECT_RETRY_GROWTH: Final = 2
# A grid found on less text than a rectangle's half that makes more than
# this share of its cells distinct is looked for again on that rectangle
# (and replaced if the new one makes fewer): a few lines of text (a
# prompt, a command) let a period one pixel off the font's fit as well,
# and that grid cuts every glyph in two (~20% of a screen's cells
# distinct, against ~1% on the right grid).  Once per doubling of area.
GRID_SUSPECT_SHARE: Final = 1 / 16
# Ink this close to a rectangle's edges is not counted as text: the X border
# around a window in desktop mode. A grid is looked for only where the rest
# of the ink spans at least DETECT_MIN_PIXELS: a new xterm at its map (white
# inside its border, the only ink its cursor's block) has none to find, and
# looking cost ~12 ms of the session's first frame, always failed, and then
# kept detection off the first screen of text for DETECT_RETRY_SECONDS.
FRAME_PIXELS: Final = 2
# A grid whose stripes lost to PALETTE this many times in a row is dropped.
MAX_MISSES: Final = 8
# Grids remembered (the desktop, windows), least recently used dropped.
MAX_GRIDS: Final = 64
# A stripe whose new definitions cost more than this share of its 1-bit
# pixels is also encoded the old way, and the smaller sent.
DEFS_SHARE_CHECKED: Final = 0.25
_BYTES_PER_PIXEL: Final = 3


# A glyph as the mirror knows it: cell_w, cell_h, 0/1 cell bytes in cut_band's order.
GlyphKey = tuple[int, int, bytes]
# A rectangle's cells: each one's bytes (cut_band), or its pattern's number (glyph_native: bytes while < 256).
Cells = Union[list[bytes], bytes, "array[int]"]
# A rectangle cut along a grid: (grid, its whole cells' rectangle, cells, patterns or None, to_bits, colours).
_Cut = tuple[Grid, Rect, Cells, Union[list[bytes], None], bytes, bytes]


@plain_dataclass
class Assignment:
    """Slots for one region's distinct glyphs, not yet committed."""

    slots: list[int]  # per distinct glyph, in the order given
    new: list[tuple[int, GlyphKey]] = field(default_factory=list)  # definitions the region must carry
    evicted: list[GlyphKey] = field(default_factory=list)  # glyphs whose slots the definitions reuse
    keys: list[GlyphKey] = field(default_factory=list)


class SlotMirror:
    """What the client's glyph cache holds, least recently used first."""

    def __init__(self, slots: int = GLYPH_SLOTS) -> None:
        if not GLYPH_MAX_USED <= slots <= GLYPH_SLOTS:
            raise ValueError(f"{slots} slots: a region's {GLYPH_MAX_USED} glyphs must fit")
        self._size = slots
        self._slot_of: OrderedDict[GlyphKey, int] = OrderedDict()
        self._free: list[int] = []
        # Definitions committed since begin(), while one is open: undo() forgets them.
        self._journal: list[tuple[int, GlyphKey]] | None = None
        self.reset()

    def reset(self) -> None:
        """A new display channel: the client's cache is empty."""
        self._slot_of.clear()
        self._free = list(range(self._size - 1, -1, -1))  # slot 0 is used first

    def __len__(self) -> int:
        return len(self._slot_of)

    def slot(self, key: GlyphKey) -> int | None:
        """The slot holding this glyph at the client, if any."""
        return self._slot_of.get(key)

    def assign(self, cell_w: int, cell_h: int, cells: Sequence[bytes]) -> Assignment:
        """Slots for the distinct glyphs `cells` (at most GLYPH_MAX_USED) of
        one region: known ones keep theirs, new ones take free slots, then
        the least recently used glyphs' slots (never one this region uses)."""
        if len(cells) > GLYPH_MAX_USED:
            raise ValueError(f"{len(cells)} glyphs in one region, past {GLYPH_MAX_USED}")
        keys = [(cell_w, cell_h, cell) for cell in cells]
        wanted = set(keys)
        missing = sum(1 for key in keys if key not in self._slot_of)
        from_free = self._free[len(self._free) - min(missing, len(self._free)) :][::-1]
        evictable = (key for key in self._slot_of if key not in wanted)
        evicted = [next(evictable) for _ in range(missing - len(from_free))]
        fresh = iter(from_free + [self._slot_of[key] for key in evicted])
        out = Assignment(slots=[], evicted=evicted, keys=keys)
        for key in keys:
            slot = self._slot_of.get(key)
            if slot is None:
                slot = next(fresh)
                out.new.append((slot, key))
            out.slots.append(slot)
        return out

    def commit(self, assignment: Assignment) -> None:
        """The region of this assignment was sent: the client now holds its glyphs."""
        for key in assignment.evicted:
            del self._slot_of[key]
        taken = len(assignment.new) - len(assignment.evicted)
        if taken:
            del self._free[-taken:]
        for slot, key in assignment.new:
            self._slot_of[key] = slot
        for key in assignment.keys:
            self._slot_of.move_to_end(key)
        if self._journal is not None:
            self._journal += assignment.new

    def begin(self) -> None:
        """Regions made from now on may be dropped unsent: keep their definitions (see undo)."""
        self._journal = []

    def end(self) -> None:
        """Those regions were sent (or undone)."""
        self._journal = None

    def undo(self) -> None:
        """The regions since begin() were not sent: forget the glyphs they
        defined (their slots become free; whatever the client holds there is
        unknown, which is safe: a slot is always defined before it is used)."""
        for slot, key in reversed(self._journal or []):
            if self._slot_of.get(key) == slot:
                del self._slot_of[key]
                self._free.append(slot)
        self._journal = None


class GlyphEncoder:
    """Per display channel: the client's glyph cache (mirrored); per surface: its grid."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = False  # [display] glyphs and the client's VIDEO_CAPS bit 2
        self.mirror = SlotMirror()
        self._clock = clock
        self._grids: OrderedDict[Hashable, Grid] = OrderedDict()
        # surface -> the text's background colour (R, G, B): colour 0 of its
        # regions, so a glyph's bits do not flip with the stripe's majority.
        self._background: dict[Hashable, bytes] = {}
        self._tried: dict[Hashable, tuple[float, int]] = {}  # surface -> when detection last failed, on what area
        self._misses: dict[Hashable, int] = {}
        # surface -> the area of text its grid was found (or last checked) on (see _suspect).
        self._found_on: dict[Hashable, int] = {}
        self.sent = 0  # GLYPHS regions made (tests, bench)
        self._native: glyph_native.NativeCells | None | bool = True  # True: not loaded yet

    @property
    def native(self) -> glyph_native.NativeCells | None:
        """The C passes (None: Python's, the reference), loaded with the first
        GLYPHS frame: an agent that never sends one never maps the library."""
        if self._native is True:
            self._native = glyph_native.shared()
        return self._native or None

    @native.setter
    def native(self, value: glyph_native.NativeCells | None) -> None:
        self._native = value

    def reset(self) -> None:
        """A new display channel: the client's cache is empty (grids stay: they are the content's)."""
        self.mirror.reset()

    def grid(self, surface: Hashable) -> Grid | None:
        """The surface's grid, if one was found."""
        return self._grids.get(surface)

    def grow(self, surface: Hashable, rect: Rect, width: int, height: int) -> Rect:
        """rect grown to whole cells of the surface's grid (before capture:
        seamless windows are captured per rectangle), if glyphs are on and
        the rectangle is large enough to become GLYPHS; else rect."""
        grid = self._grids.get(surface)
        if not self.enabled or grid is None or rect[2] * rect[3] < GLYPH_MIN_CELLS * grid.cell_w * grid.cell_h:
            return rect
        return grid.grow(rect, width, height)

    def candidate(self, rect: Rect, surface: Hashable) -> bool:
        """False if rect is too small ever to become GLYPHS (encode() would
        return None): the caller need not prepare its pixels (an echo)."""
        grid = self._grids.get(surface)
        least = DETECT_MIN_PIXELS if grid is None else GLYPH_MIN_CELLS * grid.cell_w * grid.cell_h
        return self.enabled and rect[2] * rect[3] >= least

    def encode(self, image: Image.Image, order: tuple[int, int, int], rect: Rect, surface: Hashable,
               other: Callable[[Rect], Region], capture: glyph_native.Capture | None = None,
               ) -> tuple[list[Region], list[Rect]] | None:  # fmt: skip
        """(regions, rest): the GLYPHS regions of rect's whole cells and the
        parts left to the other encodings; None if rect gets no GLYPHS.
        `image` is rect's pixels (bands `order` hold R, G, B); `other`
        encodes a sub-rectangle the old way (to compare sizes); `capture`:
        the BGRX buffer `image` maps, its stride and rect's corner in it
        (the C passes read it; without it, Pillow's)."""
        grid = self._grids.get(surface) or self._detect(image, order, rect, surface)
        if grid is None:
            return None
        cut = self._cut(image, order, rect, grid, self._background.get(surface), capture)
        if cut is not None and self._suspect(surface, rect, cut):
            cut = self._check(image, order, rect, surface, capture, cut)
        if cut is None:
            return None
        grid, inner, cells, patterns, to_bits, colours = cut
        self._grids.move_to_end(surface)
        regions = self._stripes(cells, patterns, to_bits, colours, grid, inner, surface, other)
        return regions, margins(rect, inner)

    def _cut(self, image: Image.Image, order: tuple[int, int, int], rect: Rect, grid: Grid,
             background: bytes | None, capture: glyph_native.Capture | None) -> _Cut | None:  # fmt: skip
        """rect's whole cells along grid, if there are enough and they are two colours."""
        x, y, w, h = rect
        if w * h < GLYPH_MIN_CELLS * grid.cell_w * grid.cell_h:
            return None
        inner = grid.snap(rect)
        if inner is None:
            return None
        ix, iy, iw, ih = inner
        box = (ix - x, iy - y, ix - x + iw, iy - y + ih)
        native = self.native if capture is not None and order == glyph_native.BGRX_ORDER else None
        if native is not None and capture is not None:  # (self.native loads the library on first use)
            numbered = glyph_native.native_cells(native, capture, image, order, rect, box, grid, background)
            if numbered is None:
                return None
            cells, patterns, to_bits, colours = numbered
            return grid, inner, cells, patterns, to_bits, colours
        # Usually the whole rectangle has the two colours: its cells are cut in place.
        two = two_colours(image, order, background)
        if two is None:
            image, box = image.crop(box), (0, 0, iw, ih)
            two = two_colours(image, order, background)
            if two is None:
                return None
        band, colours, to_bits = two
        return grid, inner, cut_band(image, band, box, grid.cell_w, grid.cell_h), None, to_bits, colours

    def _suspect(self, surface: Hashable, rect: Rect, cut: _Cut) -> bool:
        """True if the surface's grid, found on a smaller area, makes so many
        distinct cells of rect that it may be the wrong one (see _check)."""
        if rect[2] * rect[3] < DETECT_RETRY_GROWTH * self._found_on.get(surface, 0):
            return False
        return _distinct_share(cut) > GRID_SUSPECT_SHARE

    def _check(self, image: Image.Image, order: tuple[int, int, int], rect: Rect, surface: Hashable,
               capture: glyph_native.Capture | None, cut: _Cut) -> _Cut | None:  # fmt: skip
        """The grid looked for again on rect (more text than it was found on):
        kept unless the new one makes fewer distinct cells of rect."""
        self._found_on[surface] = rect[2] * rect[3]  # not again before a larger rectangle
        found = self._find(image, order, rect)
        if not isinstance(found, tuple) or found[0] == cut[0]:
            return cut
        grid, background, _area = found
        other = self._cut(image, order, rect, grid, background, capture)
        if other is None or _distinct_share(other) >= _distinct_share(cut):
            return cut
        self._grids[surface] = grid
        self._background[surface] = background
        self._misses[surface] = 0
        return other

    def _detect_due(self, rect: Rect, surface: Hashable) -> bool:
        """True if a grid may be looked for in rect (see DETECT_RETRY_SECONDS)."""
        area = rect[2] * rect[3]
        if area < DETECT_MIN_PIXELS:
            return False
        tried = self._tried.get(surface)
        recent = tried is not None and self._clock() - tried[0] < DETECT_RETRY_SECONDS
        return not (recent and tried is not None and area < DETECT_RETRY_GROWTH * tried[1])

    def _failed(self, surface: Hashable, area: int) -> None:
        self._tried[surface] = (self._clock(), area)
        if len(self._tried) > MAX_GRIDS:
            self._tried.pop(next(iter(self._tried)))

    def _detect(self, image: Image.Image, order: tuple[int, int, int], rect: Rect, surface: Hashable) -> Grid | None:
        if not self._detect_due(rect, surface):
            return None
        found = self._find(image, order, rect)
        if found is NO_TEXT:
            return None  # nothing to learn from: not a failed detection, the text is looked at when it comes
        if not isinstance(found, tuple):
            self._failed(surface, rect[2] * rect[3])
            return None
        grid, background, area = found
        self._tried.pop(surface, None)
        self._grids[surface] = grid
        self._background[surface] = background
        self._found_on[surface] = area
        self._misses[surface] = 0
        while len(self._grids) > MAX_GRIDS:
            dropped, _grid = self._grids.popitem(last=False)
            self._misses.pop(dropped, None)
            self._background.pop(dropped, None)
            self._found_on.pop(dropped, None)
        return grid

    def _find(self, image: Image.Image, order: tuple[int, int, int],
              rect: Rect) -> tuple[Grid, bytes, int] | _NoText | None:  # fmt: skip
        """(grid, the text's background colour, the area of the text it was found on) in rect;
        NO_TEXT if it is one colour or too little of it is ink to hold text (_little_ink); else None."""
        index = _index_image(image, order)
        if index is None:  # not two colours: one (a cleared screen) holds no text, more fail
            return NO_TEXT if image.getcolors(1) is not None else None
        ink = _bits(index)
        # Where the minority colour is (a terminal on a root of the other
        # colour), oriented again by the majority there: the text's background.
        box = ink.getbbox()
        if box is None or _little_ink(ink):  # too little ink to hold text (a cursor, a prompt)
            return NO_TEXT
        text = image.crop(box)
        index = _index_image(text, order)
        if index is None:
            return None
        grid = detect(_bits(index), (rect[0] + box[0], rect[1] + box[1]), (rect[0], rect[1]))
        if grid is None:
            return None
        return grid, index[1][:3], (box[2] - box[0]) * (box[3] - box[1])

    def _stripes(self, cells: Cells, patterns: list[bytes] | None, to_bits: bytes, colours: bytes, grid: Grid,
                 inner: Rect, surface: Hashable, other: Callable[[Rect], Region]) -> list[Region]:  # fmt: skip
        """Whole rows of cells gathered into regions under MAX_REGION_RAW_BYTES
        and GLYPH_MAX_USED distinct glyphs; each GLYPHS or, if that loses, `other`.
        `cells`: each cell's bytes, or (the C passes) its pattern's number in `patterns`."""
        ix, iy, iw, _ih = inner
        cw, ch = grid.cell_w, grid.cell_h
        columns = iw // cw
        rows = len(cells) // columns
        max_rows = max(1, MAX_REGION_RAW_BYTES // (iw * ch * _BYTES_PER_PIXEL))
        regions: list[Region] = []
        start = 0
        while start < rows:
            end = min(rows, start + max_rows)
            distinct = dict.fromkeys(cells[start * columns : end * columns])  # usually all rows that fit one region
            if len(distinct) > GLYPH_MAX_USED:  # else as many rows as stay within GLYPH_MAX_USED glyphs
                end, distinct = start + 1, dict.fromkeys(cells[start * columns : (start + 1) * columns])
                while end < start + max_rows and end < rows and len(distinct) <= GLYPH_MAX_USED:
                    more = dict.fromkeys(cells[end * columns : (end + 1) * columns])
                    if len(distinct.keys() | more.keys()) > GLYPH_MAX_USED:
                        break
                    distinct.update(more)
                    end += 1
            stripe = (ix, iy + start * ch, iw, (end - start) * ch)
            if len(distinct) > GLYPH_MAX_USED:  # one row alone names too many glyphs: not text
                regions.append(other(stripe))
            else:
                regions.append(self._region(cells[start * columns : end * columns], list(distinct), patterns,
                                            to_bits, colours, grid, stripe, surface, other))  # fmt: skip
            start = end
        return regions

    def _region(self, cells: Cells, distinct: list[Any], patterns: list[bytes] | None, to_bits: bytes,
                colours: bytes, grid: Grid, stripe: Rect, surface: Hashable,
                other: Callable[[Rect], Region]) -> Region:  # fmt: skip
        """One stripe's region: `cells` in the key channel's values (`to_bits` maps them to 0/1)."""
        cw, ch = grid.cell_w, grid.cell_h
        glyph_cells = distinct if patterns is None else [patterns[number] for number in distinct]
        assignment = self.mirror.assign(cw, ch, [cell.translate(to_bits) for cell in glyph_cells])
        if isinstance(cells, bytes):  # pattern numbers < 256: renumbered by one translate
            table = bytearray(256)
            for number, pattern in enumerate(distinct):
                table[pattern] = number
            indices = cells.translate(table)
        else:
            position = {cell: number for number, cell in enumerate(distinct)}
            indices = bytes(map(position.__getitem__, cells))
        defs = [(slot, glyphs.pack_cell(to_column_major(key[2], cw, ch), cw, ch)) for slot, key in assignment.new]
        data = glyphs.encode(cw, ch, colours, defs, assignment.slots, indices)
        region = Region(*stripe, Encoding.GLYPHS, data)
        if len(defs) * glyphs.bits_bytes(cw, ch) > DEFS_SHARE_CHECKED * stripe[2] * stripe[3] / 8:
            fallback = other(stripe)
            if len(fallback.data) <= len(data):
                self._missed(surface)
                return fallback
        self._misses[surface] = 0
        self.mirror.commit(assignment)
        self.sent += 1
        return region

    def _missed(self, surface: Hashable) -> None:
        self._misses[surface] = self._misses.get(surface, 0) + 1
        if self._misses[surface] >= MAX_MISSES:
            self._grids.pop(surface, None)
            self._misses.pop(surface, None)
            self._background.pop(surface, None)
            self._found_on.pop(surface, None)
            self._tried[surface] = (self._clock(), 1 << 62)  # no retry before DETECT_RETRY_SECONDS


def _distinct_share(cut: _Cut) -> float:
    """Distinct cells per cell of a _cut() result."""
    _grid, _inner, cells, patterns, _to_bits, _colours = cut
    distinct = len(patterns) if patterns is not None else len(set(cells))
    return distinct / max(1, len(cells))


class _NoText:
    """_find's answer for a rectangle with too little ink to hold text (_little_ink)."""


NO_TEXT: Final = _NoText()


def _little_ink(ink: Image.Image) -> bool:
    """True if the 1-bits of INK (its ink) farther than FRAME_PIXELS from its edges have a
    bounding box under DETECT_MIN_PIXELS (none at all, a cursor's block, a prompt)."""
    w, h = ink.size
    if w <= 2 * FRAME_PIXELS or h <= 2 * FRAME_PIXELS:
        return False
    box = ink.crop((FRAME_PIXELS, FRAME_PIXELS, w - FRAME_PIXELS, h - FRAME_PIXELS)).getbbox()
    return box is None or (box[2] - box[0]) * (box[3] - box[1]) < DETECT_MIN_PIXELS


def _index_image(image: Image.Image, order: tuple[int, int, int],
                 background: bytes | None = None) -> tuple[Image.Image, bytes, bytes] | None:  # fmt: skip
    """two_colours() with the key band as an image."""
    two = two_colours(image, order, background)
    return None if two is None else (image.getchannel(two[0]), two[1], two[2])


def _bits(index: tuple[Image.Image, bytes, bytes]) -> Image.Image:
    """The 0/1 image (1: colour 1) of an _index_image result."""
    return index[0].point(list(index[2]))

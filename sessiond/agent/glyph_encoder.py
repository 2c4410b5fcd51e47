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
# later.  Small rectangles (a keystroke's echo) never become GLYPHS: they
# stay one PALETTE region, which the TILE fold carries best.
"""GlyphEncoder: GLYPHS regions of the whole text cells of a rectangle."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Final

from PIL import Image

from media import glyphs
from protocol.limits import MAX_REGION_RAW_BYTES
from protocol.media import GLYPH_MAX_USED
from protocol.messages import Encoding, Region
from sessiond.agent.glyph_cache import SlotMirror
from sessiond.agent.glyph_grid import Grid, Rect, cut, detect, margins

# A rectangle smaller than this many cells of its grid (or, to look for a
# grid, than this many 6x13 cells) is left to PALETTE (and TILE).
GLYPH_MIN_CELLS: Final = 24
DETECT_MIN_PIXELS: Final = GLYPH_MIN_CELLS * 6 * 13
# A surface where no grid was found is looked at again after this long, or
# at once in a rectangle DETECT_RETRY_GROWTH times larger (a screen of text
# after a prompt line); a detection costs ~10 ms on a 1084x654 xterm.
DETECT_RETRY_SECONDS: Final = 0.5
DETECT_RETRY_GROWTH: Final = 2
# A grid whose stripes lost to PALETTE this many times in a row is dropped.
MAX_MISSES: Final = 8
# Grids remembered (the desktop, windows), least recently used dropped.
MAX_GRIDS: Final = 64
# A stripe whose new definitions cost more than this share of its 1-bit
# pixels is also encoded the old way, and the smaller sent.
DEFS_SHARE_CHECKED: Final = 0.25
_BYTES_PER_PIXEL: Final = 3


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
        self.sent = 0  # GLYPHS regions made (tests, bench)

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

    def encode(self, image: Image.Image, order: tuple[int, int, int], rect: Rect, surface: Hashable,
               other: Callable[[Rect], Region]) -> tuple[list[Region], list[Rect]] | None:  # fmt: skip
        """(regions, rest): the GLYPHS regions of rect's whole cells and the
        parts left to the other encodings; None if rect gets no GLYPHS.
        `image` is rect's pixels (bands `order` hold R, G, B); `other`
        encodes a sub-rectangle the old way (to compare sizes)."""
        x, y, w, h = rect
        grid = self._grids.get(surface) or self._detect(image, order, rect, surface)
        if grid is None or w * h < GLYPH_MIN_CELLS * grid.cell_w * grid.cell_h:
            return None
        inner = grid.snap(rect)
        if inner is None:
            return None
        ix, iy, iw, ih = inner
        box = (ix - x, iy - y, ix - x + iw, iy - y + ih)
        background = self._background.get(surface)
        # Usually the whole rectangle has the two colours: index it in place, crop the 1-byte result.
        index = _index_image(image, order, background) or _index_image(image.crop(box), order, background)
        if index is None:
            return None
        bits, colours = index
        if bits.size != (iw, ih):
            bits = bits.crop(box)
        self._grids.move_to_end(surface)
        regions = self._stripes(bits, colours, grid, inner, surface, other)
        return regions, margins(rect, inner)

    def _detect(self, image: Image.Image, order: tuple[int, int, int], rect: Rect, surface: Hashable) -> Grid | None:
        if rect[2] * rect[3] < DETECT_MIN_PIXELS:
            return None
        tried = self._tried.get(surface)
        area = rect[2] * rect[3]
        recent = tried is not None and self._clock() - tried[0] < DETECT_RETRY_SECONDS
        if recent and tried is not None and area < DETECT_RETRY_GROWTH * tried[1]:
            return None
        grid = None
        index = _index_image(image, order)
        # Where the minority colour is (a terminal on a root of the other
        # colour), oriented again by the majority there: the text's background.
        box = index[0].getbbox() if index is not None else None
        if box is not None:
            text = image.crop(box)
            index = _index_image(text, order)
            if index is not None:
                grid = detect(index[0], (rect[0] + box[0], rect[1] + box[1]), (rect[0], rect[1]))
                self._background[surface] = index[1][:3]
        if grid is None:
            self._tried[surface] = (self._clock(), area)
            if len(self._tried) > MAX_GRIDS:
                self._tried.pop(next(iter(self._tried)))
            return None
        self._tried.pop(surface, None)
        self._grids[surface] = grid
        self._misses[surface] = 0
        while len(self._grids) > MAX_GRIDS:
            dropped, _grid = self._grids.popitem(last=False)
            self._misses.pop(dropped, None)
            self._background.pop(dropped, None)
        return grid

    def _stripes(self, bits: Image.Image, colours: bytes, grid: Grid, inner: Rect, surface: Hashable,
                 other: Callable[[Rect], Region]) -> list[Region]:  # fmt: skip
        """Whole rows of cells gathered into regions under MAX_REGION_RAW_BYTES
        and GLYPH_MAX_USED distinct glyphs; each GLYPHS or, if that loses, `other`."""
        ix, iy, iw, _ih = inner
        cw, ch = grid.cell_w, grid.cell_h
        columns = iw // cw
        cells = cut(bits, cw, ch)
        max_rows = max(1, MAX_REGION_RAW_BYTES // (iw * ch * _BYTES_PER_PIXEL))
        regions: list[Region] = []
        start = 0
        rows = len(cells) // columns
        while start < rows:
            end = min(rows, start + max_rows)
            distinct = dict.fromkeys(cells[start * columns : end * columns])
            if len(distinct) <= GLYPH_MAX_USED:  # the usual case: all rows that fit one region
                stripe = (ix, iy + start * ch, iw, (end - start) * ch)
                regions.append(self._region(cells[start * columns : end * columns], list(distinct), colours, grid,
                                            stripe, surface, other))  # fmt: skip
                start = end
                continue
            distinct = dict.fromkeys(cells[start * columns : (start + 1) * columns])
            if len(distinct) > GLYPH_MAX_USED:  # one row alone names too many glyphs: not text
                regions.append(other((ix, iy + start * ch, iw, ch)))
                start += 1
                continue
            end = start + 1
            while end < rows and end - start < max_rows:
                more = dict.fromkeys(cells[end * columns : (end + 1) * columns])
                if len(distinct.keys() | more.keys()) > GLYPH_MAX_USED:
                    break
                distinct.update(more)
                end += 1
            stripe = (ix, iy + start * ch, iw, (end - start) * ch)
            regions.append(self._region(cells[start * columns : end * columns], list(distinct), colours, grid,
                                        stripe, surface, other))  # fmt: skip
            start = end
        return regions

    def _region(self, cells: list[bytes], distinct: list[bytes], colours: bytes, grid: Grid, stripe: Rect,
                surface: Hashable, other: Callable[[Rect], Region]) -> Region:  # fmt: skip
        cw, ch = grid.cell_w, grid.cell_h
        assignment = self.mirror.assign(cw, ch, distinct)
        position = {cell: number for number, cell in enumerate(distinct)}
        indices = bytes(map(position.__getitem__, cells))
        defs = [(slot, glyphs.pack_cell(key[2], cw, ch)) for slot, key in assignment.new]
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
            self._tried[surface] = (self._clock(), 1 << 62)  # no retry before DETECT_RETRY_SECONDS


def _index_image(image: Image.Image, order: tuple[int, int, int],
                 background: bytes | None = None) -> tuple[Image.Image, bytes] | None:  # fmt: skip
    """(0/1 'L' image, colour 0 + colour 1 as R, G, B) of an image of
    exactly two colours, colour 0 `background` if it is one of them, else
    the commoner; None if not two colours."""
    colours = image.getcolors(2)
    if colours is None or len(colours) != 2:
        return None
    (_n0, first), (_n1, second) = sorted(colours, key=lambda item: -item[0])
    if not isinstance(first, tuple) or not isinstance(second, tuple):
        return None  # a one-band image: not a capture
    back, ink = first, second
    if background is not None and bytes(ink[band] for band in order) == background:
        back, ink = second, first
    band = next((band for band in range(3) if back[order[band]] != ink[order[band]]), None)
    if band is None:  # the same R, G, B (the capture's padding byte differs)
        return None
    lut = [0] * 256
    lut[ink[order[band]]] = 1
    bits = image.getchannel(order[band]).point(lut)
    rgb = bytes((back[order[0]], back[order[1]], back[order[2]], ink[order[0]], ink[order[1]], ink[order[2]]))
    return bits, rgb

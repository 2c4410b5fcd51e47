# Finding the grid of text cells in a two-colour area of a surface, and
# cutting rectangles along it (GLYPHS regions, docs/protocol.md 7c).
#
# Why from the content: desktop mode has no window to ask for resize
# increments, and a terminal's cell is whatever its font makes it.
# Monospace text leaves some columns of every cell (the gap between glyphs)
# and some rows (above capitals, below descenders) nearly blank, so folding
# the area's ink profile by the right period shows a phase with (almost) no
# ink, and no shorter period does.  The few phases that are nearly blank are
# then tried for real: the one that makes the fewest distinct cells wins.
# A wrong grid costs only bytes (every grid is exact), and the GLYPHS
# encoder falls back to PALETTE/PNG when it does not pay.
#
# Cells are cut without numpy: a band of cell_h rows of the 0/1 index
# image, transposed, is its cells one after another in tobytes() (column
# major, cell_w * cell_h bytes each), so one slice per cell is all Python
# does per cell.  The encoder's cut_band() puts every band side by side
# first (one strided view per pixel row of a cell, straight from the
# capture's key band), so a whole screen takes one transpose.  For an even
# cell width that transpose moves pairs of bytes ("I;16" pixels: a third of
# its cost on 6x13 cells), so cut_band's cells hold their columns in pairs
# (band_order); to_column_major() puts a cell back in cut()'s order, which
# only the few new glyph definitions of a region need.  Where `make install`
# built sessiond/agent/native/glyph_cells.c, the agent cuts (and tests for
# two colours) with it instead (glyph_native.py); cut_band and two_colours
# stay the reference and the fallback, with identical results.
"""Grid detection (cell size and phase) and cell cutting of 0/1 index images."""

from __future__ import annotations

from array import array
from functools import lru_cache
from typing import Final

from PIL import Image

from protocol.frozen import frozen_dataclass
from protocol.media import GLYPH_MAX_SIDE

Rect = tuple[int, int, int, int]

# Smallest cell side looked for (a 4-pixel font is not text anyone reads).
GRID_MIN_SIDE: Final = 4
# A candidate period needs ink in this many of its spans each way (a line
# or two of text says little about the row period: any long one fits).
GRID_MIN_CELLS: Final = 4
# A period counts as text if its emptiest phase has at most this share of
# the mean ink per phase; of the periods within GRID_TIE of the best, the
# shortest wins (multiples of the true period score as well or, on sparse
# text, by chance a little better).
GRID_MAX_SCORE: Final = 0.35
GRID_TIE: Final = 0.1
# Phases tried per axis (the emptiest ones) when choosing by distinct cells.
GRID_PHASES_TRIED: Final = 3
# Bands of cells sampled when comparing phases (bounds the detection's cost).
GRID_SAMPLE_BANDS: Final = 12
# Geometries (bytes, cell size) whose cell slices are kept: a few surfaces' text areas.
PIECES_CACHED: Final = 8


@frozen_dataclass
class Grid:
    """Cells of cell_w x cell_h whose corners lie at (phase_x + i*cell_w,
    phase_y + j*cell_h) of the surface (0 <= phase < cell side)."""

    cell_w: int
    cell_h: int
    phase_x: int
    phase_y: int

    def snap(self, rect: Rect) -> Rect | None:
        """The largest rectangle of whole cells inside rect (None if none)."""
        x, y, w, h = rect
        left = x + (self.phase_x - x) % self.cell_w
        top = y + (self.phase_y - y) % self.cell_h
        right = left + (x + w - left) // self.cell_w * self.cell_w
        bottom = top + (y + h - top) // self.cell_h * self.cell_h
        if right <= left or bottom <= top:
            return None
        return left, top, right - left, bottom - top

    def grow(self, rect: Rect, width: int, height: int) -> Rect:
        """rect grown to whole cells, clipped to the width x height surface."""
        x, y, w, h = rect
        left = x - (x - self.phase_x) % self.cell_w
        top = y - (y - self.phase_y) % self.cell_h
        right = x + w + (self.phase_x - x - w) % self.cell_w
        bottom = y + h + (self.phase_y - y - h) % self.cell_h
        left, top, right, bottom = max(left, 0), max(top, 0), min(right, width), min(bottom, height)
        return left, top, right - left, bottom - top


def margins(outer: Rect, inner: Rect) -> list[Rect]:
    """The parts of outer not in inner (inner inside outer): top and bottom
    full width, left and right beside inner."""
    ox, oy, ow, oh = outer
    ix, iy, iw, ih = inner
    parts = [(ox, oy, ow, iy - oy), (ox, iy + ih, ow, oy + oh - iy - ih),
             (ox, iy, ix - ox, ih), (ix + iw, iy, ox + ow - ix - iw, ih)]  # fmt: skip
    return [part for part in parts if part[2] > 0 and part[3] > 0]


def cut(index: Image.Image, cell_w: int, cell_h: int) -> list[bytes]:
    """The cells of a 0/1 'L' image whose sides are multiples of the cell,
    row-major, each as its column-major bytes."""
    width, height = index.size
    size = cell_w * cell_h
    # Transposed once: each band of cell_h rows is then a column strip.
    transposed = index.transpose(Image.Transpose.TRANSPOSE)
    pieces = [slice(at, at + size) for at in range(0, width * cell_h, size)]
    cells: list[bytes] = []
    for top in range(0, height, cell_h):
        cells += map(transposed.crop((top, 0, top + cell_h, width)).tobytes().__getitem__, pieces)
    return cells


def band_unit(cell_w: int) -> int:
    """Columns of a cell that cut_band's transpose moves as one: 2 if cell_w is even, else 1."""
    return 2 if cell_w % 2 == 0 else 1


def to_column_major(cell: bytes, cell_w: int, cell_h: int) -> bytes:
    """A cell of cut_band() in cut()'s order (column-major).  cut_band
    keeps columns in units of band_unit(cell_w): unit by unit, each row of
    a unit's columns in turn."""
    unit = band_unit(cell_w)
    if unit == 1:
        return cell
    span = unit * cell_h
    return b"".join(cell[at + column : at + span : unit] for at in range(0, len(cell), span) for column in range(unit))


def cut_band(image: Image.Image, band: int, box: tuple[int, int, int, int], cell_w: int, cell_h: int) -> list[bytes]:
    """cut() of one band of image cropped to box (left, top, right, bottom;
    sides multiples of the cell), each cell in band_unit order (see
    to_column_major), without the crops: the band's bytes are
    read once, row y of every row of cells is gathered by one strided view
    per y, so that the rows of cells lie side by side, and one transpose
    makes every cell contiguous (cut() crops and copies per row of cells)."""
    left, top, right, bottom = box
    width, height = image.size
    inner_w, bands = right - left, (bottom - top) // cell_h
    # Padded by one row of cells: a strided view must span whole strides.
    keys = image.tobytes("raw", image.mode[band]) + bytes(cell_h * width)
    stride, view = width * cell_h, memoryview(keys)
    side_by_side = b"".join(
        Image.frombuffer("L", (inner_w, bands), view[(top + y) * width + left :], "raw", "L", stride, 1).tobytes()
        for y in range(cell_h))  # fmt: skip
    unit = band_unit(cell_w)
    mode = "I;16" if unit == 2 else "L"  # (I;16: two bytes as they are, little-endian in and out)
    stacked = Image.frombuffer(mode, (inner_w * bands // unit, cell_h), side_by_side, "raw", mode, 0, 1)
    columns = stacked.transpose(Image.Transpose.TRANSPOSE).tobytes()
    return list(map(columns.__getitem__, pieces(len(columns), cell_w * cell_h)))


@lru_cache(maxsize=PIECES_CACHED)
def pieces(length: int, size: int) -> list[slice]:
    """The slices of the cells of `size` bytes in `length` bytes (a screen's geometry repeats)."""
    return [slice(at, at + size) for at in range(0, length, size)]


def _profile(index: Image.Image, vertical: bool) -> list[float]:
    """Mean ink per column (or per row when vertical) of a 0/1 image."""
    width, height = index.size
    floats = index.convert("F")
    size = (1, height) if vertical else (width, 1)
    return list(array("f", floats.resize(size, Image.Resampling.BOX).tobytes()))


def _periods(profile: list[float]) -> tuple[int, list[int]] | None:
    """(period, its phases emptiest first) of a text-like ink profile, or None."""
    total = sum(profile)
    if total <= 0:
        return None
    scored: list[tuple[float, int, list[float]]] = []
    for period in range(GRID_MIN_SIDE, min(GLYPH_MAX_SIDE, len(profile) // GRID_MIN_CELLS) + 1):
        usable = len(profile) // period * period
        if sum(1 for start in range(0, usable, period) if any(profile[start : start + period])) < GRID_MIN_CELLS:
            continue
        folded = [sum(profile[phase:usable:period]) for phase in range(period)]
        mean = sum(folded) / period
        if mean > 0:
            scored.append((min(folded) / mean, period, folded))
    if not scored:
        return None
    best = min(score for score, _p, _f in scored)
    if best > GRID_MAX_SCORE:
        return None
    _score, period, folded = min((item for item in scored if item[0] <= min(best + GRID_TIE, GRID_MAX_SCORE)),
                                 key=lambda item: item[1])  # fmt: skip
    # A cell starts just after an empty column/row: the gap ends each cell.
    order = sorted(range(period), key=lambda phase: folded[phase])
    return period, [(phase + 1) % period for phase in order[:GRID_PHASES_TRIED]]


def detect(index: Image.Image, origin: tuple[int, int], prefer: tuple[int, int] | None = None) -> Grid | None:
    """The grid of the text in a 0/1 'L' image (1: the minority colour)
    lying at `origin` of its surface; None if it does not look like text.
    `prefer`: a corner (surface coordinates) the grid should go through if
    that makes no more distinct cells (a blank row above the text may start
    or end a cell alike; the damaged rectangle's corner is the text area's)."""
    columns = _periods(_profile(index, vertical=False))
    rows = _periods(_profile(index, vertical=True))
    if columns is None or rows is None:
        return None
    (cell_w, phases_x), (cell_h, phases_y) = columns, rows
    if prefer is not None:  # tried first: it wins ties
        phases_x = [(prefer[0] - origin[0]) % cell_w] + phases_x
        phases_y = [(prefer[1] - origin[1]) % cell_h] + phases_y
    width, height = index.size
    best: tuple[float, int, int] | None = None
    for phase_y in phases_y:
        bands = min(GRID_SAMPLE_BANDS, (height - phase_y) // cell_h)
        for phase_x in phases_x:
            cols = (width - phase_x) // cell_w
            if bands < 1 or cols < 1:
                continue
            sample = index.crop((phase_x, phase_y, phase_x + cols * cell_w, phase_y + bands * cell_h))
            distinct = len(set(cut(sample, cell_w, cell_h))) / (cols * bands)
            if best is None or distinct < best[0]:
                best = (distinct, phase_x, phase_y)
    if best is None:
        return None
    _share, phase_x, phase_y = best
    return Grid(cell_w, cell_h, (origin[0] + phase_x) % cell_w, (origin[1] + phase_y) % cell_h)


def two_colours(image: Image.Image, order: tuple[int, int, int],
                background: bytes | None = None) -> tuple[int, bytes, bytes] | None:  # fmt: skip
    """(key band, colour 0 + colour 1 as R, G, B, the translation of the
    band's two values to 0/1) of an image of exactly two colours, colour
    0 `background` if it is one of them, else the commoner; None if not two
    colours.  Cells are cut from the band as it is (no per-pixel mapping);
    only each distinct cell is translated to its glyph bits."""
    return from_colours(image.getcolors(2), order, background)


def from_colours(colours: list[tuple[int, tuple[int, ...]]] | list[tuple[int, int]] | None,
                 order: tuple[int, int, int], background: bytes | None) -> tuple[int, bytes, bytes] | None:  # fmt: skip
    """two_colours() from getcolors(2)'s answer."""
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
    keys = bytes((back[order[band]], ink[order[band]]))
    rgb = bytes((back[order[0]], back[order[1]], back[order[2]], ink[order[0]], ink[order[1]], ink[order[2]]))
    return order[band], rgb, bytes.maketrans(keys, b"\x00\x01")

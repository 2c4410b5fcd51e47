# The GLYPHS encoder's per-pixel and per-cell passes in C (sessiond/agent/
# native/glyph_cells.c), loaded with ctypes: the exact two-colour test, the
# cut of the text cells straight from the BGRX capture, and the numbering
# of the cells' patterns (so Python touches each distinct glyph once, and
# renumbers a stripe's cells with one bytes.translate).
#
# Why: on a scrolling terminal nearly every frame is a whole new screen of
# GLYPHS, and the first two passes alone were ~2.4 ms of the agent's ~5 ms
# per 1920x1080 frame in Pillow (getcolors, strided views + transpose); the
# numbering replaces ~9000 bytes slices and dict look-ups per screen.  numpy
# would do them too, but costs every session's agent memory; a libc-only
# shared object costs ~20 KiB.  `make install` builds it into the venv
# (<venv>/lib/sessiond-glyph-cells.so, like isolation/wait.c's waiter);
# where it did not build, the encoder keeps the Python path
# (glyph_encoder._two_colours, glyph_grid.cut_band), which stays the
# reference: tests/unit/test_glyph_native.py requires identical results.
#
# The buffer's address is taken with the buffer protocol
# (PyObject_GetBuffer), so a read-only capture (bytes) works as well as the
# shared-memory one; the C side checks every bound again before reading.
"""NativeCells: the C two-colour test, cell cut and cell numbering of BGRX captures (load(): None if not built)."""

from __future__ import annotations

import ctypes
import os
import sys
from array import array
from functools import cache
from typing import Final

from PIL import Image

from sessiond.agent.glyph_grid import Grid, band_unit, from_colours, margins

# Where `make install` puts the library (Makefile).
LIBRARY_NAME: Final = "sessiond-glyph-cells.so"
# The library's calling convention (SV_GLYPH_CELLS_ABI in glyph_cells.c): a
# library left by an older `make install` is refused, never called with
# arguments it would misread (version 1 had no output sizes in sv_index_cells,
# version 2 no scroll_rows.c: see row_native.py; version 3 no sv_cut_two_colours).
ABI_VERSION: Final = 4
# Set to "0" to use the Python path (benchmarks, tests of the fallback).
ENV_SWITCH: Final = "SESSIOND_NATIVE_GLYPHS"
_BAD_ARGS: Final = -1
_MORE_COLOURS: Final = 3
_BYTES_PER_PIXEL: Final = 4
_PyBUF_SIMPLE: Final = 0
# The widest box cut_two_colours takes (MAX_FLAG_ROW in glyph_cells.c: its row of flags is on the stack).
MAX_FLAG_ROW: Final = 8192

Rect = tuple[int, int, int, int]
# The BGRX capture a rectangle's image maps, its stride, and the rectangle's corner in it.
Capture = tuple[memoryview | bytes, int, tuple[int, int]]
# The bands of a BGRX capture that hold R, G, B (palette_png.BGRX_ORDER): the only layout read here.
BGRX_ORDER: Final = (2, 1, 0)


class _PyBuffer(ctypes.Structure):
    """CPython's Py_buffer (stable since 3.11's limited API)."""

    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.py_object), ("len", ctypes.c_ssize_t),
                ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
                ("suboffsets", ctypes.c_void_p), ("internal", ctypes.c_void_p)]  # fmt: skip


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None


def library_path() -> str:
    """Where `make install` builds the library: <venv>/lib/sessiond-glyph-cells.so."""
    return os.path.join(sys.prefix, "lib", LIBRARY_NAME)


class NativeCells:
    """The C passes over one BGRX buffer at a time (see glyph_cells.c)."""

    def __init__(self, path: str) -> None:
        if array("I").itemsize != 4:
            raise OSError("array('I') is not 32 bits here: sv_index_cells' ids are")
        lib = open_library(path)
        size, ubyte_p = ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)
        self._two = lib.sv_two_colours
        self._two.argtypes = [ctypes.c_void_p, size, size, size, size, size, ubyte_p,
                              ctypes.POINTER(ctypes.c_uint64)]  # fmt: skip
        self._two.restype = ctypes.c_int
        self._cut = lib.sv_cut_cells
        self._cut.argtypes = [ctypes.c_void_p, size, size, size, size, size, size, size, size, size,
                              ctypes.c_void_p, size]  # fmt: skip
        self._cut.restype = ctypes.c_int
        self._index = lib.sv_index_cells
        self._index.argtypes = [ctypes.c_void_p, size, size, size, ctypes.c_void_p, size, ctypes.c_void_p, size,
                                ctypes.c_void_p, size, ctypes.c_void_p, size]  # fmt: skip
        self._index.restype = ctypes.c_long
        self._cut_two = lib.sv_cut_two_colours
        self._cut_two.argtypes = [ctypes.c_void_p, size, size, size, size, size, size, size, size, ctypes.c_void_p,
                                  size, ubyte_p, ctypes.POINTER(ctypes.c_uint64)]  # fmt: skip
        self._cut_two.restype = ctypes.c_int
        self._colours = (ctypes.c_ubyte * 8)()
        self._counts = (ctypes.c_uint64 * 2)()

    def two_colours(self, buf: memoryview | bytes, stride: int, rect: Rect) -> list[tuple[int, tuple[int, ...]]] | None:
        """Image.getcolors(2) of rect of the BGRX buffer seen as an "RGBX"
        image ((count, 4-tuple) per colour), None if more than two colours.
        The order of the two is first appearance, not Pillow's: callers
        sort by count, and ties must go to Pillow (see glyph_encoder)."""
        x, y, w, h = rect
        found = _BAD_ARGS
        with Pinned(buf) as (address, length):
            if x >= 0 and y >= 0:
                found = self._two(address, length, stride, y * stride + x * _BYTES_PER_PIXEL, w, h,
                                  self._colours, self._counts)  # fmt: skip
        if found == _BAD_ARGS:
            raise ValueError(f"rectangle {rect} is outside the buffer (stride {stride}, {length} bytes)")
        if found == _MORE_COLOURS:
            return None
        pixels = bytes(self._colours)
        return [(self._counts[n], tuple(pixels[n * 4 : n * 4 + 4])) for n in range(found)]

    def cut(self, buf: memoryview | bytes, stride: int, box: Rect, cell_w: int, cell_h: int, band: int) -> bytearray:
        """The cells of box (x, y, w, h of the buffer, sides multiples of the
        cell) in byte `band` of each pixel, one after another in
        glyph_grid.cut_band's order (slice them by cell_w * cell_h).  A
        bytearray, not copied again into bytes: index() reads it as it is."""
        x, y, w, h = box
        if x < 0 or y < 0 or w % cell_w or h % cell_h:
            raise ValueError(f"box {box} is not whole {cell_w}x{cell_h} cells of the buffer")
        out = bytearray(w * h)
        with Pinned(buf) as (address, length), Pinned(out) as (target, size):
            status = self._cut(address, length, stride, y * stride + x * _BYTES_PER_PIXEL, w // cell_w, h // cell_h,
                               cell_w, cell_h, band, band_unit(cell_w), target, size)  # fmt: skip
        if status != 0:
            raise ValueError(f"box {box} is outside the buffer (stride {stride}, {length} bytes)")
        return out

    def cut_two_colours(self, buf: memoryview | bytes, stride: int, box: Rect, cell_w: int,
                        cell_h: int) -> tuple[list[tuple[int, tuple[int, ...]]], bytearray] | None:  # fmt: skip
        """two_colours() and cut() of box in one pass: (colours, cells), the
        cells in cut()'s order but each pixel 0 (the colour of the box's
        first pixel) or 1 (the other), not a band's byte; None if the box
        has more than two colours.  `colours` as two_colours() gives them
        (first appearance first: the first is the one the cells call 0)."""
        x, y, w, h = box
        if x < 0 or y < 0 or w % cell_w or h % cell_h or w > MAX_FLAG_ROW:
            raise ValueError(f"box {box} is not whole {cell_w}x{cell_h} cells of the buffer, at most {MAX_FLAG_ROW} "
                             "pixels wide")
        out = bytearray(w * h)
        with Pinned(buf) as (address, length), Pinned(out) as (target, size):
            found = self._cut_two(address, length, stride, y * stride + x * _BYTES_PER_PIXEL, w // cell_w,
                                  h // cell_h, cell_w, cell_h, band_unit(cell_w), target, size, self._colours,
                                  self._counts)  # fmt: skip
        if found == _BAD_ARGS:
            raise ValueError(f"box {box} is outside the buffer (stride {stride}, {length} bytes)")
        if found == _MORE_COLOURS:
            return None
        pixels = bytes(self._colours)
        return [(self._counts[n], tuple(pixels[n * 4 : n * 4 + 4])) for n in range(found)], out

    def index(self, cells: bytes | bytearray | memoryview, cell_bytes: int) -> tuple[bytes | array[int], list[bytes]]:
        """(ids, patterns): cells (cut()'s output) numbered by first appearance
        of their pattern, and each pattern's bytes (only the distinct
        patterns are copied out of cells).  ids is one byte per cell while
        there are at most 256 patterns, else an array of ints."""
        count = len(cells) // cell_bytes
        table_len = 1 << max(1, (2 * count - 1).bit_length())
        zero = array("I", [0])  # C's uint32_t (checked in __init__)
        table, ids, firsts, ids8 = zero * table_len, zero * count, zero * count, bytearray(count)
        with Pinned(cells) as (address, length), Pinned(table) as (table_at, _t), \
                Pinned(ids) as (ids_at, ids_size), Pinned(ids8) as (ids8_at, ids8_size), \
                Pinned(firsts) as (firsts_at, firsts_size):  # fmt: skip
            distinct = self._index(address, length, cell_bytes, count, table_at, table_len, ids_at, ids_size,
                                   ids8_at, ids8_size, firsts_at, firsts_size)  # fmt: skip
        if distinct < 0:
            raise ValueError(f"{length} bytes are not whole cells of {cell_bytes} bytes (or an output array is short)")
        with memoryview(cells) as view:
            patterns = [view[first * cell_bytes : (first + 1) * cell_bytes].tobytes() for first in firsts[:distinct]]
        return (bytes(ids8) if distinct <= 256 else ids), patterns


class Pinned:
    """A buffer's address and length while the with-block runs (PyObject_GetBuffer/PyBuffer_Release)."""

    def __init__(self, obj: object) -> None:
        self._obj, self._view = obj, _PyBuffer()

    def __enter__(self) -> tuple[int, int]:
        if _get_buffer(self._obj, ctypes.byref(self._view), _PyBUF_SIMPLE) != 0:
            raise ValueError("not a contiguous buffer")
        return self._view.buf or 0, self._view.len

    def __exit__(self, *_exc: object) -> None:
        _release_buffer(ctypes.byref(self._view))


def open_library(path: str) -> ctypes.CDLL:
    """The library at path, if its calling convention is this agent's (OSError if not)."""
    lib = ctypes.CDLL(path)
    abi = getattr(lib, "sv_glyph_cells_abi", None)
    if abi is None or abi() != ABI_VERSION:
        raise OSError(f"{path} is an older build (calling convention {abi() if abi else 1}, "
                      f"this agent needs {ABI_VERSION}): run make install")  # fmt: skip
    return lib


def native_cells(native: NativeCells, capture: Capture, image: Image.Image, order: tuple[int, int, int], rect: Rect,
                 box: tuple[int, int, int, int], grid: Grid,
                 background: bytes | None) -> tuple[bytes | array[int], list[bytes], bytes, bytes] | None:  # fmt: skip
    """encode()'s two-colour test and cut_band by the C passes, the cells
    numbered by pattern: (ids, patterns, to_bits, colours), or None where
    the Python path would give up (see NativeCells.index).

    The cells are cut in the same pass that finds the colours of the whole
    cells (cut_two_colours); the rest of the rectangle (its margins, a few
    pixels wide) is looked at apart, and the whole rectangle's colours are
    those of both.  As on the Python path, the whole rectangle's two colours
    are tried first, then the cells' alone.  The cells come as 0 (the cells'
    first colour) / 1 (their other one), so the `to_bits` returned maps
    those, not a band's bytes, to the glyph bits: the patterns and their
    numbering are the same, as each colour has one value either way."""
    buf, stride, (cx, cy) = capture
    inner = (cx + box[0], cy + box[1], box[2] - box[0], box[3] - box[1])
    cut = native.cut_two_colours(buf, stride, inner, grid.cell_w, grid.cell_h)
    if cut is None:  # a third colour among the cells: in the whole rectangle too
        return None
    inner_colours, cells = cut
    whole = (cx, cy, rect[2], rect[3])
    two = None
    for area, colours in ((whole, _whole_colours(native, buf, stride, whole, inner, inner_colours)),
                          (inner, inner_colours)):  # fmt: skip
        if colours is not None and len(colours) == 2 and colours[0][0] == colours[1][0]:
            # A tie: Pillow's order decides, as on the Python path (glyph_grid.from_colours sorts stably).
            left, top = area[0] - cx, area[1] - cy
            colours = image.crop((left, top, left + area[2], top + area[3])).getcolors(2)
        two = from_colours(colours, order, background)
        if two is not None:
            break
    if two is None:
        return None
    band, rgb, band_to_bits = two
    values = [colour[band] for _count, colour in inner_colours]  # the band's byte of cells' 0 (and 1)
    to_bits = bytes.maketrans(b"\0\1", bytes(band_to_bits[value] for value in (values + values)[:2]))
    ids, patterns = native.index(cells, grid.cell_w * grid.cell_h)
    return ids, patterns, to_bits, rgb


Colours = list[tuple[int, tuple[int, ...]]]  # getcolors(2)'s answer: (count, the pixel's 4 bytes) per colour


def _whole_colours(native: NativeCells, buf: memoryview | bytes, stride: int, whole: Rect, inner: Rect,
                   inner_colours: Colours) -> Colours | None:  # fmt: skip
    """two_colours() of `whole` from its cells' colours (`inner_colours` of
    `inner`, inside it) and those of its margins: None past two colours."""
    counts = {colour: count for count, colour in inner_colours}
    for part in margins(whole, inner):
        colours = native.two_colours(buf, stride, part)
        if colours is None:
            return None
        for count, colour in colours:
            counts[colour] = counts.get(colour, 0) + count
    if len(counts) > 2:
        return None
    return [(count, colour) for colour, count in counts.items()]


def load(path: str | None = None) -> NativeCells | None:
    """The installed library, or None if it is absent or switched off
    (SESSIOND_NATIVE_GLYPHS=0): the encoder then uses the Python path."""
    if os.environ.get(ENV_SWITCH) == "0":
        return None
    try:
        return NativeCells(path or library_path())
    except (OSError, AttributeError):  # not built, or an older build without a function
        return None


@cache
def shared() -> NativeCells | None:
    """load() once per process (every GlyphEncoder of the agent uses the same library)."""
    return load()

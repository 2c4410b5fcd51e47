# The C passes of the GLYPHS encoder (sessiond/agent/native/glyph_cells.c,
# loaded by glyph_native.py) against the Python reference they replace:
# the two-colour test equals Pillow's getcolors(2) and the cut equals
# glyph_grid.cut_band over random screens and cells; whole encodes (regions'
# bytes and the glyph mirror) are identical with and without them; every
# bound (rectangle past the buffer or its stride, output length, cell size,
# band; each output array of the numbering) is refused before memory is
# touched, through NativeCells and against the library itself; the numbering of cell patterns
# equals a dict's, past 256 patterns too; and the installed agent loads
# the library `make install` built (as the sandbox waiter's test checks).
"""Unit tests for sessiond.agent.glyph_native against the Python path (glyph_grid, glyph_encoder)."""

from __future__ import annotations

import ctypes
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from protocol.messages import Region
from sessiond.agent import glyph_native
from sessiond.agent.encoder import RegionEncoder
from sessiond.agent.glyph_grid import Grid, band_unit, cut_band, pieces
from unit.test_glyph_agent import bgrx, terminal

NATIVE = glyph_native.load()
needs_native = pytest.mark.usefixtures("native_built")


@pytest.fixture
def native_built() -> None:
    """Fails (never skips) a test of the C code where `make install` did not build it."""
    if NATIVE is None:
        pytest.fail("sessiond-glyph-cells.so is not built in this venv (make install builds it)")


# Pixels with only two R, G, B values per byte and an X byte of 0 or 1: ties,
# padding-only differences and third colours all turn up often.
PIXEL = st.tuples(st.sampled_from([0, 255]), st.sampled_from([0, 7]), st.sampled_from([9, 9, 200]),
                  st.sampled_from([0, 0, 0, 1]))  # fmt: skip


def test_installed_agent_uses_it() -> None:
    """`make install` built the library into the venv, and the encoder of every agent uses it."""
    assert NATIVE is not None, f"{glyph_native.library_path()} did not load: make install did not build it"
    assert RegionEncoder().glyphs.native is not None


def test_without_the_library_or_switched_off_the_python_path_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    assert glyph_native.load("/nonexistent/sessiond-glyph-cells.so") is None
    monkeypatch.setenv(glyph_native.ENV_SWITCH, "0")
    assert glyph_native.load() is None


@pytest.mark.parametrize("source", ["int sv_glyph_cells_abi(void) { return 1; }", "int sv_two_colours;"])
def test_a_library_of_another_calling_convention_is_refused(tmp_path: Path, source: str) -> None:
    # A library left by an older install (no version, or another one) would
    # misread the arguments (a crash, not an error): the Python path runs.
    (tmp_path / "old.c").write_text(source + "\n")
    built = tmp_path / "old.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(built), str(tmp_path / "old.c")], check=True)
    with pytest.raises(OSError, match="older build"):
        glyph_native.NativeCells(str(built))
    assert glyph_native.load(str(built)) is None


def screen(pixels: list[tuple[int, int, int, int]], width: int, height: int, stride_pad: int) -> tuple[bytes, int]:
    """A BGRX buffer of width x height from `pixels` (repeated), rows padded by stride_pad pixels."""
    stride = (width + stride_pad) * 4
    rows = [bytes(b for x in range(width + stride_pad) for b in pixels[(y * width + x) % len(pixels)])
            for y in range(height)]  # fmt: skip
    return b"".join(rows), stride


def mapped(buf: bytes, stride: int, rect: tuple[int, int, int, int]) -> Image.Image:
    """rect of the buffer as encoder._bgrx_view maps it ("RGBX" bands in memory order)."""
    x, y, w, h = rect
    padded = buf[y * stride + x * 4 :] + bytes(stride)  # Pillow wants whole strides
    return Image.frombuffer("RGBX", (w, h), padded, "raw", "RGBX", stride, 1)


@needs_native
@settings(max_examples=300, deadline=None)
@given(st.lists(PIXEL, min_size=1, max_size=5), st.integers(1, 23), st.integers(1, 9), st.integers(0, 3),
       st.data())  # fmt: skip
def test_two_colours_equal_pillows_getcolors(pixels: list[tuple[int, int, int, int]], width: int, height: int,
                                             pad: int, data: st.DataObject) -> None:  # fmt: skip
    assert NATIVE is not None
    buf, stride = screen(pixels, width, height, pad)
    x, y = data.draw(st.integers(0, width - 1)), data.draw(st.integers(0, height - 1))
    rect = (x, y, data.draw(st.integers(1, width - x)), data.draw(st.integers(1, height - y)))
    ours = NATIVE.two_colours(memoryview(buf), stride, rect)
    theirs = mapped(buf, stride, rect).getcolors(2)
    assert (None if ours is None else sorted(ours)) == (None if theirs is None else sorted(theirs))


@needs_native
@settings(max_examples=200, deadline=None)
@given(st.integers(1, 8), st.integers(1, 7), st.integers(1, 5), st.integers(1, 4), st.integers(0, 3),
       st.integers(0, 3), st.integers(0, 5), st.integers(0, 2**32 - 1))  # fmt: skip
def test_cut_equals_cut_band(cell_w: int, cell_h: int, cols: int, rows: int, band: int, left: int, top: int,
                             seed: int) -> None:  # fmt: skip
    assert NATIVE is not None
    width, height = left + cols * cell_w + 2, top + rows * cell_h + 1
    buf = seed.to_bytes(4, "little") * 3 + bytes((seed * 7919 + i * 31) % 251 for i in range(width * height * 4))
    buf = buf[: width * height * 4]
    stride = width * 4
    box = (left, top, left + cols * cell_w, top + rows * cell_h)
    expected = cut_band(mapped(buf, stride, (0, 0, width, height)), band, box, cell_w, cell_h)
    cut = NATIVE.cut(buf, stride, (left, top, cols * cell_w, rows * cell_h), cell_w, cell_h, band)
    assert list(map(cut.__getitem__, pieces(len(cut), cell_w * cell_h))) == expected


def regions_of(native: glyph_native.NativeCells | None, frames: list[bytes], width: int, height: int,
               rects: list[tuple[int, int, int, int]]) -> tuple[list[Region], int]:  # fmt: skip
    """Every region of encoding frames (first whole, then rects) with glyphs on, and the mirror's size."""
    encoder = RegionEncoder()
    encoder.glyphs.enabled, encoder.glyphs.native = True, native
    out = encoder.encode(frames[0], width * 4, [(0, 0, width, height)], surface="desktop")
    for frame in frames[1:]:
        out += encoder.encode(frame, width * 4, rects, surface="desktop")
    return out, len(encoder.glyphs.mirror)


@needs_native
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_whole_encodes_are_identical_with_and_without_it(seed: int) -> None:
    """Screens of text (black on white, a root of another colour around it,
    one with a third colour) give the same regions byte for byte."""
    width, height = 400, 260
    frames = []
    for n in range(6):
        desk = Image.new("RGB", (width, height), (40, 80, 120))
        desk.paste(terminal(60, 16, seed=seed * 10 + n), (7, 5))
        if n == 4:
            desk.putpixel((100, 60), (200, 10, 10))  # a third colour: PALETTE, not GLYPHS
        frames.append(bgrx(desk))
    rects = [(7, 5, 60 * 6 + 4, 16 * 13 + 4), (0, 0, width, height)]
    assert regions_of(NATIVE, frames, width, height, rects) == regions_of(None, frames, width, height, rects)


@needs_native
def test_every_bound_is_refused_before_memory_is_touched() -> None:
    assert NATIVE is not None
    width, height = 12, 26
    buf, stride = screen([(0, 0, 0, 0), (255, 255, 255, 0)], width, height, 0)
    assert NATIVE.two_colours(buf, stride, (0, 0, width, height)) is not None
    for rect in [(0, 0, width + 1, height), (1, 0, width, height), (0, 0, width, height + 1), (0, 1, width, height),
                 (-1, 0, 2, 2), (0, 0, 0, 1), (0, 0, 1, 0), (0, 0, 32769, 1)]:  # fmt: skip
        with pytest.raises(ValueError):
            NATIVE.two_colours(buf, stride, rect)
    assert len(NATIVE.cut(buf, stride, (0, 0, width, height), 6, 13, 0)) == width * height
    for box, cell in [((0, 0, width, height + 13), (6, 13)), ((6, 0, 12, height), (6, 13)),
                      ((0, 13, width, height), (6, 13)), ((0, 0, 33 * 2, 33), (33, 33)),
                      ((-6, 0, 6, 13), (6, 13)), ((0, 0, 5, 13), (6, 13))]:  # fmt: skip
        with pytest.raises(ValueError):
            NATIVE.cut(buf, stride, box, cell[0], cell[1], 0)
    with pytest.raises(ValueError):
        NATIVE.cut(buf, stride, (0, 0, 6, 13), 6, 13, 4)  # past the pixel's 4 bytes


@needs_native
def test_the_c_side_checks_lengths_itself() -> None:
    """Called directly (not through NativeCells), the library refuses an
    output buffer of the wrong size, a stride smaller than a row, a bad unit."""
    lib = ctypes.CDLL(glyph_native.library_path())
    cut = lib.sv_cut_cells
    size = ctypes.c_size_t
    cut.argtypes = [ctypes.c_char_p, size, size, size, size, size, size, size, size, size, ctypes.c_char_p, size]
    pixels = bytes(6 * 13 * 4)
    out = ctypes.create_string_buffer(6 * 13 + 1)
    assert cut(pixels, len(pixels), 24, 0, 1, 1, 6, 13, 0, band_unit(6), out, 6 * 13) == 0
    assert cut(pixels, len(pixels), 24, 0, 1, 1, 6, 13, 0, 2, out, 6 * 13 + 1) == -1  # output size
    assert cut(pixels, len(pixels), 20, 0, 1, 1, 6, 13, 0, 2, out, 6 * 13) == -1  # stride < a row
    assert cut(pixels, len(pixels) - 1, 24, 0, 1, 1, 6, 13, 0, 2, out, 6 * 13) == -1  # buffer one byte short
    assert cut(pixels, len(pixels), 24, 0, 1, 1, 6, 13, 0, 4, out, 6 * 13) == -1  # unit
    assert cut(pixels, len(pixels), 24, 0, 1, 1, 5, 13, 0, 2, out, 5 * 13) == -1  # odd width in pairs


def index_function() -> Any:
    """The library's sv_index_cells, loaded apart from NativeCells."""
    index = ctypes.CDLL(glyph_native.library_path()).sv_index_cells
    size, pointer = ctypes.c_size_t, ctypes.c_void_p
    index.argtypes = [ctypes.c_char_p, size, size, size, pointer, size, pointer, size, pointer, size, pointer, size]
    index.restype = ctypes.c_long
    return index


@needs_native
@pytest.mark.parametrize("bound", [{"ids_size": 3 * 4 - 1}, {"ids8_size": 3 - 1}, {"firsts_size": 3 * 4 - 1},
                                   {"table_len": 1 << 63}, {"table_len": 4}])  # fmt: skip
def test_the_c_side_checks_the_numberings_outputs_itself(bound: dict[str, int]) -> None:
    """Called directly, sv_index_cells refuses an output array (sizes in
    bytes) one byte short of n entries, and a table whose size in bytes
    overflows or that is short of 2n entries, writing nothing; at the
    exact sizes it numbers the cells."""
    index = index_function()
    cells, cell_bytes, n = b"abcdabcdwxyz", 4, 3
    table, ids, firsts = (ctypes.c_uint32 * 8)(), (ctypes.c_uint32 * n)(), (ctypes.c_uint32 * n)()
    ids8 = ctypes.create_string_buffer(n)
    sizes = {"table_len": 8, "ids_size": ctypes.sizeof(ids), "ids8_size": n, "firsts_size": ctypes.sizeof(firsts)}
    arrays = (table, ids, ids8, firsts)

    def call(**changed: int) -> int:
        for target in arrays:
            ctypes.memset(target, 0xA5, ctypes.sizeof(target))
        s = sizes | changed
        return int(index(cells, len(cells), cell_bytes, n, table, s["table_len"], ids, s["ids_size"], ids8,
                         s["ids8_size"], firsts, s["firsts_size"]))  # fmt: skip

    assert call(**bound) == -1
    assert all(bytes(target) == b"\xa5" * ctypes.sizeof(target) for target in arrays)  # nothing written
    assert call() == 2 and list(ids) == [0, 0, 1] and ids8.raw == b"\0\0\1" and list(firsts[:2]) == [0, 2]


@needs_native
@pytest.mark.parametrize("argument", [7, 9, 11])  # sv_index_cells' ids_size, ids8_size, firsts_size
def test_the_wrapper_passes_each_output_arrays_real_size(argument: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """NativeCells.index gives the library each output array's real size:
    one byte less and the library refuses before writing it, and index()
    raises instead of reading the arrays."""
    native = glyph_native.load()
    assert native is not None
    real, told = native._index, []

    def shorter(*args: Any) -> int:
        told.append(args[argument])
        before = ctypes.string_at(args[argument - 1], args[argument])
        status = int(real(*args[:argument], args[argument] - 1, *args[argument + 1 :]))
        assert ctypes.string_at(args[argument - 1], args[argument]) == before
        return status

    monkeypatch.setattr(native, "_index", shorter)
    with pytest.raises(ValueError):
        native.index(b"abcdabcdwxyz", 4)
    assert told == [3 if argument == 9 else 3 * 4]


@needs_native
@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(1, 300), st.integers(1, 600), st.integers(0, 2**32 - 1))
def test_index_numbers_patterns_as_a_dict_does(cell_bytes: int, kinds: int, count: int, seed: int) -> None:
    assert NATIVE is not None
    rng = random.Random(seed)
    pool = [bytes(rng.getrandbits(1) for _ in range(cell_bytes)) for _ in range(kinds)]
    cells = [rng.choice(pool) for _ in range(count)]
    numbers: dict[bytes, int] = {}
    expected = [numbers.setdefault(cell, len(numbers)) for cell in cells]
    joined = b"".join(cells)
    for handed in (joined, bytearray(joined), memoryview(joined)):  # cut() gives a bytearray
        ids, patterns = NATIVE.index(handed, cell_bytes)
        assert list(ids) == expected and patterns == list(numbers)
        assert isinstance(ids, bytes) == (len(numbers) <= 256)
        assert all(type(pattern) is bytes for pattern in patterns)  # hashable: the mirror's keys


@needs_native
@pytest.mark.parametrize("kinds", [20, 400])
def test_a_preset_grid_of_many_patterns_encodes_identically(kinds: int) -> None:
    """Two-colour cells of up to 400 patterns on one screen (past 256: the
    numbers are an array, each stripe still names at most GLYPH_MAX_USED)."""
    rng = random.Random(kinds)
    cell_w, cell_h, columns, rows = 8, 16, 40, 30
    pool = [[rng.getrandbits(1) for _ in range(cell_w * cell_h)] for _ in range(kinds)]
    image = Image.new("RGB", (columns * cell_w, rows * cell_h), (250, 250, 250))
    for row in range(rows):
        for column in range(columns):
            bits = rng.choice(pool)
            for at, bit in enumerate(bits):
                if bit:
                    image.putpixel((column * cell_w + at % cell_w, row * cell_h + at // cell_w), (10, 20, 30))
    frame, width = bgrx(image), image.width
    results = []
    for native in (NATIVE, None):
        encoder = RegionEncoder()
        encoder.glyphs.enabled, encoder.glyphs.native = True, native
        encoder.glyphs._grids["s"] = Grid(cell_w, cell_h, 0, 0)
        out = encoder.encode(frame, width * 4, [(0, 0, width, image.height)], surface="s")
        results.append((out, encoder.glyphs.sent, len(encoder.glyphs.mirror)))
    assert results[0] == results[1] and results[0][1] > 0


# -- cut_two_colours: the two-colour test and the cut in one pass ---------------------------
@needs_native
@settings(max_examples=300, deadline=None)
@given(st.lists(PIXEL, min_size=1, max_size=4), st.integers(1, 8), st.integers(1, 7), st.integers(1, 4),
       st.integers(1, 3), st.integers(0, 3), st.integers(0, 4), st.integers(0, 3))  # fmt: skip
def test_cut_two_colours_equals_getcolors_and_cut_band(pixels: list[tuple[int, int, int, int]], cell_w: int,
                                                       cell_h: int, cols: int, rows: int, left: int, top: int,
                                                       pad: int) -> None:  # fmt: skip
    """The colours are Pillow's getcolors(2) of the box, and the cells are
    cut_band's of any band with each value turned 0 (the first colour's) or 1."""
    assert NATIVE is not None
    width, height = left + cols * cell_w + 1, top + rows * cell_h + 2
    buf, stride = screen(pixels, width, height, pad)
    box = (left, top, cols * cell_w, rows * cell_h)
    found = NATIVE.cut_two_colours(buf, stride, box, cell_w, cell_h)
    theirs = mapped(buf, stride, box).getcolors(2)
    assert (None if found is None else sorted(found[0])) == (None if theirs is None else sorted(theirs))
    if found is None:
        return
    colours, cells = found
    first = colours[0][1]
    assert first == tuple(buf[top * stride + left * 4 : top * stride + left * 4 + 4])  # the box's first pixel: 0
    whole = mapped(buf, stride, (0, 0, width, height))
    edges = (left, top, left + cols * cell_w, top + rows * cell_h)
    # Per pixel, 1 where any of its 4 bytes differs from the first colour's.
    ones = [bytes(value != first[band] for value in b"".join(cut_band(whole, band, edges, cell_w, cell_h)))
            for band in range(4)]  # fmt: skip
    assert bytes(cells) == bytes(a | b | c | d for a, b, c, d in zip(*ones))


@needs_native
def test_cut_two_colours_stops_at_a_third_colour() -> None:
    assert NATIVE is not None
    buf, stride = screen([(0, 0, 0, 0), (255, 255, 255, 0)], 12, 26, 0)
    assert NATIVE.cut_two_colours(buf, stride, (0, 0, 12, 26), 6, 13) is not None
    third = bytearray(buf)
    third[stride * 25 + 11 * 4] = 7  # the last pixel
    assert NATIVE.cut_two_colours(bytes(third), stride, (0, 0, 12, 26), 6, 13) is None
    assert NATIVE.cut_two_colours(bytes(third), stride, (0, 0, 6, 13), 6, 13) is not None  # not in this box


@needs_native
def test_cut_two_colours_refuses_every_bound() -> None:
    assert NATIVE is not None
    width, height = 12, 26
    buf, stride = screen([(0, 0, 0, 0), (255, 255, 255, 0)], width, height, 0)
    for box, cell in [((0, 0, width, height + 13), (6, 13)), ((6, 0, 12, height), (6, 13)),
                      ((0, 13, width, height), (6, 13)), ((0, 0, 33 * 2, 33), (33, 33)),
                      ((-6, 0, 6, 13), (6, 13)), ((0, -1, 6, 13), (6, 13)), ((0, 0, 5, 13), (6, 13)),
                      ((0, 0, glyph_native.MAX_FLAG_ROW + 6, 13), (6, 13))]:  # fmt: skip
        with pytest.raises(ValueError):
            NATIVE.cut_two_colours(buf, stride, box, cell[0], cell[1])
    assert NATIVE.cut_two_colours(buf, stride, (0, 0, width, height), 6, 13) is not None


def cut_two_function() -> Any:
    """The library's sv_cut_two_colours, loaded apart from NativeCells."""
    cut = ctypes.CDLL(glyph_native.library_path()).sv_cut_two_colours
    size, pointer = ctypes.c_size_t, ctypes.c_void_p
    cut.argtypes = [ctypes.c_char_p, size, size, size, size, size, size, size, size, pointer, size, pointer, pointer]
    cut.restype = ctypes.c_int
    return cut


@needs_native
@pytest.mark.parametrize("bad", [{"out_len": 6 * 13 + 1}, {"out_len": 6 * 13 - 1}, {"stride": 20}, {"length": -1},
                                 {"unit": 4}, {"unit": 0}, {"cell_w": 5, "out_len": 5 * 13}, {"cell_h": 33},
                                 {"cols": 0}, {"start": 4}, {"cols": 2049, "rows": 1, "stride": 2049 * 24,
                                                              "out_len": 2049 * 78}])  # fmt: skip
def test_the_c_side_checks_cut_two_colours_bounds_itself(bad: dict[str, int]) -> None:
    """Called directly, sv_cut_two_colours refuses an output one byte off,
    a stride under a row, a buffer one byte short, a bad unit or cell, no
    cells, a box past the buffer, a box wider than MAX_FLAG_ROW (8192
    pixels, its row of flags), writing nothing; at the exact sizes it cuts."""
    cut = cut_two_function()
    pixels = bytes(range(256)) * (2049 * 24 * 13 // 256 + 1)
    out = ctypes.create_string_buffer(2049 * 78)
    colours, counts = ctypes.create_string_buffer(8), (ctypes.c_uint64 * 2)()
    args = {"length": 24 * 13, "stride": 24, "start": 0, "cols": 1, "rows": 1, "cell_w": 6, "cell_h": 13, "unit": 2,
            "out_len": 6 * 13}  # fmt: skip

    def call(**changed: int) -> int:
        ctypes.memset(out, 0xA5, ctypes.sizeof(out))
        a = args | changed
        length = a["length"] if a["length"] >= 0 else args["length"] - 1
        return int(cut(pixels, length, a["stride"], a["start"], a["cols"], a["rows"], a["cell_w"], a["cell_h"],
                       a["unit"], out, a["out_len"], colours, counts))  # fmt: skip

    assert call(**bad) == -1
    assert out.raw == b"\xa5" * ctypes.sizeof(out)  # nothing written
    assert call() == 3  # (the test pattern has many colours: stopped at the third)
    flat = bytes([9, 9, 9, 0]) * (6 * 13)
    assert cut(flat, len(flat), 24, 0, 1, 1, 6, 13, 2, out, 6 * 13, colours, counts) == 1
    assert out.raw[: 6 * 13] == bytes(6 * 13) and list(counts) == [78, 0]


@needs_native
@pytest.mark.parametrize("rect", [(7, 5, 60 * 6 + 4, 16 * 13 + 4), (4, 3, 60 * 6 + 9, 16 * 13 + 7),
                                  (9, 7, 60 * 6, 16 * 13), (7, 5, 60 * 6 + 4, 13 * 3 + 2)])  # fmt: skip
def test_margins_of_another_colour_encode_identically(rect: tuple[int, int, int, int]) -> None:
    """A damaged rectangle that reaches past the text onto a root of
    another colour (its margins have a third colour: the cells alone are
    two), one inside the text, one of a few lines: the same regions with
    and without the C passes."""
    width, height = 400, 260
    frames = []
    for n in range(4):
        desk = Image.new("RGB", (width, height), (40, 80, 120))
        desk.paste(terminal(60, 16, seed=n), (7, 5))
        frames.append(bgrx(desk))
    results = []
    for native in (NATIVE, None):
        encoder = RegionEncoder()
        encoder.glyphs.enabled, encoder.glyphs.native = True, native
        encoder.glyphs._grids["desktop"] = Grid(6, 13, 9 % 6, 7 % 13)  # the text's cells (terminal at 7, 5)
        out = [encoder.encode(frame, width * 4, [rect], surface="desktop") for frame in frames]
        results.append((out, encoder.glyphs.sent, len(encoder.glyphs.mirror)))
    assert results[0] == results[1] and results[0][1] > 0


@needs_native
def test_a_tie_of_the_two_colours_encodes_identically() -> None:
    """As many pixels of each colour (the order Pillow gives decides which is 0): the same regions."""
    cell_w, cell_h, columns, rows = 6, 13, 40, 6
    image = Image.new("RGB", (columns * cell_w, rows * cell_h), (250, 250, 250))
    rng = random.Random(5)
    halves = [[bit for bit in bits] for bits in ([1] * 39 + [0] * 39, [0] * 39 + [1] * 39)]
    for row in range(rows):
        for column in range(columns):
            bits = halves[rng.getrandbits(1)]
            for at, bit in enumerate(bits):
                if bit:
                    image.putpixel((column * cell_w + at % cell_w, row * cell_h + at // cell_w), (10, 20, 30))
    frame, width = bgrx(image), image.width
    results = []
    for native in (NATIVE, None):
        encoder = RegionEncoder()
        encoder.glyphs.enabled, encoder.glyphs.native = True, native
        encoder.glyphs._grids["s"] = Grid(cell_w, cell_h, 0, 0)
        out = encoder.encode(frame, width * 4, [(0, 0, width, image.height)], surface="s")
        results.append((out, encoder.glyphs.sent))
    assert results[0] == results[1] and results[0][1] > 0

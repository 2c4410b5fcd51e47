# The viewer's C and numpy paths for GLYPHS regions (client/glyph_paint.py,
# client/native/paint_cells.c) must draw exactly the pixels of the reference
# (media.glyphs.render and the shared vectors tests/vectors/glyphs.json),
# only inside their rectangle, and leave malformed regions to the checks
# before them (RegionError); the C side refuses arguments that would reach
# outside its buffers and then writes nothing.
"""Unit tests for client.glyph_paint: exactness, fallback, malformed data."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client import glyph_paint
from PIL import Image

from client.fb_memory import PixelMemory
from client.framebuffer import Framebuffer, RegionError
from media import glyphs
from protocol.messages import Encoding, Region
from unit import glyph_vectors

VECTORS: list[dict[str, Any]] = json.loads(glyph_vectors.PATH.read_text())


@pytest.fixture(scope="module", autouse=True)
def numpy_loaded() -> None:
    thread = glyph_paint.preload()
    if thread is not None:
        thread.join()
    assert glyph_paint.ready(), "numpy (requirements-viewer.txt) is not installed"
    assert glyph_paint.native() is not None, f"{glyph_paint.library_path()} is not built (make install)"
    assert glyph_paint.load_numpy(), "numpy (requirements-viewer.txt) is not installed"


def native_paint(cells: glyphs.Cells, memory: PixelMemory, x: int, y: int, w: int, h: int) -> bool:
    painter = glyph_paint.native()
    assert painter is not None
    return painter.paint(cells, memory, x, y, w, h)


PAINTERS = {"native": native_paint, "numpy": glyph_paint.paint_numpy}


def random_region(rng: random.Random, cell_w: int, cell_h: int, columns: int, rows: int) -> tuple[bytes, int, int]:
    """GLYPHS data of a random region with random glyphs and colours, and its size."""
    count = rng.randint(1, min(5, columns * rows))  # no more definitions than cells
    cells = [bytes(rng.randint(0, 1) for _ in range(cell_w * cell_h)) for _ in range(count)]
    defs = [(slot, glyphs.pack_cell(cell, cell_w, cell_h)) for slot, cell in enumerate(cells)]
    colours = bytes(rng.randrange(256) for _ in range(6))
    indices = bytes(rng.randrange(count) for _ in range(columns * rows))
    return glyphs.encode(cell_w, cell_h, colours, defs, list(range(count)), indices), cell_w * columns, cell_h * rows


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 16), st.integers(1, 24), st.integers(1, 9), st.integers(1, 5), st.integers(0, 2**32))
def test_regions_are_drawn_exactly_as_the_reference(cell_w: int, cell_h: int, columns: int, rows: int,
                                                     seed: int) -> None:  # fmt: skip
    rng = random.Random(seed)
    data, w, h = random_region(rng, cell_w, cell_h, columns, rows)
    x, y = rng.randint(0, 5), rng.randint(0, 5)
    fb = Framebuffer(w + 7, h + 6)
    fb.apply(Region(0, 0, w + 7, h + 6, Encoding.FILL, bytes((1, 2, 3))))
    before = fb.image()
    fb.apply(Region(x, y, w, h, Encoding.GLYPHS, data))
    expected = before.copy()
    expected.paste(glyphs.decode(data, w, h, glyphs.GlyphCache()), (x, y))
    assert fb.image().tobytes() == expected.tobytes()  # the region exact, every pixel around it untouched


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_shared_vectors_draw_their_pixels_or_are_refused(case: dict[str, Any]) -> None:
    fb = Framebuffer(64, 64)
    for step in case["steps"]:
        w, h, data = step["w"], step["h"], bytes.fromhex(step["data_hex"])
        if w * h == 0 or w > 64 or h > 64:
            with pytest.raises(RegionError):
                fb.apply(Region(0, 0, max(w, 1), max(h, 1), Encoding.GLYPHS, data))
            continue
        if "error" in step:
            before = (fb.image().tobytes(), dict(fb.glyph_cache.slots))
            with pytest.raises(RegionError):
                fb.apply(Region(0, 0, w, h, Encoding.GLYPHS, data))
            assert (fb.image().tobytes(), dict(fb.glyph_cache.slots)) == before  # nothing drawn or stored
        else:
            fb.apply(Region(0, 0, w, h, Encoding.GLYPHS, data))
            assert fb.crop(0, 0, w, h).tobytes().hex() == step["rgb_hex"]


@pytest.mark.parametrize("painter", PAINTERS)
def test_paint_draws_into_the_mapped_memory_itself(painter: str) -> None:
    data, w, h = random_region(random.Random(7), 6, 12, 5, 3)
    cells = glyphs.decode_cells(data, w, h, glyphs.GlyphCache())
    memory = PixelMemory(w + 2, h)
    assert PAINTERS[painter](cells, memory, 2, 0, w, h)  # drawn here, not by the fallback
    assert memory.rgbx(2, 0, w, h) == glyphs.render(cells, w, h).tobytes("raw", "RGBX")
    assert memory.rgbx(0, 0, 2, h) == bytes((0, 0, 0, 255)) * 2 * h


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 16), st.integers(1, 24), st.integers(1, 9), st.integers(1, 5), st.integers(0, 2**32))
def test_native_and_numpy_draw_the_same_pixels_as_the_reference(cell_w: int, cell_h: int, columns: int, rows: int,
                                                                  seed: int) -> None:  # fmt: skip
    rng = random.Random(seed)
    data, w, h = random_region(rng, cell_w, cell_h, columns, rows)
    cells = glyphs.decode_cells(data, w, h, glyphs.GlyphCache())
    x, y, extra_w, extra_h = rng.randint(0, 5), rng.randint(0, 5), rng.randint(0, 5), rng.randint(0, 5)
    expected = Image.new("RGB", (x + w + extra_w, y + h + extra_h))
    expected.paste(glyphs.render(cells, w, h), (x, y))  # the colours as given: the framebuffer swaps them before
    for painter in PAINTERS.values():
        memory = PixelMemory(x + w + extra_w, y + h + extra_h)
        assert painter(cells, memory, x, y, w, h)
        assert memory.image.tobytes() == expected.tobytes()  # all of it: nothing drawn around the region
        assert memory.buffer is not None and set(memory.buffer[3::4]) == {255}  # opaque, as Qt's RGB32 needs


def _call_native(buffer: bytearray, stride: int, start: int, bits: bytes, count: int, cell_w: int, cell_h: int,
                 indices: bytes, bands: int, columns: int) -> int:  # fmt: skip
    painter = glyph_paint.native()
    assert painter is not None
    ctypes = painter._ctypes
    target = (ctypes.c_char * len(buffer)).from_buffer(buffer)
    try:
        return int(painter._paint(ctypes.addressof(target), len(buffer), stride, start, bits, len(bits), count,
                                  cell_w, cell_h, indices, len(indices), bands, columns, bytes(range(8))))
    finally:
        del target


def test_native_refuses_arguments_past_its_buffers_and_writes_nothing() -> None:
    cell_w, cell_h, bands, columns = 2, 3, 2, 3
    stride = columns * cell_w * 4 + 8
    size = (bands * cell_h - 1) * stride + columns * cell_w * 4  # exactly the region's last byte
    bits, indices = bytes([0, 1] * 3) * 2, bytes([0, 1, 1, 0, 0, 1])
    good = dict(buffer=bytearray(size), stride=stride, start=0, bits=bits, count=2, cell_w=cell_w, cell_h=cell_h,
                indices=indices, bands=bands, columns=columns)  # fmt: skip
    assert _call_native(**good) == 0  # type: ignore[arg-type]
    assert good["buffer"] != bytearray(size)
    bad = [dict(start=1),  # the last row one byte past the end
           dict(buffer=bytearray(size - 1)),
           dict(stride=columns * cell_w * 4 - 4),  # rows overlapping
           dict(indices=bytes([0, 1, 2, 0, 0, 1])),  # an index past the glyphs
           dict(indices=indices[:-1]),
           dict(bits=bits[:-1]),
           dict(bits=bytes([2]) + bits[1:]),  # not a 0/1 cell byte
           dict(count=0, bits=b""),
           dict(count=257, bits=bytes(257 * cell_w * cell_h)),
           dict(cell_w=0, bits=b""),
           dict(bands=0, indices=b""),
           dict(start=2**63)]  # fmt: skip
    for change in bad:
        args = {**good, "buffer": bytearray(len(change.get("buffer", good["buffer"]))), **change}  # type: ignore[arg-type]
        args["buffer"] = bytearray(len(args["buffer"]))  # type: ignore[arg-type]
        assert _call_native(**args) == -1, change  # type: ignore[arg-type]
        assert args["buffer"] == bytearray(len(args["buffer"])), change  # type: ignore[arg-type]


def test_memory_pillow_did_not_map_is_left_to_the_reference() -> None:
    memory = PixelMemory(4, 2)
    memory.buffer = None  # as when a Pillow release stops mapping our memory
    cells = glyphs.decode_cells(glyphs.encode(2, 2, bytes(6), [(0, bytes(1))], [0], b"\0\0"), 4, 2,
                                glyphs.GlyphCache())  # fmt: skip
    assert not glyph_paint.paint(cells, memory, 0, 0, 4, 2)


def test_preload_starts_one_thread_only() -> None:
    assert glyph_paint.preload() is None and glyph_paint.ready()


def test_preload_loads_the_native_painter_and_not_numpy_where_it_is_built() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(glyph_paint.__file__)))
    env = {k: v for k, v in os.environ.items() if k != glyph_paint.ENV_SWITCH}
    env["PYTHONPATH"] = root
    code = ("import sys; from client import glyph_paint; glyph_paint.preload().join(); "
            "print(glyph_paint.native() is not None, 'numpy' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_loading_numpy_starts_no_blas_worker_threads() -> None:
    # A fresh interpreter (this one imported numpy already) with this copy of client/: once preload()'s
    # thread has ended, the process has its main thread only -- no OpenBLAS pool spinning beside the viewer.
    # (The ended thread may linger a moment in /proc: wait up to 5 s for it to go; a BLAS pool never goes.)
    root = os.path.dirname(os.path.dirname(os.path.abspath(glyph_paint.__file__)))
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    env["PYTHONPATH"] = root
    env[glyph_paint.ENV_SWITCH] = "0"  # numpy, not the C painter
    code = ("import os, time; from client import glyph_paint; glyph_paint.preload().join(); "
            "end = time.monotonic() + 5\n"
            "while len(os.listdir('/proc/self/task')) > 1 and time.monotonic() < end: time.sleep(0.01)\n"
            "print(glyph_paint.ready(), len(os.listdir('/proc/self/task')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "1"]

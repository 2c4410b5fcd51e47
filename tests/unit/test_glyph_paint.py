# The viewer's numpy path for GLYPHS regions (client/glyph_paint.py) must
# draw exactly the pixels of the reference (media.glyphs.render and the
# shared vectors tests/vectors/glyphs.json), only inside its rectangle, and
# leave malformed regions to the checks before it (RegionError).
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


def test_paint_draws_into_the_mapped_memory_itself() -> None:
    data, w, h = random_region(random.Random(7), 6, 12, 5, 3)
    cells = glyphs.decode_cells(data, w, h, glyphs.GlyphCache())
    memory = PixelMemory(w + 2, h)
    assert glyph_paint.paint(cells, memory, 2, 0, w, h)  # numpy drew it, not the fallback
    assert memory.rgbx(2, 0, w, h) == glyphs.render(cells, w, h).tobytes("raw", "RGBX")
    assert memory.rgbx(0, 0, 2, h) == bytes((0, 0, 0, 255)) * 2 * h


def test_memory_pillow_did_not_map_is_left_to_the_reference() -> None:
    memory = PixelMemory(4, 2)
    memory.buffer = None  # as when a Pillow release stops mapping our memory
    cells = glyphs.decode_cells(glyphs.encode(2, 2, bytes(6), [(0, bytes(1))], [0], b"\0\0"), 4, 2,
                                glyphs.GlyphCache())  # fmt: skip
    assert not glyph_paint.paint(cells, memory, 0, 0, 4, 2)


def test_preload_starts_one_thread_only() -> None:
    assert glyph_paint.preload() is None and glyph_paint.ready()


def test_loading_numpy_starts_no_blas_worker_threads() -> None:
    # A fresh interpreter (this one imported numpy already) with this copy of client/: once preload()'s
    # thread has ended, the process has its main thread only -- no OpenBLAS pool spinning beside the viewer.
    # (The ended thread may linger a moment in /proc: wait up to 5 s for it to go; a BLAS pool never goes.)
    root = os.path.dirname(os.path.dirname(os.path.abspath(glyph_paint.__file__)))
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    env["PYTHONPATH"] = root
    code = ("import os, time; from client import glyph_paint; glyph_paint.preload().join(); "
            "end = time.monotonic() + 5\n"
            "while len(os.listdir('/proc/self/task')) > 1 and time.monotonic() < end: time.sleep(0.01)\n"
            "print(glyph_paint.ready(), len(os.listdir('/proc/self/task')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "1"]

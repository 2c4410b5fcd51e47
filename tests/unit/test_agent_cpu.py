# The agent's scroll-CPU cuts change no output: a history whose row passes
# run in C (row_native) plans exactly what one with the Python reference
# passes (row_compare.PythonRows) plans, over random scrolls of overlapping
# spans, and both hold the frame; a desktop frame captures just the damage's box only up to
# BOX_CAPTURE_MAX_SHARE of the screen; GlyphEncoder.candidate() turns down
# exactly the rectangles encode() would.
"""Unit tests for scroll.SurfaceHistory's C and Python row passes, frame_sources.damage_box, GlyphEncoder.candidate."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from client.framebuffer import Framebuffer
from protocol.messages import Encoding, Region
from sessiond.agent.encoder import RegionEncoder
from sessiond.agent.frame_sources import BOX_CAPTURE_MAX_SHARE, damage_box
from sessiond.agent.glyph_encoder import DETECT_MIN_PIXELS, GLYPH_MIN_CELLS, GlyphEncoder
from sessiond.agent.glyph_grid import Grid, cut, cut_band, to_column_major
from sessiond.agent.row_compare import PythonRows
from sessiond.agent.scroll import Source, SurfaceHistory
from unit.test_glyph_agent import bgrx, terminal

WIDTH, HEIGHT = 40, 48
COLOURS = [(0, 0, 0), (255, 255, 255), (200, 30, 30)]


class ReferenceHistory(SurfaceHistory):
    """A history whose row passes are the Python reference's (the agent's run in C where built)."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__(width, height, PythonRows())


def frame_bytes(rng: random.Random, rows: list[bytes], previous: bytes | None, box: tuple[int, int, int, int],
                shift: int) -> bytes:  # fmt: skip
    """A BGRX frame: previous with box's rows moved up by shift (new rows from `rows`)."""
    stride = WIDTH * 4
    out = bytearray(previous or b"".join(rng.choice(rows) for _ in range(HEIGHT)))
    x, y, w, h = box
    old = [bytes(out[(y + i) * stride + x * 4 : (y + i) * stride + (x + w) * 4]) for i in range(h)]
    for i in range(h):
        src = i + shift
        row = old[src] if 0 <= src < h else rng.choice(rows)[x * 4 : (x + w) * 4]
        out[(y + i) * stride + x * 4 : (y + i) * stride + (x + w) * 4] = row
    return bytes(out)


def start_histories(rng: random.Random, *histories: SurfaceHistory) -> tuple[list[bytes], bytes]:
    """(rows, frame): random rows of COLOURS and a first whole frame of them,
    planned and remembered by every one of histories."""
    rows = [bytes(b for _ in range(WIDTH) for b in (*rng.choice(COLOURS), 0)) for _ in range(4)]
    frame = frame_bytes(rng, rows, None, (0, 0, WIDTH, HEIGHT), 0)
    whole = (0, 0, WIDTH, HEIGHT)
    for history in histories:
        source = Source(memoryview(frame), WIDTH * 4)
        history.plan(source, whole)
        history.remember(source, whole)
    return rows, frame


def step_both(rng: random.Random, rows: list[bytes], frame: bytes, box: tuple[int, int, int, int], shift: int,
              first: SurfaceHistory, second: SurfaceHistory) -> bytes:  # fmt: skip
    """The next frame (box's rows moved by shift): both histories plan the same for it and remember it."""
    frame = frame_bytes(rng, rows, frame, box, shift)
    source = Source(memoryview(frame), WIDTH * 4)
    assert first.plan(source, box) == second.plan(source, box)
    first.remember(source, box)
    second.remember(source, box)
    return frame


def step_releasing(rng: random.Random, rows: list[bytes], frame: bytes, height: int,
                   steps: list[tuple[int, int, int, tuple[int, int], bool]],
                   released: SurfaceHistory, other: SurfaceHistory) -> bytes:  # fmt: skip
    """STEPS (top, rows, shift, (x, width), release) through step_both, RELEASED released
    first where a step says so; RELEASED's rows are unpacked at the end. The last frame."""
    for top, rows_moved, shift, (x, w), release in steps:
        if release:
            released.release()
        frame = step_both(rng, rows, frame, (x, top, w, min(rows_moved, height - top)), shift, released, other)
    released._unpack(0, height)
    return frame


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**16), steps=st.lists(
    st.tuples(st.integers(0, HEIGHT - 1), st.integers(1, HEIGHT), st.integers(-20, 20),
              st.sampled_from(((0, WIDTH), (0, 24), (8, 32), (20, 20), (8, 12), (0, 8)))),
    min_size=1, max_size=10))  # fmt: skip
def test_native_row_passes_plan_exactly_as_the_python_reference(
        seed: int, steps: list[tuple[int, int, int, tuple[int, int]]]) -> None:  # fmt: skip
    rng = random.Random(seed)
    native, reference = SurfaceHistory(WIDTH, HEIGHT), ReferenceHistory(WIDTH, HEIGHT)
    rows, frame = start_histories(rng, native, reference)
    for top, height, shift, (x, w) in steps:
        frame = step_both(rng, rows, frame, (x, top, w, min(height, HEIGHT - top)), shift, native, reference)
    assert bytes(native.pixels) == frame == bytes(reference.pixels)


def test_disjoint_spans_on_the_same_rows_keep_each_other_s_rows() -> None:
    """Two column spans side by side, damaged in turn on the same rows (one
    row can be stale from one span only): nothing of either is lost."""
    test_native_row_passes_plan_exactly_as_the_python_reference.hypothesis.inner_test(  # type: ignore[attr-defined]
        seed=7, steps=[(4, 30, 3, (8, 12)), (4, 30, -2, (20, 20)), (4, 30, 5, (8, 12)), (0, 48, 0, (0, 8))])


def test_damage_box_is_captured_alone_only_up_to_the_share() -> None:
    assert damage_box([], 100, 100) is None
    assert damage_box([(10, 20, 5, 5), (50, 60, 10, 10)], 100, 100) == (10, 20, 50, 50)
    side = int((BOX_CAPTURE_MAX_SHARE * 100 * 100) ** 0.5)
    assert damage_box([(0, 0, side, side)], 100, 100) == (0, 0, side, side)
    assert damage_box([(0, 0, side + 1, side + 1)], 100, 100) is None  # past the share: the whole screen
    assert damage_box([(0, 0, 1, 1), (99, 99, 1, 1)], 100, 100) is None  # two corners: a box of all of it


def test_candidate_turns_down_exactly_what_encode_would() -> None:
    glyphs = GlyphEncoder()
    assert not glyphs.candidate((0, 0, 200, 200), "s")  # off
    glyphs.enabled = True
    image = Image.new("RGBX", (200, 200), (255, 255, 255, 0))
    for w, h in ((1, DETECT_MIN_PIXELS - 1), (DETECT_MIN_PIXELS - 1, 1), (13, 13)):
        assert not glyphs.candidate((0, 0, w, h), "s")
        assert glyphs.encode(image.crop((0, 0, min(w, 200), min(h, 200))), (2, 1, 0), (0, 0, w, h), "s",
                             lambda part: None) is None  # type: ignore[arg-type,return-value]  # fmt: skip
    assert glyphs.candidate((0, 0, DETECT_MIN_PIXELS, 1), "s")
    glyphs._grids["s"] = Grid(6, 13, 0, 0)
    least = GLYPH_MIN_CELLS * 6 * 13
    assert not glyphs.candidate((0, 0, least - 1, 1), "s")
    assert glyphs.candidate((0, 0, least, 1), "s")


@settings(max_examples=15, deadline=None)
@given(seeds=st.lists(st.integers(0, 999), min_size=2, max_size=4), lines=st.integers(0, 6))
def test_text_lines_whose_edge_rows_did_not_change_still_go_as_glyphs(seeds: list[int], lines: int) -> None:
    """A new screen of text whose blank rows (above the first line, below
    the last) are unchanged: the history sends only the rows that changed,
    grown back to whole cells, so every text line goes as GLYPHS (no
    PALETTE of text rows), and the client stays byte-identical; `lines` > 0
    keeps lines scrolled up (a COPY) and sends fewer rows."""
    encoder = RegionEncoder()
    encoder.glyphs.enabled = True
    first = terminal(60, 20, seed=seeds[0])
    w, h = first.size
    fb = Framebuffer(w, h)
    previous = first
    for number, seed in enumerate(seeds):
        image = terminal(60, 20, seed=seed)
        if number and lines:
            image.paste(previous.crop((0, 2 + 13 * lines, w, h - 2)), (0, 2))
        regions = encoder.encode(bgrx(image), w * 4, [(0, 0, w, h)], width=w, height=h, surface="s")
        for region in regions:
            fb.apply(Region.decode(region.encode()))
        assert fb.image().tobytes() == image.tobytes()
        if number:
            # Outside GLYPHS only the 2-pixel border columns (or rows) remain.
            assert all(min(r.w, r.h) <= 13 for r in regions if r.encoding not in (Encoding.GLYPHS, Encoding.COPY))
            assert all(min(r.w, r.h) <= 3 for r in regions if r.encoding in (Encoding.PALETTE, Encoding.PNG))
        previous = image


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), cell=st.tuples(st.integers(1, 9), st.integers(1, 17)),
       cells=st.tuples(st.integers(1, 7), st.integers(1, 5)), at=st.tuples(st.integers(0, 5), st.integers(0, 5)),
       extra=st.tuples(st.integers(0, 5), st.integers(0, 5)), band=st.integers(0, 3), mapped=st.booleans())
def test_cut_band_equals_cut_of_the_cropped_band(seed: int, cell: tuple[int, int], cells: tuple[int, int],
                                                 at: tuple[int, int], extra: tuple[int, int], band: int,
                                                 mapped: bool) -> None:  # fmt: skip
    """cut_band of a box of a capture-like view (or a copy) is exactly cut()
    of that band cropped to the box, cell for cell."""
    rng = random.Random(seed)
    (cw, ch), (cols, rows) = cell, cells
    width, height = at[0] + cols * cw + extra[0], at[1] + rows * ch + extra[1]
    stride = (width + rng.randint(0, 3)) * 4  # a capture's rows may be wider than the rectangle
    data = bytes(rng.choice((0, 255, 17)) for _ in range(stride * height))
    if mapped:
        image = Image.frombuffer("RGBX", (width, height), data, "raw", "RGBX", stride, 1)
    else:
        image = Image.frombytes("RGBX", (width, height), data, "raw", "RGBX", stride, 1).copy()
    box = (at[0], at[1], at[0] + cols * cw, at[1] + rows * ch)
    cells = cut_band(image, band, box, cw, ch)
    assert [to_column_major(cell, cw, ch) for cell in cells] == cut(image.getchannel(band).crop(box), cw, ch)

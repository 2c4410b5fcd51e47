# The scroll plan's row passes in C (sessiond/agent/native/scroll_rows.c,
# loaded by row_native.py) against the Python reference they replace
# (row_compare.PythonRows): compare() (rows the same, the voted shift, rows
# moved by it) and copy() give identical results over random rows with
# repeats, strides, offsets, short and tall rectangles; the reference's
# vote equals the vote the history used before (kept here verbatim); every
# C entry point refuses each buffer one byte short (and every other bad
# bound) with -1 before touching memory; whole encodes are identical with
# either; the installed agent uses the C passes.
"""Unit tests for sessiond.agent.row_native against sessiond.agent.row_compare."""

from __future__ import annotations

import ctypes
import random
from array import array
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessiond.agent import glyph_native, row_native, scroll
from sessiond.agent.encoder import RegionEncoder
from sessiond.agent.row_compare import (MAX_ROW_REPEATS, MIN_SAMPLED_VOTES, MIN_SCROLL_ROWS, SAMPLE_ALL_ROWS,
                                        SAMPLE_BLOCK_EVERY, SAMPLE_STEP, SHORT_RULE, TALL_RULE, PythonRows, Rows,
                                        rows_of, vote)  # fmt: skip
from unit.test_glyph_agent import bgrx, terminal

NATIVE = row_native.load()
FILL = 0xA5  # what output buffers hold before a refused call: still there after it


@pytest.fixture(scope="module")
def native() -> row_native.NativeRows:
    """The C passes; fails (never skips) where `make install` did not build them."""
    if NATIVE is None:
        pytest.fail("sessiond-glyph-cells.so (with scroll_rows.c) is not built in this venv (make install)")
    return NATIVE


def test_installed_agent_uses_the_c_passes() -> None:
    assert isinstance(row_native.passes(), row_native.NativeRows)
    assert isinstance(scroll.SurfaceHistory(8, 8)._passes, row_native.NativeRows)


def test_without_the_library_or_switched_off_the_python_passes_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    assert row_native.load("/nonexistent/sessiond-glyph-cells.so") is None
    monkeypatch.setenv(glyph_native.ENV_SWITCH, "0")
    assert row_native.load() is None


def rows_buffer(rng: random.Random, kinds: int, row_bytes: int, h: int, pad: int, offset: int) -> tuple[bytes, int]:
    """(buffer, stride): h rows drawn from `kinds` distinct rows (repeats!), rows `pad` bytes apart, from `offset`."""
    patterns = [bytes(rng.choice((0, 255, 7)) for _ in range(row_bytes)) for _ in range(kinds)]
    stride = row_bytes + pad
    body = b"".join(rng.choice(patterns) + bytes(rng.randrange(256) for _ in range(pad)) for _ in range(h))
    return bytes(offset) + body, stride


def scrolled(rng: random.Random, prev: bytes, stride: int, offset: int, row_bytes: int, h: int, shift: int,
             kinds: int) -> bytes:  # fmt: skip
    """The rows of prev moved by shift (current row i = previous row i + shift), new rows elsewhere, some changed."""
    old = [prev[offset + i * stride : offset + i * stride + row_bytes] for i in range(h)]
    fresh, _stride = rows_buffer(rng, kinds, row_bytes, h, 0, 0)
    rows = [old[i + shift] if 0 <= i + shift < h and rng.random() < 0.9 else fresh[i * row_bytes : (i + 1) * row_bytes]
            for i in range(h)]  # fmt: skip
    return bytes(offset) + b"".join(row + bytes(stride - row_bytes) for row in rows)


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32), h=st.one_of(st.integers(1, SAMPLE_ALL_ROWS + 3), st.integers(90, 260)),
       row_bytes=st.integers(1, 24), kinds=st.integers(1, 400), pad=st.integers(0, 5), lead=st.integers(0, 2),
       column=st.integers(0, 5), shift=st.integers(-80, 80))  # fmt: skip
def test_c_compare_and_copy_equal_the_python_reference(native: row_native.NativeRows, seed: int, h: int,
                                                      row_bytes: int, kinds: int, pad: int, lead: int, column: int,
                                                      shift: int) -> None:  # fmt: skip
    """Rows `lead` strides (and some columns of the padding) into the buffer, as a rectangle's are."""
    rng = random.Random(seed)
    offset = lead * (row_bytes + pad) + min(column, pad)
    prev, stride = rows_buffer(rng, kinds, row_bytes, h, pad, offset)
    cur = scrolled(rng, prev, stride, offset, row_bytes, h, shift, kinds)
    args = (Rows(cur, stride, offset), Rows(bytearray(prev), stride, offset), row_bytes, h)
    assert native.compare(*args) == PythonRows().compare(*args)
    same = native.compare(*args)[0]
    for skip in (None, same, bytes(rng.randrange(2) for _ in range(h))):
        targets = [bytearray(prev), bytearray(prev)]
        for passes, target in zip((native, PythonRows()), targets, strict=True):
            passes.copy(Rows(target, stride, offset), Rows(cur, stride, offset), row_bytes, h, skip)
        assert targets[0] == targets[1]
        if skip is not None and skip is not same:  # (skipping the rows found the same is a full copy)
            continue
        copied = rows_of(Rows(targets[0], stride, offset), row_bytes, h)
        assert copied == rows_of(Rows(cur, stride, offset), row_bytes, h)


def old_sampled_shift(current: list[bytes], previous: list[bytes]) -> int:
    """scroll._sampled_shift as it was before the row passes moved out (verbatim)."""
    h = len(current)
    sampled = previous[::SAMPLE_STEP]
    counts = Counter(sampled)
    index = {row: j * SAMPLE_STEP for j, row in enumerate(sampled) if counts[row] <= MAX_ROW_REPEATS}
    votes: Counter[int] = Counter()
    for block in range(0, h, SAMPLE_STEP * SAMPLE_BLOCK_EVERY):
        for i in range(block, min(block + SAMPLE_STEP, h)):
            j = index.get(current[i])
            if j is not None and j != i:
                votes[j - i] += 1
    if not votes:
        return 0
    shift, count = votes.most_common(1)[0]
    return shift if count >= MIN_SAMPLED_VOTES else 0


def old_best_shift(current: list[bytes], previous: list[bytes], changed: list[bool]) -> int:
    """scroll._best_shift as it was (verbatim)."""
    counts = Counter(previous)
    index = {row: i for i, row in enumerate(previous) if counts[row] <= MAX_ROW_REPEATS}
    votes: Counter[int] = Counter()
    for i, row in enumerate(current):
        if changed[i]:
            j = index.get(row)
            if j is not None:
                votes[j - i] += 1
    if not votes:
        return 0
    shift, count = votes.most_common(1)[0]
    return shift if count >= MIN_SCROLL_ROWS else 0


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32), h=st.integers(1, 200), kinds=st.integers(1, 300), shift=st.integers(-60, 60))
def test_the_reference_vote_is_the_old_one(seed: int, h: int, kinds: int, shift: int) -> None:
    rng = random.Random(seed)
    prev, stride = rows_buffer(rng, kinds, 3, h, 0, 0)
    cur = scrolled(rng, prev, stride, 0, 3, h, shift, kinds)
    current, previous = rows_of(Rows(cur, 3, 0), 3, h), rows_of(Rows(prev, 3, 0), 3, h)
    same = bytes(map(lambda a, b: a == b, current, previous))
    tall_shift, tall_votes = vote(current, previous, TALL_RULE, None)
    assert (tall_shift if tall_votes >= MIN_SAMPLED_VOTES else 0) == old_sampled_shift(current, previous)
    short_shift, short_votes = vote(current, previous, SHORT_RULE, same)
    assert (short_shift if short_votes >= MIN_SCROLL_ROWS else 0) == old_best_shift(current, previous,
                                                                                    [not s for s in same])


def library() -> Any:
    """The library's row functions, loaded apart from NativeRows (raw pointers, no wrapper checks)."""
    lib = ctypes.CDLL(glyph_native.library_path())
    size, pointer = ctypes.c_size_t, ctypes.c_void_p
    rows = [pointer, size, size, size]
    lib.sv_rows_equal.argtypes = [*rows, *rows, size, size, ctypes.c_long, pointer, size]
    lib.sv_rows_equal.restype = ctypes.c_long
    lib.sv_vote_shift.argtypes = [*rows, *rows, size, size, size, size, size, size, pointer, size, pointer, size,
                                  pointer, size]  # fmt: skip
    lib.sv_vote_shift.restype = ctypes.c_int
    lib.sv_vote_scratch_bytes.argtypes = [size, size]
    lib.sv_vote_scratch_bytes.restype = size
    lib.sv_copy_rows.argtypes = [*rows, *rows, size, size, pointer, size]
    lib.sv_copy_rows.restype = ctypes.c_int
    return lib


def buffer(data: bytes) -> ctypes.Array[ctypes.c_char]:
    """A C buffer holding exactly data (no terminating NUL counted)."""
    return (ctypes.c_char * len(data)).from_buffer_copy(data)


H, ROW, STRIDE = 8, 5, 7
MAX = (1 << 64) - 1
MAX_SHIFT = 32768  # bounds.h MAX_RECT_SIDE


def row_sets() -> tuple[ctypes.Array[ctypes.c_char], ctypes.Array[ctypes.c_char]]:
    """cur and prev: H rows of ROW bytes, STRIDE apart; cur is prev moved up by 2 rows."""
    rows = [bytes([n] * ROW) + b"\x00\x00" for n in range(H + 2)]
    return buffer(b"".join(rows[2:])), buffer(b"".join(rows[:H]))


# Each bad bound of a row set: (length, stride, start) replacing the good one (len(buf), STRIDE, 0).
BAD_ROWS = [(STRIDE * (H - 1) + ROW - 1, STRIDE, 0),  # the buffer one byte short
            (STRIDE * H, STRIDE, 3),  # a row past the stride's end
            (STRIDE * H, ROW - 1, 0),  # a stride shorter than a row
            (STRIDE * H, 0, 0),
            (STRIDE * H, STRIDE, MAX - 2),  # start + rows overflow
            (STRIDE * H, MAX // 2, 0)]  # (rows - 1) * stride overflows  # fmt: skip


@pytest.mark.parametrize("which", ["cur", "prev"])
@pytest.mark.parametrize("bad", BAD_ROWS)
def test_every_c_entry_point_refuses_rows_outside_their_buffer(native: row_native.NativeRows, which: str,
                                                               bad: tuple[int, int, int]) -> None:  # fmt: skip
    lib, (cur, prev) = library(), row_sets()
    good = (len(cur), STRIDE, 0)
    cur_set = [ctypes.addressof(cur), *(bad if which == "cur" else good)]
    prev_set = [ctypes.addressof(prev), *(bad if which == "prev" else good)]
    out = buffer(bytes([FILL]) * H)
    assert lib.sv_rows_equal(*cur_set, *prev_set, ROW, H, 0, out, H) == -1
    assert out.raw == bytes([FILL]) * H
    scratch = array("Q", [FILL]) * (lib.sv_vote_scratch_bytes(H, 1) // 8 + 1)
    result = array("q", [FILL, FILL])
    with glyph_native.Pinned(scratch) as (at, length), glyph_native.Pinned(result) as (result_at, result_len):
        assert lib.sv_vote_shift(*cur_set, *prev_set, ROW, H, 1, 1, 1, 1, None, 0, at, length, result_at,
                                 result_len) == -1  # fmt: skip
    assert set(scratch) == {FILL} and list(result) == [FILL, FILL]
    dst = buffer(bytes([FILL]) * len(prev))
    dst_set = [ctypes.addressof(dst), *(bad if which == "prev" else good)]
    assert lib.sv_copy_rows(*dst_set, *cur_set, ROW, H, None, 0) == -1
    assert dst.raw == bytes([FILL]) * len(prev)


def test_each_c_output_one_byte_short_is_refused_and_untouched(native: row_native.NativeRows) -> None:
    lib, (cur, prev) = library(), row_sets()
    cur_set, prev_set = [ctypes.addressof(cur), len(cur), STRIDE, 0], [ctypes.addressof(prev), len(prev), STRIDE, 0]
    out = buffer(bytes([FILL]) * H)
    assert lib.sv_rows_equal(*cur_set, *prev_set, ROW, H, 0, out, H - 1) == -1
    assert out.raw == bytes([FILL]) * H
    assert lib.sv_rows_equal(*cur_set, *prev_set, ROW, H, 2, out, H) == H - 2  # cur row i = prev row i + 2
    assert out.raw == bytes([1] * (H - 2) + [0, 0])
    for shift in (MAX_SHIFT + 1, -MAX_SHIFT - 1):
        assert lib.sv_rows_equal(*cur_set, *prev_set, ROW, H, shift, out, H) == -1
    need = lib.sv_vote_scratch_bytes(H, 1)
    assert need > 0 and lib.sv_vote_scratch_bytes(0, 1) == 0 and lib.sv_vote_scratch_bytes(H, 0) == 0
    assert lib.sv_vote_scratch_bytes(H, MAX) > 0  # one indexed row, no overflow
    scratch = array("Q", [FILL]) * (need // 8 + 2)
    result = array("q", [FILL, FILL])
    voters = buffer(bytes(H))  # (no row skipped)
    with glyph_native.Pinned(scratch) as (at, _length), glyph_native.Pinned(result) as (result_at, result_len):
        calls = [(need - 1, result_len, voters, H, at), (need, result_len - 1, voters, H, at),
                 (need, result_len, voters, H - 1, at), (need, result_len, voters, H, at + 1),
                 (need, result_len, None, 0, 0)]  # scratch, result, skip short; scratch misaligned, NULL
        for scratch_len, out_len, who, who_len, where in calls:
            assert lib.sv_vote_shift(*cur_set, *prev_set, ROW, H, 1, 1, 1, 1, who, who_len, where, scratch_len,
                                     result_at, out_len) == -1  # fmt: skip
            assert set(scratch) == {FILL} and list(result) == [FILL, FILL]
        for take, period in ((0, 1), (2, 1)):
            assert lib.sv_vote_shift(*cur_set, *prev_set, ROW, H, 1, take, period, 1, None, 0, at, need, result_at,
                                     result_len) == -1  # fmt: skip
        assert lib.sv_vote_shift(*cur_set, *prev_set, ROW, H, 1, 1, 1, 1, voters, H, at, need, result_at,
                                 result_len) == 0  # fmt: skip
        assert list(result) == [2, H - 2]
    dst = buffer(bytes([FILL]) * len(prev))
    dst_set = [ctypes.addressof(dst), STRIDE * (H - 1) + ROW - 1, STRIDE, 0]  # the last row one byte short
    assert lib.sv_copy_rows(*dst_set, *cur_set, ROW, H, None, 0) == -1
    dst_set[1] = len(dst)
    skip = buffer(bytes([0, 1] * (H // 2)))  # every other row stays
    assert lib.sv_copy_rows(*dst_set, *cur_set, ROW, H, skip, H - 1) == -1  # skip one byte short
    assert dst.raw == bytes([FILL]) * len(prev)
    assert lib.sv_copy_rows(*dst_set, *cur_set, ROW, H, skip, H) == 0
    assert [dst.raw[i * STRIDE : i * STRIDE + ROW] for i in range(H)] == [
        bytes([FILL] * ROW) if i % 2 else bytes([i + 2] * ROW) for i in range(H)]
    assert lib.sv_copy_rows(*dst_set, *cur_set, ROW, H, None, 0) == 0
    assert [dst.raw[i * STRIDE : i * STRIDE + ROW] for i in range(H)] == [bytes([n] * ROW) for n in range(2, H + 2)]


def test_the_wrapper_refuses_rows_outside_their_buffers(native: row_native.NativeRows) -> None:
    data = bytes(40)
    with pytest.raises(ValueError):
        native.compare(Rows(data, 8, 0), Rows(data, 8, 0), 8, 6)
    with pytest.raises(ValueError):
        native.copy(Rows(bytearray(39), 8, 0), Rows(data, 8, 0), 8, 5)
    with pytest.raises(TypeError):
        native.copy(Rows(data, 8, 0), Rows(data, 8, 0), 8, 5)


@pytest.mark.parametrize("seed", range(3))
def test_whole_encodes_are_identical_with_the_c_and_the_python_passes(
        native: row_native.NativeRows, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A terminal scrolled by 0-40 lines, partial damage: the same regions, byte for byte."""
    rng = random.Random(seed)
    first = terminal(60, 30, seed=seed)
    width, height = first.size
    frames, tops = [], [0]
    for _ in range(8):
        tops.append(tops[-1] + rng.choice((0, 1, 3, 20, 40)))
    for top in tops:
        image = terminal(60, 30 + top, seed=seed).crop((0, 13 * top, width, 13 * top + height))
        frames.append(bgrx(image))
    rects = [(0, 0, width, height), (0, 0, width, height // 2), (6, 13, width - 12, height - 26)]

    def regions(passes: Any) -> list[bytes]:
        monkeypatch.setattr(row_native, "passes", lambda: passes)
        encoder = RegionEncoder()
        encoder.glyphs.enabled = True
        out = []
        for number, frame in enumerate(frames):
            rect = rects[0] if number == 0 else rects[number % len(rects)]
            out += [region.encode() for region in encoder.encode(frame, width * 4, [rect], width=width,
                                                                 height=height, surface="s")]  # fmt: skip
        return out

    assert regions(native) == regions(PythonRows())


def test_remember_skips_only_rows_its_own_plan_found_unchanged() -> None:
    """plan() then remember() of the same rectangle and source copies only
    the changed rows; remember() of another source (or rectangle) copies all
    of them; a plan without its remember keeps no view of the capture."""
    width, height = 6, 10
    rng = random.Random(5)
    first = bytes(rng.randrange(256) for _ in range(width * height * 4))
    history = scroll.SurfaceHistory(width, height)
    whole = (0, 0, width, height)
    history.remember(scroll.Source(memoryview(first), width * 4), whole)
    second = bytearray(first)
    second[0:4] = b"\x01\x02\x03\x04"  # row 0 changed, rows 1-9 the same
    source = scroll.Source(memoryview(second), width * 4)
    assert history.plan(source, whole).rects == [(0, 0, width, 1)]
    other = bytes(rng.randrange(256) for _ in range(width * height * 4))
    history.remember(scroll.Source(memoryview(other), width * 4), whole)  # not the planned source: every row
    assert bytes(history.pixels) == other
    history.plan(source, whole)
    history.remember(source, whole)
    assert bytes(history.pixels) == bytes(second)
    capture = bytearray(first)
    view = memoryview(capture)
    history.plan(scroll.Source(view, width * 4), (0, 0, width, 3))
    view.release()
    capture.extend(b"more")  # BufferError if the history still held an export of it

# The row passes of a scroll plan (scroll.SurfaceHistory.plan): which rows
# of a damaged rectangle equal the rows the client holds, which shift most
# of them moved by, which rows equal the previous rows at that shift; and
# the copy of the sent rows into the history.  In Python here (the
# reference, and the fallback where the native library was not built); in
# C in sessiond/agent/native/scroll_rows.c (row_native.py), which must give
# identical results (tests/unit/test_scroll_rows.py).
#
# Why split out: the plan's logic (runs, copies, what to send) stays one
# piece of Python whichever passes run under it; the passes are the
# per-row work, ~654 rows of 4 KiB a frame for a scrolling xterm, which
# in Python meant a bytes object and a SipHash per row.
#
# Exactness: rows are compared as bytes (dict lookups hash them, equality
# confirms), so a copy is only ever planned for rows that are identical.
"""Rows, compare() and copy(): the scroll plan's row passes in Python (the reference)."""

from __future__ import annotations

import mmap
import operator
from collections import Counter
from functools import lru_cache
from typing import Protocol

from protocol.frozen import frozen_dataclass

# A run of fewer rows moved by the same shift is re-sent instead of copied
# (scroll.py); a short rectangle's vote needs as many rows agreeing.
MIN_SCROLL_ROWS = 4
# A row that occurs more often than this in the previous content (blank
# lines, rules) votes for no shift: it would match any.
MAX_ROW_REPEATS = 1
# Taller rectangles vote for their shift on a sample (plan cost, 1080p
# scroll: every row hashed twice was ~3 ms of ~9): previous rows every
# SAMPLE_STEP-th are indexed, and current rows are looked up in blocks of
# SAMPLE_STEP consecutive rows (so every shift meets an indexed row once per
# block), one block in SAMPLE_BLOCK_EVERY. The vote only picks a candidate:
# every copied row is still compared whole, so a sample never makes a wrong
# frame, at worst a missed copy of a small scrolled part of a tall rectangle.
SAMPLE_ALL_ROWS = 96
SAMPLE_STEP = 4
SAMPLE_BLOCK_EVERY = 4
# Votes a sampled shift needs (each stands for up to SAMPLE_STEP x SAMPLE_BLOCK_EVERY rows).
MIN_SAMPLED_VOTES = 2
# Row geometries whose slices rows_of keeps (a scroll's damage repeats frame after frame).
ROW_SLICES_CACHED = 8

Buffer = memoryview | bytes | bytearray | mmap.mmap
# What copy() writes into: a history's buffer (scroll.SurfaceHistory: anonymous memory, see zeroed()).
WRITABLE = (bytearray, mmap.mmap)


@frozen_dataclass
class Rows:
    """Rows of a buffer: each `stride` bytes after the last, the first at byte `start`."""

    buf: Buffer
    stride: int
    start: int


@frozen_dataclass
class VoteRule:
    """How a rectangle of h rows votes (see SAMPLE_STEP): previous rows every
    `step`-th indexed; current rows `take` in every `period`; the winner
    needs `least` votes; `changed_only`: only rows that differ from the row
    they replace vote."""

    step: int
    take: int
    period: int
    least: int
    changed_only: bool


TALL_RULE = VoteRule(SAMPLE_STEP, SAMPLE_STEP, SAMPLE_STEP * SAMPLE_BLOCK_EVERY, MIN_SAMPLED_VOTES, False)
SHORT_RULE = VoteRule(1, 1, 1, MIN_SCROLL_ROWS, True)


def rule(h: int) -> VoteRule:
    """The vote of a rectangle of h rows: sampled past SAMPLE_ALL_ROWS."""
    return TALL_RULE if h > SAMPLE_ALL_ROWS else SHORT_RULE


class RowPasses(Protocol):
    """The row passes of a plan (Python here, C in row_native)."""

    def compare(self, cur: Rows, prev: Rows, row_bytes: int, h: int) -> tuple[bytes, int, bytes]:
        """See PythonRows.compare."""

    def copy(self, dst: Rows, src: Rows, row_bytes: int, h: int, skip: bytes | None = None) -> None:
        """See PythonRows.copy."""


class PythonRows:
    """The reference row passes (rows as bytes objects, dicts of them)."""

    def compare(self, cur: Rows, prev: Rows, row_bytes: int, h: int) -> tuple[bytes, int, bytes]:
        """(same, shift, moved) of h rows of row_bytes bytes: same[i] = 1 if
        cur row i equals prev row i, else 0; shift: the voted shift (0:
        none, or every row the same); moved[i] = 1 if cur row i equals prev
        row i + shift (b"" when shift is 0)."""
        current, previous = rows_of(cur, row_bytes, h), rows_of(prev, row_bytes, h)
        same = bytes(map(operator.eq, current, previous))
        if 0 not in same:
            return same, 0, b""
        how = rule(h)
        shift, votes = vote(current, previous, how, same if how.changed_only else None)
        if votes < how.least:
            return same, 0, b""
        lo, hi = max(0, -shift), min(h, h - shift)
        moved = bytes(lo) + bytes(map(operator.eq, current[lo:hi], previous[lo + shift : hi + shift])) + bytes(h - hi)
        return same, shift, moved

    def copy(self, dst: Rows, src: Rows, row_bytes: int, h: int, skip: bytes | None = None) -> None:
        """Copy h rows of row_bytes bytes from src into dst (its buf a
        bytearray or an mmap: WRITABLE), but rows i where skip[i] (compare()'s
        `same`: rows dst already holds)."""
        target = dst.buf
        if not isinstance(target, WRITABLE):
            raise TypeError("copy() writes into a bytearray or an mmap")
        with memoryview(src.buf) as view:
            if skip is None and dst.stride == src.stride == row_bytes:  # whole rows on both sides: one copy
                target[dst.start : dst.start + h * row_bytes] = view[src.start : src.start + h * row_bytes]
                return
            for row in range(h):
                if skip is None or not skip[row]:
                    at, start = dst.start + row * dst.stride, src.start + row * src.stride
                    target[at : at + row_bytes] = view[start : start + row_bytes]


def vote(current: list[bytes], previous: list[bytes], how: VoteRule, same: bytes | None) -> tuple[int, int]:
    """(shift, votes): the nonzero shift d (current row i == previous row
    i + d) most voting rows agree on, ties to the first voted for, and its
    votes ((0, 0) if none).  Previous rows every how.step-th are indexed if
    they occur at most MAX_ROW_REPEATS times among those (at their last
    occurrence); current rows vote how.take in every how.period, only where
    same[i] == 0 if `same` is given."""
    h = len(current)
    sampled = previous[:: how.step]
    counts = Counter(sampled)
    index = {row: j * how.step for j, row in enumerate(sampled) if counts[row] <= MAX_ROW_REPEATS}
    votes: Counter[int] = Counter()
    for block in range(0, h, how.period):
        for i in range(block, min(block + how.take, h)):
            if same is not None and same[i]:
                continue
            j = index.get(current[i])
            if j is not None and j != i:
                votes[j - i] += 1
    if not votes:
        return 0, 0
    return votes.most_common(1)[0]


def rows_of(rows: Rows, row_bytes: int, h: int) -> list[bytes]:
    """h rows of row_bytes bytes of `rows` as bytes objects."""
    with memoryview(rows.buf) as view:
        return list(map(bytes, map(view.__getitem__, _row_slices(rows.start, row_bytes, rows.stride, h))))


@lru_cache(maxsize=ROW_SLICES_CACHED)
def _row_slices(first: int, length: int, stride: int, rows: int) -> list[slice]:
    """The slices of `rows` rows of `length` bytes, `stride` apart from `first` (a damaged area repeats)."""
    return [slice(at, at + length) for at in range(first, first + rows * stride, stride)]

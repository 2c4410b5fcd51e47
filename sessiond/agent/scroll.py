# What the client already has of a surface, and how little of a damaged
# rectangle must be sent given that: unchanged rows nothing, rows that moved
# up or down a COPY, the rest as ordinary regions.
#
# Why: a scrolling terminal damages its whole text area every frame, but all
# rows but a few new ones are already on the client, shifted.  Sending a
# copy-rectangle (as VNC's CopyRect and xpra's scroll encoding do) and only
# the new rows cuts a scroll frame from the whole area to a few rows.
#
# Exactness: SurfaceHistory keeps the bytes it last sent of every pixel, and
# rows are compared as bytes (dict lookups hash them, equality confirms), so
# a COPY is only ever emitted for rows that are byte-identical at the source
# -- never a wrong frame from a hash collision.  The history equals the
# client's copy as long as every planned region reaches the client in order
# and is lossless; a JPEG region is copied as the client holds it (the eye
# does not mind, as it did not mind the JPEG).  The caller must forget a
# surface whenever the client's copy of it is unknown (a new client, a
# refresh, a resize): plan() then sends everything.
#
# Idle: release() packs the pixels into zlib bands (a desktop compresses
# ~10-200x) and frees them; the next plan or remember allocates the buffer
# again (zeros) and unpacks only the bands whose rows it touches, so the first
# keystroke after an idle spell unpacks one band (~1 ms), never the screen.
# (A bytearray, not an anonymous mmap: plan() was ~25% slower on one at 1080p.)
# Solid: a band may stand for pixels of one colour (SOLID), written when
# touched: a new history is all black so, and a frame that is one FILL of the
# whole surface (the black screen when the display opens) is remembered by its
# colour (remember_solid), not by ~8 MiB of zeroing and copying at login.
"""SurfaceHistory: unchanged / scrolled / new rows of a rectangle against what was sent."""

from __future__ import annotations

import operator
import zlib
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache

Rect = tuple[int, int, int, int]

BYTES_PER_PIXEL = 4  # BGRX, as the capture buffer
# A run of fewer rows moved by the same shift is re-sent instead of copied:
# a COPY costs a region header, and a short match is often a coincidence of
# blank or repeated rows.
MIN_SCROLL_ROWS = 4
# Rows to re-send closer than this are sent as one region: a region costs a
# header and, in the browser, an asynchronous decode and a draw of its own,
# while unchanged rows between two changed ones (the blank rows between text
# lines: a terminal's new screenful would be one region per line otherwise)
# deflate to almost nothing.
MERGE_GAP_ROWS = 32
# A row that occurs more often than this in the previous content (blank
# lines, rules) votes for no shift: it would match any.
MAX_ROW_REPEATS = 1
# Column spans whose rows are kept as bytes objects between frames (the rows
# sent last time are the rows compared against next time, and a bytes object
# hashes once): this halves the work of a scroll frame.  Each costs one more
# copy of the span's pixels, so only the most recently damaged are kept.
MAX_ROW_SPANS = 2
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
# Rows per zlib band of a released history (a 1080p band is 240 KiB raw:
# unpacked in well under a millisecond when a keystroke touches it).
RELEASE_BAND_ROWS = 32
# zlib level of the packed bands: the fastest (release runs on the loop).
RELEASE_ZLIB_LEVEL = 1
# Row geometries whose slices Source.rows keeps (a scroll's damage repeats frame after frame).
ROW_SLICES_CACHED = 8
# A band entry meaning "every pixel is the history's solid colour" (zlib output is never empty).
SOLID = b""


@dataclass
class Plan:
    """How to bring the client's copy of a rectangle up to date: apply
    `copies` (dest rect, source x, source y) in order, then send `rects`."""

    copies: list[tuple[Rect, int, int]] = field(default_factory=list)
    rects: list[Rect] = field(default_factory=list)


@dataclass(frozen=True)
class Source:
    """Where the caller's BGRX buffer lies on the surface: row `stride` bytes,
    its first pixel at surface point `origin` (a capture of one damaged
    rectangle of a window, or the whole surface at (0, 0))."""

    view: memoryview
    stride: int
    origin: tuple[int, int] = (0, 0)

    def rows(self, rect: Rect) -> list[bytes]:
        """The rows of rect (surface coordinates) as bytes."""
        x, y, w, h = rect
        ox, oy = self.origin
        first = (y - oy) * self.stride + (x - ox) * BYTES_PER_PIXEL
        return list(map(bytes, map(self.view.__getitem__, _row_slices(first, w * BYTES_PER_PIXEL, self.stride, h))))


@lru_cache(maxsize=ROW_SLICES_CACHED)
def _row_slices(first: int, length: int, stride: int, rows: int) -> list[slice]:
    """The slices of `rows` rows of `length` bytes, `stride` apart from `first` (a damaged area repeats)."""
    return [slice(at, at + length) for at in range(first, first + rows * stride, stride)]


class SurfaceHistory:
    """The pixels last sent of one width x height surface (kept as BGRX
    rows of width * 4 bytes)."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.stride = width * BYTES_PER_PIXEL
        self.pixels = bytearray()  # empty until touched (and after release())
        # Each band: zlib-packed (release()), SOLID (all `_solid`; new: black) or None
        # (unpacked in `pixels`).  A packed band's bytes in `pixels` are zeros.
        self._solid = bytes(BYTES_PER_PIXEL)
        self._packed: list[bytes | None] | None = [SOLID] * -(-height // RELEASE_BAND_ROWS)
        # Rows whose pixels are not written yet: the named span's cached row
        # is the truth of its columns (a remember() keeps the rows plan() read
        # instead of copying them again: ~2.5 ms per 1080p frame whole-width,
        # ~1 ms for a 1084x654 xterm); the other columns of the row are in
        # `pixels`.  Written out before anything else reads or writes the row.
        self._stale: list[tuple[int, int] | None] = [None] * height
        # (x, w) -> the sent rows of that column span (None: not cached).
        self._spans: OrderedDict[tuple[int, int], list[bytes | None]] = OrderedDict()
        self._planned: tuple[Rect, list[bytes]] | None = None  # the rows plan() just read
        # Until a whole frame of the surface was sent, the client's copy is
        # unknown and plan() sends every damaged rectangle whole.
        self.known = False

    def fits(self, width: int, height: int) -> bool:
        """True if the history has this surface's size."""
        return (self.width, self.height) == (width, height)

    def release(self) -> int:
        """Pack the pixels into zlib bands, drop the span caches and free the
        pixels; the history stays exact (bands unpack when touched).
        Returns the bytes of the packed bands."""
        self._write_stale(0, self.height)  # the span caches' rows become the truth in `pixels`
        self._spans.clear()
        self._planned = None
        band_bytes = RELEASE_BAND_ROWS * self.stride
        old = self._packed
        packed: list[bytes | None] = []
        for index, start in enumerate(range(0, self.stride * self.height, band_bytes)):
            kept = old[index] if old is not None else None  # still packed: its rows in pixels are zeros
            packed.append(kept if kept is not None else
                          zlib.compress(self.pixels[start : start + band_bytes], RELEASE_ZLIB_LEVEL))  # fmt: skip
        self._packed = packed
        self.pixels = bytearray()  # (the heap gives it back: idle_release.malloc_trim)
        return sum(len(band) or len(self._solid) for band in packed if band is not None)

    def remember_solid(self, pixel: bytes) -> None:
        """Record that the client now holds the whole surface in one colour (`pixel`:
        its BGRX bytes) without writing it: every band SOLID.  The history is known."""
        self._stale = [None] * self.height
        self._spans.clear()
        self._planned = None
        self.pixels = bytearray()
        self._solid = bytes(pixel)
        self._packed = [SOLID] * -(-self.height // RELEASE_BAND_ROWS)
        self.known = True

    def _unpack(self, y: int, h: int) -> None:
        """Unpack the released bands that rows y..y+h lie in."""
        packed = self._packed
        if packed is None or h <= 0:
            return
        band_bytes = RELEASE_BAND_ROWS * self.stride
        if not self.pixels:
            self.pixels = bytearray(self.stride * self.height)
        for index in range(y // RELEASE_BAND_ROWS, (y + h - 1) // RELEASE_BAND_ROWS + 1):
            band = packed[index]
            if band is None:
                continue
            start = index * band_bytes
            if band != SOLID:
                raw = zlib.decompress(band)
                self.pixels[start : start + len(raw)] = raw
            elif any(self._solid):  # (black: the zeros are there)
                pixels = (min(start + band_bytes, len(self.pixels)) - start) // BYTES_PER_PIXEL
                self.pixels[start : start + pixels * BYTES_PER_PIXEL] = self._solid * pixels
            packed[index] = None
        if not any(band is not None for band in packed):
            self._packed = None

    def _previous(self, rect: Rect) -> list[bytes]:
        """The rows of rect as sent, from the span cache where it has them."""
        x, y, w, h = rect
        if self._solid_rows(y, h):  # (the first frame after a solid one: nothing to unpack yet)
            return [self._solid * w] * h
        self._unpack(y, h)
        cached = self._spans.get((x, w))
        if cached is None:
            self._write_stale(y, h)
            return Source(memoryview(self.pixels), self.stride).rows(rect)
        rows = cached[y : y + h]
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            self._write_stale(y, h)
            start, length = x * BYTES_PER_PIXEL, w * BYTES_PER_PIXEL
            for i in missing:
                offset = (y + i) * self.stride + start
                rows[i] = bytes(self.pixels[offset : offset + length])
        return rows  # type: ignore[return-value]  # every None was filled

    def plan(self, source: Source, rect: Rect) -> Plan:
        """What to send for `rect` (surface coordinates, inside the surface
        and inside `source`) so that the client's copy equals the source;
        does not update the history."""
        x, y, w, h = rect
        self._planned = None
        if not self.known:
            return Plan(rects=[rect])
        current = source.rows(rect)
        self._planned = (rect, current)
        previous = self._previous(rect)
        if h > SAMPLE_ALL_ROWS:
            return _plan_tall(rect, current, previous)
        changed = [cur != prev for cur, prev in zip(current, previous, strict=True)]
        if not any(changed):
            return Plan()
        copied = [False] * h
        copies: list[tuple[Rect, int, int]] = []
        shift = _best_shift(current, previous, changed)
        if shift:
            runs = _runs([0 <= i + shift < h and current[i] == previous[i + shift] for i in range(h)])
            runs = [run for run in runs if run[1] - run[0] >= MIN_SCROLL_ROWS]
            # Content moved up (shift > 0): copy top run first, so no run's
            # source has been overwritten by an earlier run's destination.
            for start, end in runs if shift > 0 else reversed(runs):
                copies.append(((x, y + start, w, end - start), x, y + start + shift))
                copied[start:end] = [True] * (end - start)
        send = [changed[i] and not copied[i] for i in range(h)]
        rects = [(x, y + start, w, end - start) for start, end in _runs(send, MERGE_GAP_ROWS)]
        return Plan(copies=copies, rects=rects)

    def remember(self, source: Source, rect: Rect) -> None:
        """Record that the client now holds `rect` as it is in `source`; the
        history is known once a rectangle covered the whole surface."""
        x, y, w, h = rect
        if rect == (0, 0, self.width, self.height):
            self.known = True
        ox, oy = source.origin
        start, length = x * BYTES_PER_PIXEL, w * BYTES_PER_PIXEL
        src_start = (x - ox) * BYTES_PER_PIXEL
        if self._planned is not None and self._planned[0] == rect:
            # No unpack: rows in the span cache are unpacked when written out (_write_stale).
            self._write_stale(y, h, keep=(x, w))  # rows stale from another span: written first
            self._stale[y : y + h] = [(x, w)] * h  # the rows plan() read go to the span cache: the truth
            self._remember_rows(rect)
            return
        self._unpack(y, h)  # a partial write keeps the rest of its bands
        if length == self.stride:
            self._stale[y : y + h] = [None] * h  # whole rows are written below
        else:
            self._write_stale(y, h)  # a partial write must not be undone by a stale row written later
        if length == self.stride == source.stride:  # whole rows on both sides: one copy
            src = (y - oy) * source.stride
            self.pixels[y * self.stride : (y + h) * self.stride] = source.view[src : src + h * self.stride]
            self._remember_rows(rect)
            return
        for row in range(y, y + h):
            offset = row * self.stride + start
            src = (row - oy) * source.stride + src_start
            self.pixels[offset : offset + length] = source.view[src : src + length]
        self._remember_rows(rect)

    def _solid_rows(self, y: int, h: int) -> bool:
        """True if rows y..y+h are all the solid colour: every band of them SOLID, none stale."""
        packed = self._packed
        if packed is None or h <= 0 or any(self._stale[y : y + h]):
            return False
        bands = range(y // RELEASE_BAND_ROWS, (y + h - 1) // RELEASE_BAND_ROWS + 1)
        return all(packed[index] == SOLID for index in bands)

    def _write_stale(self, y: int, h: int, keep: tuple[int, int] | None = None,
                     only: tuple[int, int] | None = None) -> None:  # fmt: skip
        """Write rows y..y+h that are stale (from span `only`, if given; not
        from span `keep`) from their span's cache into `pixels`."""
        stale = self._stale
        if not any(stale[y : y + h]):
            return
        for row in range(y, y + h):
            span = stale[row]
            if span is None or span == keep or (only is not None and span != only):
                continue
            self._unpack(row, 1)
            offset = row * self.stride + span[0] * BYTES_PER_PIXEL
            self.pixels[offset : offset + span[1] * BYTES_PER_PIXEL] = self._spans[span][row]  # type: ignore[index]
            stale[row] = None

    def _remember_rows(self, rect: Rect) -> None:
        """Keep the rows plan() read for rect's span; forget cached rows of
        other spans that rect overlaps (their pixels changed)."""
        x, y, w, h = rect
        for (span_x, span_w), rows in self._spans.items():
            if (span_x, span_w) != (x, w) and span_x < x + w and x < span_x + span_w:
                rows[y : y + h] = [None] * h
        planned, self._planned = self._planned, None
        if planned is None or planned[0] != rect:
            cached = self._spans.get((x, w))
            if cached is not None:
                cached[y : y + h] = [None] * h
            return
        cached = self._spans.get((x, w))
        if cached is None:
            cached = self._spans[(x, w)] = [None] * self.height
            while len(self._spans) > MAX_ROW_SPANS:
                self._write_stale(0, self.height, only=next(iter(self._spans)))  # the truth of its stale rows
                self._spans.popitem(last=False)
        self._spans.move_to_end((x, w))
        cached[y : y + h] = planned[1]


def _plan_tall(rect: Rect, current: list[bytes], previous: list[bytes]) -> Plan:
    """plan() of a tall rectangle: the shift from a sample, then each row
    compared whole: copied if it equals the shifted previous row (in a run of
    MIN_SCROLL_ROWS), else sent if it differs from the row it replaces."""
    x, y, w, h = rect
    if current == previous:
        return Plan()
    copies: list[tuple[Rect, int, int]] = []
    copied = [False] * h
    shift = _sampled_shift(current, previous)
    if shift:
        lo, hi = max(0, -shift), min(h, h - shift)
        match = [False] * lo + [current[i] == previous[i + shift] for i in range(lo, hi)] + [False] * (h - hi)
        runs = [run for run in _runs(match) if run[1] - run[0] >= MIN_SCROLL_ROWS]
        for start, end in runs if shift > 0 else reversed(runs):  # see plan(): sources never overwritten
            copies.append(((x, y + start, w, end - start), x, y + start + shift))
            copied[start:end] = [True] * (end - start)
    send = list(map(operator.ne, current, previous))  # (a new screen: no copies, one C loop)
    if copies:
        send = [flag and not done for flag, done in zip(send, copied)]
    return Plan(copies=copies, rects=[(x, y + start, w, end - start) for start, end in _runs(send, MERGE_GAP_ROWS)])


def _sampled_shift(current: list[bytes], previous: list[bytes]) -> int:
    """The nonzero shift d (current row i == previous row i + d) most sampled
    rows agree on (see SAMPLE_STEP), or 0 if none reaches MIN_SAMPLED_VOTES."""
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


def _best_shift(current: list[bytes], previous: list[bytes], changed: list[bool]) -> int:
    """The row shift d (current row i == previous row i + d) that most
    changed rows agree on, or 0 if none reaches MIN_SCROLL_ROWS."""
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


def _runs(flags: list[bool], merge_gap: int = 0) -> list[tuple[int, int]]:
    """[start, end) of each run of True in flags; runs separated by at most
    merge_gap False entries are joined."""
    runs: list[tuple[int, int]] = []
    start = None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if runs and start - runs[-1][1] <= merge_gap:
                runs[-1] = (runs[-1][0], i)
            else:
                runs.append((start, i))
            start = None
    return runs

# What the client already has of a surface, and how little of a damaged
# rectangle must be sent given that: unchanged rows nothing, rows that moved
# up or down a COPY, the rest as ordinary regions.
#
# Why: a scrolling terminal damages its whole text area every frame, but all
# rows but a few new ones are already on the client, shifted.  Sending a
# copy-rectangle (as VNC's CopyRect and xpra's scroll encoding do) and only
# the new rows cuts a scroll frame from the whole area to a few rows.
#
# Exactness: SurfaceHistory keeps the bytes it last sent of every pixel in
# one contiguous buffer, and rows are compared whole (row_compare.py; in C,
# row_native.py: hashes only pick candidates, equality confirms), so a COPY
# is only ever emitted for rows that are byte-identical at the source --
# never a wrong frame from a hash collision.  The history equals the
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
# The buffer is anonymous memory whose pages the kernel maps and zeroes in
# the allocating call (zeroed(): MAP_POPULATE), not a bytearray: bytearray(n)
# zeroes in user space, taking a page fault per 4 KiB page, and at 1080p
# that was ~3.4 ms of the frame that first touches the desktop's history
# (the first xterm at login: 2025 faults), against ~1.7 ms populated; the
# same pages are resident either way, and the plan and copy after it fault
# no more.  (An mmap that faults lazily instead costs more on that frame:
# the plan's reads fault the rows in once, the copy's writes again.)  The
# row passes are C, so plan() reads an mmap as fast as a bytearray
# (fd16a12 had measured the Python passes ~25% slower on an mmap).
# Solid: a band may stand for pixels of one colour (SOLID), written when
# touched: a new history is all black so, and a frame that is one FILL of the
# whole surface (the black screen when the display opens) is remembered by its
# colour (remember_solid), not by ~8 MiB of zeroing and copying at login.
"""SurfaceHistory: unchanged / scrolled / new rows of a rectangle against what was sent."""

from __future__ import annotations

import mmap
import re
import weakref
import zlib
from dataclasses import field

from protocol.frozen import frozen_dataclass, plain_dataclass
from sessiond.agent import row_native
from sessiond.agent.row_compare import MIN_SCROLL_ROWS, SAMPLE_ALL_ROWS, RowPasses, Rows

Rect = tuple[int, int, int, int]

BYTES_PER_PIXEL = 4  # BGRX, as the capture buffer
# Rows to re-send closer than this are sent as one region: a region costs a
# header and, in the browser, an asynchronous decode and a draw of its own,
# while unchanged rows between two changed ones (the blank rows between text
# lines: a terminal's new screenful would be one region per line otherwise)
# deflate to almost nothing.
MERGE_GAP_ROWS = 32
# Rows per zlib band of a released history (a 1080p band is 240 KiB raw:
# unpacked in well under a millisecond when a keystroke touches it).
RELEASE_BAND_ROWS = 32
# zlib level of the packed bands: the fastest (release runs on the loop).
RELEASE_ZLIB_LEVEL = 1
# A band entry meaning "every pixel is the history's solid colour" (zlib output is never empty).
SOLID = b""
# A run of rows flagged 1 (row_compare's flags).
_ONES = re.compile(b"\x01+")
# The history buffer's mapping: private anonymous memory, populated (zeroed
# pages mapped) by mmap() itself where the system has MAP_POPULATE (Linux).
ZEROED_FLAGS = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)

__all__ = ["MIN_SCROLL_ROWS", "SAMPLE_ALL_ROWS", "Plan", "Source", "SurfaceHistory", "zeroed"]


def zeroed(size: int) -> mmap.mmap:
    """`size` (> 0) writable bytes of zeros, their pages mapped now (ZEROED_FLAGS; see the header)."""
    return mmap.mmap(-1, size, flags=ZEROED_FLAGS)


@plain_dataclass
class Plan:
    """How to bring the client's copy of a rectangle up to date: apply
    `copies` (dest rect, source x, source y) in order, then send `rects`."""

    copies: list[tuple[Rect, int, int]] = field(default_factory=list)
    rects: list[Rect] = field(default_factory=list)


@frozen_dataclass
class Source:
    """Where the caller's BGRX buffer lies on the surface: row `stride` bytes,
    its first pixel at surface point `origin` (a capture of one damaged
    rectangle of a window, or the whole surface at (0, 0))."""

    view: memoryview
    stride: int
    origin: tuple[int, int] = (0, 0)

    def rows(self, rect: Rect) -> Rows:
        """Where the rows of rect (surface coordinates) lie in the buffer."""
        x, y, _w, _h = rect
        ox, oy = self.origin
        return Rows(self.view, self.stride, (y - oy) * self.stride + (x - ox) * BYTES_PER_PIXEL)


class SurfaceHistory:
    """The pixels last sent of one width x height surface (kept as BGRX
    rows of width * 4 bytes, one buffer)."""

    def __init__(self, width: int, height: int, passes: RowPasses | None = None) -> None:
        self.width = width
        self.height = height
        self.stride = width * BYTES_PER_PIXEL
        self.pixels: bytearray | mmap.mmap = bytearray()  # empty until touched (and after release()): zeroed()
        # Each band: zlib-packed (release()), SOLID (all `_solid`; new: black) or None
        # (unpacked in `pixels`).  A packed band's bytes in `pixels` are zeros.
        self._solid = bytes(BYTES_PER_PIXEL)
        self._packed: list[bytes | None] | None = [SOLID] * -(-height // RELEASE_BAND_ROWS)
        # The row comparison, vote and copy: C where built (row_native), else the Python reference.
        self._passes = passes or row_native.passes()
        # What plan() last found: (rect, source, rows of rect the history already holds); the
        # remember() of the same rect and source copies only the others.  Any other change drops it.
        # (A weak reference: a plan not followed by its remember must not keep the capture exported.)
        self._planned: tuple[Rect, weakref.ref[Source], bytes] | None = None
        # Until a whole frame of the surface was sent, the client's copy is
        # unknown and plan() sends every damaged rectangle whole.
        self.known = False

    def fits(self, width: int, height: int) -> bool:
        """True if the history has this surface's size."""
        return (self.width, self.height) == (width, height)

    def release(self) -> int:
        """Pack the pixels into zlib bands and free them; the history stays
        exact (bands unpack when touched).  Returns the bytes of the packed bands."""
        self._planned = None
        band_bytes = RELEASE_BAND_ROWS * self.stride
        old = self._packed
        packed: list[bytes | None] = []
        for index, start in enumerate(range(0, self.stride * self.height, band_bytes)):
            kept = old[index] if old is not None else None  # still packed: its rows in pixels are zeros
            packed.append(kept if kept is not None else
                          zlib.compress(self.pixels[start : start + band_bytes], RELEASE_ZLIB_LEVEL))  # fmt: skip
        self._packed = packed
        self.pixels = bytearray()  # (the mapping goes with its last reference)
        return sum(len(band) or len(self._solid) for band in packed if band is not None)

    def remember_solid(self, pixel: bytes) -> None:
        """Record that the client now holds the whole surface in one colour (`pixel`:
        its BGRX bytes) without writing it: every band SOLID.  The history is known."""
        self._planned = None
        self.pixels = bytearray()
        self._solid = bytes(pixel)
        self._packed = [SOLID] * -(-self.height // RELEASE_BAND_ROWS)
        self.known = True

    def _unpack(self, y: int, h: int) -> None:
        """Unpack the released (or SOLID) bands that rows y..y+h lie in."""
        packed = self._packed
        if packed is None or h <= 0:
            return
        band_bytes = RELEASE_BAND_ROWS * self.stride
        if not self.pixels:
            self.pixels = zeroed(self.stride * self.height)
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

    def plan(self, source: Source, rect: Rect) -> Plan:
        """What to send for `rect` (surface coordinates, inside the surface
        and inside `source`) so that the client's copy equals the source;
        does not update the history.  Unchanged rows are not sent; if most
        changed rows moved by one shift (row_compare's vote), runs of at
        least MIN_SCROLL_ROWS rows equal to the previous rows at that shift
        are COPYs; the rest of the changed rows are sent, runs closer than
        MERGE_GAP_ROWS as one rectangle."""
        x, y, w, h = rect
        self._planned = None
        if not self.known:
            return Plan(rects=[rect])
        self._unpack(y, h)
        previous = Rows(self.pixels, self.stride, y * self.stride + x * BYTES_PER_PIXEL)
        same, shift, moved = self._passes.compare(source.rows(rect), previous, w * BYTES_PER_PIXEL, h)
        self._planned = (rect, weakref.ref(source), same)
        return plan_of(rect, same, shift, moved)

    def remember(self, source: Source, rect: Rect) -> None:
        """Record that the client now holds `rect` as it is in `source`; the
        history is known once a rectangle covered the whole surface."""
        x, y, w, h = rect
        if rect == (0, 0, self.width, self.height):
            self.known = True
        planned, self._planned = self._planned, None
        skip = planned[2] if planned is not None and planned[0] == rect and planned[1]() is source else None
        self._unpack(y, h)  # a partial write keeps the rest of its bands
        target = Rows(self.pixels, self.stride, y * self.stride + x * BYTES_PER_PIXEL)
        self._passes.copy(target, source.rows(rect), w * BYTES_PER_PIXEL, h, skip)


# 0 <-> 1 (row_compare's flags): rows that are not the same are the rows to send.
_FLIP = bytes.maketrans(b"\x00\x01", b"\x01\x00")


def _runs(flags: bytes | bytearray, merge_gap: int = 0) -> list[tuple[int, int]]:
    """[start, end) of each run of 1 in flags; runs separated by at most
    merge_gap 0 entries are joined."""
    runs: list[tuple[int, int]] = []
    for match in _ONES.finditer(flags):
        start, end = match.span()
        if runs and start - runs[-1][1] <= merge_gap:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs


def plan_of(rect: Rect, same: bytes, shift: int, moved: bytes) -> Plan:
    """The Plan for RECT from a comparison of its rows with the previous ones
    (row_compare: `same` and `moved` a byte per row, `shift` the vote): runs
    of at least MIN_SCROLL_ROWS moved rows are COPYs, the other changed rows
    are sent, runs closer than MERGE_GAP_ROWS as one rectangle."""
    x, y, w, _h = rect
    if 0 not in same:
        return Plan()
    send = bytearray(same.translate(_FLIP))
    copies: list[tuple[Rect, int, int]] = []
    if shift:
        runs = [run for run in _runs(moved) if run[1] - run[0] >= MIN_SCROLL_ROWS]
        # Content moved up (shift > 0): copy top run first, so no run's
        # source has been overwritten by an earlier run's destination.
        for start, end in runs if shift > 0 else reversed(runs):
            copies.append(((x, y + start, w, end - start), x, y + start + shift))
            send[start:end] = bytes(end - start)
    rects = [(x, y + start, w, end - start) for start, end in _runs(send, MERGE_GAP_ROWS)]
    return Plan(copies=copies, rects=rects)

# BGRX -> yuv420p for a video stream, converting only the bands of rows
# that changed since the previous frame.
#
# Why: the conversion is a third of the agent's CPU per 1080p frame (~3.7
# ms of ~10), and it is spent on every row although many rows of a played
# video do not change from frame to frame: the black bars of a letterboxed
# film, a player's controls, the static parts of ffmpeg's testsrc (58 of
# its 68 bands of 16 rows).  The damage X reports does not say which: a
# player puts its whole window every frame.  So the converter keeps a copy
# of the pixels it last converted, compares each band of BAND_ROWS rows with
# it (libc memcmp, which stops at the first difference: a band that changed
# costs almost nothing to find) and converts and copies only the bands that
# differ, into the one reused yuv420p frame, whose other rows still hold the
# previous frame's conversion.  Bands start on even rows, so each band's
# chroma rows are its own and the result is the whole-frame conversion's,
# byte for byte (point sampling reads no neighbouring rows).
#
# When most bands change (a film, a game: every pixel moves), the compare
# and the copy are wasted work, so after FULL_STREAK such frames the
# converter stops keeping the copy and converts whole frames for
# PROBE_FRAMES frames, then looks again.
"""BandYuvConverter: BGRX rectangles into a reused yuv420p frame, changed row bands only."""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any, Final

import av

from media import swscale
from media.swscale import BGRX_BYTES, YUV_FORMAT, YuvConverter, check_inside

# Rows per band: even (4:2:0 chroma rows pair up), a macroblock row.
BAND_ROWS: Final = 16
# Rows of a picture's end that libswscale writes with its C code.
EDGE_ROWS: Final = 2
# A frame with more than this share of its bands changed is converted whole
# (one threaded call beats many small ones).
WHOLE_SHARE: Final = 0.5
# After this many whole frames in a row the copy is no longer kept ...
FULL_STREAK: Final = 8
# ... for this many frames; then the bands are compared again.
PROBE_FRAMES: Final = 60


def _libc() -> Any:
    name = ctypes.util.find_library("c") or "libc.so.6"
    libc = ctypes.CDLL(name)
    libc.memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    libc.memcmp.restype = ctypes.c_int
    return libc


_LIBC = _libc()


class BandGate:
    """Whether a frame is converted whole (most of its bands changed) and
    when comparing stops: for PROBE_FRAMES after FULL_STREAK whole frames."""

    def __init__(self, bands: int, streak: int = FULL_STREAK) -> None:
        self.bands, self.streak = bands, streak
        self._streak = 0  # whole frames in a row
        self._pause = 0  # frames left without comparing

    @property
    def pausing(self) -> bool:
        """True while comparing is off."""
        return self._pause > 0

    def paused(self) -> bool:
        """True while comparing is off (counting this frame as one of the pause)."""
        if self._pause:
            self._pause -= 1
            return True
        return False

    def whole(self, changed: int) -> bool:
        """Count a compared frame with `changed` bands; True if it goes whole."""
        if changed <= WHOLE_SHARE * self.bands:
            self._streak = 0
            return False
        self._streak += 1
        if self._streak >= self.streak:
            self._streak, self._pause = 0, PROBE_FRAMES
        return True


class BandYuvConverter:
    """Like swscale.YuvConverter (same frame, same pixels), but converting
    only the bands of rows that differ from the previous call's."""

    def __init__(self, width: int, height: int, coded: tuple[int, int]) -> None:
        self.width, self.height = width, height
        self._whole = YuvConverter(width, height, coded)
        self.frame: av.VideoFrame = self._whole.frame
        self._row = width * BGRX_BYTES
        self._previous = bytearray(self._row * height)
        self._previous_at = ctypes.addressof(ctypes.c_char.from_buffer(self._previous))
        self._known = False  # _previous holds the pixels in the frame
        tail = height % BAND_ROWS or BAND_ROWS  # rows of the last band
        # Bands but the last: BAND_ROWS + 2 rows into the scratch; the last: its own rows, in place.
        self._band = swscale.library_context(width, BAND_ROWS + EDGE_ROWS, 1) if height > BAND_ROWS else None
        self._last: int | None = swscale.library_context(width, tail, 1)
        sizes = [(p.line_size, rows) for p, rows in zip(self.frame.planes, (BAND_ROWS, BAND_ROWS // 2, BAND_ROWS // 2))]
        self._scratch = [bytearray(size * (rows + EDGE_ROWS)) for size, rows in sizes]
        self._scratch_at = [ctypes.addressof(ctypes.c_char.from_buffer(buffer)) for buffer in self._scratch]
        self._keep = [size * rows for size, rows in sizes]  # bytes of a band per plane
        self.banded = height % 2 == 0  # see the header: odd heights are converted whole
        self.gate = BandGate(self.bands)
        self.converted_bands = 0  # bands converted by the last call (tests, stats)

    @property
    def bands(self) -> int:
        """Bands of a frame."""
        return -(-self.height // BAND_ROWS)

    def convert(self, buffer: Any, stride: int, x: int, y: int) -> av.VideoFrame:
        """The frame, holding the width x height rectangle at pixel (x, y) of
        `buffer` (BGRX rows of `stride` bytes); ValueError if it lies outside."""
        offset = check_inside(buffer, stride, (x, y, self.width, self.height))
        in_place = swscale.reads_in_place(buffer, stride, offset, self.width, self.height)
        if self.gate.paused() or not self.banded or not in_place:
            return self._convert_whole(buffer, stride, x, y)
        address, anchor = swscale.address_of(buffer)
        start = address + offset
        changed = [band for band in range(self.bands) if not self._known or self._differs(start, stride, band)]
        if self.gate.whole(len(changed)):
            if self.gate.pausing:  # every frame changes everywhere: no copy kept for a while
                del anchor
                return self._convert_whole(buffer, stride, x, y)
            self._whole.convert(buffer, stride, x, y)
            self.converted_bands = self.bands
        else:
            for band in changed:
                self._convert_band(start, stride, band)
            self.converted_bands = len(changed)
        for band in changed:
            self._remember(start, stride, band)
        self._known = True
        del anchor
        return self.frame

    def _convert_whole(self, buffer: Any, stride: int, x: int, y: int) -> av.VideoFrame:
        self._known = False
        self.converted_bands = self.bands
        return self._whole.convert(buffer, stride, x, y)

    def _rows(self, band: int) -> tuple[int, int]:
        first = band * BAND_ROWS
        return first, min(BAND_ROWS, self.height - first)

    def _differs(self, start: int, stride: int, band: int) -> bool:
        first, rows = self._rows(band)
        kept = self._previous_at + first * self._row
        if stride == self._row:
            return bool(_LIBC.memcmp(start + first * stride, kept, rows * self._row))
        return any(_LIBC.memcmp(start + (first + i) * stride, kept + i * self._row, self._row) for i in range(rows))

    def _remember(self, start: int, stride: int, band: int) -> None:
        first, rows = self._rows(band)
        kept = self._previous_at + first * self._row
        if stride == self._row:
            ctypes.memmove(kept, start + first * stride, rows * self._row)
        else:
            for i in range(rows):
                ctypes.memmove(kept + i * self._row, start + (first + i) * stride, self._row)

    def _convert_band(self, start: int, stride: int, band: int) -> None:
        first, rows = self._rows(band)
        planes = self.frame.planes
        targets = [planes[0].buffer_ptr + first * planes[0].line_size]
        targets += [plane.buffer_ptr + first // 2 * plane.line_size for plane in planes[1:]]
        strides = [p.line_size for p in planes]
        source = start + first * stride
        if band == self.bands - 1:  # the picture's own last rows: as the whole conversion writes them
            if self._last is None:
                raise ValueError("convert on a closed converter")
            swscale.scale_rows(self._last, [source], [stride], rows, targets, strides)
            return
        if self._band is None:
            raise ValueError("convert on a closed converter")
        swscale.scale_rows(self._band, [source], [stride], rows + EDGE_ROWS, self._scratch_at, strides)
        for target, scratch, size in zip(targets, self._scratch_at, self._keep):
            ctypes.memmove(target, scratch, size)

    def close(self) -> None:
        """Free the conversion contexts; idempotent."""
        self._whole.close()
        swscale.free_contexts(self._band, self._last)
        self._band = self._last = None
        self._known = False


__all__ = ["BAND_ROWS", "BandYuvConverter", "YUV_FORMAT"]

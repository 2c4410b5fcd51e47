# Decoded yuv420p pictures -> RGB for the native client, converting (and
# reporting) only the bands of rows that changed since the stream's last
# picture.
#
# Why: after the H.264 decode itself, the client's cost per 1080p picture
# is its conversion to RGB (~2 ms) and the paste into the framebuffer (~1.5
# ms), both over every row, although much of a played video's picture does
# not change from frame to frame (a letterboxed film's bars, a player's
# controls, the static parts of ffmpeg's testsrc: 58 of its 68 bands).  So
# the converter keeps a copy of the Y, U and V rows of the last picture,
# compares each band of BAND_ROWS rows with it (libc memcmp, 1.5 bytes a
# pixel against RGB's 3), converts only the bands that differ into the one
# RGB buffer, and tells the caller which rows to paste (changed_rows()).
# As on the agent's side (media/yuv_bands.py), a band that is not the last
# is converted with two more rows into a scratch buffer, so the RGB is the
# whole-picture conversion's byte for byte; an odd height is converted whole.
"""BandRgbConverter: yuv420p pictures into a reused RGB buffer, changed row bands only."""

from __future__ import annotations

import ctypes
from typing import Final

import av

from media import swscale
from media.swscale import RGB_FORMAT, YUV_FORMAT, RgbConverter
from media.yuv_bands import _LIBC, BAND_ROWS, EDGE_ROWS, BandGate

_PLANES: Final = 3
# Whole pictures in a row before the comparing pauses: more than the agent's
# FULL_STREAK, as the ~15 pictures after a keyframe change most bands while
# the encoder refines the still parts.
WHOLE_STREAK: Final = 30


class BandRgbConverter:
    """Like swscale.RgbConverter (same buffer, same bytes), converting only
    the bands that differ from the previous picture's."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._whole = RgbConverter(width, height)
        self.rgb, self.stride = self._whole.rgb, self._whole.stride
        self._rgb_at = ctypes.addressof(ctypes.c_char.from_buffer(self.rgb))
        self.bands = -(-height // BAND_ROWS)
        self.banded = height % 2 == 0 and height > BAND_ROWS
        self._band = self._last = None
        if self.banded:
            self._band = swscale.library_context(width, BAND_ROWS + EDGE_ROWS, 1, YUV_FORMAT, RGB_FORMAT)
            self._last = swscale.library_context(width, height - (self.bands - 1) * BAND_ROWS, 1, YUV_FORMAT,
                                                 RGB_FORMAT)  # fmt: skip
        self._scratch = bytearray(self.stride * (BAND_ROWS + EDGE_ROWS) + swscale.RGB_TAIL)
        self._scratch_at = ctypes.addressof(ctypes.c_char.from_buffer(self._scratch))
        self._previous: list[bytearray] = []  # per plane, rows of the plane's line size
        self._previous_at: list[int] = []
        self._line_sizes: list[int] = []
        self._changed: list[int] = list(range(self.bands))
        self.gate = BandGate(self.bands, WHOLE_STREAK)  # whole pictures; pauses while all change

    def _plane_rows(self, plane: int) -> int:
        return self.height if plane == 0 else (self.height + 1) // 2

    def convert(self, frame: av.VideoFrame) -> bytearray:
        """The RGB bytes of the frame's top-left width x height (rewritten by
        the next call; rows outside changed_rows() hold the last picture's);
        ValueError if the frame is not a yuv420p picture at least that large."""
        if frame.format.name != YUV_FORMAT or frame.width < self.width or frame.height < self.height:
            return self._whole.convert(frame)  # the whole converter raises the ValueError
        planes = [plane.buffer_ptr for plane in frame.planes[:_PLANES]]  # the picture's plane addresses
        sizes = [plane.line_size for plane in frame.planes[:_PLANES]]
        self._changed = list(range(self.bands))
        if self.gate.paused() or not self.banded:
            self._line_sizes = []  # no copy kept
            return self._whole.convert(frame)
        if sizes != self._line_sizes:
            self._whole.convert(frame)
            self._remember(planes, sizes)
            return self.rgb
        changed = [band for band in range(self.bands) if self._differs(planes, band)]
        if self.gate.whole(len(changed)):
            self._whole.convert(frame)
            if self.gate.pausing:
                self._line_sizes = []
                return self.rgb
        else:
            for band in changed:
                self._convert_band(planes, band)
        for band in changed:
            self._keep(planes, band)
        self._changed = changed
        return self.rgb

    def changed_rows(self) -> list[tuple[int, int]]:
        """(first row, rows) spans of the last picture that (may) differ from
        the one before it; [(0, height)] for a whole one."""
        spans: list[tuple[int, int]] = []
        for band in self._changed:
            first = band * BAND_ROWS
            rows = min(BAND_ROWS, self.height - first)
            if spans and spans[-1][0] + spans[-1][1] == first:
                spans[-1] = (spans[-1][0], spans[-1][1] + rows)
            else:
                spans.append((first, rows))
        return spans

    def _span(self, plane: int, band: int) -> tuple[int, int]:
        """(first row, rows) of a band in a plane (chroma rows are half)."""
        shift = 0 if plane == 0 else 1
        first = (band * BAND_ROWS) >> shift
        return first, max(0, min(BAND_ROWS >> shift, self._plane_rows(plane) - first))

    def _remember(self, planes: list[int], sizes: list[int]) -> None:
        self._line_sizes = sizes
        self._previous = [bytearray(sizes[i] * self._plane_rows(i)) for i in range(_PLANES)]
        self._previous_at = [ctypes.addressof(ctypes.c_char.from_buffer(kept)) for kept in self._previous]
        for band in range(self.bands):
            self._keep(planes, band)

    def _differs(self, planes: list[int], band: int) -> bool:
        for index in range(_PLANES):
            first, rows = self._span(index, band)
            size = self._line_sizes[index]
            kept = self._previous_at[index] + first * size
            if _LIBC.memcmp(planes[index] + first * size, kept, rows * size):
                return True
        return False

    def _keep(self, planes: list[int], band: int) -> None:
        for index in range(_PLANES):
            first, rows = self._span(index, band)
            size = self._line_sizes[index]
            kept = self._previous_at[index] + first * size
            ctypes.memmove(kept, planes[index] + first * size, rows * size)

    def _convert_band(self, planes: list[int], band: int) -> None:
        sources = [planes[i] + self._span(i, band)[0] * self._line_sizes[i] for i in range(_PLANES)]
        first = band * BAND_ROWS
        if band == self.bands - 1:  # the picture's own last rows, in place
            if self._last is None:
                raise ValueError("convert on a closed converter")
            swscale.scale_rows(self._last, sources, self._line_sizes, self.height - first,
                               [self._rgb_at + first * self.stride], [self.stride])  # fmt: skip
            return
        if self._band is None:
            raise ValueError("convert on a closed converter")
        swscale.scale_rows(self._band, sources, self._line_sizes, BAND_ROWS + EDGE_ROWS, [self._scratch_at],
                           [self.stride])  # fmt: skip
        ctypes.memmove(self._rgb_at + first * self.stride, self._scratch_at, BAND_ROWS * self.stride)

    def close(self) -> None:
        """Free the conversion contexts; idempotent."""
        self._whole.close()
        swscale.free_contexts(self._band, self._last)
        self._band = self._last = None

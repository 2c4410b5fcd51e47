# Pixel-format conversion for the H.264 path, in place, both ways: the
# agent's BGRX capture -> YUV 4:2:0 for x264, and the native client's
# decoded YUV 4:2:0 -> RGB for its framebuffer.
#
# Why: PyAV converts only its own frames into new ones, so the first H.264
# path copied a 1080p capture three times before x264 saw it
# (Image.tobytes, plane.update, then VideoFrame.reformat: measured 4 + 4.7
# + 6 ms of a 33 ms encode), and the client spent 11 ms of its 16 in
# VideoFrame.to_image.  Here libswscale (the copy bundled in PyAV's wheel,
# through ctypes) reads the pixels where they lie -- the MIT-SHM segment or
# the decoder's planes, any stride, any offset -- and writes into one
# buffer reused for every frame, so the conversion is the only pass over
# the pixels.  x264 copies its input inside the encode call, so rewriting
# the planes for the next frame is safe.  Chroma is point-sampled both ways
# (same size in and out, so that is the only filter choice): ~3.4 ms a
# 1080p frame against 5.9 for bicubic; the stream is lossy anyway and is
# refined losslessly when it stops.
#
# If the bundled library cannot be found or set up (another wheel layout),
# available() is False and callers keep PyAV's copying paths: slower, same
# pictures.
"""YuvConverter (BGRX rectangle -> reused yuv420p frame), RgbConverter (yuv420p frame -> RGB bytes)."""

from __future__ import annotations

import ctypes
import glob
import os
from typing import Any

import av

# libswscale's SWS_POINT flag.
SWS_POINT = 16
# Worker threads of one conversion (libswscale's "threads" option).
CONVERT_THREADS = 2
BGRX_FORMAT = "bgr0"
YUV_FORMAT = "yuv420p"
RGB_FORMAT = "rgb24"
BGRX_BYTES = 4
RGB_BYTES = 3
# libswscale's SIMD code reads and writes whole groups of pixels past a
# row's end (measured: reads of 16-pixel groups, a fault at the end of a
# mapping for widths under 16; writes up to 42 bytes past an RGB buffer).
# So a source rectangle is read in place only if whole groups of
# SOURCE_GROUP pixels fit in its buffer (else its rows are copied into a
# padded one), and the RGB buffer has rows aligned to RGB_ROW_ALIGN bytes
# and RGB_TAIL spare bytes.
SOURCE_GROUP = 32
RGB_ROW_ALIGN = 64
RGB_TAIL = 256
_PLANES = 4  # sws_scale takes arrays of four plane pointers and strides
_Pointers = ctypes.c_void_p * _PLANES
_Strides = ctypes.c_int * _PLANES


class _Swscale:
    """libswscale and libavutil from PyAV's wheel, with prototypes."""

    def __init__(self) -> None:
        folder = os.path.join(os.path.dirname(os.path.dirname(av.__file__)), "av.libs")
        found = {name: sorted(glob.glob(os.path.join(folder, f"lib{name}-*.so*"))) for name in ("swscale", "avutil")}
        if not found["swscale"] or not found["avutil"]:
            raise OSError(f"no bundled libswscale/libavutil in {folder}")
        sws, avutil = ctypes.CDLL(found["swscale"][0]), ctypes.CDLL(found["avutil"][0])
        vp, c_int = ctypes.c_void_p, ctypes.c_int
        sws.sws_alloc_context.argtypes, sws.sws_alloc_context.restype = [], vp
        sws.sws_init_context.argtypes, sws.sws_init_context.restype = [vp, vp, vp], c_int
        sws.sws_freeContext.argtypes, sws.sws_freeContext.restype = [vp], None
        sws.sws_scale.argtypes = [vp, _Pointers, _Strides, c_int, c_int, _Pointers, _Strides]
        sws.sws_scale.restype = c_int
        avutil.av_opt_set_int.argtypes = [vp, ctypes.c_char_p, ctypes.c_int64, c_int]
        avutil.av_opt_set_int.restype = c_int
        avutil.av_get_pix_fmt.argtypes, avutil.av_get_pix_fmt.restype = [ctypes.c_char_p], c_int
        self.sws, self.avutil = sws, avutil

    def context(self, width: int, height: int, source: str, target: str, threads: int = CONVERT_THREADS) -> int:
        """A set-up SwsContext for width x height source -> target; OSError if refused."""
        sws, avutil = self.sws, self.avutil
        options = {
            "srcw": width, "srch": height, "dstw": width, "dsth": height,
            "src_format": avutil.av_get_pix_fmt(source.encode()),
            "dst_format": avutil.av_get_pix_fmt(target.encode()),
            "sws_flags": SWS_POINT, "threads": threads,
        }  # fmt: skip
        context = sws.sws_alloc_context()
        if not context:
            raise OSError("sws_alloc_context failed")
        for name, value in options.items():
            if avutil.av_opt_set_int(context, name.encode(), value, 0) < 0:
                sws.sws_freeContext(context)
                raise OSError(f"libswscale refused {name}={value}")
        if sws.sws_init_context(context, None, None) < 0:
            sws.sws_freeContext(context)
            raise OSError(f"libswscale cannot convert {width}x{height} {source} to {target}")
        return int(context)

    def scale(self, context: int, sources: list[int], strides: list[int], height: int, targets: list[int],
              target_strides: list[int]) -> int:  # fmt: skip
        """sws_scale of `height` rows; the number of rows written."""
        pad = [0] * _PLANES
        return int(self.sws.sws_scale(context, _Pointers(*(sources + pad)[:_PLANES]),
                                      _Strides(*(strides + pad)[:_PLANES]), 0, height,
                                      _Pointers(*(targets + pad)[:_PLANES]),
                                      _Strides(*(target_strides + pad)[:_PLANES])))  # fmt: skip


_LOADED: list[_Swscale | None] = []


def _library() -> _Swscale | None:
    if not _LOADED:
        try:
            _LOADED.append(_Swscale())
        except (OSError, AttributeError):
            _LOADED.append(None)
    return _LOADED[0]


def available() -> bool:
    """True if the bundled libswscale can be used (else PyAV's copying paths)."""
    return _library() is not None


def _size(buffer: Any) -> int:
    return len(buffer) if isinstance(buffer, bytes) else memoryview(buffer).nbytes


def _align(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def check_inside(buffer: Any, stride: int, rect: tuple[int, int, int, int]) -> int:
    """The byte offset of rect's first pixel in `buffer` (BGRX rows of
    `stride` bytes); ValueError if any of its pixels lies outside."""
    x, y, w, h = rect
    offset = y * stride + x * BGRX_BYTES
    if x < 0 or y < 0 or w < 1 or h < 1 or stride < (x + w) * BGRX_BYTES \
            or offset + (h - 1) * stride + w * BGRX_BYTES > _size(buffer):  # fmt: skip
        raise ValueError(f"a {w}x{h} rectangle at {x},{y} is outside the buffer")
    return offset


def reads_in_place(buffer: Any, stride: int, offset: int, width: int, height: int) -> bool:
    """True if libswscale may read the width x height rectangle at byte
    `offset` of `buffer` where it lies (whole SOURCE_GROUPs fit: see above)."""
    return offset + (height - 1) * stride + _align(width, SOURCE_GROUP) * BGRX_BYTES <= _size(buffer)


def library_context(width: int, height: int, threads: int, source: str = BGRX_FORMAT, target: str = YUV_FORMAT) -> int:
    """A source -> target SwsContext of width x height (free_contexts() frees it); OSError if unavailable."""
    library = _library()
    if library is None:
        raise OSError("the bundled libswscale is unavailable")
    return library.context(width, height, source, target, threads)


def free_contexts(*contexts: int | None) -> None:
    """Free each library_context() given (None: nothing)."""
    library = _library()
    for context in contexts:
        if library is not None and context is not None:
            library.sws.sws_freeContext(context)


def scale_rows(context: int, sources: list[int], source_strides: list[int], rows: int, targets: list[int],
               strides: list[int]) -> None:  # fmt: skip
    """Convert `rows` rows of the planes at `sources` into the planes at `targets`; ValueError if fewer came out."""
    library = _library()
    if library is None or library.scale(context, sources, source_strides, rows, targets, strides) != rows:
        raise ValueError(f"libswscale did not convert {rows} rows")


def address_of(buffer: Any) -> tuple[int, Any]:
    """(address of buffer's first byte, the object that keeps it alive: hold it while the address is used)."""
    return _address(buffer)


def _address(buffer: Any) -> tuple[int, Any]:
    """(address of buffer's first byte, the object that keeps it alive)."""
    if isinstance(buffer, bytes):
        return ctypes.cast(ctypes.c_char_p(buffer), ctypes.c_void_p).value or 0, buffer
    view = memoryview(buffer)
    if view.readonly:
        data = bytes(view)  # a read-only view of something else: one copy
        return ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0, data
    anchor = ctypes.c_char.from_buffer(view)
    return ctypes.addressof(anchor), anchor


class _Converter:
    """One SwsContext of a fixed size and pair of formats."""

    def __init__(self, width: int, height: int, source: str, target: str) -> None:
        library = _library()
        if library is None:
            raise OSError("the bundled libswscale is unavailable")
        self.width, self.height = width, height
        self._library = library
        self._context: int | None = library.context(width, height, source, target)

    def _scale(self, sources: list[int], strides: list[int], targets: list[int], target_strides: list[int]) -> None:
        if self._context is None:
            raise ValueError("convert on a closed converter")
        rows = self._library.scale(self._context, sources, strides, self.height, targets, target_strides)
        if rows != self.height:
            raise ValueError(f"libswscale converted {rows} of {self.height} rows")

    def close(self) -> None:
        """Free the conversion context; idempotent."""
        if self._context is not None:
            self._library.sws.sws_freeContext(self._context)
            self._context = None

    def __del__(self) -> None:
        self.close()


class YuvConverter(_Converter):
    """BGRX rectangles of width x height into one yuv420p VideoFrame of the
    coded size (its padding rows and columns stay black)."""

    def __init__(self, width: int, height: int, coded: tuple[int, int]) -> None:
        super().__init__(width, height, BGRX_FORMAT, YUV_FORMAT)
        self.frame = av.VideoFrame(coded[0], coded[1], YUV_FORMAT)
        for plane, value in zip(self.frame.planes, (16, 128, 128)):  # black in limited-range YUV
            ctypes.memset(plane.buffer_ptr, value, plane.buffer_size)

    def convert(self, buffer: Any, stride: int, x: int, y: int) -> av.VideoFrame:
        """The frame, holding the width x height rectangle at pixel (x, y) of
        `buffer` (BGRX rows of `stride` bytes); ValueError if it lies outside."""
        offset = check_inside(buffer, stride, (x, y, self.width, self.height))
        row = self.width * BGRX_BYTES
        if not reads_in_place(buffer, stride, offset, self.width, self.height):
            view = memoryview(buffer).cast("B")  # a narrow rectangle at the buffer's end: rows into a padded copy
            padded_stride = _align(row, SOURCE_GROUP * BGRX_BYTES)
            padded = bytearray(padded_stride * self.height)
            for line in range(self.height):
                start = offset + line * stride
                padded[line * padded_stride : line * padded_stride + row] = view[start : start + row]
            buffer, stride, offset = padded, padded_stride, 0
        address, anchor = _address(buffer)
        planes = self.frame.planes
        self._scale([address + offset], [stride], [p.buffer_ptr for p in planes], [p.line_size for p in planes])
        del anchor
        return self.frame


class RgbConverter(_Converter):
    """The top-left width x height of decoded yuv420p frames into one RGB
    buffer (rows of `stride` bytes), reused for every frame."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__(width, height, YUV_FORMAT, RGB_FORMAT)
        self.stride = _align(width * RGB_BYTES, RGB_ROW_ALIGN)
        self.rgb = bytearray(self.stride * height + RGB_TAIL)
        self._anchor = ctypes.c_char.from_buffer(self.rgb)  # also keeps the buffer from being resized
        self._address = ctypes.addressof(self._anchor)

    def convert(self, frame: av.VideoFrame) -> bytearray:
        """The RGB bytes of the frame's top-left width x height (the buffer
        is rewritten by the next call); ValueError if the frame is not a
        yuv420p picture at least that large."""
        if frame.format.name != YUV_FORMAT or frame.width < self.width or frame.height < self.height:
            raise ValueError(f"a {frame.format.name} {frame.width}x{frame.height} frame is not a "
                             f"{YUV_FORMAT} picture of {self.width}x{self.height}")  # fmt: skip
        planes = frame.planes
        self._scale([p.buffer_ptr for p in planes], [p.line_size for p in planes], [self._address], [self.stride])
        return self.rgb

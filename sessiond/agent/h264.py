# One H.264 encoder (PyAV's bundled libx264) for one video stream.
#
# Why apart from the detection (video.py): this is the only module that
# touches the codec, so its parameters live in one place -- preset,
# zerolatency (no lookahead, no B-frames: every frame comes out at once and
# the client shows it at once), yuv420p, Annex B with SPS/PPS repeated on
# every keyframe (a client that joins or resets needs nothing else), and the
# bitrate, the one knob an adaptive-quality module turns (set_bitrate()).
# An infinite GOP: keyframes only when the stream starts or is reset, since
# the transport is reliable and in order and intra frames cost ~10x.
# The pixels reach x264 through media/swscale.py: converted in place from
# the capture buffer into one reused frame, only the bands of rows that
# changed since the last frame (media/yuv_bands.py; PyAV's copying path only
# as a fallback).
# PyAV (and the media modules that load its bundled libraries) is imported
# with the first encoder, not with this module: an idle session that never
# shows a video does not pay its ~18 MiB of mapped libraries and ~4 MiB of
# relocated data (docs/admin.md, "Memory per session").
"""H264Encoder: BGRX rectangles in, Annex B access units out."""

from __future__ import annotations

import time
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from PIL import Image

from protocol.video import coded_size

if TYPE_CHECKING:
    import av

    from media.yuv_bands import BandYuvConverter

# libx264's fastest preset: ~8 ms a 1080p frame on one loaded core.
PRESET = "ultrafast"
# Bits per second when nobody set one: a 1080p test pattern at 30 fps looks
# clean at 3 Mbit/s with ultrafast (goal <= 4 Mbit/s).
DEFAULT_BITRATE = 3_000_000
BITRATE_RANGE = (100_000, 50_000_000)
# The rate control's frame rate (x264 spreads the bitrate over this many
# frames a second; frames arrive at whatever rate the pipeline sends).
NOMINAL_FPS = 30
# Encoder threads: sliced, so a frame still comes out at once.
THREADS = 2
BYTES_PER_PIXEL = 4  # BGRX capture


class H264Error(RuntimeError):
    """The encoder failed (a codec error, or a bitrate out of range)."""


def check_bitrate(bitrate: int) -> int:
    """bitrate if within BITRATE_RANGE, else H264Error."""
    low, high = BITRATE_RANGE
    if not low <= bitrate <= high:
        raise H264Error(f"bitrate {bitrate} is outside {low}..{high}")
    return bitrate


class H264Encoder:
    """Encodes w x h rectangles of BGRX buffers into a stream (Annex B)."""

    def __init__(self, width: int, height: int, bitrate: int = DEFAULT_BITRATE, direct: bool | None = None) -> None:
        self.width = width
        self.height = height
        self.coded = coded_size(width, height)
        self.bitrate = check_bitrate(bitrate)
        from media import swscale  # PyAV with the first encoder (see the header)

        self._context: av.VideoCodecContext | None = None
        # Convert in place through the bundled libswscale (media/swscale.py), else PyAV's copying path.
        self.direct = swscale.available() if direct is None else direct
        self._converter: BandYuvConverter | None = None
        self._pts = 0  # the next frame's timestamp, in 1 / NOMINAL_FPS
        # Seconds spent per stage since the owner last reset it ("convert", "encode").
        self.stages: dict[str, float] = {}

    def _open(self) -> av.VideoCodecContext:
        import av  # see the header

        context = av.CodecContext.create("libx264", "w")
        context.width, context.height = self.coded
        context.pix_fmt = "yuv420p"
        context.framerate = NOMINAL_FPS
        context.time_base = Fraction(1, NOMINAL_FPS)
        context.bit_rate = self.bitrate
        context.gop_size = 1_000_000  # keyframes only at start and reset
        context.thread_count = THREADS
        context.thread_type = "SLICE"
        # repeat-headers: SPS/PPS before each IDR; annexb: start codes; the
        # VBV bounds the size of one frame near bitrate / fps.
        vbv = max(1, self.bitrate // 1000 // 2)
        context.options = {"preset": PRESET, "tune": "zerolatency", "profile": "baseline",
                           "x264-params": f"repeat-headers=1:annexb=1:vbv-maxrate={self.bitrate // 1000}"
                                          f":vbv-bufsize={vbv}:keyint=infinite"}  # fmt: skip
        context.open()
        return context

    def set_bitrate(self, bitrate: int) -> None:
        """Change the bitrate: the next frame restarts the stream (a keyframe)."""
        self.bitrate = check_bitrate(bitrate)
        self.reset()

    def reset(self) -> None:
        """The next frame is a keyframe (with SPS/PPS) that needs no history."""
        self._context = None

    @property
    def needs_key(self) -> bool:
        """True if the next access unit will be a keyframe."""
        return self._context is None

    def encode(self, image: Image.Image) -> bytes:
        """One access unit for an RGBX-mode image holding BGRX bytes, of
        width x height; a keyframe if needs_key."""
        if image.size != (self.width, self.height):
            raise H264Error(f"frame {image.size} does not match the stream's {self.width}x{self.height}")
        return self.encode_pixels(image.tobytes(), self.width * BYTES_PER_PIXEL, 0, 0)

    def encode_pixels(self, buffer: Any, stride: int, x: int, y: int) -> bytes:
        """One access unit for the width x height rectangle at pixel (x, y)
        of `buffer` (BGRX rows of `stride` bytes, e.g. the MIT-SHM capture,
        read in place); a keyframe if needs_key."""
        import av  # see the header

        stage = self.stages
        try:
            if self._context is None:
                self._context, self._pts = self._open(), 0
            started = time.perf_counter()
            frame = self._convert(buffer, stride, x, y)
            converted = time.perf_counter()
            # Every frame its own timestamp: the converter's frame is reused,
            # and a pts left from the last encode gives x264's rate control
            # zero-length frames (measured: 0.8 kB frames of blocks).
            frame.pts, self._pts = self._pts, self._pts + 1
            packets = self._context.encode(frame)
            stage["convert"] = stage.get("convert", 0.0) + converted - started
            stage["encode"] = stage.get("encode", 0.0) + time.perf_counter() - converted
        except (av.FFmpegError, ValueError) as exc:
            self._context = None
            raise H264Error(f"H.264 encode failed: {exc}") from None
        return b"".join(bytes(packet) for packet in packets)

    def _convert(self, buffer: Any, stride: int, x: int, y: int) -> av.VideoFrame:
        """The rectangle as a yuv420p frame of the coded size."""
        import av  # see the header

        from media.swscale import check_inside
        from media.yuv_bands import BandYuvConverter

        if self.direct:
            if self._converter is None:
                self._converter = BandYuvConverter(self.width, self.height, self.coded)
            return self._converter.convert(buffer, stride, x, y)
        # PyAV's path (no bundled libswscale): the rectangle's rows into a
        # bgr0 frame, then PyAV's conversion into a new yuv420p frame.
        start = check_inside(buffer, stride, (x, y, self.width, self.height))
        view, row = memoryview(buffer).cast("B"), self.width * BYTES_PER_PIXEL
        frame = av.VideoFrame(self.coded[0], self.coded[1], "bgr0")
        plane = frame.planes[0]
        if plane.line_size == stride and start == 0 and self.coded == (self.width, self.height):
            plane.update(view[: stride * self.height])
        else:
            rows = b"".join(view[start + i * stride : start + i * stride + row] for i in range(self.height))
            padded = Image.frombytes("RGBX", (self.width, self.height), rows)
            canvas = Image.new("RGBX", (plane.line_size // BYTES_PER_PIXEL, self.coded[1]))
            canvas.paste(padded, (0, 0))
            plane.update(canvas.tobytes())
        return frame.reformat(format="yuv420p", threads=THREADS)

    def close(self) -> None:
        """Drop the codec context and the conversion buffers."""
        self._context = None
        if self._converter is not None:
            self._converter.close()
            self._converter = None

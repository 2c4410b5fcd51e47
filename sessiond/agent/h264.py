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
"""H264Encoder: BGRX rectangles in, Annex B access units out."""

from __future__ import annotations

from fractions import Fraction

import av
from PIL import Image

from protocol.video import coded_size

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

    def __init__(self, width: int, height: int, bitrate: int = DEFAULT_BITRATE) -> None:
        self.width = width
        self.height = height
        self.coded = coded_size(width, height)
        self.bitrate = check_bitrate(bitrate)
        self._context: av.VideoCodecContext | None = None
        self._line: int = 0

    def _open(self) -> av.VideoCodecContext:
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
        try:
            if self._context is None:
                self._context = self._open()
            frame = av.VideoFrame(self.coded[0], self.coded[1], "bgr0")
            plane = frame.planes[0]
            if plane.line_size == self.width * BYTES_PER_PIXEL and self.coded == image.size:
                plane.update(image.tobytes())  # rows already as the plane lays them out: one copy
            else:
                padded = Image.new("RGBX", (plane.line_size // BYTES_PER_PIXEL, self.coded[1]))
                padded.paste(image, (0, 0))
                plane.update(padded.tobytes())
            packets = self._context.encode(frame.reformat(format="yuv420p", threads=THREADS))
        except (av.FFmpegError, ValueError) as exc:
            self._context = None
            raise H264Error(f"H.264 encode failed: {exc}") from None
        return b"".join(bytes(packet) for packet in packets)

    def close(self) -> None:
        """Drop the codec context."""
        self._context = None

# The native client's H.264 decoders: one per video stream of the display
# channel (docs/protocol.md section 7a), through PyAV's bundled FFmpeg.
#
# Why bounded this carefully: the H.264 bytes come from the server and an
# H.264 decoder allocates what the stream's SPS announces, not what the
# REGION says.  So before anything is decoded: the REGION header is checked
# (protocol/video.py: stream id < MAX_VIDEO_STREAMS, w and h within
# MAX_VIDEO_SIDE / MAX_VIDEO_PIXELS, the unit within MAX_VIDEO_PAYLOAD);
# at most MAX_VIDEO_STREAMS decoders exist (one per id); each decoder is
# opened with FFmpeg's max_pixels set to the stream's coded size plus
# the decoder's macroblock and edge alignment, so an SPS announcing a larger
# picture fails inside FFmpeg before its buffers are allocated; and a
# decoded picture of any other size than the stream's is refused.
#
# Decoder rules: a KEY unit replaces any decoder of its id with a new one
# for the region's w x h; a non-KEY unit must continue a stream of the same
# w x h (else it is an error); END frees the decoder.  A frame whose unit
# yields no picture (it should not happen with zerolatency) leaves the
# framebuffer as it was.
#
# The decoded picture becomes RGB through media/swscale.py (in place, into
# one buffer per stream, cropped to w x h by the conversion itself):
# VideoFrame.to_image cost 11 ms of a 16 ms 1080p frame.  Only the bands
# of rows that differ from the stream's previous picture are converted
# (media/rgb_bands.py), and changed_rows says which, so the caller pastes
# only those.
#
# PyAV (and media/swscale.py, media/rgb_bands.py, which load it) is imported
# with the first H264 unit, not with this module: importing it costs the
# native viewer about 0.2 s of start-up, before its first pixels, and most
# sessions never send video.
"""VideoDecoders: H264 regions to RGB tiles, per stream id, within bounds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PIL import Image

from protocol.frozen import plain_dataclass
from protocol.limits import MAX_VIDEO_STREAMS
from protocol.video import VideoError, coded_size, parse

if TYPE_CHECKING:
    import av

    from media.rgb_bands import BandRgbConverter

# max_pixels slack over the coded size: FFmpeg checks the macroblock-aligned
# picture (16 px) plus its edge, measured: up to 1.28x at 200 x 130.
ALIGN_SLACK_W = 32
ALIGN_SLACK_H = 64
# Slice threads only: the agent's encoder cuts each picture into that many
# slices, decoded in parallel; frame threading would hold frames back
# (latency) and allocate pictures per thread.
DECODER_THREADS = 2
# Threads of the YUV -> RGB conversion of a decoded picture (~1/3 of a frame's cost).
CONVERT_THREADS = 2


class VideoDecodeError(ValueError):
    """An H264 region cannot be applied."""


def max_pixels(w: int, h: int) -> int:
    """FFmpeg's max_pixels for a stream of w x h."""
    cw, ch = coded_size(w, h)
    return (cw + ALIGN_SLACK_W) * (ch + ALIGN_SLACK_H)


@plain_dataclass
class _Stream:
    size: tuple[int, int]
    context: av.VideoCodecContext
    frames: int = 0
    rgb: BandRgbConverter | None = None  # made at the first picture (None without libswscale)


class VideoDecoders:
    """The decoders of one display channel's video streams."""

    def __init__(self) -> None:
        self._streams: dict[int, _Stream] = {}
        self.frames = 0  # pictures decoded, all streams (tests, stats)
        # Pictures to RGB in place (media/swscale.py), else PyAV's to_image (benches compare both);
        # None: not known yet (found out with the first picture, when PyAV is loaded).
        self._in_place: bool | None = None
        # Only the rows that changed are converted (media/rgb_bands.py); the benches turn it off to compare.
        self.banded = True
        # (first row, rows) of the last picture that may differ from the stream's previous one; None: all.
        self.changed_rows: list[tuple[int, int]] | None = None

    @property
    def in_place(self) -> bool:
        """Whether pictures become RGB in place through libswscale."""
        if self._in_place is None:
            from media import swscale  # noqa: PLC0415 - lazy: see the header

            self._in_place = swscale.available()
        return self._in_place

    @in_place.setter
    def in_place(self, value: bool) -> None:
        self._in_place = value

    @property
    def open_streams(self) -> int:
        """How many decoders exist now."""
        return len(self._streams)

    def reset(self) -> None:
        """Free every decoder (new channel, new desktop size)."""
        self._streams.clear()

    def decode(self, payload: bytes, w: int, h: int, order: str = "RGB") -> Image.Image | None:
        """The w x h RGB picture of an H264 region, or None for END (or a
        unit without a picture); VideoDecodeError if it is invalid.  The
        picture may share its pixels with the stream's next one: paste it
        (or copy it) before the next decode. ORDER "BGR" gives it with red
        and blue exchanged (the client framebuffer's order), in the same pass."""
        try:
            unit = parse(payload, w, h)
        except VideoError as exc:
            raise VideoDecodeError(str(exc)) from None
        if unit.end:
            self._streams.pop(unit.stream, None)
            return None
        stream = self._streams.get(unit.stream)
        if unit.key:
            self._streams.pop(unit.stream, None)
            if len(self._streams) >= MAX_VIDEO_STREAMS:  # cannot happen with ids < MAX: kept as a guard
                raise VideoDecodeError("too many video streams")
            stream = self._streams[unit.stream] = _Stream((w, h), self._open(w, h))
        elif stream is None:
            raise VideoDecodeError(f"H264 unit continues stream {unit.stream}, which has no KEY")
        elif stream.size != (w, h):
            raise VideoDecodeError(f"H264 unit of {w}x{h} continues a stream of {stream.size[0]}x{stream.size[1]}")
        import av  # noqa: PLC0415 - lazy: see the header (loaded by _open already)

        try:
            frames = stream.context.decode(av.Packet(unit.data))
        except (av.FFmpegError, ValueError) as exc:
            self._streams.pop(unit.stream, None)
            raise VideoDecodeError(f"H264 data does not decode: {exc}") from None
        if not frames:
            return None
        frame = frames[-1]
        if (frame.width, frame.height) != coded_size(w, h):
            self._streams.pop(unit.stream, None)
            raise VideoDecodeError(f"H264 picture is {frame.width}x{frame.height}, the stream is {w}x{h}")
        stream.frames += 1
        self.frames += 1
        self.changed_rows = None
        from media import swscale  # noqa: PLC0415 - lazy: see the header
        from media.rgb_bands import BandRgbConverter  # noqa: PLC0415

        if self.in_place and frame.format.name == swscale.YUV_FORMAT:
            if stream.rgb is None:
                stream.rgb = BandRgbConverter(w, h)
                stream.rgb.banded = stream.rgb.banded and self.banded
            rgb = stream.rgb.convert(frame)  # rewritten by the stream's next picture: the caller pastes it first
            self.changed_rows = stream.rgb.changed_rows()
            return Image.frombuffer("RGB", (w, h), rgb, "raw", order, stream.rgb.stride, 1)
        image = frame.to_image(threads=CONVERT_THREADS)
        if order != "RGB":
            image = Image.frombytes("RGB", image.size, image.tobytes(), "raw", order)
        return image if image.size == (w, h) else image.crop((0, 0, w, h))

    @staticmethod
    def _open(w: int, h: int) -> av.VideoCodecContext:
        import av  # noqa: PLC0415 - lazy: see the header

        context = av.CodecContext.create("h264", "r")
        context.thread_count = DECODER_THREADS
        context.thread_type = "SLICE"
        context.options = {"max_pixels": str(max_pixels(w, h))}
        return context

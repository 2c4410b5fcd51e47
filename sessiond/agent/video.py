# Video regions: an area of a surface that changes every frame for a while
# (a video player, an animation) goes out as H.264 instead of stills, and
# losslessly again once it stops changing.
#
# Why: a 1080p video frame as JPEG is ~150-300 kB (40-70 Mbit/s at 30 fps)
# and as lossless far more; H.264 sends the difference between frames, ~12
# kB a frame at 3 Mbit/s.  But H.264 is lossy and a still screen must end
# pixel-exact, so a stream lives only while its area keeps changing: after
# about three of its frame intervals without damage there (idle_after(): 0.2
# to 1 s) the area is sent once more through the
# ordinary lossless path (PALETTE/PNG/RAW_LZ4, never JPEG) and the stream
# ends (an END unit frees the client's decoder).
#
# Detection, per surface (the desktop, or a window in seamless mode): the
# largest damaged rectangle of a frame, if at least MIN_PIXELS, that covers
# nearly the same area as the previous frame's (OVERLAP) counts a frame;
# START_FRAMES such frames in a row, each within GAP_SECONDS of the last,
# make a candidate, which becomes a stream only if it looks like a picture
# (more than PHOTO_COLOURS colours in a sample): a scrolling terminal also
# changes every frame, but the COPY path sends it exactly and cheaper.
# A candidate that fails the test is not retried for RETRY_FRAMES frames.
#
# Wire state (docs/protocol.md section 7a): each stream has an id below
# MAX_VIDEO_STREAMS, unique per display channel; its first unit (and the
# first after reset(): a new client, a refresh, a new bitrate) is a KEY.
"""VideoRegions: per-surface video detection, H.264 streams, lossless refinement."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import field
from typing import Any

from PIL import Image

from protocol.frozen import plain_dataclass
from protocol.limits import MAX_VIDEO_PAYLOAD, MAX_VIDEO_STREAMS
from protocol.messages import Encoding, Region
from protocol.video import VideoError, check_rect, pack
from sessiond.agent.h264 import DEFAULT_BITRATE, H264Encoder, H264Error, check_bitrate
from sessiond.agent.video_stats import StreamStats

Rect = tuple[int, int, int, int]
# Where a surface rectangle's pixels lie: (buffer, stride, x, y), BGRX rows
# of `stride` bytes with the rectangle's top-left at pixel (x, y) -- the
# MIT-SHM capture itself, so the encoder reads it in place.
Pixels = tuple[Any, int, int, int]

# A damaged rectangle smaller than this (pixels) is never a video.
MIN_PIXELS = 256 * 144
# Frames in a row with about the same large area damaged before a stream starts.
START_FRAMES = 6
# Two counted frames further apart than this are not "in a row" (a loaded
# machine's player may manage only a few frames a second).
GAP_SECONDS = 0.5
# Intersection over union of two frames' areas for "about the same area".
OVERLAP = 0.8
# Without damage in its area for IDLE_FRAMES of its own frame intervals (at
# least IDLE_SECONDS, at most IDLE_MAX_SECONDS), a stream is refined
# losslessly and ends: a slow player must not be refined between frames.
IDLE_SECONDS = 0.2
IDLE_FRAMES = 3
IDLE_MAX_SECONDS = 1.0
# Weight of the newest gap in a stream's frame interval (moving average).
INTERVAL_WEIGHT = 0.25
# The picture test: more distinct colours than this in a sample of the area.
PHOTO_COLOURS = 256
PHOTO_SAMPLE_STEP = 8
# Frames a failed candidate waits before it is tested again.
RETRY_FRAMES = 60


def _area(rect: Rect) -> int:
    return rect[2] * rect[3]


def intersect(a: Rect, b: Rect) -> Rect | None:
    """The common part of two rectangles, or None."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    return (x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None


def subtract(rect: Rect, hole: Rect) -> list[Rect]:
    """rect minus hole, as up to four rectangles (bands above, left, right, below)."""
    common = intersect(rect, hole)
    if common is None:
        return [rect]
    x, y, w, h = rect
    cx, cy, cw, ch = common
    out = []
    if cy > y:
        out.append((x, y, w, cy - y))
    if cx > x:
        out.append((x, cy, cx - x, ch))
    if cx + cw < x + w:
        out.append((cx + cw, cy, x + w - cx - cw, ch))
    if cy + ch < y + h:
        out.append((x, cy + ch, w, y + h - cy - ch))
    return out


def _similar(a: Rect, b: Rect) -> bool:
    common = intersect(a, b)
    if common is None:
        return False
    return _area(common) >= OVERLAP * (_area(a) + _area(b) - _area(common))


@plain_dataclass
class _Watch:
    """Detection state of one surface."""

    rect: Rect | None = None
    frames: int = 0
    last_at: float = 0.0
    hold: int = 0  # frames left before a failed candidate is tested again


@plain_dataclass
class VideoStream:
    """One H.264 stream on a surface rectangle."""

    stream_id: int
    surface: Hashable
    rect: Rect
    encoder: H264Encoder
    last_damage_at: float
    interval: float = 0.0  # moving average of the gaps between damaged frames
    frames: int = 0
    sent_bytes: int = field(default=0)
    stats: StreamStats | None = None  # per-stage times, reported to the log


def idle_after(stream: VideoStream) -> float:
    """Seconds without damage after which the stream is refined and ends."""
    return min(IDLE_MAX_SECONDS, max(IDLE_SECONDS, IDLE_FRAMES * stream.interval))


class VideoRegions:
    """Which damaged areas go out as video, and the streams that carry them."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.enabled = False  # the client announced H.264 (VIDEO_CAPS)
        self._bitrate = DEFAULT_BITRATE
        self._watch: dict[Hashable, _Watch] = {}
        self.streams: dict[Hashable, VideoStream] = {}

    @property
    def bitrate(self) -> int:
        """Bits per second of every stream (the adaptive-quality knob)."""
        return self._bitrate

    def set_bitrate(self, bitrate: int) -> None:
        """New bitrate for every stream; running ones restart with a keyframe."""
        self._bitrate = check_bitrate(bitrate)
        for stream in self.streams.values():
            stream.encoder.set_bitrate(self._bitrate)

    def reset(self) -> None:
        """The client's decoders are unknown (new client, refresh): every
        stream's next unit is a keyframe."""
        for stream in self.streams.values():
            stream.encoder.reset()

    def forget(self, surface: Hashable | None = None) -> None:
        """Drop the streams and detection of `surface` (all if None) without
        sending anything: the surface went away or the channel closed."""
        for key in [surface] if surface is not None else list(self.streams):
            stream = self.streams.pop(key, None)
            if stream is not None:
                stream.encoder.close()
            self._watch.pop(key, None)
        if surface is None:
            self._watch.clear()

    def due(self, surface: Hashable) -> bool:
        """True if the surface's stream has been idle long enough to refine."""
        stream = self.streams.get(surface)
        return stream is not None and self.clock() - stream.last_damage_at >= idle_after(stream)

    def next_due_in(self) -> float | None:
        """Seconds until the next stream becomes due (0 if one is), None if none streams."""
        if not self.streams:
            return None
        now = self.clock()
        return max(0.0, min(s.last_damage_at + idle_after(s) - now for s in self.streams.values()))

    def _free_id(self) -> int | None:
        used = {stream.stream_id for stream in self.streams.values()}
        return next((i for i in range(MAX_VIDEO_STREAMS) if i not in used), None)

    def observe(self, surface: Hashable, rects: list[Rect], size: tuple[int, int],
                sample: Callable[[Rect], Image.Image]) -> VideoStream | None:  # fmt: skip
        """Count this frame's damage of surface (size: its width, height);
        return a new stream if one starts now.  `sample(rect)` gives the
        area's pixels for the picture test."""
        if not self.enabled or surface in self.streams:
            return None
        now = self.clock()
        watch = self._watch.setdefault(surface, _Watch())
        if watch.hold:
            watch.hold -= 1
        largest = max(rects, key=_area, default=None)
        if largest is None or _area(largest) < MIN_PIXELS:
            watch.rect, watch.frames = None, 0
            return None
        if watch.rect is not None and _similar(watch.rect, largest) and now - watch.last_at <= GAP_SECONDS:
            watch.frames += 1
        else:
            watch.frames = 1
        watch.rect, watch.last_at = largest, now
        if watch.frames < START_FRAMES or watch.hold:
            return None
        stream_id = self._free_id()
        if stream_id is None:
            return None
        clipped = intersect(largest, (0, 0, size[0], size[1]))
        if clipped is None:
            return None
        try:
            check_rect(clipped[2], clipped[3])
        except VideoError:
            watch.hold = RETRY_FRAMES  # larger than any client accepts: stays stills
            return None
        image = sample(clipped)
        small = image.reduce(PHOTO_SAMPLE_STEP) if min(image.size) >= PHOTO_SAMPLE_STEP else image
        if small.getcolors(PHOTO_COLOURS) is not None:
            watch.hold = RETRY_FRAMES  # few colours: text or UI, exact paths do better
            return None
        self._watch.pop(surface, None)
        stream = VideoStream(stream_id, surface, clipped, H264Encoder(clipped[2], clipped[3], self._bitrate), now)
        stream.stats = StreamStats(self.clock, clipped[2:])
        self.streams[surface] = stream
        return stream

    def split(self, surface: Hashable, rects: list[Rect]) -> tuple[bool, list[Rect]]:
        """(whether the surface's stream area was damaged, the rectangles
        left for the ordinary path)."""
        stream = self.streams.get(surface)
        if stream is None:
            return False, rects
        hit = False
        rest: list[Rect] = []
        for rect in rects:
            if intersect(rect, stream.rect) is not None:
                hit = True
                rest.extend(subtract(rect, stream.rect))
            else:
                rest.append(rect)
        if hit:
            now = self.clock()
            gap = now - stream.last_damage_at
            old = stream.interval
            stream.interval = gap if not old else old + INTERVAL_WEIGHT * (gap - old)
            stream.last_damage_at = now
        return hit, rest

    def covering(self, surface: Hashable, rects: list[Rect], size: tuple[int, int]) -> Rect | None:
        """The surface's stream rectangle if it is part of the w x h `size`
        and holds every damaged rectangle (the frame needs no other pixels,
        so only that area need be captured); else None."""
        stream = self.streams.get(surface)
        if stream is None or not rects or stream.rect == (0, 0, *size):
            return None
        if intersect(stream.rect, (0, 0, *size)) != stream.rect:
            return None
        return stream.rect if all(intersect(rect, stream.rect) == rect for rect in rects) else None

    def note(self, surface: Hashable, stage: str, seconds: float) -> None:
        """Count time spent for the surface's stream (if it has one) in a stage outside this module."""
        stream = self.streams.get(surface)
        if stream is not None and stream.stats is not None:
            stream.stats.add(stage, seconds)

    def note_sent(self, messages: list[Any], seconds: float) -> None:
        """Count the send of a frame's messages for the streams whose units it carried."""
        for message in messages:
            if isinstance(message, Region) and message.encoding == Encoding.H264:
                for stream in self.streams.values():
                    if stream.stats is not None and (stream.rect[0], stream.rect[1]) == (message.x, message.y):
                        stream.stats.add("send", seconds)

    def encode(self, stream: VideoStream, where: Pixels) -> Region | None:
        """The H264 region of the stream's area, read from `where`; None if
        the encoder failed or the unit would exceed MAX_VIDEO_PAYLOAD (the
        caller then ends the stream)."""
        key = stream.encoder.needs_key
        try:
            unit = stream.encoder.encode_pixels(*where)
        except H264Error:
            return None
        finally:
            if stream.stats is not None:
                for stage, seconds in stream.encoder.stages.items():
                    stream.stats.add(stage, seconds)
            stream.encoder.stages.clear()
        if not unit or len(unit) > MAX_VIDEO_PAYLOAD:
            return None
        stream.frames += 1
        stream.sent_bytes += len(unit)
        if stream.stats is not None:
            stream.stats.frame(len(unit), key)
            stream.stats.tick(stream.stream_id, stream.encoder.bitrate)
        x, y, w, h = stream.rect
        return Region(x, y, w, h, Encoding.H264, pack(stream.stream_id, unit, key=key))

    def end(self, surface: Hashable) -> tuple[VideoStream, Region] | None:
        """End the surface's stream: (the stream, its END region), or None."""
        stream = self.streams.pop(surface, None)
        if stream is None:
            return None
        stream.encoder.close()
        if stream.stats is not None:
            stream.stats.tick(stream.stream_id, stream.encoder.bitrate, final=True)
        x, y, w, h = stream.rect
        return stream, Region(x, y, w, h, Encoding.H264, pack(stream.stream_id, b"", end=True))


def image_of(where: Pixels, w: int, h: int) -> Image.Image:
    """The w x h rectangle at `where` as an RGBX-mode image of BGRX bytes
    (full rows of the buffer are not copied)."""
    buffer, stride, x, y = where
    rows = Image.frombuffer("RGBX", (stride // 4, h), memoryview(buffer).cast("B")[y * stride : (y + h) * stride],
                            "raw", "RGBX", stride, 1)  # fmt: skip
    return rows if (x, w) == (0, stride // 4) else rows.crop((x, 0, x + w, h))


def video_frame(video: VideoRegions, surface: Hashable, rects: list[Rect], size: tuple[int, int],
                pixels: Callable[[Rect], Pixels],
                encode_rest: Callable[[list[Rect], bool], list[Region]],
                forget: Callable[[], None]) -> list[Region]:  # fmt: skip
    """The regions of one frame of `surface`: its stream's H264 unit (or the
    stream's end and its lossless refinement), then the other damaged
    rectangles through `encode_rest(rects, lossless)`.  `pixels(rect)`:
    where the surface's pixels of rect lie (BGRX); `forget()`: drop the
    encoder's history of the surface (the client's copy of the stream area
    is lossy and not what the history says)."""
    started = time.perf_counter()
    out: list[Region] = []
    stream = video.streams.get(surface)
    if stream is not None and intersect(stream.rect, (0, 0, size[0], size[1])) != stream.rect:
        ended = video.end(surface)  # the surface shrank under the stream: it is resent whole anyway
        if ended is not None:
            out.append(ended[1])
        forget()
        stream = None
    if stream is None and rects:
        stream = video.observe(surface, rects, size, lambda rect: image_of(pixels(rect), rect[2], rect[3]))
        if stream is not None:
            forget()
    if stream is None:
        return out + encode_rest(rects, False) if rects else out
    hit, rects = video.split(surface, rects)
    refine = False
    if hit:
        detected = time.perf_counter()
        video.note(surface, "detect", detected - started)
        where = pixels(stream.rect)  # a window's capture (the desktop's is taken before, whole)
        video.note(surface, "capture", time.perf_counter() - detected)
        region = video.encode(stream, where)
        if region is not None:
            out.append(region)
        else:
            refine = True  # the encoder failed or overflowed: stills from now on
    elif video.due(surface):
        refine = True
    if refine:
        ended = video.end(surface)
        if ended is not None:
            out.append(ended[1])
            forget()
            out.extend(encode_rest([ended[0].rect], True))
    if rects:
        out.extend(encode_rest(rects, False))
    return out

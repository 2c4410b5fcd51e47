# The H264 region encoding's payload, shared by the agent's video encoder
# and the clients' decoders (docs/protocol.md section 7a).
#
# Why a header of our own in front of the H.264 data: a REGION says where
# pixels go, not which decoder state they continue.  A video stream has
# state (reference frames), so every H264 REGION names its stream (a small
# id, at most MAX_VIDEO_STREAMS per display channel) and says whether it
# starts the stream afresh (KEY: the client drops any decoder of that id and
# makes a new one for this w x h) or ends it (END: the decoder is freed).
#
# Layout: u8 stream id (< MAX_VIDEO_STREAMS), u8 flags (bit 0 KEY, bit 1
# END, others zero), then one H.264 access unit in Annex B byte-stream form
# (start codes; a KEY unit carries SPS and PPS in band).  Coded size: w and h
# rounded up to even (yuv420p); the client crops the decoded picture to w x h.
# END carries no access unit; any other region carries a non-empty one of at
# most MAX_VIDEO_PAYLOAD bytes.  All checks here run before any decoder or
# picture is allocated.
"""H264 region header (stream id, KEY/END flags) and its bounds."""

from __future__ import annotations

import struct
from typing import Final

from protocol.frozen import frozen_dataclass
from protocol.limits import MAX_VIDEO_PAYLOAD, MAX_VIDEO_PIXELS, MAX_VIDEO_SIDE, MAX_VIDEO_STREAMS

HEADER: Final = struct.Struct(">BB")
FLAG_KEY: Final = 0x01
FLAG_END: Final = 0x02
_KNOWN_FLAGS: Final = FLAG_KEY | FLAG_END


class VideoError(ValueError):
    """An H264 region is malformed or out of bounds."""


@frozen_dataclass
class VideoUnit:
    """One parsed H264 region payload."""

    stream: int
    key: bool
    end: bool
    data: bytes


def coded_size(w: int, h: int) -> tuple[int, int]:
    """The encoded picture's size for a w x h stream rectangle (even sides)."""
    return w + (w & 1), h + (h & 1)


def check_rect(w: int, h: int) -> None:
    """VideoError unless a w x h stream fits MAX_VIDEO_SIDE and MAX_VIDEO_PIXELS."""
    if not (1 <= w <= MAX_VIDEO_SIDE and 1 <= h <= MAX_VIDEO_SIDE):
        raise VideoError(f"video stream {w}x{h} exceeds MAX_VIDEO_SIDE ({MAX_VIDEO_SIDE})")
    if w * h > MAX_VIDEO_PIXELS:
        raise VideoError(f"video stream {w}x{h} exceeds MAX_VIDEO_PIXELS ({MAX_VIDEO_PIXELS})")


def pack(stream: int, data: bytes, *, key: bool = False, end: bool = False) -> bytes:
    """The payload of an H264 region."""
    flags = (FLAG_KEY if key else 0) | (FLAG_END if end else 0)
    return HEADER.pack(stream, flags) + data


def parse(payload: bytes, w: int, h: int) -> VideoUnit:
    """Check and split an H264 region payload for a w x h rectangle."""
    check_rect(w, h)
    if len(payload) < HEADER.size:
        raise VideoError("H264 data lacks its stream header")
    stream, flags = HEADER.unpack_from(payload)
    if stream >= MAX_VIDEO_STREAMS:
        raise VideoError(f"H264 stream id {stream} is not below MAX_VIDEO_STREAMS ({MAX_VIDEO_STREAMS})")
    if flags & ~_KNOWN_FLAGS:
        raise VideoError(f"H264 flags {flags:#04x} has unknown bits")
    data = payload[HEADER.size :]
    end = bool(flags & FLAG_END)
    key = bool(flags & FLAG_KEY)
    if end and (key or data):
        raise VideoError("an H264 END carries no access unit and no KEY flag")
    if not end and not data:
        raise VideoError("H264 region without an access unit")
    if len(data) > MAX_VIDEO_PAYLOAD:
        raise VideoError(f"H264 access unit of {len(data)} bytes exceeds MAX_VIDEO_PAYLOAD ({MAX_VIDEO_PAYLOAD})")
    return VideoUnit(stream, key, end, bytes(data))

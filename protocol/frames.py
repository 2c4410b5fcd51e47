# Framing: the 8-byte header and an incremental, bounded frame decoder.
#
# Why: every byte from the network passes through here first, so this is where
# sizes are checked before memory is committed. The decoder reads the header,
# refuses an oversize length at once (before any of the payload arrives), and
# keeps one growing bytearray with a read offset that is compacted only
# occasionally, so a stream of small frames costs no copy of the whole buffer
# per frame (unlike conch's `buf = buf[n:]`).
"""Frame header encoding and the incremental FrameDecoder."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass  # compiled, not protocol.frozen: one object per message (protocol/frozen.py)
from typing import Final

from protocol.errors import ProtocolError, ReasonCode
from protocol.limits import (
    HEADER_SIZE,
    MAX_CHANNEL_ID,
    MAX_CONTROL_PAYLOAD,
    MAX_FRAME_PAYLOAD,
)

__all__ = ["HEADER", "Frame", "FrameDecoder", "encode_frame"]

# u32 length, u16 channel, u8 type, u8 flags; network byte order.
HEADER: Final = struct.Struct(">IHBB")

# Compact the buffer once this many consumed bytes sit before the read offset
# (and they are at least half the buffer): amortised O(1) per byte.
_COMPACT_THRESHOLD: Final = 64 * 1024

_U16_MAX: Final = 0xFFFF
_U8_MAX: Final = 0xFF


def frame_header(channel: int, type_: int, length: int, flags: int = 0) -> bytes:
    """The 8-byte header of a frame with a LENGTH-byte payload; ValueError if
    a field is out of its wire range or the payload too large for the channel."""
    if not 0 <= channel <= _U16_MAX:
        raise ValueError(f"channel {channel} outside u16")
    if not 0 <= type_ <= _U8_MAX:
        raise ValueError(f"type {type_} outside u8")
    if not 0 <= flags <= _U8_MAX:
        raise ValueError(f"flags {flags} outside u8")
    if length > MAX_FRAME_PAYLOAD:
        raise ValueError(f"payload of {length} bytes exceeds MAX_FRAME_PAYLOAD")
    if channel == 0 and length > MAX_CONTROL_PAYLOAD:
        raise ValueError(f"control payload of {length} bytes exceeds MAX_CONTROL_PAYLOAD")
    return HEADER.pack(length, channel, type_, flags)


def encode_frame(channel: int, type_: int, payload: bytes | bytearray | memoryview, flags: int = 0) -> bytes:
    """Return header + payload; ValueError if a field is out of its wire range."""
    # join copies the payload exactly once, whatever bytes-like object it is.
    return b"".join((frame_header(channel, type_, len(payload), flags), payload))


@dataclass(frozen=True)
class Frame:
    """One decoded frame: header fields and its raw payload."""

    channel: int
    type: int
    flags: int
    payload: bytes


class FrameDecoder:
    """Turns a byte stream into Frames, refusing oversize lengths from the header.

    `feed()` is the one-call API. `append()` + `next_frame()` let a caller
    act on each frame before the next one is parsed (and so keep the frames
    that preceded a violation).

    `limit_for(channel)`, if given, replaces the two fixed limits: it returns
    the largest payload acceptable on `channel` now, or raises ProtocolError
    to refuse the frame from its header alone (the Connection uses it to
    refuse data channels before authentication and to bound each channel by
    its kind).
    """

    def __init__(
        self,
        max_payload: int = MAX_FRAME_PAYLOAD,
        max_control_payload: int = MAX_CONTROL_PAYLOAD,
        limit_for: Callable[[int], int] | None = None,
    ) -> None:
        self._max_payload = max_payload
        self._max_control_payload = min(max_control_payload, max_payload)
        self._limit_for = limit_for
        self._buf = bytearray()
        self._pos = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buf) - self._pos

    def append(self, data: bytes) -> None:
        """Add received bytes to the buffer without parsing them."""
        if self._pos >= _COMPACT_THRESHOLD and self._pos * 2 >= len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_frame(self) -> Frame | None:
        """Return the next complete frame, or None if more bytes are needed.

        Raises ProtocolError(FRAME_TOO_LARGE) as soon as a header announcing
        too large a payload is complete, and ProtocolError(UNKNOWN_CHANNEL)
        for a channel id above MAX_CHANNEL_ID (checked from the header too).
        """
        available = len(self._buf) - self._pos
        if available < HEADER_SIZE:
            return None
        length, channel, type_, flags = HEADER.unpack_from(self._buf, self._pos)
        # Fixed bounds first (what any peer may announce), then the caller's
        # bound for this channel in its current state.
        limit = self._max_control_payload if channel == 0 else self._max_payload
        if length <= limit and channel > MAX_CHANNEL_ID:
            raise ProtocolError(ReasonCode.UNKNOWN_CHANNEL, f"channel id {channel} > {MAX_CHANNEL_ID}")
        if length <= limit and self._limit_for is not None:
            limit = self._limit_for(channel)
        if length > limit:
            raise ProtocolError(
                ReasonCode.FRAME_TOO_LARGE,
                f"frame on channel {channel} announces {length} bytes, limit {limit}",
            )
        if available < HEADER_SIZE + length:
            return None
        start = self._pos + HEADER_SIZE
        with memoryview(self._buf) as view:  # one copy, released before any resize
            payload = bytes(view[start : start + length])
        self._pos = start + length
        if self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        return Frame(channel=channel, type=type_, flags=flags, payload=payload)

    def feed(self, data: bytes) -> list[Frame]:
        """Append data and return every complete frame now available."""
        self.append(data)
        frames: list[Frame] = []
        while True:
            frame = self.next_frame()
            if frame is None:
                return frames
            frames.append(frame)

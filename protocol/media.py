# Binary messages of the display and input channels, and WINDOW_UPDATE.
#
# Why binary: these are the hot paths (every keystroke, every damaged
# rectangle), so each is a fixed big-endian struct, decoded with one
# struct.unpack and checked for exact length. A REGION's pixel data is kept as
# opaque bytes: decoding pixels is the display pipeline's job, but its size is
# bounded here (MAX_REGION_RAW_BYTES, and the lz4 size prefix is checked
# against w*h*3 before anyone decompresses it). Each message is declared once
# (protocol/schema.py derives checks, struct layout and bounds).
"""Display and input messages (fixed binary layouts) and WINDOW_UPDATE."""

from __future__ import annotations

import dataclasses
import struct
from typing import ClassVar, Final

from protocol import video
from protocol.base import ChannelKind, Encoding, Message, Sender
from protocol.limits import MAX_FRAME_PAYLOAD, MAX_KEYSYM, MAX_REGION_RAW_BYTES
from protocol.schema import BYTES, CUSTOM, FLAG, I16, U8, U16, U32, Declared, message, shared, wire

# lz4.block.compress(..., store_size=True) prefixes the uncompressed size, u32 little-endian.
_LZ4_SIZE = struct.Struct("<I")
_FILL_BYTES = 3
_COPY_BYTES = 4  # source x, y (u16 each)
_REGION_HEADER = 9  # x, y, w, h (u16 each) and the encoding (u8)

DISPLAY: Final = ChannelKind.DISPLAY
INPUT: Final = ChannelKind.INPUT
SIDE: Final = U16.within(1, U16.high)  # a width or height of at least one pixel


@shared
class _SeqMessage(Declared):
    """Messages whose payload is one u32 sequence number."""

    seq: int = wire(U32)


@shared
class _ScreenSize(Declared):
    """The two width x height display messages (u16 each, at least 1)."""

    KIND: ClassVar[ChannelKind | None] = DISPLAY
    width: int = wire(SIDE)
    height: int = wire(SIDE)


@message(0x01, "DESKTOP_SIZE", kind=DISPLAY, sender=Sender.SERVER)
class DesktopSize(_ScreenSize):
    """The session desktop is width x height pixels (server -> client)."""


@message(0x02, "REGION", kind=DISPLAY, sender=Sender.SERVER)
class Region(Declared):
    """An updated rectangle and its encoded pixels (server -> client)."""

    HEADER_SIZE: ClassVar[int] = _REGION_HEADER
    x: int = wire(U16)
    y: int = wire(U16)
    w: int = wire(SIDE)
    h: int = wire(SIDE)
    encoding: Encoding = wire(dataclasses.replace(U8, enum=Encoding))
    data: bytes = wire(BYTES(MAX_FRAME_PAYLOAD - _REGION_HEADER))

    def check(self) -> None:
        """FILL is 3 bytes, COPY 4; H264 is bounded by protocol/video.py
        (MAX_VIDEO_SIDE, MAX_VIDEO_PIXELS, MAX_VIDEO_PAYLOAD); other encodings by
        MAX_REGION_RAW_BYTES, and RAW_LZ4's size prefix must be w*h*3."""
        if self.encoding is Encoding.FILL:
            if len(self.data) != _FILL_BYTES:
                raise ValueError("FILL data must be 3 bytes (R, G, B)")
            return
        if self.encoding is Encoding.COPY:
            if len(self.data) != _COPY_BYTES:
                raise ValueError("COPY data must be 4 bytes (source x, y)")
            return
        if self.encoding is Encoding.H264:
            video.parse(self.data, self.w, self.h)  # VideoError is a ValueError
            return
        if self.raw_size > MAX_REGION_RAW_BYTES:
            raise ValueError(f"region {self.w}x{self.h} exceeds MAX_REGION_RAW_BYTES; stripe it")
        if self.encoding is Encoding.RAW_LZ4:
            if len(self.data) < _LZ4_SIZE.size:
                raise ValueError("RAW_LZ4 data lacks its size prefix")
            if _LZ4_SIZE.unpack_from(self.data)[0] != self.raw_size:
                raise ValueError("RAW_LZ4 size prefix does not match w*h*3")

    @property
    def raw_size(self) -> int:
        """Bytes of the decoded RGB24 pixels: w*h*3."""
        return self.w * self.h * 3


@message(0x03, "FRAME_END", kind=DISPLAY, sender=Sender.SERVER)
class FrameEnd(_SeqMessage):
    """The regions since the previous FRAME_END form frame `seq` (server -> client).

    `ack_now`: the server sends no further frame until this one is
    acknowledged (its window of frames or bytes in flight is full, or it
    wants a fresh round-trip sample), so FRAME_ACK must go at once. When
    false the client may hold the acknowledgement and send it with its next
    write (a KEY_TAP, a WINDOW_UPDATE); acks are cumulative, so one FRAME_ACK
    answers every frame up to its seq.
    """

    ack_now: bool = wire(FLAG, default=True)


@message(0x04, "FRAME_ACK", kind=DISPLAY, sender=Sender.CLIENT)
class FrameAck(_SeqMessage):
    """The client has drawn frame `seq` (client -> server)."""


@message(0x05, "REFRESH_REQUEST", kind=DISPLAY, sender=Sender.CLIENT)
class RefreshRequest(Declared):
    """Ask for a full frame (client -> server)."""


@message(0x06, "RESIZE_REQUEST", kind=DISPLAY, sender=Sender.CLIENT)
class ResizeRequest(_ScreenSize):
    """Ask for a width x height desktop (client -> server); answered by DESKTOP_SIZE.

    The server clamps the size to what its X server supports, so the answer
    may differ from the request.
    """


@message(0x08, "VIDEO_CAPS", kind=DISPLAY, sender=Sender.CLIENT)
class VideoCaps(Declared):
    """The client decodes these video encodings (client -> server, after the
    display channel opens): u8 bit mask, bit 0 H264, bit 1 TILE, bit 2
    GLYPHS.  Without it the server sends no H264 regions (JPEG/PNG only),
    no TILE and no GLYPHS regions."""

    codecs: int = wire(U8)


# GLYPHS regions (docs/protocol.md section 7c): text as a grid of cells,
# each cell a glyph bitmap kept in a per-display-channel cache of
# GLYPH_SLOTS slots.  A cell is at most GLYPH_MAX_SIDE pixels a side (its
# bits at most GLYPH_MAX_BITS_BYTES); one region names at most
# GLYPH_MAX_USED distinct slots (its cells are u8 indices into that list).
# The client's cache is thus at most GLYPH_SLOTS * GLYPH_MAX_BITS_BYTES
# (512 KiB) of bits.
GLYPH_MAX_SIDE: Final = 32
GLYPH_MAX_BITS_BYTES: Final = (GLYPH_MAX_SIDE * GLYPH_MAX_SIDE + 7) // 8
GLYPH_SLOTS: Final = 4096
GLYPH_MAX_USED: Final = 256
GLYPH_HEADER_BYTES: Final = 8  # u8 cell w, u8 cell h, two colours (R, G, B each)
# VIDEO_CAPS bits (the client's display capabilities).
CAPS_H264: Final = 0x01
CAPS_TILE: Final = 0x02
CAPS_GLYPHS: Final = 0x04


# TILE: a frame of one small two-colour region (an echoed glyph and the
# cursor), the region's header, colours and bits and the frame's end in one
# message (docs/protocol.md section 7b).  Sides are at most TILE_MAX_SIDE and
# the area TILE_MAX_PIXELS, so the bits are at most TILE_MAX_BITS_BYTES.
TILE_MAX_SIDE: Final = 64
TILE_MAX_PIXELS: Final = 1024
TILE_MAX_BITS_BYTES: Final = (TILE_MAX_PIXELS + 7) // 8
TILE_COLOURS_BYTES: Final = 6  # two colours, R, G, B each
TILE_ACK_NOW: Final = 0x01  # form bit: FRAME_END's ack_now
TILE_COLOURS: Final = 0x02  # form bit: the two colours travel (else the previous TILE's)
TILE_FORM_BITS: Final = TILE_ACK_NOW | TILE_COLOURS
# KEY_TAP_ACK carries the low bits of the acknowledged frame's seq: frames in
# flight are far fewer ([display] frames_in_flight <= 16), so the receiver
# finds the one seq in flight that ends with them.
ACK_LOW_MODULO: Final = 0x100
# KEY_TAP_ACK: u8 ack + a keysym of one byte (below KEYSYM_ONE_BYTE) or two.
KEYSYM_ONE_BYTE: Final = 0x100
KEY_TAP_ACK_MAX_PAYLOAD: Final = 3


def tile_bits_bytes(w: int, h: int) -> int:
    """Bytes of a w x h TILE's bits: one bit a pixel, rows not padded."""
    return (w * h + 7) // 8


@message(0x09, "TILE", kind=DISPLAY, sender=Sender.SERVER)
class Tile(Declared):
    """A whole frame of one w x h two-colour region at (x, y) of the current
    target (server -> client): FRAME_END with seq = the previous frame's + 1
    and ack_now = form bit 0.  Form bit 1: the data starts with the two
    colours (R, G, B each); without it the previous TILE's colours apply
    (the first TILE of a display channel carries them).  Then the w*h pixels,
    one bit each (1: the second colour), most significant bit first, rows
    not padded; the pad bits of the last byte are 0.  Sent only to a client
    that set VIDEO_CAPS bit 1."""

    x: int = wire(U16)
    y: int = wire(U16)
    w: int = wire(U8.within(1, TILE_MAX_SIDE))
    h: int = wire(U8.within(1, TILE_MAX_SIDE))
    form: int = wire(U8.within(0, TILE_FORM_BITS))
    data: bytes = wire(BYTES(TILE_COLOURS_BYTES + TILE_MAX_BITS_BYTES))

    def check(self) -> None:
        """Area at most TILE_MAX_PIXELS; data exactly the colours (if sent) and
        the bits; pad bits 0."""
        if self.w * self.h > TILE_MAX_PIXELS:
            raise ValueError(f"TILE {self.w}x{self.h} exceeds TILE_MAX_PIXELS")
        need = tile_bits_bytes(self.w, self.h) + (TILE_COLOURS_BYTES if self.has_colours else 0)
        if len(self.data) != need:
            raise ValueError(f"TILE {self.w}x{self.h} needs {need} bytes of data, got {len(self.data)}")
        pad = -(self.w * self.h) % 8
        if pad and self.data[-1] & ((1 << pad) - 1):
            raise ValueError("TILE pad bits must be 0")

    @property
    def ack_now(self) -> bool:
        """FRAME_END's ack_now for this frame."""
        return bool(self.form & TILE_ACK_NOW)

    @property
    def has_colours(self) -> bool:
        """The data starts with the two colours."""
        return bool(self.form & TILE_COLOURS)


@message(0x01, "KEY", kind=INPUT, sender=Sender.CLIENT)
class Key(Declared):
    """A key went down or up, by X keysym (client -> server)."""

    keysym: int = wire(U32.within(1, MAX_KEYSYM))
    down: bool = wire(FLAG)


@message(0x02, "POINTER", kind=INPUT, sender=Sender.CLIENT)
class Pointer(Declared):
    """The pointer moved to (x, y) (client -> server)."""

    x: int = wire(U16)
    y: int = wire(U16)


@message(0x03, "BUTTON", kind=INPUT, sender=Sender.CLIENT)
class Button(Declared):
    """Mouse button 1..255 went down or up at (x, y) (client -> server)."""

    x: int = wire(U16)
    y: int = wire(U16)
    button: int = wire(U8.within(1, U8.high))
    down: bool = wire(FLAG)


@message(0x04, "WHEEL", kind=INPUT, sender=Sender.CLIENT)
class Wheel(Declared):
    """Scroll by (dx, dy) steps at (x, y); +dy scrolls down (client -> server)."""

    x: int = wire(U16)
    y: int = wire(U16)
    dx: int = wire(I16)
    dy: int = wire(I16)


@message(0x05, "SYNC", kind=INPUT, sender=Sender.CLIENT)
class Sync(_SeqMessage):
    """Ask for SYNC_DONE once all earlier input is injected (client -> server)."""


@message(0x06, "SYNC_DONE", kind=INPUT, sender=Sender.SERVER)
class SyncDone(_SeqMessage):
    """All input before SYNC `seq` has been injected (server -> client)."""


@message(0x07, "KEY_TAP", kind=INPUT, sender=Sender.CLIENT)
class KeyTap(Declared):
    """A key was pressed and released, by X keysym (client -> server): one
    message instead of two KEYs where the client knows both (typed text)."""

    keysym: int = wire(U32.within(1, MAX_KEYSYM))


@message(0x0B, "KEY_TAP_ACK", kind=INPUT, sender=Sender.CLIENT, codec=CUSTOM, max_payload=KEY_TAP_ACK_MAX_PAYLOAD)
class KeyTapAck(Declared):
    """KEY_TAP of a keysym up to 0xFFFF with the held FRAME_ACK in it (client ->
    server): u8 `ack`, the acknowledged seq modulo ACK_LOW_MODULO (the server
    acks the frame in flight whose seq ends so; none: ignored), then the
    keysym in one byte if it is below 0x100 (Latin-1, what is typed most),
    else in two (big-endian); a two-byte form of a keysym below 0x100 is
    malformed, so every tap has one encoding."""

    ack: int = wire(U8)
    keysym: int = wire(U16.within(1, U16.high))

    def encode(self) -> bytes:
        """ack, then the keysym in as few bytes as it needs (1 or 2)."""
        return bytes((self.ack,)) + self.keysym.to_bytes(1 if self.keysym < KEYSYM_ONE_BYTE else 2, "big")

    @classmethod
    def decode(cls, payload: bytes) -> KeyTapAck:
        """2 or 3 bytes; the 3-byte form only for a keysym of 0x100 or more."""
        if len(payload) not in (2, KEY_TAP_ACK_MAX_PAYLOAD):
            raise ValueError(f"KEY_TAP_ACK payload must be 2 or 3 bytes, got {len(payload)}")
        keysym = int.from_bytes(payload[1:], "big")
        if len(payload) == KEY_TAP_ACK_MAX_PAYLOAD and keysym < KEYSYM_ONE_BYTE:
            raise ValueError("KEY_TAP_ACK sends a keysym below 0x100 in one byte")
        return cls(payload[0], keysym)


@message(0xFF, "WINDOW_UPDATE")
class WindowUpdate(Declared):
    """Grant the peer `increment` more bytes of credit on this channel (any channel but 0)."""

    KIND: ClassVar[ChannelKind | None] = None
    increment: int = wire(U32.within(1, U32.high))


DISPLAY_MESSAGES: tuple[type[Message], ...] = (
    DesktopSize,
    Region,
    FrameEnd,
    FrameAck,
    RefreshRequest,
    ResizeRequest,
    VideoCaps,
    Tile,
)
INPUT_MESSAGES: tuple[type[Message], ...] = (
    Key,
    Pointer,
    Button,
    Wheel,
    Sync,
    SyncDone,
    KeyTap,
    KeyTapAck,
)

# Binary messages of the display and input channels, and WINDOW_UPDATE.
#
# Why binary: these are the hot paths (every keystroke, every damaged
# rectangle), so each is a fixed big-endian struct, decoded with one
# struct.unpack and checked for exact length. A REGION's pixel data is kept as
# opaque bytes: decoding pixels is the display pipeline's job, but its size is
# bounded here (MAX_REGION_RAW_BYTES, and the lz4 size prefix is checked
# against w*h*3 before anyone decompresses it).
"""Display and input messages (fixed binary layouts) and WINDOW_UPDATE."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Self

from protocol.base import (
    I16_MAX,
    I16_MIN,
    U8_MAX,
    U16_MAX,
    U32_MAX,
    ChannelKind,
    Encoding,
    Message,
    Sender,
    check_bool,
    check_int,
)
from protocol.limits import MAX_KEYSYM, MAX_REGION_RAW_BYTES

_U32 = struct.Struct(">I")
_SIZE = struct.Struct(">HH")
_REGION = struct.Struct(">HHHHB")
_KEY = struct.Struct(">IB")
_BUTTON = struct.Struct(">HHBB")
_WHEEL = struct.Struct(">HHhh")
# lz4.block.compress(..., store_size=True) prefixes the uncompressed size, u32 little-endian.
_LZ4_SIZE = struct.Struct("<I")
_FILL_BYTES = 3


def _exact(payload: bytes, size: int, name: str) -> None:
    if len(payload) != size:
        raise ValueError(f"{name} payload must be {size} bytes, got {len(payload)}")


def _flag(value: int, name: str) -> bool:
    if value not in (0, 1):
        raise ValueError(f"{name} must be 0 or 1, got {value}")
    return value == 1


@dataclass(frozen=True)
class _SeqMessage(Message):
    """Shared codec of messages whose payload is one u32 sequence number."""

    MAX_PAYLOAD: ClassVar[int] = _U32.size
    seq: int

    def __post_init__(self) -> None:
        check_int("seq", self.seq, 0, U32_MAX)

    def encode(self) -> bytes:
        return _U32.pack(self.seq)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Parse a 4-byte payload; ValueError if invalid."""
        _exact(payload, _U32.size, cls.__name__)
        return cls(_U32.unpack(payload)[0])


@dataclass(frozen=True)
class _ScreenSize(Message):
    """Base of the two width x height display messages (u16 each)."""

    NAME: ClassVar[str] = ""
    KIND: ClassVar[ChannelKind | None] = ChannelKind.DISPLAY
    MAX_PAYLOAD: ClassVar[int] = _SIZE.size
    width: int
    height: int

    def __post_init__(self) -> None:
        check_int("width", self.width, 1, U16_MAX)
        check_int("height", self.height, 1, U16_MAX)

    def encode(self) -> bytes:
        return _SIZE.pack(self.width, self.height)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Parse the payload; ValueError if invalid."""
        _exact(payload, _SIZE.size, cls.NAME)
        return cls(*_SIZE.unpack(payload))


@dataclass(frozen=True)
class DesktopSize(_ScreenSize):
    """The session desktop is width x height pixels (server -> client)."""

    TYPE: ClassVar[int] = 0x01
    NAME: ClassVar[str] = "DESKTOP_SIZE"
    SENDER: ClassVar[Sender] = Sender.SERVER


@dataclass(frozen=True)
class Region(Message):
    """An updated rectangle and its encoded pixels (server -> client)."""

    TYPE: ClassVar[int] = 0x02
    KIND: ClassVar[ChannelKind | None] = ChannelKind.DISPLAY
    SENDER: ClassVar[Sender] = Sender.SERVER
    HEADER_SIZE: ClassVar[int] = _REGION.size
    x: int
    y: int
    w: int
    h: int
    encoding: Encoding
    data: bytes

    def __post_init__(self) -> None:
        check_int("x", self.x, 0, U16_MAX)
        check_int("y", self.y, 0, U16_MAX)
        check_int("w", self.w, 1, U16_MAX)
        check_int("h", self.h, 1, U16_MAX)
        check_int("encoding", self.encoding, 0, U8_MAX)
        object.__setattr__(self, "encoding", Encoding(self.encoding))
        if not isinstance(self.data, (bytes, bytearray, memoryview)):
            raise ValueError("data must be bytes")
        object.__setattr__(self, "data", bytes(self.data))
        if self.encoding is Encoding.FILL:
            if len(self.data) != _FILL_BYTES:
                raise ValueError("FILL data must be 3 bytes (R, G, B)")
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

    def encode(self) -> bytes:
        return _REGION.pack(self.x, self.y, self.w, self.h, self.encoding) + self.data

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Parse the payload; ValueError if invalid."""
        if len(payload) < _REGION.size:
            raise ValueError("REGION payload shorter than its header")
        x, y, w, h, encoding = _REGION.unpack_from(payload)
        return cls(x, y, w, h, encoding, payload[_REGION.size :])


@dataclass(frozen=True)
class FrameEnd(_SeqMessage):
    """The regions since the previous FRAME_END form frame `seq` (server -> client)."""

    TYPE: ClassVar[int] = 0x03
    KIND: ClassVar[ChannelKind | None] = ChannelKind.DISPLAY
    SENDER: ClassVar[Sender] = Sender.SERVER


@dataclass(frozen=True)
class FrameAck(_SeqMessage):
    """The client has drawn frame `seq` (client -> server)."""

    TYPE: ClassVar[int] = 0x04
    KIND: ClassVar[ChannelKind | None] = ChannelKind.DISPLAY
    SENDER: ClassVar[Sender] = Sender.CLIENT


@dataclass(frozen=True)
class RefreshRequest(Message):
    """Ask for a full frame (client -> server)."""

    TYPE: ClassVar[int] = 0x05
    KIND: ClassVar[ChannelKind | None] = ChannelKind.DISPLAY
    SENDER: ClassVar[Sender] = Sender.CLIENT
    MAX_PAYLOAD: ClassVar[int] = 0

    def encode(self) -> bytes:
        return b""

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Parse the (empty) payload; ValueError if not empty."""
        _exact(payload, 0, "REFRESH_REQUEST")
        return cls()


@dataclass(frozen=True)
class ResizeRequest(_ScreenSize):
    """Ask for a width x height desktop (client -> server); answered by DESKTOP_SIZE.

    The server clamps the size to what its X server supports, so the answer
    may differ from the request.
    """

    TYPE: ClassVar[int] = 0x06
    NAME: ClassVar[str] = "RESIZE_REQUEST"
    SENDER: ClassVar[Sender] = Sender.CLIENT


@dataclass(frozen=True)
class Key(Message):
    """A key went down or up, by X keysym (client -> server)."""

    TYPE: ClassVar[int] = 0x01
    KIND: ClassVar[ChannelKind | None] = ChannelKind.INPUT
    SENDER: ClassVar[Sender] = Sender.CLIENT
    MAX_PAYLOAD: ClassVar[int] = _KEY.size
    keysym: int
    down: bool

    def __post_init__(self) -> None:
        check_int("keysym", self.keysym, 1, MAX_KEYSYM)
        check_bool("down", self.down)

    def encode(self) -> bytes:
        return _KEY.pack(self.keysym, int(self.down))

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Parse the payload; ValueError if invalid."""
        _exact(payload, _KEY.size, "KEY")
        keysym, down = _KEY.unpack(payload)
        return cls(keysym, _flag(down, "down"))


@dataclass(frozen=True)
class Pointer(Message):
    """The pointer moved to (x, y) (client -> server)."""

    TYPE: ClassVar[int] = 0x02
    KIND: ClassVar[ChannelKind | None] = ChannelKind.INPUT
    SENDER: ClassVar[Sender] = Sender.CLIENT
    MAX_PAYLOAD: ClassVar[int] = _SIZE.size
    x: int
    y: int

    def __post_init__(self) -> None:
        check_int("x", self.x, 0, U16_MAX)
        check_int("y", self.y, 0, U16_MAX)

    def encode(self) -> bytes:
        return _SIZE.pack(self.x, self.y)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Parse the payload; ValueError if invalid."""
        _exact(payload, _SIZE.size, "POINTER")
        return cls(*_SIZE.unpack(payload))


@dataclass(frozen=True)
class Button(Message):
    """Mouse button 1..255 went down or up at (x, y) (client -> server)."""

    TYPE: ClassVar[int] = 0x03
    KIND: ClassVar[ChannelKind | None] = ChannelKind.INPUT
    SENDER: ClassVar[Sender] = Sender.CLIENT
    MAX_PAYLOAD: ClassVar[int] = _BUTTON.size
    x: int
    y: int
    button: int
    down: bool

    def __post_init__(self) -> None:
        check_int("x", self.x, 0, U16_MAX)
        check_int("y", self.y, 0, U16_MAX)
        check_int("button", self.button, 1, U8_MAX)
        check_bool("down", self.down)

    def encode(self) -> bytes:
        return _BUTTON.pack(self.x, self.y, self.button, int(self.down))

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Parse the payload; ValueError if invalid."""
        _exact(payload, _BUTTON.size, "BUTTON")
        x, y, button, down = _BUTTON.unpack(payload)
        return cls(x, y, button, _flag(down, "down"))


@dataclass(frozen=True)
class Wheel(Message):
    """Scroll by (dx, dy) steps at (x, y); +dy scrolls down (client -> server)."""

    TYPE: ClassVar[int] = 0x04
    KIND: ClassVar[ChannelKind | None] = ChannelKind.INPUT
    SENDER: ClassVar[Sender] = Sender.CLIENT
    MAX_PAYLOAD: ClassVar[int] = _WHEEL.size
    x: int
    y: int
    dx: int
    dy: int

    def __post_init__(self) -> None:
        check_int("x", self.x, 0, U16_MAX)
        check_int("y", self.y, 0, U16_MAX)
        check_int("dx", self.dx, I16_MIN, I16_MAX)
        check_int("dy", self.dy, I16_MIN, I16_MAX)

    def encode(self) -> bytes:
        return _WHEEL.pack(self.x, self.y, self.dx, self.dy)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Parse the payload; ValueError if invalid."""
        _exact(payload, _WHEEL.size, "WHEEL")
        return cls(*_WHEEL.unpack(payload))


@dataclass(frozen=True)
class Sync(_SeqMessage):
    """Ask for SYNC_DONE once all earlier input is injected (client -> server)."""

    TYPE: ClassVar[int] = 0x05
    KIND: ClassVar[ChannelKind | None] = ChannelKind.INPUT
    SENDER: ClassVar[Sender] = Sender.CLIENT


@dataclass(frozen=True)
class SyncDone(_SeqMessage):
    """All input before SYNC `seq` has been injected (server -> client)."""

    TYPE: ClassVar[int] = 0x06
    KIND: ClassVar[ChannelKind | None] = ChannelKind.INPUT
    SENDER: ClassVar[Sender] = Sender.SERVER


@dataclass(frozen=True)
class WindowUpdate(Message):
    """Grant the peer `increment` more bytes of credit on this channel (any channel but 0)."""

    TYPE: ClassVar[int] = 0xFF
    KIND: ClassVar[ChannelKind | None] = None
    MAX_PAYLOAD: ClassVar[int] = _U32.size
    increment: int

    def __post_init__(self) -> None:
        check_int("increment", self.increment, 1, U32_MAX)

    def encode(self) -> bytes:
        return _U32.pack(self.increment)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Parse a 4-byte payload; ValueError if invalid."""
        _exact(payload, _U32.size, "WINDOW_UPDATE")
        return cls(_U32.unpack(payload)[0])


DISPLAY_MESSAGES: tuple[type[Message], ...] = (
    DesktopSize,
    Region,
    FrameEnd,
    FrameAck,
    RefreshRequest,
    ResizeRequest,
)
INPUT_MESSAGES: tuple[type[Message], ...] = (
    Key,
    Pointer,
    Button,
    Wheel,
    Sync,
    SyncDone,
)

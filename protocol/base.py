# Shared vocabulary of all messages: channel kinds, encodings, who may send
# what, the Message base class and the field checks every message uses.
#
# Why: message classes validate their own fields in __post_init__, so a
# message object that exists is always encodable, and a decoder only has to
# build the object and turn ValueError into MALFORMED_MESSAGE. Keeping the
# checks here keeps control.py and media.py declarative.
"""Message base class, channel kinds, encodings and field validators."""

from __future__ import annotations

from enum import Enum, IntEnum
from typing import ClassVar, Self

from protocol.limits import MAX_FRAME_PAYLOAD, MAX_JSON_INT

U8_MAX = 0xFF
U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF
I16_MIN = -0x8000
I16_MAX = 0x7FFF


class ChannelKind(IntEnum):
    """What a channel carries; the first channel of a kind uses id == value."""

    CONTROL = 0
    DISPLAY = 1
    INPUT = 2
    AUDIO_OUT = 3
    AUDIO_IN = 4
    USB = 5
    CLIPBOARD = 6
    WINDOWS = 7
    FILES = 8
    XPRA = 9


# Kinds defined but not implemented in version 1: opening one is refused with
# CHANNEL_CLOSE(CHANNEL_KIND_UNAVAILABLE) and the connection stays up.
RESERVED_KINDS: frozenset[ChannelKind] = frozenset()

# Send priority per kind, lower first (control, input, audio and windows, display and xpra,
# clipboard, usb, files). XPRA ranks with DISPLAY: its one stream mixes the user's keystrokes
# and pixels (it cannot be split by priority), so bulk USB or file transfer must not stall it,
# and sessiond's own input channel still goes first.
KIND_PRIORITY: dict[ChannelKind, int] = {
    ChannelKind.CONTROL: 0,
    ChannelKind.INPUT: 1,
    ChannelKind.AUDIO_OUT: 2,
    ChannelKind.AUDIO_IN: 2,
    ChannelKind.WINDOWS: 2,
    ChannelKind.DISPLAY: 3,
    ChannelKind.CLIPBOARD: 4,
    ChannelKind.USB: 5,
    ChannelKind.FILES: 6,
    ChannelKind.XPRA: 3,
}


class Encoding(IntEnum):
    """How the pixels of a REGION are encoded."""

    RAW_LZ4 = 1
    PNG = 2
    JPEG = 3
    FILL = 4
    COPY = 5
    PALETTE = 6
    H264 = 7  # a frame of a video stream (protocol/video.py, docs/protocol.md section 7a)
    GLYPHS = 8  # text as a grid of cached glyph cells (docs/protocol.md section 7c)


class Sender(Enum):
    """Which role may send a message type; the receiver enforces it."""

    ANY = "any"
    CLIENT = "client"
    SERVER = "server"


class Message:
    """Base of every message: a frozen dataclass with a type code and encode()."""

    TYPE: ClassVar[int]
    # Channel kind the type code belongs to; None for generic (WINDOW_UPDATE).
    KIND: ClassVar[ChannelKind | None]
    SENDER: ClassVar[Sender] = Sender.ANY
    # Wire name (docs/protocol.md, tests/vectors).
    NAME: ClassVar[str] = ""
    # Largest payload encode() can return: bounds frames of this type from the header.
    MAX_PAYLOAD: ClassVar[int] = MAX_FRAME_PAYLOAD

    def encode(self) -> bytes:
        """Return this message's payload bytes (frame header excluded)."""
        raise NotImplementedError

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Parse a payload of this type; ValueError if it is not valid."""
        raise NotImplementedError


# The checks raise ValueError even for a value of the wrong type (ruff's
# TRY004 is silenced where they do): ValueError is the one signal a decoder
# turns into MALFORMED_MESSAGE, and callers catch exactly that.
def check_int(name: str, value: object, low: int, high: int) -> int:
    """Return value if it is an int (not bool) within [low, high], else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {type(value).__name__}")  # noqa: TRY004
    if not low <= value <= high:
        raise ValueError(f"{name}={value} outside [{low}, {high}]")
    return value


def check_json_int(name: str, value: object, *, signed: bool = False) -> int:
    """An integer a JSON control field may carry (non-negative unless signed)."""
    return check_int(name, value, -MAX_JSON_INT if signed else 0, MAX_JSON_INT)


def check_bool(name: str, value: object) -> bool:
    """Return value if it is a bool, else ValueError."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a boolean, got {type(value).__name__}")  # noqa: TRY004
    return value


def check_str(name: str, value: object) -> str:
    """Return value if it is a str encodable as UTF-8 (no lone surrogates)."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")  # noqa: TRY004
    value.encode("utf-8")  # UnicodeEncodeError is a ValueError
    return value


def check_str_tuple(name: str, value: object) -> tuple[str, ...]:
    """Return a list/tuple of strings as a tuple, else ValueError."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list of strings")  # noqa: TRY004
    return tuple(check_str(f"{name}[]", item) for item in value)

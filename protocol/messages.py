# The message catalogue: every message class, and dispatch by (kind, type).
#
# Why one module for dispatch: the decoder for untrusted payloads is a closed
# table lookup (no getattr on names built from input, unlike conch), and
# every failure below it becomes exactly one of two reason codes:
# UNKNOWN_MESSAGE_TYPE or MALFORMED_MESSAGE.
"""All protocol messages, encode_message() and decode_message()."""

from __future__ import annotations

from typing import Final

from protocol.audio import AUDIO_IN_MESSAGES, AUDIO_OUT_MESSAGES, AudioData, AudioFormat, MicData, MicFormat
from protocol.base import (
    KIND_PRIORITY,
    RESERVED_KINDS,
    ChannelKind,
    Encoding,
    Message,
    Sender,
)
from protocol.control import (
    ChannelClose,
    ChannelOpen,
    ChannelOpenOk,
    Close,
    ControlMessage,
    Error,
    Hello,
    Icon,
    IconRequest,
    Ping,
    Pong,
)
from protocol.control_session import (
    AppExited,
    AppInfo,
    AppList,
    AppListRequest,
    AppsChanged,
    Auth,
    AuthResult,
    ClockReport,
    Launch,
    LaunchResult,
    Logoff,
    SessionAttached,
    SessionInfo,
    SpawnApp,
)
from protocol.errors import ProtocolError, ReasonCode
from protocol.limits import HEADER_SIZE, MIN_WINDOW_FRAMES
from protocol.media import (
    DISPLAY_MESSAGES,
    INPUT_MESSAGES,
    Button,
    DesktopSize,
    FrameAck,
    FrameEnd,
    Key,
    KeyTap,
    KeyTapAck,
    Pointer,
    RefreshRequest,
    Region,
    ResizeRequest,
    Sync,
    SyncDone,
    Tile,
    VideoCaps,
    Wheel,
    WindowUpdate,
)
from protocol.transfer import CLIPBOARD_MESSAGES, FILES_MESSAGES
from protocol.usb import USB_MESSAGES
from protocol.windows import DISPLAY_WINDOW_MESSAGES, INPUT_WINDOW_MESSAGES, WINDOWS_MESSAGES
from protocol.windows_admin import WindowList, WindowListRequest
from protocol.xpra import XPRA_MESSAGES, UserActivity, XpraData

__all__ = [
    "KIND_PRIORITY",
    "MESSAGE_NAMES",
    "MESSAGE_TYPES",
    "RESERVED_KINDS",
    "AppExited",
    "AppInfo",
    "AppList",
    "AppListRequest",
    "AppsChanged",
    "AudioData",
    "AudioFormat",
    "Auth",
    "AuthResult",
    "Button",
    "ChannelClose",
    "ChannelKind",
    "ChannelOpen",
    "ChannelOpenOk",
    "ClockReport",
    "Close",
    "ControlMessage",
    "DesktopSize",
    "Encoding",
    "Error",
    "FrameAck",
    "FrameEnd",
    "Hello",
    "Icon",
    "IconRequest",
    "Key",
    "KeyTap",
    "KeyTapAck",
    "Launch",
    "LaunchResult",
    "Logoff",
    "Message",
    "MicData",
    "MicFormat",
    "Ping",
    "Pointer",
    "Pong",
    "RefreshRequest",
    "Region",
    "ResizeRequest",
    "Sender",
    "SessionAttached",
    "SessionInfo",
    "SpawnApp",
    "Sync",
    "SyncDone",
    "Tile",
    "UserActivity",
    "VideoCaps",
    "Wheel",
    "WindowUpdate",
    "XpraData",
    "decode_message",
    "encode_message",
    "max_payload",
    "min_window",
]


CONTROL_MESSAGES: Final[tuple[type[Message], ...]] = (
    Hello,
    Auth,
    AuthResult,
    AppListRequest,
    AppList,
    AppsChanged,
    Launch,
    LaunchResult,
    ChannelOpen,
    ChannelOpenOk,
    ChannelClose,
    Error,
    Close,
    Ping,
    Pong,
    SessionInfo,
    SpawnApp,
    AppExited,
    Logoff,
    ClockReport,
    SessionAttached,
    IconRequest,
    Icon,
    WindowListRequest,
    WindowList,
    UserActivity,
)


def _table(classes: tuple[type[Message], ...], generic: bool) -> dict[int, type[Message]]:
    """Type code -> class for one channel kind; two classes with one code are a
    declaration error (a dict would keep the last and make the other undecodable)."""
    table: dict[int, type[Message]] = {}
    for cls in (*classes, *((WindowUpdate,) if generic else ())):
        if cls.TYPE in table:
            raise TypeError(f"{cls.NAME} and {table[cls.TYPE].NAME} share type code {cls.TYPE:#04x}")
        table[cls.TYPE] = cls
    return table


# (kind -> type code -> class). Reserved kinds know only WINDOW_UPDATE.
MESSAGE_TYPES: Final[dict[ChannelKind, dict[int, type[Message]]]] = {
    ChannelKind.CONTROL: _table(CONTROL_MESSAGES, generic=False),
    ChannelKind.DISPLAY: _table(DISPLAY_MESSAGES + DISPLAY_WINDOW_MESSAGES, generic=True),
    ChannelKind.INPUT: _table(INPUT_MESSAGES + INPUT_WINDOW_MESSAGES, generic=True),
    ChannelKind.AUDIO_OUT: _table(AUDIO_OUT_MESSAGES, generic=True),
    ChannelKind.AUDIO_IN: _table(AUDIO_IN_MESSAGES, generic=True),
    ChannelKind.USB: _table(USB_MESSAGES, generic=True),
    ChannelKind.WINDOWS: _table(WINDOWS_MESSAGES, generic=True),
    ChannelKind.CLIPBOARD: _table(CLIPBOARD_MESSAGES, generic=True),
    ChannelKind.FILES: _table(FILES_MESSAGES, generic=True),
    ChannelKind.XPRA: _table(XPRA_MESSAGES, generic=True),
    **{kind: _table((), generic=True) for kind in sorted(RESERVED_KINDS)},
}


# Wire names of message types, as used in docs/protocol.md and tests/vectors.
MESSAGE_NAMES: Final[dict[type[Message], str]] = {
    cls: cls.NAME for table in MESSAGE_TYPES.values() for cls in table.values()
}


# max_payload() of each kind, from the table above (asked for every frame received).
_MAX_PAYLOAD: Final[dict[ChannelKind, int]] = {
    kind: max(cls.MAX_PAYLOAD for cls in table.values()) for kind, table in MESSAGE_TYPES.items()
}


def max_payload(kind: ChannelKind) -> int:
    """Largest payload any message of `kind` encodes to: frames announcing more
    are refused from their header once the channel's kind is known."""
    return _MAX_PAYLOAD[kind]


def min_window(kind: ChannelKind, sender: Sender) -> int:
    """Smallest initial window that lets `sender` send its largest message of
    `kind`: MIN_WINDOW_FRAMES frames of it (0 if it sends nothing but credit)."""
    frames = [
        HEADER_SIZE + cls.MAX_PAYLOAD
        for cls in MESSAGE_TYPES[kind].values()
        if cls is not WindowUpdate and cls.SENDER in (Sender.ANY, sender)
    ]
    return MIN_WINDOW_FRAMES * max(frames, default=0)


def encode_message(msg: Message) -> tuple[int, bytes]:
    """Return (type code, payload) of a message."""
    return msg.TYPE, msg.encode()


def decode_message(kind: ChannelKind, type_: int, payload: bytes) -> Message:
    """Decode a payload received on a channel of `kind`.

    Raises ProtocolError(UNKNOWN_MESSAGE_TYPE) if the type code is not defined
    for the kind, ProtocolError(MALFORMED_MESSAGE) if the payload is invalid.
    """
    cls = MESSAGE_TYPES.get(kind, {}).get(type_)
    if cls is None:
        raise ProtocolError(
            ReasonCode.UNKNOWN_MESSAGE_TYPE,
            f"type 0x{type_:02x} is not defined on a {kind.name} channel",
        )
    try:
        return cls.decode(payload)
    except (ValueError, TypeError) as exc:
        raise ProtocolError(ReasonCode.MALFORMED_MESSAGE, f"{cls.__name__}: {exc}") from exc

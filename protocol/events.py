# Events that Connection.receive_data() returns.
#
# Why typed frozen dataclasses (as h11/h2/wsproto do): the application matches
# on event classes instead of parsing strings or registering callbacks, and a
# test can compare the exact list of events a byte stream produced.
"""Events produced by Connection.receive_data()."""

from __future__ import annotations

from dataclasses import dataclass, field  # compiled, not protocol.frozen: one object per message (protocol/frozen.py)
from typing import TypeAlias

from protocol.base import ChannelKind, Message


@dataclass(frozen=True)
class MessageReceived:
    """The peer sent `message` on `channel` (of `kind`).

    wire_size is the frame's header + payload bytes: the credit it used, which
    the application hands back with consumed() without re-encoding anything.
    """

    channel: int
    kind: ChannelKind
    message: Message
    wire_size: int = field(default=0, compare=False)


@dataclass(frozen=True)
class FrameReceived:
    """A frame of a relayed (kind, type) on `channel`, handed over undecoded.

    The Connection checked auth, channel state, type code, direction and flow
    control; `payload` is the frame's payload exactly as received and
    wire_size (header + payload) the credit it used.
    """

    channel: int
    kind: ChannelKind
    type: int
    payload: bytes
    wire_size: int


@dataclass(frozen=True)
class ChannelOpened:
    """`channel` is now usable: opened by the peer (auto-accepted) or our open was accepted."""

    channel: int
    kind: ChannelKind
    by_peer: bool


@dataclass(frozen=True)
class ChannelClosed:
    """`channel` is gone and its id free: the peer closed or refused it (by_peer),
    or the peer confirmed our close_channel()."""

    channel: int
    code: int
    message: str
    by_peer: bool


@dataclass(frozen=True)
class WindowUpdated:
    """The peer granted `increment` more bytes of send credit on `channel`."""

    channel: int
    increment: int


@dataclass(frozen=True)
class MessageRefused:
    """A message on `channel` could not be decoded (`code`, `message` say why);
    the Connection refused that channel: its CHANNEL_CLOSE carrying the same
    code waits in data_to_send(), and ChannelClosed follows when the peer
    answers. Reported only by a Connection built with channel_errors=True."""

    channel: int
    kind: ChannelKind
    code: int
    message: str


@dataclass(frozen=True)
class ConnectionClosed:
    """The connection is over: the peer sent CLOSE (by_peer), or it broke the
    protocol and our CLOSE frame now waits in data_to_send()."""

    code: int
    message: str
    by_peer: bool


Event: TypeAlias = (
    MessageReceived | FrameReceived | ChannelOpened | ChannelClosed | WindowUpdated | MessageRefused
    | ConnectionClosed
)

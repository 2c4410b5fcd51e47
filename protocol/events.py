# Events that Connection.receive_data() returns.
#
# Why typed frozen dataclasses (as h11/h2/wsproto do): the application matches
# on event classes instead of parsing strings or registering callbacks, and a
# test can compare the exact list of events a byte stream produced.
"""Events produced by Connection.receive_data()."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from protocol.base import ChannelKind, Message


@dataclass(frozen=True)
class MessageReceived:
    """The peer sent `message` on `channel` (of `kind`)."""

    channel: int
    kind: ChannelKind
    message: Message


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
class ConnectionClosed:
    """The connection is over: the peer sent CLOSE (by_peer), or it broke the
    protocol and our CLOSE frame now waits in data_to_send()."""

    code: int
    message: str
    by_peer: bool


Event: TypeAlias = MessageReceived | ChannelOpened | ChannelClosed | WindowUpdated | ConnectionClosed

# Who may send which message type, and when: the role and auth rules both
# directions of a Connection apply, as pure functions of the state.
#
# Why apart from Connection: the same table-driven rules guard send(),
# send_raw() and every received frame (decoded or relayed), so they live in
# one place that reads only the message table, not the Connection's queues.
"""Roles, pre-auth types, managed types, and the send/receive direction checks."""

from __future__ import annotations

from enum import Enum
from typing import Final

from protocol.base import ChannelKind, Message, Sender
from protocol.control import ChannelClose, ChannelOpen, ChannelOpenOk, Close, Error, Hello, Ping, Pong
from protocol.control_session import Auth, AuthResult
from protocol.errors import ChannelNotOpenError, ProtocolError, ProtocolStateError, ReasonCode
from protocol.limits import HEADER_SIZE
from protocol.media import WindowUpdate
from protocol.messages import MESSAGE_TYPES

__all__ = ["MANAGED", "PRE_AUTH_TYPES", "Role", "check_may_send", "check_received_type", "frame_cost"]

# Control messages allowed (either way) before the connection is authenticated.
PRE_AUTH_TYPES: Final = frozenset(cls.TYPE for cls in (Hello, Auth, AuthResult, Ping, Pong, Error, Close))
# Messages the Connection itself manages; the application uses these methods.
MANAGED: Final[dict[type[Message], str]] = {
    ChannelOpen: "open_channel()",
    ChannelOpenOk: "nothing (opens are accepted automatically)",
    ChannelClose: "close_channel()",
    WindowUpdate: "consumed() or grant()",
}


class Role(Enum):
    """Which end of the connection we are: the client speaks HELLO first."""

    CLIENT = "client"
    SERVER = "server"

    @property
    def sender(self) -> Sender:
        """The Sender value of the message types this role may send."""
        return Sender.CLIENT if self is Role.CLIENT else Sender.SERVER


def frame_cost(message: Message) -> int:
    """Window cost of sending `message`: header plus payload bytes."""
    return HEADER_SIZE + len(message.encode())


def check_may_send(
    cls: type[Message],
    channel: int,
    kind: ChannelKind | None,
    *,
    role: Role,
    hello_sent: bool,
    peer_hello_seen: bool,
    authenticated: bool,
) -> None:
    """Raise ProtocolStateError (or ChannelNotOpenError: `kind` is None) unless
    `role` may send a `cls` on `channel` (of `kind`) in this state."""
    name = cls.__name__
    method = MANAGED.get(cls)
    if method is not None:
        raise ProtocolStateError(f"{name} is managed by the Connection; use {method}")
    if cls.SENDER not in (Sender.ANY, role.sender):
        raise ProtocolStateError(f"a {role.value} must not send {name}")
    if cls is Hello:
        if hello_sent:
            raise ProtocolStateError("HELLO was already sent")
        if role is Role.SERVER and not peer_hello_seen:
            raise ProtocolStateError("a server sends HELLO after the client's HELLO")
    elif not hello_sent:
        raise ProtocolStateError("send HELLO first")
    elif not authenticated and (channel != 0 or cls.TYPE not in PRE_AUTH_TYPES):
        raise ProtocolStateError(f"{name} needs an authenticated connection")
    if channel == 0:
        if cls.KIND is not ChannelKind.CONTROL:
            raise ProtocolStateError(f"{name} is not a control message")
        return
    if kind is None:
        raise ChannelNotOpenError(f"channel {channel} is not open")
    if cls.KIND is not kind:
        raise ProtocolStateError(f"{name} cannot go on a {kind.name} channel")


def check_received_type(kind: ChannelKind, type_: int, *, role: Role, authenticated: bool) -> type[Message]:
    """The class of a type code received on a `kind` channel, after checking
    it is defined for the kind (UNKNOWN_MESSAGE_TYPE), allowed before
    authentication (NOT_AUTHENTICATED) and sent by the peer's role
    (UNEXPECTED_MESSAGE); ProtocolError otherwise."""
    cls = MESSAGE_TYPES[kind].get(type_)
    if cls is None:
        raise ProtocolError(ReasonCode.UNKNOWN_MESSAGE_TYPE,
                            f"type 0x{type_:02x} is not defined on a {kind.name} channel")
    if kind is ChannelKind.CONTROL and not authenticated and cls.TYPE not in PRE_AUTH_TYPES:
        raise ProtocolError(ReasonCode.NOT_AUTHENTICATED, f"{cls.__name__} before authentication")
    if cls.SENDER is role.sender:
        raise ProtocolError(ReasonCode.UNEXPECTED_MESSAGE, f"only a {role.value} sends {cls.__name__}")
    return cls

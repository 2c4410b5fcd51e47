# Reason codes and exceptions of the sessiond wire protocol.
#
# Why: one closed set of numeric reason codes is shared by CLOSE, CHANNEL_CLOSE,
# ERROR, AUTH_RESULT and LAUNCH_RESULT, so every peer (Python or JavaScript)
# can tell what happened without parsing text. Exceptions split "the peer broke
# the protocol" (ProtocolError, turned into a CLOSE frame) from "our own code
# misused the API" (ProtocolStateError and friends, raised to the caller).
"""Reason codes and exceptions of the sessiond wire protocol."""

from __future__ import annotations

from enum import IntEnum


class ReasonCode(IntEnum):
    """Why a connection, channel, request or login ended; sent on the wire."""

    NORMAL = 0
    PROTOCOL_ERROR = 1
    HELLO_REQUIRED = 2
    UNEXPECTED_HELLO = 3
    VERSION_UNSUPPORTED = 4
    FRAME_TOO_LARGE = 5
    UNKNOWN_CHANNEL = 6
    CHANNEL_NOT_OPEN = 7
    UNKNOWN_CHANNEL_KIND = 8
    UNKNOWN_MESSAGE_TYPE = 9
    MALFORMED_MESSAGE = 10
    FLOW_CONTROL_ERROR = 11
    NOT_AUTHENTICATED = 12
    AUTH_FAILED = 13
    RATE_LIMITED = 14
    UNKNOWN_APP = 15
    NOT_ENTITLED = 16
    SESSION_UNAVAILABLE = 17
    INTERNAL_ERROR = 18
    CHANNEL_IN_USE = 19
    CHANNEL_KIND_UNAVAILABLE = 20
    SHUTTING_DOWN = 21
    LIMIT_EXCEEDED = 22
    UNEXPECTED_MESSAGE = 23
    TIMEOUT = 24


class ProtocolError(Exception):
    """The peer violated the protocol; the connection must be closed with `code`."""

    def __init__(self, code: ReasonCode, detail: str = "") -> None:
        super().__init__(f"{code.name}: {detail}" if detail else code.name)
        self.code: ReasonCode = code
        self.detail: str = detail


class ProtocolStateError(Exception):
    """Our own code asked for something the protocol state does not allow."""


class ChannelNotOpenError(ProtocolStateError):
    """send() on a channel that is not open (never opened, opening or closed)."""


class SendBufferFull(ProtocolStateError):
    """Queueing this message would exceed MAX_QUEUED_PER_CHANNEL on its channel."""

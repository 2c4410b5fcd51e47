# One session's channels between the attached client and the agent link.
#
# Why a relay and not a decoder: display, input, audio and USB/IP URB frames
# are the user's data; root has no use for their content, and parsing them
# in root would be a local-user-to-root attack surface (the agent runs as the
# user). Such frames arrive as FrameReceived (channel, type, payload,
# wire_size) and leave with Connection.send_raw(): one copy, no message
# object. Only the few USB control messages that policy needs arrive decoded
# and are handed to a filter (sessiond.usb_policy.UsbFilter).
#
# Frames from the client are not parsed here either: their type, direction,
# size and credit are checked by the client's Connection from the header; the
# payload is the agent's to decode. The agent's end of the link is built with
# channel_errors=True, so a payload that does not decode costs that channel
# (the agent closes it with MALFORMED_MESSAGE, which is passed on to the
# client here), never the link and so never the session.
#
# Credit passes through hop by hop: what the client grants sessiond is
# granted on to the agent (clamped with grantable() so sessiond never grants
# above MAX_WINDOW), what the agent grants is granted on to the client; credit
# for frames nobody receives (no client attached, a frame the filter drops)
# goes straight back to the sender, and credit the peer returns for frames
# sessiond injected itself is kept back here. So sessiond never holds more
# than a window of data per channel.
#
# Error boundary: every entry point catches the failure of one frame; it
# costs that channel (closed for the client with a reason code), never the
# client connection, the agent link or the session.
"""ChannelRelay and the relay predicate the endpoints' Connections use."""

from __future__ import annotations

import struct
from collections import deque
from typing import Callable, Concatenate, Final, NamedTuple, ParamSpec, Protocol

from twisted.logger import Logger

from protocol.connection import Connection
from protocol.errors import ProtocolStateError, ReasonCode
from protocol.messages import ChannelKind, Message
from protocol.transfer import RAW_TYPES
from protocol.usb import UrbCommand, UrbReturn

log = Logger()

# Frames held per channel while the agent side of the channel is opening;
# the client's window bounds their bytes.
MAX_PENDING_PER_CHANNEL: Final = 1024
# Kinds whose every frame passes through undecoded.
# WINDOWS: the agent is the window manager and needs no policy from root.
# XPRA: the user's xpra stream; root never parses it (only its frame headers).
PASS_THROUGH_KINDS: Final = frozenset({ChannelKind.DISPLAY, ChannelKind.INPUT, ChannelKind.AUDIO_OUT,
                                        ChannelKind.AUDIO_IN, ChannelKind.WINDOWS, ChannelKind.XPRA})  # fmt: skip
# USB frames that pass through undecoded (the rest are policy's).
USB_RAW_TYPES: Final = frozenset({UrbCommand.TYPE, UrbReturn.TYPE})
_CONN_ID = struct.Struct(">I")

P = ParamSpec("P")


def relayed(kind: ChannelKind, type_: int) -> bool:
    """The relay predicate: True for frames sessiond forwards without decoding."""
    if kind in PASS_THROUGH_KINDS:
        return True
    if kind is ChannelKind.USB:
        return type_ in USB_RAW_TYPES
    return type_ in RAW_TYPES.get(kind, ())  # CLIP_DATA, FILE_DATA: counted by the filter, never decoded


def urb_conn(payload: bytes) -> int | None:
    """The USB/IP connection id a URB frame is for (its first 4 bytes), None if too short."""
    return _CONN_ID.unpack_from(payload)[0] if len(payload) >= _CONN_ID.size else None


class Endpoint(Protocol):
    """One side of the relay: the client handler or the agent link."""

    conn: Connection

    def flush(self) -> None:
        """Write what the Connection has queued."""


class RelayFilter(Protocol):
    """Policy on one channel kind; each hook returns False to drop the frame
    (the relay then returns its credit to the sender)."""

    def from_client(self, channel: int, type_: int, payload: bytes, message: Message | None) -> bool: ...

    def from_agent(self, channel: int, type_: int, payload: bytes, message: Message | None) -> bool: ...

    def channel_closed(self, channel: int) -> None: ...


class Held(NamedTuple):
    """A client frame waiting for the agent side of its channel: raw, or decoded (message)."""

    type_: int
    payload: bytes
    message: Message | None
    wire_size: int


_Handler = Callable[Concatenate["ChannelRelay", int, P], None]


def _boundary(method: _Handler[P]) -> _Handler[P]:
    """Catch the failure of one frame: it costs its channel, nothing more."""

    def guarded(self: ChannelRelay, channel: int, /, *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            method(self, channel, *args, **kwargs)
        except Exception:  # noqa: BLE001 - the error boundary of one frame
            log.failure("session {session} of {user}: relay failed on channel {channel}", session=self.session_id,
                        user=self.user, channel=channel)  # fmt: skip
            self.fail_channel(channel, ReasonCode.INTERNAL_ERROR, "internal error relaying this channel")

    guarded.__name__, guarded.__doc__ = method.__name__, method.__doc__
    return guarded


class ChannelRelay:
    """Routes one session's channels between its client and its agent link."""

    def __init__(self, session_id: str, user: str, on_sent: Callable[[int, int, int], None] | None = None) -> None:
        self.session_id = session_id
        self.user = user
        self.client: Endpoint | None = None
        self.link: Endpoint | None = None
        self.filters: dict[ChannelKind, RelayFilter] = {}
        # (channel, type, wire size) of every frame relayed to the client (metrics).
        self.on_sent = on_sent
        self._client_channels: dict[int, ChannelKind] = {}
        self._link_open: set[int] = set()
        # Channels sessiond asked the agent to close and the agent has not yet
        # confirmed: the link's channel table still holds them, so a client
        # opening the same number again (a takeover reuses channel ids within
        # milliseconds) waits for the confirmation instead of failing "in use".
        self._link_closing: set[int] = set()
        self._pending: dict[int, deque[Held]] = {}
        # Credit the peer will return for frames sessiond injected, not to pass on.
        self._owed_by_client: dict[int, int] = {}
        self._owed_by_agent: dict[int, int] = {}

    # -- endpoints ---------------------------------------------------------------
    def link_up(self, link: Endpoint) -> None:
        self.link = link

    def link_down(self) -> None:
        self.link = None
        self._link_open.clear()
        self._link_closing.clear()

    def attach(self, client: Endpoint) -> None:
        self.client = client

    def detach(self) -> None:
        """The client is gone: close its channels on the agent side too."""
        self.client = None
        for channel in list(self._client_channels):
            self.client_channel_closed(channel)

    # -- channels ----------------------------------------------------------------
    @_boundary
    def client_channel_opened(self, channel: int, kind: ChannelKind) -> None:
        if self.link is None:
            return
        self._client_channels[channel] = kind
        self._pending[channel] = deque()
        if channel not in self._link_open and channel not in self._link_closing:
            self.link.conn.open_channel(channel, kind)
            self.link.flush()

    @_boundary
    def client_channel_closed(self, channel: int) -> None:
        self._forget(channel)
        if self.link is not None and channel in self._link_open:
            self._link_open.discard(channel)
            self._link_closing.add(channel)
            self.link.conn.close_channel(channel)
            self.link.flush()

    @_boundary
    def link_channel_opened(self, channel: int) -> None:
        self._link_open.add(channel)
        if self.link is None:
            return
        if channel not in self._client_channels:
            self._link_open.discard(channel)
            self._link_closing.add(channel)
            self.link.conn.close_channel(channel)
        for held in self._pending.pop(channel, deque()):
            if not self._to_agent(channel, held):
                break
        self.link.flush()

    @_boundary
    def link_channel_closed(self, channel: int, code: int = 0, message: str = "", by_agent: bool = False) -> None:
        """The agent side of CHANNEL closed; if the agent closed it, the client is told why."""
        self._link_open.discard(channel)
        reopen = channel in self._link_closing and not by_agent
        self._link_closing.discard(channel)
        if by_agent and channel in self._client_channels:
            self._forget(channel)
            self._close_client_channel(channel, code, message)
        elif reopen and self.link is not None and channel in self._client_channels:
            # The client opened this number again while our close was in flight.
            self.link.conn.open_channel(channel, self._client_channels[channel])
            self.link.flush()

    # -- frames and credit -----------------------------------------------------------
    @_boundary
    def from_client(self, channel: int, type_: int, payload: bytes, message: Message | None, wire_size: int) -> None:
        """A frame the client sent on CHANNEL (raw, or decoded when MESSAGE is set)."""
        kind = self._client_channels.get(channel)
        if kind is None:
            return  # closing: in flight when the channel went
        policy = self.filters.get(kind)
        if policy is not None and not policy.from_client(channel, type_, payload, message):
            self._credit_client(channel, wire_size)
            return
        held = Held(type_, payload, message, wire_size)
        if channel in self._link_open:
            if self._to_agent(channel, held) and self.link is not None:
                self.link.flush()
            return
        pending = self._pending.get(channel)
        if pending is not None and len(pending) < MAX_PENDING_PER_CHANNEL:
            pending.append(held)
            return
        log.warn("session {session} of {user}: dropped a client frame on channel {channel} (agent side not open)",
                 session=self.session_id, user=self.user, channel=channel)  # fmt: skip
        self._credit_client(channel, wire_size)

    @_boundary
    def from_agent(self, channel: int, type_: int, payload: bytes, message: Message | None, wire_size: int) -> None:
        """A frame the agent sent on CHANNEL (raw, or decoded when MESSAGE is set)."""
        kind = self._client_channels.get(channel)
        policy = self.filters.get(kind) if kind is not None else None
        if policy is not None and not policy.from_agent(channel, type_, payload, message):
            self._credit_agent(channel, wire_size)
            return
        client = self.client
        if client is None or kind is None or not client.conn.is_open(channel):
            self._credit_agent(channel, wire_size)  # nobody to deliver to: hand the credit straight back
            return
        try:
            if message is None:
                client.conn.send_raw(channel, type_, payload)
            else:
                client.conn.send(channel, message)
        except (ProtocolStateError, ValueError) as exc:
            self.fail_channel(channel, ReasonCode.LIMIT_EXCEEDED, f"cannot forward to the client: {exc}")
            return
        if self.on_sent is not None:
            self.on_sent(channel, type_, wire_size)
        client.flush()

    @_boundary
    def client_granted(self, channel: int, increment: int) -> None:
        """The client gave sessiond credit on CHANNEL: pass it on to the agent."""
        increment = _pay(self._owed_by_client, channel, increment)
        link = self.link
        if increment and link is not None and channel in self._link_open:
            increment = min(increment, link.conn.grantable(channel))
            if increment > 0:
                link.conn.grant(channel, increment)
                link.flush()

    @_boundary
    def agent_granted(self, channel: int, increment: int) -> None:
        """The agent gave sessiond credit on CHANNEL: pass it on to the client."""
        increment = _pay(self._owed_by_agent, channel, increment)
        client = self.client
        if increment and client is not None and channel in self._client_channels:
            increment = min(increment, client.conn.grantable(channel))
            if increment > 0 and client.conn.is_open(channel):
                client.conn.grant(channel, increment)
                client.flush()

    # -- for filters ---------------------------------------------------------------
    def inject_to_client(self, channel: int, message: Message) -> None:
        """Send a message of sessiond's own to the client; the credit it returns is kept back.
        If it cannot be queued, the channel is closed with a reason."""
        client = self.client
        if client is not None and client.conn.is_open(channel):
            self._inject(client, channel, message, self._owed_by_client, "the client")

    def inject_to_agent(self, channel: int, message: Message) -> None:
        """Send a message of sessiond's own to the agent; the credit it returns is kept back.
        If it cannot be queued, the channel is closed with a reason."""
        link = self.link
        if link is not None and channel in self._link_open:
            self._inject(link, channel, message, self._owed_by_agent, "the session")

    def _inject(self, end: Endpoint, channel: int, message: Message, owed: dict[int, int], whom: str) -> None:
        before = end.conn.queued_bytes(channel)
        try:
            end.conn.send(channel, message)
        except (ProtocolStateError, ValueError) as exc:
            self.fail_channel(channel, ReasonCode.LIMIT_EXCEEDED, f"cannot send to {whom}: {exc}")
            return
        owed[channel] = owed.get(channel, 0) + end.conn.queued_bytes(channel) - before
        end.flush()

    def fail_channel(self, channel: int, code: int, why: str) -> None:
        """Close CHANNEL on both sides with a reason for the client; never raises."""
        log.warn("session {session} of {user}: closing channel {channel}: {why}", session=self.session_id,
                 user=self.user, channel=channel, why=why)  # fmt: skip
        try:
            self._forget(channel)
            self._close_client_channel(channel, code, why)
            if self.link is not None and channel in self._link_open:
                self._link_open.discard(channel)
                self.link.conn.close_channel(channel)
                self.link.flush()
        except Exception:  # noqa: BLE001 - last resort: the channel is already forgotten here
            log.failure("session {session}: closing channel {channel} failed", session=self.session_id,
                        channel=channel)  # fmt: skip

    # -- internals -------------------------------------------------------------------
    def _to_agent(self, channel: int, held: Held) -> bool:
        link = self.link
        if link is None:
            return False
        try:
            if held.message is None:
                link.conn.send_raw(channel, held.type_, held.payload)
            else:
                link.conn.send(channel, held.message)
        except (ProtocolStateError, ValueError) as exc:
            self.fail_channel(channel, ReasonCode.LIMIT_EXCEEDED, f"cannot forward to the session: {exc}")
            return False
        return True

    def _forget(self, channel: int) -> None:
        kind = self._client_channels.pop(channel, None)
        self._pending.pop(channel, None)
        self._owed_by_client.pop(channel, None)
        self._owed_by_agent.pop(channel, None)
        policy = self.filters.get(kind) if kind is not None else None
        if policy is not None:
            policy.channel_closed(channel)

    def _close_client_channel(self, channel: int, code: int, message: str) -> None:
        client = self.client
        if client is not None and not client.conn.closed and client.conn.is_open(channel):
            client.conn.close_channel(channel, code, message)
            client.flush()

    def _credit_client(self, channel: int, wire_size: int) -> None:
        client = self.client
        if client is not None and client.conn.is_open(channel):
            amount = min(wire_size, client.conn.grantable(channel))
            if amount > 0:
                client.conn.grant(channel, amount)
                client.flush()

    def _credit_agent(self, channel: int, wire_size: int) -> None:
        link = self.link
        if link is not None and channel in self._link_open:
            amount = min(wire_size, link.conn.grantable(channel))
            if amount > 0:
                link.conn.grant(channel, amount)
                link.flush()


def _pay(owed: dict[int, int], channel: int, increment: int) -> int:
    """Keep back from INCREMENT what CHANNEL still owes for injected frames."""
    debt = owed.get(channel, 0)
    paid = min(debt, increment)
    if paid:
        owed[channel] = debt - paid
    return increment - paid

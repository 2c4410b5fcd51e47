# The sans-IO connection: handshake and auth states, flow control and
# priority scheduling over a ChannelTable, with no I/O and no event loop.
#
# Why sans-IO (h11/h2/wsproto): the same object runs under Twisted in sessiond,
# under asyncio in the agent, in the svclient CLI and in memory in tests.
# receive_data() never raises on peer input: a violation becomes our CLOSE
# frame plus a ConnectionClosed event, and later input is ignored. Misuse by
# our own code raises (ProtocolStateError and subclasses, ValueError).
"""Connection: the protocol state machine over bytes in, events and bytes out."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from protocol.base import ChannelKind, Message
from protocol.channel_table import ChannelTable, default_accept_kind, default_window_for, reason_text
from protocol.channels import ChannelPhase
from protocol.control import ChannelClose, ChannelOpen, ChannelOpenOk, Close, Hello
from protocol.control_session import AuthResult
from protocol.errors import ChannelNotOpenError, ProtocolError, ProtocolStateError, ReasonCode, SendBufferFull
from protocol.events import (
    MessageRefused,
    ChannelClosed,
    ChannelOpened,
    ConnectionClosed,
    Event,
    FrameReceived,
    MessageReceived,
    WindowUpdated,
)
from protocol.frames import Frame, FrameDecoder, encode_frame
from protocol.limits import HEADER_SIZE, MAX_CONTROL_PAYLOAD, MAX_QUEUED_PER_CHANNEL, MAX_WINDOW, PROTOCOL_VERSION
from protocol.media import WindowUpdate
from protocol.messages import MESSAGE_TYPES, decode_message, max_payload, min_window
from protocol.outbound import Outbound
from protocol.rules import Role, check_may_send, check_received_type, frame_cost

__all__ = [
    "ChannelClosed",
    "ChannelNotOpenError",
    "ChannelOpened",
    "Connection",
    "ConnectionClosed",
    "Event",
    "FrameReceived",
    "MessageReceived",
    "MessageRefused",
    "ProtocolStateError",
    "Role",
    "SendBufferFull",
    "WindowUpdated",
    "default_accept_kind",
    "default_window_for",
    "frame_cost",
]


class Connection:
    """One end of a sessiond protocol connection (sans-IO)."""

    def __init__(
        self,
        role: Role,
        *,
        window_for: Callable[[ChannelKind], int] | None = None,
        accept_kind: Callable[[ChannelKind], bool] | None = None,
        relay: Callable[[ChannelKind, int], bool] | None = None,
        channel_errors: bool = False,
    ) -> None:
        """`window_for(kind)` is the initial window we grant a new channel,
        `accept_kind(kind)` whether we accept the peer's open of that kind, and
        `relay(kind, type_code)` whether frames of that type on a non-control
        channel are reported undecoded as FrameReceived (for a relay that
        passes them on with send_raw()).

        With `channel_errors`, a message on a non-control channel whose
        payload does not decode (MALFORMED_MESSAGE) costs that channel only:
        it is closed with the reason and MessageRefused is reported, and the
        connection goes on. That is the session agent's side of its link:
        the relay in front of it forwards client frames without decoding
        them, so one bad frame must not end the link and with it the session.
        Framing, direction and flow-control violations still close the
        connection."""
        self._role = role
        self._relay = relay
        self._channel_errors = channel_errors
        self._table = ChannelTable(window_for, accept_kind, lambda kind: min_window(kind, role.sender))
        self._decoder = FrameDecoder(limit_for=self._payload_limit)
        self._out = Outbound(self._table)
        self._closed = False
        self._authenticated = False
        self._hello_sent = False
        self._peer_hello: Hello | None = None

    # -- state --------------------------------------------------------------

    @property
    def role(self) -> Role:
        """Our role."""
        return self._role

    @property
    def closed(self) -> bool:
        """True once CLOSE was sent or received; nothing more is sent or parsed."""
        return self._closed

    @property
    def authenticated(self) -> bool:
        """True once an AUTH_RESULT with ok=true was sent (server) or received (client)."""
        return self._authenticated

    @property
    def peer_hello(self) -> Hello | None:
        """The peer's HELLO, once received."""
        return self._peer_hello

    @property
    def hello_sent(self) -> bool:
        """True once our HELLO is queued."""
        return self._hello_sent

    def open_channels(self) -> dict[int, ChannelKind]:
        """Usable channels (control included) and their kinds."""
        return {0: ChannelKind.CONTROL, **self._table.open_kinds()}

    def is_open(self, channel: int) -> bool:
        """`channel in open_channels()` without building the dict (a relay asks per frame)."""
        return channel == 0 or self._table.get_open(channel) is not None

    def send_window(self, channel: int) -> int:
        """Bytes that can still be queued on `channel` and sent without waiting.

        Channel 0 is not flow-controlled: returns the room left in its queue.
        Returns 0 for channels that are not open.
        """
        if channel == 0:
            return max(0, MAX_QUEUED_PER_CHANNEL - self._out.control_queued)
        state = self._table.get_open(channel)
        return 0 if state is None else state.send_window()

    def queued_bytes(self, channel: int) -> int:
        """Bytes queued on `channel` and not yet returned by data_to_send()."""
        if channel == 0:
            return self._out.control_queued
        state = self._table.get(channel)
        return 0 if state is None else state.queued

    # -- sending ------------------------------------------------------------

    def hello(self, capabilities: Iterable[str], software: str) -> None:
        """Queue our HELLO (client: first; server: after the client's HELLO)."""
        self.send(0, Hello(PROTOCOL_VERSION, tuple(capabilities), software))

    def send(self, channel: int, message: Message) -> int:
        """Encode `message` and queue it on `channel`; returns the frame's
        wire size (its frame_cost(), without encoding it a second time).

        Raises ChannelNotOpenError, SendBufferFull, ProtocolStateError (wrong
        state, direction or kind) or ValueError (payload too large, or the frame
        costs more than half the initial window the peer granted on `channel`).
        """
        if self._closed:
            raise ProtocolStateError("connection is closed")
        if isinstance(message, Close):
            self.close(message.code, message.message)
            return HEADER_SIZE + len(message.encode())
        self._check_may_send(channel, type(message))
        payload = message.encode()
        if channel != 0:
            self._enqueue(channel, message.TYPE, payload)
            return HEADER_SIZE + len(payload)
        frame = encode_frame(channel, message.TYPE, payload)
        if self._out.control_queued + len(frame) > MAX_QUEUED_PER_CHANNEL:
            raise SendBufferFull("control channel send queue is full")
        self._out.queue_control(frame)
        if isinstance(message, Hello):
            self._hello_sent = True
        elif isinstance(message, AuthResult) and message.ok:
            self._authenticated = True
        return len(frame)

    def send_raw(self, channel: int, type_: int, payload: bytes) -> None:
        """Queue an already-encoded payload of type `type_` on `channel` (a relay
        passing a FrameReceived on); the payload is copied once, into the frame.

        The checks and exceptions are those of send() for a message of that
        type on that channel's kind; a type code not defined for the kind, a
        managed type (WINDOW_UPDATE) or the control channel (use send()) raise
        ProtocolStateError, a payload longer than the type's MAX_PAYLOAD
        ValueError. The payload itself is not validated: the relay trusts
        the Connection that reported it as a FrameReceived.
        """
        if self._closed:
            raise ProtocolStateError("connection is closed")
        if not self._authenticated:
            raise ProtocolStateError("raw frames need an authenticated connection")
        if channel == 0:
            raise ProtocolStateError("control messages are sent with send()")
        state = self._table.get_open(channel)
        if state is None:
            raise ChannelNotOpenError(f"channel {channel} is not open")
        cls = MESSAGE_TYPES[state.kind].get(type_)
        if cls is None:
            raise ProtocolStateError(f"type {type_:#04x} is not defined on a {state.kind.name} channel")
        self._check_may_send(channel, cls)
        if len(payload) > cls.MAX_PAYLOAD:
            raise ValueError(f"a {len(payload)}-byte {cls.__name__} payload exceeds its {cls.MAX_PAYLOAD}-byte bound")
        self._enqueue(channel, type_, payload)

    def _enqueue(self, channel: int, type_: int, payload: bytes) -> None:
        state = self._table.get_open(channel)
        if state is None:
            raise ChannelNotOpenError(f"channel {channel} is not open")
        self._out.enqueue(state, type_, payload)

    def _check_may_send(self, channel: int, cls: type[Message]) -> None:
        state = self._table.get_open(channel) if channel else None
        check_may_send(
            cls,
            channel,
            None if state is None else state.kind,
            role=self._role,
            hello_sent=self._hello_sent,
            peer_hello_seen=self._peer_hello is not None,
            authenticated=self._authenticated,
        )

    def open_channel(self, channel: int, kind: ChannelKind) -> None:
        """Send CHANNEL_OPEN granting window_for(kind); ChannelOpened follows
        when the peer accepts, ChannelClosed(by_peer=True) if it refuses."""
        if self._closed or not self._authenticated:
            raise ProtocolStateError("channels open only once authenticated")
        self._queue_control_message(self._table.open_local(channel, kind))

    def close_channel(self, channel: int, code: int = 0, message: str = "") -> None:
        """Send CHANNEL_CLOSE and drop what is queued on `channel`;
        ChannelClosed(by_peer=False) follows when the peer answers."""
        state = self._table.get(channel)
        if self._closed or state is None:
            raise ChannelNotOpenError(f"channel {channel} is not open")
        if state.phase is not ChannelPhase.CLOSING:
            self._queue_control_message(self._table.close_local(state, code, message))

    def consumed(self, channel: int, nbytes: int) -> None:
        """The application processed nbytes received on `channel`; credit goes
        back in one WINDOW_UPDATE once half the initial window is consumed."""
        state = self._table.get_open(channel)
        if self._closed or state is None:
            return
        increment = state.consume(nbytes)
        if increment:
            self._queue_window_update(channel, increment)

    def grantable(self, channel: int) -> int:
        """Credit we may still grant on `channel` without the peer's window
        exceeding MAX_WINDOW (0 if the channel is not open): a relay passing
        credit through clamps its grant() to this."""
        state = self._table.get_open(channel)
        if self._closed or state is None:
            return 0
        return max(0, MAX_WINDOW - state.recv_credit)

    def grant(self, channel: int, increment: int) -> None:
        """Send a WINDOW_UPDATE of exactly `increment` now (relays passing credit).

        ValueError if increment is not in 1..grantable(channel)."""
        state = self._table.get_open(channel)
        if self._closed or state is None:
            raise ChannelNotOpenError(f"channel {channel} is not open")
        state.grant(increment)
        self._queue_window_update(channel, increment)

    def close(self, code: int, message: str) -> None:
        """Queue CLOSE and enter the closed state (other queued data is dropped)."""
        if self._closed:
            return
        self._enter_closed()
        self._queue_control_message(Close(int(code), reason_text(message)))

    def has_data_to_send(self) -> bool:
        """True if data_to_send() would return at least one frame now."""
        return self._out.has_data()

    def data_to_send(self, max_bytes: int | None = None) -> bytes:
        """Drain queued frames by priority, each only if the peer's credit covers it.

        Stops before exceeding max_bytes, but returns at least one whole frame
        if any is sendable and max_bytes > 0. Frames are never split.
        """
        return self._out.drain(max_bytes)

    def data_to_send_pieces(self, max_bytes: int | None = None) -> list[bytes]:
        """data_to_send() without joining: the frames as queued (headers and
        payloads as separate pieces), for a writer with writev/writeSequence,
        so a relayed payload is not copied into a joined buffer on its way out."""
        return self._out.drain_pieces(max_bytes)

    # -- receiving ----------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Parse received bytes; return events. Never raises on peer input."""
        events: list[Event] = []
        if self._closed:
            return events
        try:
            self._decoder.append(data)
            while not self._closed:
                frame = self._decoder.next_frame()
                if frame is None:
                    break
                self._handle_frame(frame, events)
        except ProtocolError as exc:
            self._enter_closed()
            self._queue_control_message(Close(int(exc.code), reason_text(exc.detail)))
            events.append(ConnectionClosed(int(exc.code), exc.detail, by_peer=False))
        return events

    def _payload_limit(self, channel: int) -> int:
        """The FrameDecoder's header check: the largest payload `channel` may
        carry now. Before authentication only channel 0 is readable; after,
        an open (or closing) channel is bounded by its kind's largest message."""
        if channel == 0:
            return MAX_CONTROL_PAYLOAD
        if self._peer_hello is None:
            raise ProtocolError(ReasonCode.HELLO_REQUIRED, "the first message must be HELLO")
        if not self._authenticated:
            raise ProtocolError(ReasonCode.NOT_AUTHENTICATED, f"data on channel {channel} before authentication")
        state = self._table.get(channel)
        if state is None or state.phase is ChannelPhase.OPENING:
            raise ProtocolError(ReasonCode.CHANNEL_NOT_OPEN, f"channel {channel} is not open")
        return max_payload(state.kind)

    def _handle_frame(self, frame: Frame, events: list[Event]) -> None:
        if self._peer_hello is None:
            first = {Hello.TYPE} if self._role is Role.SERVER else {Hello.TYPE, Close.TYPE}
            if frame.channel != 0 or frame.type not in first:
                raise ProtocolError(ReasonCode.HELLO_REQUIRED, "the first message must be HELLO")
        if frame.channel == 0:
            self._handle_control(frame, events)
            return
        # _payload_limit() refused data before authentication from the header.
        state = self._table.get(frame.channel)
        if state is None or state.phase is ChannelPhase.OPENING:
            raise ProtocolError(ReasonCode.CHANNEL_NOT_OPEN, f"channel {frame.channel} is not open")
        if state.phase is ChannelPhase.CLOSING:
            return  # in flight when we closed it; discarded
        cls = self._check_received_type(state.kind, frame.type)
        wire_size = HEADER_SIZE + len(frame.payload)
        if cls is not WindowUpdate and self._relay is not None and self._relay(state.kind, frame.type):
            state.charge_received(wire_size)
            events.append(FrameReceived(frame.channel, state.kind, frame.type, frame.payload, wire_size))
            return
        try:
            message = decode_message(state.kind, frame.type, frame.payload)
        except ProtocolError as exc:
            if not self._channel_errors or cls is WindowUpdate or exc.code != ReasonCode.MALFORMED_MESSAGE:
                raise
            state.charge_received(wire_size)
            self._queue_control_message(self._table.close_local(state, int(exc.code), exc.detail))
            events.append(MessageRefused(frame.channel, state.kind, int(exc.code), exc.detail))
            return
        if isinstance(message, WindowUpdate):
            state.add_send_credit(message.increment)
            events.append(WindowUpdated(frame.channel, message.increment))
            return
        state.charge_received(wire_size)
        events.append(MessageReceived(frame.channel, state.kind, message, wire_size))

    def _check_received_type(self, kind: ChannelKind, type_: int) -> type[Message]:
        return check_received_type(kind, type_, role=self._role, authenticated=self._authenticated)

    def _decode(self, kind: ChannelKind, frame: Frame) -> Message:
        """Check auth state and direction from the type code, then decode."""
        self._check_received_type(kind, frame.type)
        return decode_message(kind, frame.type, frame.payload)

    def _handle_control(self, frame: Frame, events: list[Event]) -> None:
        message = self._decode(ChannelKind.CONTROL, frame)
        if isinstance(message, Close):
            self._enter_closed()
            self._out.clear_control()
            events.append(ConnectionClosed(message.code, message.message, by_peer=True))
        elif isinstance(message, Hello):
            if self._peer_hello is not None:
                raise ProtocolError(ReasonCode.UNEXPECTED_HELLO, "HELLO was already received")
            if message.version != PROTOCOL_VERSION:
                raise ProtocolError(
                    ReasonCode.VERSION_UNSUPPORTED,
                    f"protocol version {message.version} is not supported " f"(this peer speaks {PROTOCOL_VERSION})",
                )
            self._peer_hello = message
            events.append(MessageReceived(0, ChannelKind.CONTROL, message, HEADER_SIZE + len(frame.payload)))
        elif isinstance(message, ChannelOpen):
            reply, opened = self._table.on_open(message)
            self._queue_peer_reply(reply)
            if opened is not None:
                events.append(opened)
        elif isinstance(message, ChannelOpenOk):
            close, accepted = self._table.on_open_ok(message)
            if close is not None:
                self._queue_peer_reply(close)
            if accepted is not None:
                events.append(accepted)
        elif isinstance(message, ChannelClose):
            answer, closed = self._table.on_close(message)
            if answer is not None:
                self._queue_peer_reply(answer)
            if closed is not None:
                events.append(closed)
        else:
            if isinstance(message, AuthResult) and message.ok:
                self._authenticated = True
            events.append(MessageReceived(0, ChannelKind.CONTROL, message, HEADER_SIZE + len(frame.payload)))

    # -- internals ----------------------------------------------------------

    def _queue_control_message(self, message: Message) -> None:
        self._out.queue_control(encode_frame(0, message.TYPE, message.encode()))

    def _queue_window_update(self, channel: int, increment: int) -> None:
        # WINDOW_UPDATE is not flow-controlled: it rides the control lane.
        payload = WindowUpdate(increment).encode()
        self._out.queue_control(encode_frame(channel, WindowUpdate.TYPE, payload))

    def _queue_peer_reply(self, message: Message) -> None:
        """Queue an automatic answer; a peer that makes us answer without
        reading our output is closed instead of growing our queue."""
        if self._out.control_queued > MAX_QUEUED_PER_CHANNEL:
            raise ProtocolError(ReasonCode.LIMIT_EXCEEDED, "peer is not reading our control messages")
        self._queue_control_message(message)

    def _enter_closed(self) -> None:
        self._closed = True
        self._table.drop_all_queues()

# The channel table of one connection: which ids are opening, open or
# closing, and the open/accept/refuse/close exchanges of CHANNEL_* messages.
#
# Why apart from Connection: one small state machine per concern (as in
# magic-wormhole's dilation). The table decides; it returns the control
# message to send and the event to report, and raises ProtocolError for peer
# violations. Connection owns the bytes, the queues and the auth state.
#
# Close handshake: the side that closes sends CHANNEL_CLOSE and keeps the id
# in CLOSING (data still in flight from the peer is discarded, not an error)
# until the peer's CHANNEL_CLOSE answer arrives. A refusal of an open is a
# CHANNEL_CLOSE for an id the refuser never entered; it is not answered.
"""ChannelTable: channel ids, phases and the CHANNEL_OPEN/OK/CLOSE exchanges."""

from __future__ import annotations

from collections.abc import Callable

from protocol.base import KIND_PRIORITY, RESERVED_KINDS, ChannelKind, check_int
from protocol.channels import ChannelPhase, ChannelState
from protocol.control import ChannelClose, ChannelOpen, ChannelOpenOk
from protocol.errors import ProtocolError, ProtocolStateError, ReasonCode
from protocol.events import ChannelClosed, ChannelOpened
from protocol.limits import (
    DEFAULT_WINDOW,
    DISPLAY_WINDOW,
    MAX_CHANNEL_ID,
    MAX_OPEN_CHANNELS,
    MAX_REASON_TEXT,
    MAX_WINDOW,
)


def default_window_for(kind: ChannelKind) -> int:
    """DISPLAY_WINDOW for display channels, DEFAULT_WINDOW otherwise."""
    return DISPLAY_WINDOW if kind is ChannelKind.DISPLAY else DEFAULT_WINDOW


def default_accept_kind(kind: ChannelKind) -> bool:
    """Accept every kind except those reserved in this protocol version."""
    return kind not in RESERVED_KINDS


def reason_text(message: str) -> str:
    """Free text as we send it in CLOSE/CHANNEL_CLOSE: at most MAX_REASON_TEXT chars."""
    return message[:MAX_REASON_TEXT]


class ChannelTable:
    """Channels 1..MAX_CHANNEL_ID of one connection (channel 0 is implicit)."""

    def __init__(
        self,
        window_for: Callable[[ChannelKind], int] | None = None,
        accept_kind: Callable[[ChannelKind], bool] | None = None,
        min_send_window: Callable[[ChannelKind], int] | None = None,
    ) -> None:
        """min_send_window(kind) is the smallest initial window the peer may
        grant us on a channel of `kind` (see protocol.messages.min_window)."""
        self._window_for = window_for or default_window_for
        self._min_send_window = min_send_window or (lambda kind: 0)
        self._accept_kind = accept_kind or default_accept_kind
        self._channels: dict[int, ChannelState] = {}

    def get(self, channel: int) -> ChannelState | None:
        """The state of `channel` in any phase, or None."""
        return self._channels.get(channel)

    def get_open(self, channel: int) -> ChannelState | None:
        """The state of `channel` if it is OPEN, else None."""
        state = self._channels.get(channel)
        return state if state is not None and state.phase is ChannelPhase.OPEN else None

    def open_kinds(self) -> dict[int, ChannelKind]:
        """OPEN channels and their kinds."""
        return {ch: st.kind for ch, st in self._channels.items() if st.phase is ChannelPhase.OPEN}

    def by_priority(self) -> list[ChannelState]:
        """OPEN channels with queued frames, highest priority (lowest number) first."""
        ready = [st for st in self._channels.values() if st.phase is ChannelPhase.OPEN and st.queue]
        ready.sort(key=lambda st: (KIND_PRIORITY[st.kind], st.channel))
        return ready

    def drop_all_queues(self) -> None:
        """Discard every queued frame (the connection is closing)."""
        for state in self._channels.values():
            state.drop_queue()

    # -- our side -----------------------------------------------------------

    def open_local(self, channel: int, kind: ChannelKind) -> ChannelOpen:
        """Enter `channel` as OPENING; return the CHANNEL_OPEN to send."""
        check_int("channel", channel, 1, MAX_CHANNEL_ID)
        kind = ChannelKind(kind)
        if kind is ChannelKind.CONTROL:
            raise ValueError("the control channel is always open")
        if channel in self._channels:
            raise ProtocolStateError(f"channel {channel} is in use")
        if len(self._channels) >= MAX_OPEN_CHANNELS:
            raise ProtocolStateError(f"already {MAX_OPEN_CHANNELS} channels in use")
        window = self._initial_window(kind)
        self._channels[channel] = ChannelState(channel, kind, ChannelPhase.OPENING, send_credit=0, recv_window=window)
        return ChannelOpen(channel, int(kind), window)

    def close_local(self, state: ChannelState, code: int, message: str) -> ChannelClose:
        """Move `state` to CLOSING, dropping its queue; return the CHANNEL_CLOSE to send."""
        state.phase = ChannelPhase.CLOSING
        state.drop_queue()
        state.close_code, state.close_message = int(code), reason_text(message)
        return ChannelClose(state.channel, state.close_code, state.close_message)

    # -- the peer's side ----------------------------------------------------

    def on_open(self, message: ChannelOpen) -> tuple[ChannelOpenOk | ChannelClose, ChannelOpened | None]:
        """Accept or refuse the peer's CHANNEL_OPEN: (reply, event or None)."""
        channel = message.channel
        if channel == 0:
            raise ProtocolError(ReasonCode.CHANNEL_IN_USE, "channel 0 is the control channel")
        if channel > MAX_CHANNEL_ID:
            raise ProtocolError(ReasonCode.UNKNOWN_CHANNEL, f"channel id {channel} > {MAX_CHANNEL_ID}")
        try:
            kind = ChannelKind(message.kind)
        except ValueError:
            raise ProtocolError(ReasonCode.UNKNOWN_CHANNEL_KIND, f"unknown channel kind {message.kind}") from None
        if message.window > MAX_WINDOW:
            raise ProtocolError(
                ReasonCode.FLOW_CONTROL_ERROR,
                f"initial window {message.window} > MAX_WINDOW",
            )
        if channel in self._channels:
            raise ProtocolError(ReasonCode.CHANNEL_IN_USE, f"channel {channel} is already in use")
        if kind is ChannelKind.CONTROL or not self._accept_kind(kind):
            refusal = ChannelClose(
                channel,
                int(ReasonCode.CHANNEL_KIND_UNAVAILABLE),
                f"{kind.name} channels are not available",
            )
            return refusal, None
        if len(self._channels) >= MAX_OPEN_CHANNELS:
            raise ProtocolError(ReasonCode.LIMIT_EXCEEDED, f"more than {MAX_OPEN_CHANNELS} channels")
        if message.window < self._min_send_window(kind):
            why = self._small_window(kind, message.window)
            refusal = ChannelClose(channel, int(ReasonCode.FLOW_CONTROL_ERROR), why)
            return refusal, None
        window = self._initial_window(kind)
        self._channels[channel] = ChannelState(
            channel,
            kind,
            ChannelPhase.OPEN,
            send_credit=message.window,
            recv_window=window,
        )
        return ChannelOpenOk(channel, window), ChannelOpened(channel, kind, by_peer=True)

    def on_open_ok(self, message: ChannelOpenOk) -> tuple[ChannelClose | None, ChannelOpened | None]:
        """The peer accepted our open: the channel becomes OPEN, unless the
        window it grants is too small, then we close it: (close or None, event or None)."""
        state = self._channels.get(message.channel)
        if state is not None and state.phase is ChannelPhase.CLOSING:
            return None, None  # we closed it before the answer arrived
        if state is None or state.phase is not ChannelPhase.OPENING:
            raise ProtocolError(
                ReasonCode.UNEXPECTED_MESSAGE,
                f"CHANNEL_OPEN_OK for channel {message.channel} we did not open",
            )
        if message.window > MAX_WINDOW:
            raise ProtocolError(
                ReasonCode.FLOW_CONTROL_ERROR,
                f"initial window {message.window} > MAX_WINDOW",
            )
        if message.window < self._min_send_window(state.kind):
            text = self._small_window(state.kind, message.window)
            return self.close_local(state, int(ReasonCode.FLOW_CONTROL_ERROR), text), None
        state.phase = ChannelPhase.OPEN
        state.send_credit = state.send_initial = message.window
        return None, ChannelOpened(message.channel, state.kind, by_peer=False)

    def on_close(self, message: ChannelClose) -> tuple[ChannelClose | None, ChannelClosed | None]:
        """The peer closed, refused or confirmed a close: (answer or None, event or None)."""
        state = self._channels.pop(message.channel, None)
        if state is None:
            return None, None  # late answer to a refusal of ours; nothing to do
        if state.phase is ChannelPhase.CLOSING:
            event = ChannelClosed(message.channel, state.close_code, state.close_message, by_peer=False)
            return None, event
        answer = None
        if state.phase is ChannelPhase.OPEN:
            answer = ChannelClose(message.channel, message.code, reason_text(message.message))
        event = ChannelClosed(message.channel, message.code, message.message, by_peer=True)
        return answer, event

    def _small_window(self, kind: ChannelKind, window: int) -> str:
        return f"initial window {window} < {self._min_send_window(kind)}, the least a {kind.name} channel needs"

    def _initial_window(self, kind: ChannelKind) -> int:
        return check_int("window_for()", self._window_for(kind), 0, MAX_WINDOW)

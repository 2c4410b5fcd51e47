# What waits to be sent: the control lane and the per-channel queues, drained
# by priority within the credit the peer granted.
#
# Why apart from Connection: scheduling is its own small machine (as the
# "outbound" of magic-wormhole's dilation): frames go in already encoded and
# checked against the peer's window, and come out in the order and amounts
# the flow control allows, never split.
"""Outbound: the control lane and per-channel send queues, drained by priority."""

from __future__ import annotations

from collections import deque

from protocol.channel_table import ChannelTable
from protocol.channels import ChannelState
from protocol.errors import SendBufferFull
from protocol.frames import encode_frame
from protocol.limits import HEADER_SIZE, MAX_QUEUED_PER_CHANNEL

__all__ = ["Outbound"]


class Outbound:
    """Queued frames of one connection: channel 0 and every WINDOW_UPDATE
    first (never flow-controlled), then channels by KIND_PRIORITY and id."""

    def __init__(self, table: ChannelTable) -> None:
        self._table = table
        self._control: deque[bytes] = deque()
        self.control_queued = 0  # bytes in the control lane

    def queue_control(self, frame: bytes) -> None:
        """Append a frame to the control lane (the caller bounds it)."""
        self._control.append(frame)
        self.control_queued += len(frame)

    def clear_control(self) -> None:
        """Drop the control lane (the peer closed the connection)."""
        self._control.clear()
        self.control_queued = 0

    def enqueue(self, state: ChannelState, type_: int, payload: bytes) -> None:
        """Frame `payload` and queue it on an open channel.

        ValueError if the frame costs more than half the peer's initial window
        (batched credit could never cover it) or the payload is too large;
        SendBufferFull past MAX_QUEUED_PER_CHANNEL.
        """
        size = HEADER_SIZE + len(payload)
        if size > state.send_initial // 2:
            raise ValueError(
                f"a {size}-byte frame exceeds half the peer's {state.send_initial}-byte window "
                f"on channel {state.channel}"
            )
        if state.queued + size > MAX_QUEUED_PER_CHANNEL:
            raise SendBufferFull(f"channel {state.channel} send queue is full")
        state.enqueue(encode_frame(state.channel, type_, payload))

    def has_data(self) -> bool:
        """True if drain() would return at least one frame now."""
        return bool(self._control) or any(len(st.queue[0]) <= st.send_credit for st in self._table.by_priority())

    def drain(self, max_bytes: int | None = None) -> bytes:
        """Frames by priority, each only if the peer's credit covers it; stops
        before exceeding max_bytes but returns at least one whole frame if any
        is sendable and max_bytes > 0."""
        if max_bytes is not None and max_bytes <= 0:
            return b""
        out = bytearray()

        def fits(frame: bytes) -> bool:
            return max_bytes is None or not out or len(out) + len(frame) <= max_bytes

        while self._control:
            frame = self._control[0]
            if not fits(frame):
                return bytes(out)
            self._control.popleft()
            self.control_queued -= len(frame)
            out += frame
        for state in self._table.by_priority():
            while state.queue and len(state.queue[0]) <= state.send_credit:
                frame = state.queue[0]
                if not fits(frame):
                    return bytes(out)
                state.queue.popleft()
                state.queued -= len(frame)
                state.send_credit -= len(frame)
                out += frame
        return bytes(out)

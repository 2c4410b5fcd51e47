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
from protocol.frames import frame_header
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
        # The payload is kept as the caller's object (bytes: immutable), not
        # copied into a joined frame; bytearray/memoryview are copied once.
        state.enqueue(frame_header(state.channel, type_, len(payload)), bytes(payload))

    def has_data(self) -> bool:
        """True if drain() would return at least one frame now."""
        return bool(self._control) or any(st.head_size() <= st.send_credit for st in self._table.by_priority())

    def drain(self, max_bytes: int | None = None) -> bytes:
        """drain_pieces(), joined: one copy of everything returned."""
        return b"".join(self.drain_pieces(max_bytes))

    def drain_pieces(self, max_bytes: int | None = None) -> list[bytes]:
        """Frames by priority, each only if the peer's credit covers it, as the
        pieces they are queued in (a frame may be a header and its payload);
        stops before exceeding max_bytes but returns at least one whole frame
        if any is sendable and max_bytes > 0. Frames are never split."""
        if max_bytes is not None and max_bytes <= 0:
            return []
        out: list[bytes] = []
        total = 0

        def fits(size: int) -> bool:
            return max_bytes is None or not out or total + size <= max_bytes

        while self._control:
            frame = self._control[0]
            if not fits(len(frame)):
                return out
            self._control.popleft()
            self.control_queued -= len(frame)
            out.append(frame)
            total += len(frame)
        for state in self._table.by_priority():
            while state.queue and (size := state.head_size()) <= state.send_credit:
                if not fits(size):
                    return out
                header, payload = state.queue.popleft()
                state.queued -= size
                state.send_credit -= size
                out.append(header)
                if payload:
                    out.append(payload)
                total += size
        return out

# Per-channel state: phase, both credit windows and the send queue.
#
# Why a separate object per channel (like conch's SSHChannel windows, without
# its callbacks): the Connection keeps the state machine; this class keeps the
# arithmetic of flow control in one small place that property tests can drive.
# Every received non-WINDOW_UPDATE frame costs its full size (header included)
# against the credit we granted; every sent one against the credit the peer
# granted us.
"""Channel phases, flow-control windows and per-channel send queues."""

from __future__ import annotations

from collections import deque
from enum import Enum

from protocol.base import U32_MAX, ChannelKind, check_int
from protocol.errors import ProtocolError, ReasonCode
from protocol.limits import MAX_WINDOW


class ChannelPhase(Enum):
    """Lifecycle of a channel id on one side of the connection."""

    OPENING = "opening"  # we sent CHANNEL_OPEN, no answer yet
    OPEN = "open"  # usable in both directions
    CLOSING = "closing"  # we sent CHANNEL_CLOSE, waiting for the peer's


class ChannelState:
    """Windows and queue of one channel (not used for the control channel)."""

    def __init__(
        self,
        channel: int,
        kind: ChannelKind,
        phase: ChannelPhase,
        *,
        send_credit: int,
        recv_window: int,
    ) -> None:
        self.channel = channel
        self.kind = kind
        self.phase = phase
        self.send_credit = send_credit  # credit the peer granted us, not yet spent
        self.send_initial = send_credit  # initial credit the peer granted us
        self.recv_initial = recv_window  # initial credit we granted the peer
        self.recv_credit = recv_window  # credit the peer has left
        self.recv_unconsumed = 0  # received, not yet reported by consumed()
        self.recv_pending = 0  # consumed, not yet granted back
        # Frames waiting for credit, each as (header, payload): a large payload
        # (a relayed REGION) is never joined to its header here; the writer
        # hands both pieces to the transport (Connection.data_to_send_pieces).
        self.queue: deque[tuple[bytes, bytes]] = deque()
        self.queued = 0
        self.close_code = 0
        self.close_message = ""

    def charge_received(self, cost: int) -> None:
        """Account a received frame; FLOW_CONTROL_ERROR if the peer overran its credit."""
        if cost > self.recv_credit:
            raise ProtocolError(
                ReasonCode.FLOW_CONTROL_ERROR,
                f"channel {self.channel}: frame of {cost} bytes exceeds the {self.recv_credit} bytes of credit left",
            )
        self.recv_credit -= cost
        self.recv_unconsumed += cost

    def add_send_credit(self, increment: int) -> None:
        """Apply the peer's WINDOW_UPDATE; FLOW_CONTROL_ERROR above MAX_WINDOW."""
        if self.send_credit + increment > MAX_WINDOW:
            raise ProtocolError(
                ReasonCode.FLOW_CONTROL_ERROR,
                f"channel {self.channel}: window update takes credit above MAX_WINDOW",
            )
        self.send_credit += increment

    def consume(self, nbytes: int) -> int:
        """Record nbytes processed; return the increment to grant now (0: not yet).

        Credit is returned in batches once at least half the initial window
        is consumed; bytes beyond what was received are ignored.
        """
        check_int("nbytes", nbytes, 0, MAX_WINDOW)
        nbytes = min(nbytes, self.recv_unconsumed)
        self.recv_unconsumed -= nbytes
        self.recv_pending += nbytes
        if self.recv_pending == 0 or self.recv_pending < max(1, self.recv_initial // 2):
            return 0
        increment, self.recv_pending = self.recv_pending, 0
        self.recv_credit += increment
        return increment

    def grant(self, increment: int) -> None:
        """Record an explicit grant of `increment` bytes; ValueError past MAX_WINDOW."""
        check_int("increment", increment, 1, U32_MAX)
        if self.recv_credit + increment > MAX_WINDOW:
            raise ValueError(f"channel {self.channel}: grant would exceed MAX_WINDOW")
        self.recv_credit += increment

    def enqueue(self, header: bytes, payload: bytes) -> None:
        """Queue a frame (its header and its payload) for sending."""
        self.queue.append((header, payload))
        self.queued += len(header) + len(payload)

    def head_size(self) -> int:
        """Wire size of the first queued frame (0 if none)."""
        if not self.queue:
            return 0
        header, payload = self.queue[0]
        return len(header) + len(payload)

    def drop_queue(self) -> None:
        """Discard everything not yet sent (channel closing)."""
        self.queue.clear()
        self.queued = 0

    def send_window(self) -> int:
        """Credit left after everything already queued is sent, never below 0."""
        return max(0, self.send_credit - self.queued)

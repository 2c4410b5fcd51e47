# The thin client's side of the keystroke path (issue 15): when a frame is
# acknowledged, how a held acknowledgement travels, and TILE frames unfolded
# into the REGION and FRAME_END they stand for.
#
# Why apart from session.py: these rules decide how many bytes and TLS
# records one typed character costs, and they are one piece -- FRAME_END's
# ack_now lets the client hold its FRAME_ACK; the held ack goes with the
# next write (one record), inside the keystroke itself when that is a tap
# (KEY_TAP_ACK: the seq's low byte); a TILE is a whole frame in one message.
# SessionClient mixes this in; the display drawing stays in session.py.
"""FrameAcks: held FRAME_ACKs, KEY_TAP_ACK, and TILE unfolding for SessionClient."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from media.tile import TileColours, TileError, unfold
from protocol.errors import ReasonCode
from protocol.media import ACK_LOW_MODULO
from protocol.messages import ChannelKind, FrameAck, FrameEnd, KeyTap, KeyTapAck, Message, Tile

DISPLAY = int(ChannelKind.DISPLAY)
INPUT = int(ChannelKind.INPUT)
# Largest keysym KEY_TAP_ACK carries (u16); others go as KEY_TAP + FRAME_ACK.
KEY_TAP_ACK_MAX_KEYSYM = 0xFFFF


class FrameAcks:
    """Frame acknowledgement and TILE methods of SessionClient (which provides conn,
    last_frame, refuse() and, through FrameProtocol, flush())."""

    conn: Any
    last_frame: int
    refuse: Callable[[ReasonCode, str], None]  # FrameProtocol's: close the connection with a reason

    def __init__(self) -> None:
        super().__init__()
        # A FRAME_ACK the server let us hold (FRAME_END ack_now=0): it goes with the next write.
        self._held_ack: int | None = None
        # False: ack every frame at once, as clients did before ack_now (bench baseline).
        self.hold_acks = True
        # False: taps never carry the held ack (KEY_TAP + FRAME_ACK: the bench's previous encoding).
        self.compact_keys = True
        self._tile_colours = TileColours()  # the last TILE's colours on this display channel

    def display_opened(self) -> None:
        """A new display channel: no TILE colours known."""
        self._tile_colours.reset()

    def _unfold(self, message: Message) -> tuple[Message, ...]:
        """A TILE as the REGION and FRAME_END it stands for (media/tile.py)."""
        if not isinstance(message, Tile):
            return (message,)
        try:
            return unfold(message, self._tile_colours, self.last_frame)
        except TileError as exc:
            self.refuse(ReasonCode.MALFORMED_MESSAGE, f"bad tile: {exc}")
            return ()

    def _frame_ended(self, message: FrameEnd) -> None:
        """Ack a drawn frame at once if the server waits for it, else hold the ack."""
        self.last_frame = message.seq
        if message.ack_now or not self.hold_acks:
            self._held_ack = None
            self.conn.send(DISPLAY, FrameAck(seq=message.seq))
        else:
            self._held_ack = message.seq

    def flush(self) -> None:
        """Write what is queued; a held FRAME_ACK rides along with anything else written."""
        if self._held_ack is not None and not self.conn.closed and self.conn.has_data_to_send():
            self._send_held_ack()
        super().flush()  # type: ignore[misc]

    def _send_held_ack(self) -> None:
        seq, self._held_ack = self._held_ack, None
        if seq is not None and DISPLAY in self.conn.open_channels():
            self.conn.send(DISPLAY, FrameAck(seq=seq))

    def tap(self, keysym: int) -> None:
        """Press and release a key in one KEY_TAP message (KEY_TAP_ACK with the held FRAME_ACK in it)."""
        held = self._held_ack
        if held is not None and self.compact_keys and keysym <= KEY_TAP_ACK_MAX_KEYSYM:
            self._held_ack = None
            message: Message = KeyTapAck(ack=held % ACK_LOW_MODULO, keysym=keysym)
        else:
            message = KeyTap(keysym=keysym)
        self.conn.send(INPUT, message)
        self.flush()

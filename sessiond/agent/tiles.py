# The agent's side of the keystroke path's compact forms (issue 15):
# folding a frame of one small two-colour PALETTE region and its FRAME_END
# into one TILE, and reading the frame ack a KEY_TAP_ACK carries.
#
# Why apart from display.py: the pacing pipeline stays the same for every
# frame; this only rewrites the messages of a frame that qualifies, after
# the encoder made them, and only for a client that announced TILE
# (VIDEO_CAPS bit 1).  A TILE's seq is implicit (the previous frame's + 1),
# so none goes out on a display channel before an explicit FRAME_END did;
# its colours are implicit when they equal the previous TILE's.
"""TileFolder: REGION(PALETTE) + FRAME_END -> TILE; ack_from_low()."""

from __future__ import annotations


from media.tile import palette_to_tile
from protocol.media import (
    ACK_LOW_MODULO,
    TILE_ACK_NOW,
    TILE_COLOURS,
    TILE_MAX_SIDE,
    FrameEnd,
    Region,
    Tile,
)
from protocol.base import Encoding, Message



def ack_from_low(low: int, acked: int, sent: int) -> int | None:
    """The seq of the frame in flight (acked < seq <= sent) whose value
    modulo ACK_LOW_MODULO is `low`; None if no frame in flight has it
    (a stale or bogus ack: ignored, as an out-of-range FRAME_ACK is)."""
    if sent - acked >= ACK_LOW_MODULO:
        return None  # ambiguous; [display] frames_in_flight keeps this far away
    seq = sent - ((sent - low) % ACK_LOW_MODULO)
    return seq if seq > acked else None


class TileFolder:
    """Per display channel: whether the client takes TILE, and what it
    knows (an explicit seq seen, the last TILE's colours)."""

    def __init__(self) -> None:
        self.enabled = False
        self._seq_known = False
        self._colours: bytes | None = None

    def reset(self) -> None:
        """A new display channel: no TILE until VIDEO_CAPS asks for it and a FRAME_END went."""
        self.enabled = False
        self._seq_known = False
        self._colours = None

    def frame(self, messages: list[Message], end: FrameEnd) -> list[Message]:
        """The messages that carry this frame: `messages` + `end`, or the
        messages before its one region + a TILE standing for region and end."""
        tile = self._fold(messages, end) if self.enabled and self._seq_known else None
        if tile is None:
            self._seq_known = True
            return [*messages, end]
        return [*messages[:-1], tile]

    def _fold(self, messages: list[Message], end: FrameEnd) -> Tile | None:
        if not messages or any(isinstance(m, Region) for m in messages[:-1]):
            return None
        region = messages[-1]
        if not isinstance(region, Region) or region.encoding is not Encoding.PALETTE:
            return None
        if region.w > TILE_MAX_SIDE or region.h > TILE_MAX_SIDE:
            return None
        found = palette_to_tile(region.data, region.w, region.h)
        if found is None:
            return None
        colours, bits = found
        form = TILE_ACK_NOW if end.ack_now else 0
        if colours != self._colours:
            form |= TILE_COLOURS
            bits = colours + bits
            self._colours = colours
        return Tile(region.x, region.y, region.w, region.h, form, bits)

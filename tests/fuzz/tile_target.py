# Fuzz target of the TILE frame (docs/protocol.md 7b), client side: a
# (malicious) server's TILE payload is decoded, unfolded with the colours
# earlier inputs left (a TILE may reuse them, so the state is kept across
# inputs as a connection keeps it) and drawn on a framebuffer. Apart from
# targets.py, which is past its size; it lists this one in TARGETS.
"""The `tile` fuzz target: decode, unfold, draw a TILE."""

from __future__ import annotations

from client.framebuffer import Framebuffer, RegionError
from media.tile import TileColours, TileError, unfold
from protocol.base import ChannelKind
from protocol.errors import ProtocolError
from protocol.messages import Tile, decode_message

_colours = TileColours()  # kept across inputs, as a display channel keeps it


def tile(data: bytes) -> None:
    """A TILE payload: refused with ProtocolError, or unfolded (TileError if
    its colours are unknown) and drawn (RegionError if it lies off the screen)."""
    try:
        message = decode_message(ChannelKind.DISPLAY, Tile.TYPE, data)
    except ProtocolError:
        return
    if not isinstance(message, Tile):
        raise TypeError(f"decoded a {type(message).__name__} for TILE")
    try:
        region, end = unfold(message, _colours, data[0] if data else 0)
    except TileError:
        return
    if end.ack_now != message.ack_now:
        raise AssertionError("FRAME_END's ack_now differs from the TILE's")
    try:
        Framebuffer(96, 80).apply(region)
    except RegionError:
        pass

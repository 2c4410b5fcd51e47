# The TILE frame's pixels (protocol/media.py Tile; docs/protocol.md 7b),
# shared by the agent, which folds a one-region frame into a TILE, and the
# thin client, which unfolds it into the PALETTE region and FRAME_END it
# stands for.
#
# Why a form of its own: an echoed keystroke is one frame of one small
# two-colour region (the glyph and the moved cursor, 12x13 pixels in a
# default xterm).  As REGION(PALETTE) + FRAME_END it costs two frame
# headers, a 9-byte region header, a 3-byte palette header, 6 bytes of
# colours, a packing byte, rows padded to bytes (or a zlib stream that
# hardly shrinks 26 bytes) and a 4-byte seq: 61 bytes before TLS's 22.
# TILE drops what the client already knows: the seq (the previous + 1),
# the colours when they did not change, the row padding; w and h are one
# byte each.  The same glyph is 35 bytes, 57 with TLS.
#
# The client turns a TILE back into PALETTE data (1 bit, 2 colours, raw
# rows), so the framebuffer code is the one that draws every other
# PALETTE region: no second pixel path to keep byte-identical.
"""PALETTE region data <-> TILE colours + unpadded bits; a TILE unfolded."""

from __future__ import annotations

import zlib
from typing import Final

from media import palette as palette_codec
from protocol.base import U32_MAX, Encoding
from protocol.media import TILE_COLOURS_BYTES, TILE_MAX_PIXELS, FrameEnd, Region, Tile, tile_bits_bytes

# PALETTE data of a TILE as the client rebuilds it: 1 bit an index, 2 colours.
_TILE_BITS: Final = 1
_TILE_COUNT: Final = 2


class TileError(ValueError):
    """A TILE cannot be unfolded (no colours known yet)."""


def _rows(data: bytes, packing: int, size: int) -> bytes | None:
    """PALETTE index rows, inflated to at most `size` bytes; None if not exactly size."""
    if packing == palette_codec.PACK_RAW:
        return data if len(data) == size else None
    inflater = zlib.decompressobj()
    try:
        rows = inflater.decompress(data, size)
    except zlib.error:
        return None
    if len(rows) != size or not inflater.eof or inflater.unconsumed_tail or inflater.unused_data:
        return None
    return rows


def palette_to_tile(data: bytes, w: int, h: int) -> tuple[bytes, bytes] | None:
    """(colours, bits) of PALETTE data for a w x h region that a TILE can
    carry (one or two colours at 1 bit an index, at most TILE_MAX_PIXELS),
    else None."""
    if w * h > TILE_MAX_PIXELS:
        return None
    try:
        bits, palette, packing, rest = palette_codec.split(data)
    except palette_codec.PaletteError:
        return None
    if bits != _TILE_BITS:
        return None
    stride = palette_codec.row_bytes(w, 1)
    rows = _rows(rest, packing, stride * h)
    if rows is None:
        return None
    pad = stride * 8 - w
    value = 0
    for row in range(h):
        value = (value << w) | (int.from_bytes(rows[row * stride : (row + 1) * stride], "big") >> pad)
    size = tile_bits_bytes(w, h)
    colours = palette if len(palette) == TILE_COLOURS_BYTES else palette + palette
    return colours, (value << (size * 8 - w * h)).to_bytes(size, "big")


def tile_to_palette(colours: bytes, bits: bytes, w: int, h: int) -> bytes:
    """PALETTE data (1 bit, two colours, raw rows) of a TILE's colours and
    bits; the lengths are the TILE's own, checked when it was decoded."""
    value = int.from_bytes(bits, "big") >> (len(bits) * 8 - w * h)
    stride = palette_codec.row_bytes(w, 1)
    pad = stride * 8 - w
    mask = (1 << w) - 1
    rows = bytearray()
    for shift in range((h - 1) * w, -1, -w):  # the top row is the most significant
        rows += (((value >> shift) & mask) << pad).to_bytes(stride, "big")
    head = bytes((_TILE_BITS, _TILE_COUNT - 1)) + colours + bytes((palette_codec.PACK_RAW,))
    return head + bytes(rows)


class TileColours:
    """The colours of the last TILE on a display channel (both sides keep one)."""

    def __init__(self) -> None:
        self.colours: bytes | None = None

    def reset(self) -> None:
        """A new display channel: no colours known."""
        self.colours = None

    def received(self, data: bytes, has_colours: bool) -> tuple[bytes, bytes]:
        """(colours, bits) of a TILE's data; TileError if it reuses colours
        none was sent before."""
        if has_colours:
            self.colours = data[:TILE_COLOURS_BYTES]
            return self.colours, data[TILE_COLOURS_BYTES:]
        if self.colours is None:
            raise TileError("TILE reuses colours before any TILE sent them")
        return self.colours, data


def unfold(tile: Tile, colours: TileColours, previous_seq: int) -> tuple[Region, FrameEnd]:
    """The PALETTE region and the FRAME_END (seq previous_seq + 1) a TILE
    stands for; TileError if its colours are unknown."""
    pair, bits = colours.received(tile.data, tile.has_colours)
    data = tile_to_palette(pair, bits, tile.w, tile.h)
    region = Region(tile.x, tile.y, tile.w, tile.h, Encoding.PALETTE, data)
    return region, FrameEnd(seq=(previous_seq + 1) & U32_MAX, ack_now=tile.ack_now)

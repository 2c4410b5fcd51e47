# The GLYPHS region encoding (docs/protocol.md section 7c), shared by the
# agent's encoder and the Python client's decoder.
#
# Why: a screen of terminal text is a grid of equal cells and a few dozen
# distinct glyphs fill thousands of them.  PALETTE sends every pixel of every
# cell (~27 kB for a 180x50 xterm); GLYPHS sends each distinct glyph bitmap
# once per display channel into a cache of slots and then one u8 per cell,
# deflated: a screen of new text is a few kB.
#
# Layout: u8 cell_w, u8 cell_h, colour 0 and colour 1 (R, G, B), then one
# zlib stream of: u16 new_count, new_count x (u16 slot, the cell's bits row
# after row, MSB first, padded to a byte with zeros); u16 used_count, the
# used slots (u16 each); one u8 per cell, an index into the used slots.
#
# Pixel work without numpy: both sides hold a glyph as its cell "column
# major" -- cell_w columns of cell_h bytes 0/1 -- because that is what a
# transposed band of cell_h rows is in Pillow's tobytes(): cell after cell,
# each contiguous.  Decoding a region is then one b"".join of cached cell
# bytes, frombytes and one transpose per band of cells.
#
# Bounds for a decoder, all checked before allocating: the header, the
# region (w*h*3 <= MAX_REGION_RAW_BYTES), the cell size (1..GLYPH_MAX_SIDE,
# dividing w and h), new_count <= the cell count,
# used_count 1..GLYPH_MAX_USED, each slot < GLYPH_SLOTS; the stream is
# inflated in stages, each no longer than its counts allow, and must end
# exactly after the last index.  The cache is touched only once the whole
# region checked out.
"""GLYPHS region codec: glyph bits <-> cell bytes, the client's glyph cache, encode and decode."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import Final

from PIL import Image

from protocol.limits import MAX_REGION_RAW_BYTES
from protocol.media import GLYPH_HEADER_BYTES, GLYPH_MAX_SIDE, GLYPH_MAX_USED, GLYPH_SLOTS

_HEAD: Final = struct.Struct(">BB6s")
_U16: Final = struct.Struct(">H")
# Every index byte, in order: indices.translate(None, _INDEX_BYTES[:n]) keeps the ones >= n (GLYPH_MAX_USED <= 256).
_INDEX_BYTES: Final = bytes(range(256))
# Deflate level of the stream: a screen's indices (9000 bytes) take ~0.3 ms.
ZLIB_LEVEL: Final = 6
# 0/1 bytes <-> ASCII digits, for packing bits through int().
_TO_DIGITS: Final = bytes.maketrans(b"\x00\x01", b"01")
_FROM_DIGITS: Final = bytes.maketrans(b"01", b"\x00\x01")


class GlyphError(ValueError):
    """GLYPHS data is malformed for its region or the client's cache."""


def bits_bytes(cell_w: int, cell_h: int) -> int:
    """Bytes of one glyph's bits: cell_w*cell_h bits rounded up to a byte."""
    return (cell_w * cell_h + 7) // 8


def pack_cell(cell: bytes, cell_w: int, cell_h: int) -> bytes:
    """The wire bits of a glyph given as its column-major 0/1 cell bytes."""
    rows = b"".join(cell[row::cell_h] for row in range(cell_h))
    size = bits_bytes(cell_w, cell_h)
    value = int(rows.translate(_TO_DIGITS), 2) if rows else 0
    return (value << (size * 8 - cell_w * cell_h)).to_bytes(size, "big")


def unpack_bits(bits: bytes, cell_w: int, cell_h: int) -> bytes:
    """The column-major 0/1 cell bytes of a glyph's wire bits (length and
    pad bits already checked)."""
    count = cell_w * cell_h
    digits = format(int.from_bytes(bits, "big"), f"0{len(bits) * 8}b")[:count]
    rows = digits.encode().translate(_FROM_DIGITS)
    return b"".join(rows[col::cell_w] for col in range(cell_w))


class GlyphCache:
    """The client's glyph cache of one display channel: slot -> (cell_w,
    cell_h, column-major 0/1 cell bytes).  Reset when the channel opens."""

    def __init__(self) -> None:
        self.slots: dict[int, tuple[int, int, bytes]] = {}

    def reset(self) -> None:
        """A new display channel: every slot empty."""
        self.slots.clear()


def encode(
    cell_w: int,
    cell_h: int,
    colours: bytes,
    new_defs: Sequence[tuple[int, bytes]],
    used_slots: Sequence[int],
    cell_indices: bytes,
    level: int = ZLIB_LEVEL,
) -> bytes:
    """GLYPHS data: the header, then the deflated definitions (slot, wire
    bits -- see pack_cell), used slots and one index per cell."""
    if not (1 <= cell_w <= GLYPH_MAX_SIDE and 1 <= cell_h <= GLYPH_MAX_SIDE) or len(colours) != 6:
        raise GlyphError(f"cell {cell_w}x{cell_h} or {len(colours)} colour bytes")
    if not 1 <= len(used_slots) <= GLYPH_MAX_USED:
        raise GlyphError(f"{len(used_slots)} used slots")
    size = bits_bytes(cell_w, cell_h)
    parts = [_U16.pack(len(new_defs))]
    for slot, bits in new_defs:
        if not 0 <= slot < GLYPH_SLOTS or len(bits) != size:
            raise GlyphError(f"definition of slot {slot} with {len(bits)} bytes of bits")
        parts += (_U16.pack(slot), bits)
    parts.append(_U16.pack(len(used_slots)))
    # One pack for all slots (a scrolling xterm uses ~50 per region): not a Python call per slot.
    parts.append(struct.pack(f">{len(used_slots)}H", *used_slots))
    parts.append(cell_indices)
    return _HEAD.pack(cell_w, cell_h, colours) + zlib.compress(b"".join(parts), level)


class _Stream:
    """A zlib stream read in stages, never inflating past what is asked."""

    def __init__(self, data: bytes) -> None:
        self._inflater = zlib.decompressobj()
        self._tail = data

    def take(self, count: int) -> bytes:
        """Exactly the next count inflated bytes; GlyphError if the stream
        is corrupt or ends first."""
        out = b""
        try:
            while len(out) < count:
                piece = self._inflater.decompress(self._tail, count - len(out))
                self._tail = self._inflater.unconsumed_tail
                if not piece:
                    break
                out += piece
        except zlib.error as exc:
            raise GlyphError(f"GLYPHS stream is corrupt: {exc}") from None
        if len(out) != count:
            raise GlyphError("GLYPHS stream ends before its counts say")
        return out

    def finish(self) -> None:
        """GlyphError unless the stream ended exactly here, with no byte after."""
        try:
            extra = self._inflater.decompress(self._tail, 1)
        except zlib.error as exc:
            raise GlyphError(f"GLYPHS stream is corrupt: {exc}") from None
        if extra or not self._inflater.eof or self._inflater.unconsumed_tail or self._inflater.unused_data:
            raise GlyphError("GLYPHS stream does not end exactly after its indices")


def _check_bits(bits: bytes, cell_w: int, cell_h: int) -> None:
    pad = len(bits) * 8 - cell_w * cell_h
    if pad and bits[-1] & ((1 << pad) - 1):
        raise GlyphError("GLYPHS definition has pad bits set")


# What decode_cells returns: cell_w, cell_h, colours, the used slots'
# column-major cell bytes, one index per cell.
Cells = tuple[int, int, bytes, list[bytes], bytes]


def decode_cells(data: bytes, w: int, h: int, cache: GlyphCache) -> Cells:
    """Check GLYPHS data for a w x h region against the cache and store its
    definitions: (cell_w, cell_h, colours, the used slots' column-major
    cell bytes, one index per cell).  GlyphError (cache untouched) if
    anything is malformed."""
    if len(data) < GLYPH_HEADER_BYTES:
        raise GlyphError("GLYPHS data is shorter than its header")
    cell_w, cell_h, colours = _HEAD.unpack_from(data)
    if not (1 <= cell_w <= GLYPH_MAX_SIDE and 1 <= cell_h <= GLYPH_MAX_SIDE):
        raise GlyphError(f"GLYPHS cell {cell_w}x{cell_h} is outside 1..{GLYPH_MAX_SIDE}")
    if w * h * 3 > MAX_REGION_RAW_BYTES:
        raise GlyphError(f"GLYPHS region {w}x{h} is over MAX_REGION_RAW_BYTES")
    if w < 1 or h < 1 or w % cell_w or h % cell_h:
        raise GlyphError(f"GLYPHS cell {cell_w}x{cell_h} does not divide the region {w}x{h}")
    cells = (w // cell_w) * (h // cell_h)
    size = bits_bytes(cell_w, cell_h)
    stream = _Stream(data[GLYPH_HEADER_BYTES:])
    (new_count,) = _U16.unpack(stream.take(_U16.size))
    if new_count > cells:
        raise GlyphError(f"GLYPHS defines {new_count} glyphs for {cells} cells")
    defs = stream.take(new_count * (_U16.size + size) + _U16.size)
    pending: dict[int, tuple[int, int, bytes]] = {}
    for offset in range(0, new_count * (_U16.size + size), _U16.size + size):
        (slot,) = _U16.unpack_from(defs, offset)
        if slot >= GLYPH_SLOTS:
            raise GlyphError(f"GLYPHS defines slot {slot}, past {GLYPH_SLOTS}")
        bits = defs[offset + _U16.size : offset + _U16.size + size]
        _check_bits(bits, cell_w, cell_h)
        pending[slot] = (cell_w, cell_h, bits)
    (used_count,) = _U16.unpack_from(defs, len(defs) - _U16.size)
    if not 1 <= used_count <= GLYPH_MAX_USED:
        raise GlyphError(f"GLYPHS uses {used_count} slots (1..{GLYPH_MAX_USED})")
    used = stream.take(used_count * _U16.size)
    indices = stream.take(cells)
    stream.finish()
    if indices.translate(None, _INDEX_BYTES[:used_count]):  # one C pass (max() iterates ints: 7x slower)
        raise GlyphError(f"GLYPHS index {max(indices)} is past its {used_count} used slots")
    decoded = {slot: (cw, ch, unpack_bits(bits, cw, ch)) for slot, (cw, ch, bits) in pending.items()}
    glyphs = []
    for (slot,) in _U16.iter_unpack(used):
        glyph = decoded.get(slot) or cache.slots.get(slot)
        if glyph is None or glyph[0] != cell_w or glyph[1] != cell_h:
            raise GlyphError(f"GLYPHS uses slot {slot}, which holds no {cell_w}x{cell_h} glyph")
        glyphs.append(glyph[2])
    cache.slots.update(decoded)
    return cell_w, cell_h, colours, glyphs, indices


def decode(data: bytes, w: int, h: int, cache: GlyphCache) -> Image.Image:
    """The RGB image of GLYPHS data for a w x h region, the cache updated
    with its definitions; GlyphError if malformed (cache untouched)."""
    return render(decode_cells(data, w, h, cache), w, h)


def render(cells: Cells, w: int, h: int) -> Image.Image:
    """The RGB image of a w x h region of checked cells (decode_cells)."""
    cell_w, cell_h, colours, glyphs, indices = cells
    band_len = (w // cell_w) * cell_w
    # Cells' column-major bytes one after another are the region's bands of
    # cells, each transposed, stacked; transposed back, the bands lie side
    # by side in one strip cell_h rows high (~2 ms for a 1080x650 screen).
    stacked = b"".join([glyphs[index] for index in indices])
    strip = Image.frombuffer("L", (cell_h, len(indices) * cell_w), stacked, "raw", "L", 0, 1)
    strip = strip.transpose(Image.Transpose.TRANSPOSE)  # the transpose copies: stacked may go
    image = Image.new("L", (w, h))
    for row in range(h // cell_h):  # paste clips the strip to this band's width
        image.paste(strip, (-row * band_len, row * cell_h))
    image.putpalette(colours)
    return image.convert("RGB")

# The PALETTE region encoding and the COPY region's payload, shared by the
# agent's encoder and the thin client's decoder.
#
# Why its own format instead of a palette PNG: an echoed glyph is a few
# hundred pixels of two colours -- tens of bytes of indices -- but a PNG
# wraps them in ~70 bytes of signature, IHDR, PLTE, IDAT and IEND chunks,
# CRCs, a zlib header and a filter byte per row.  PALETTE is three header
# bytes, the colours, and the packed indices, deflated only when that is
# smaller.
#
# Layout: u8 bits per index (1, 2, 4 or 8), u8 colours - 1 (1..256 colours,
# at most 2**bits), the colours as R, G, B, u8 packing (0: raw, 1: zlib),
# then h rows of ceil(w * bits / 8) bytes, indices most significant bits
# first (as PNG packs them), every index below the colour count.
#
# Bounds for a decoder: the rows are exactly h * ceil(w*bits/8) bytes (at
# most w*h, under MAX_REGION_RAW_BYTES / 3), inflated with that limit; any
# other length, an index past the palette or trailing data is an error.
"""PALETTE region codec (header, colours, packed indices) and COPY's source point."""

from __future__ import annotations

import struct
import zlib
from typing import Callable, Final

from PIL import Image

PALETTE_BITS: Final = (1, 2, 4, 8)
PACK_RAW: Final = 0
PACK_ZLIB: Final = 1
# bits, colours - 1; then 3 bytes a colour; then the packing byte.
_HEAD: Final = struct.Struct(">BB")
HEADER_BYTES: Final = _HEAD.size + 1  # plus the packing byte
# Index rows up to this many bytes are deflated at the best level, larger ones fast.
SMALL_ROWS_BYTES: Final = 4096
SMALL_LEVEL: Final = 9
LARGE_LEVEL: Final = 1
# COPY: source x, y (u16 each) of a same-sized rectangle of the same surface.
COPY_SOURCE: Final = struct.Struct(">HH")


class PaletteError(ValueError):
    """PALETTE data is malformed for its region."""


def bits_for(colours: int) -> int:
    """Fewest bits per index that tell `colours` apart (1..256)."""
    for bits in PALETTE_BITS:
        if colours <= 1 << bits:
            return bits
    raise PaletteError(f"{colours} colours do not fit a palette")


def row_bytes(width: int, bits: int) -> int:
    """Bytes of one packed row of indices."""
    return (width * bits + 7) // 8


def encode(width: int, height: int, bits: int, palette: bytes, packed: bytes) -> bytes:
    """PALETTE data for w x h indices packed `bits` a pixel (rows padded to
    a byte) and `palette` (3 bytes a colour); deflated if that is smaller."""
    count = len(palette) // 3
    if bits not in PALETTE_BITS or not 1 <= count <= 1 << bits or len(palette) != 3 * count:
        raise PaletteError(f"{count} colours at {bits} bits per index")
    if len(packed) != row_bytes(width, bits) * height:
        raise PaletteError(f"{len(packed)} bytes of indices for {width}x{height} at {bits} bits")
    head = _HEAD.pack(bits, count - 1) + palette
    level = SMALL_LEVEL if len(packed) <= SMALL_ROWS_BYTES else LARGE_LEVEL
    deflated = zlib.compress(packed, level)
    if len(deflated) < len(packed):
        return head + bytes([PACK_ZLIB]) + deflated
    return head + bytes([PACK_RAW]) + packed


def split(data: bytes) -> tuple[int, bytes, int, bytes]:
    """(bits, palette, packing, rest) of PALETTE data, header checked."""
    if len(data) < _HEAD.size:
        raise PaletteError("PALETTE data is shorter than its header")
    bits, count_less_one = _HEAD.unpack_from(data)
    count = count_less_one + 1
    if bits not in PALETTE_BITS or count > 1 << bits:
        raise PaletteError(f"PALETTE of {count} colours at {bits} bits per index")
    end = _HEAD.size + 3 * count
    if len(data) < end + 1:
        raise PaletteError("PALETTE data is shorter than its colours")
    packing = data[end]
    if packing not in (PACK_RAW, PACK_ZLIB):
        raise PaletteError(f"unknown PALETTE packing {packing}")
    return bits, data[_HEAD.size : end], packing, data[end + 1 :]


def _indices(data: bytes, width: int, height: int) -> tuple[int, bytes, bytes]:
    """(bits, colours, index rows) of PALETTE data for a width x height region,
    the rows exactly the region's; PaletteError otherwise, before allocating past it."""
    bits, palette, packing, rest = split(data)
    size = row_bytes(width, bits) * height
    if packing == PACK_ZLIB:
        inflater = zlib.decompressobj()
        try:
            rows = inflater.decompress(rest, size)
        except zlib.error as exc:
            raise PaletteError(f"PALETTE indices are corrupt: {exc}") from None
        if not inflater.eof or inflater.unconsumed_tail or inflater.unused_data:
            raise PaletteError("PALETTE indices do not inflate to exactly the region")
    else:
        rows = rest
    if len(rows) != size:
        raise PaletteError(f"PALETTE has {len(rows)} bytes of indices, the region needs {size}")
    return bits, palette, rows


def decode(data: bytes, width: int, height: int, reorder: Callable[[bytes], bytes] | None = None) -> Image.Image:
    """The RGB image of PALETTE data for a width x height region;
    PaletteError on any inconsistency, before allocating past the region.
    REORDER, if given, maps the palette's R, G, B triples before they are used
    (the client's framebuffer keeps its channels in Qt's order)."""
    bits, palette, rows = _indices(data, width, height)
    mode = "P" if bits == 8 else f"P;{bits}"
    image = Image.frombytes("P", (width, height), rows, "raw", mode)
    count = len(palette) // 3
    highest = image.getextrema()[1]
    if isinstance(highest, int) and highest >= count:
        raise PaletteError(f"PALETTE index {highest} is past its {count} colours")
    image.putpalette(palette if reorder is None else reorder(palette))
    return image.convert("RGB")


def decode_two_colours(data: bytes, width: int, height: int, reorder: Callable[[bytes], bytes] | None = None
                       ) -> tuple[Image.Image, bytes, bytes] | None:  # fmt: skip
    """PALETTE data of 1 bit and two colours (text: a keystroke's glyph) as
    (mask, colour 0, colour 1): a mode "1" image, set where colour 1 goes,
    for two pastes instead of a palette image converted to RGB (~30 us less
    a glyph); None for any other PALETTE (decode() it). Every index of such
    data is valid. PaletteError and REORDER as for decode()."""
    bits, palette, rows = _indices(data, width, height)
    if bits != 1 or len(palette) != 6:
        return None
    colours = palette if reorder is None else reorder(palette)
    return Image.frombytes("1", (width, height), rows), colours[:3], colours[3:]

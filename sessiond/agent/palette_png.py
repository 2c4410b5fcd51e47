# Exact palette images of few-colour content, pixel-exact and without a
# quantizer: the PNG this module writes itself (filter 0, one IDAT, a
# greyscale PNG without PLTE for black and white) and the packed indices
# of a PALETTE region (media/palette.py), which are the same bytes without
# PNG's chunks.
#
# Why no quantizer: the indices come from one band (luminance, else R, G
# or B) that tells every colour apart, mapped through a lookup table in
# Pillow's C code, so a 1920x182 stripe of text costs ~2.5 ms; only content
# whose colours no single band separates falls back to the encoder's
# quantizer path.
"""exact_palette_png, exact_palette (PALETTE data) and their PNG writer."""

from __future__ import annotations

import functools
import struct
import zlib

from PIL import Image

from media import palette as palette_codec
from media.region import PNG_SIGNATURE

# zlib level for PNG: 1 is ~3x faster than the default for a few % size.
PNG_COMPRESS_LEVEL = 1
# Index images up to this many bytes are deflated at the best level instead:
# it costs microseconds there, and a keystroke's echo is that small.
PNG_SMALL_BYTES = 4096
PNG_SMALL_LEVEL = 9
# Bits per index PNG allows for a palette, smallest first.
PNG_BIT_DEPTHS = (1, 2, 4, 8)
# PNG colour types: 0 greyscale (no palette chunk), 3 indexed.
PNG_GREY = 0
PNG_INDEXED = 3
# Bands of an image holding R, G and B: an RGB copy, or the capture itself
# mapped without a copy as "RGBX" (its bytes are B, G, R, X).
RGB_ORDER = (0, 1, 2)
BGRX_ORDER = (2, 1, 0)
# Index images of at most this many pixels are mapped with bytes.translate
# rather than Image.point: point() rounds its 256-entry table in Python
# (~20 us, the most of a keystroke echo's pack), translate costs two small
# copies, which past this size cost more than the rounding saves.
SMALL_PACK_PIXELS = 4096
# Colour lists whose key channel is remembered (_key_channel): a typing
# session repeats the same two colours every keystroke, and finding the keys
# builds and converts a probe image (~20 us). Only lists of at most
# MAX_KEY_MEMO_COLOURS (text: two) are remembered, MAX_KEY_MEMO of them, the
# least recently used going first: a few tens of KiB whatever the screen shows.
MAX_KEY_MEMO = 256
MAX_KEY_MEMO_COLOURS = 4


def _bit_depth(count: int) -> int:
    """Fewest PNG bits per index that can tell `count` values apart."""
    for bits in PNG_BIT_DEPTHS:
        if count <= 1 << bits:
            return bits
    raise ValueError(f"{count} colours do not fit a PNG palette")


def _grey_levels(rgbs: list[tuple[int, int, int]]) -> int | None:
    """Bits per pixel of a greyscale PNG (no PLTE chunk, 18+ bytes less)
    that holds exactly these colours, or None if they are not all such greys."""
    if any(r != g or g != b for r, g, b in rgbs):
        return None
    for bits in PNG_BIT_DEPTHS:
        step = 255 // ((1 << bits) - 1)
        if all(r % step == 0 for r, _g, _b in rgbs):
            return bits
    return None


@functools.lru_cache(maxsize=MAX_KEY_MEMO)
def _channel_keys(mode: str, colours: tuple[tuple[int, ...], ...]) -> tuple[int, tuple[int, ...]] | None:
    """Which channel tells `colours` of an image of `mode` apart (-1:
    luminance, else a band) and each colour's value there; None if none."""
    probe = Image.new(mode, (len(colours), 1))
    probe.putdata(list(colours))
    keys = tuple(probe.convert("L").tobytes())
    if len(set(keys)) == len(keys):
        return -1, keys
    for band in range(3):
        keys = tuple(colour[band] for colour in colours)
        if len(set(keys)) == len(keys):
            return band, keys
    return None


def _key_channel(image: Image.Image, colours: list[tuple[int, ...]]) -> tuple[Image.Image, list[int]] | None:
    """A one-channel image whose value identifies each colour (band tuples
    as getcolors gives them) one to one, with each colour's value, or None.
    Luminance goes first (black/white text and most UI tell apart there),
    then each single band. The choice per colour list is remembered
    (MAX_KEY_MEMO)."""
    listed = tuple(colours)
    keys_of = _channel_keys if len(listed) <= MAX_KEY_MEMO_COLOURS else _channel_keys.__wrapped__
    found = keys_of(image.mode, listed)
    if found is None:
        return None
    band, keys = found
    return (image.convert("L") if band < 0 else image.getchannel(band)), list(keys)


def exact_palette_png(
    image: Image.Image, colours: list[tuple[int, tuple[int, ...]]], order: tuple[int, int, int] = RGB_ORDER
) -> bytes | None:
    """A pixel-exact PNG of an image with the given (count, colour) list
    (from getcolors; `order`: the bands holding R, G and B), indexed through
    a channel that tells the colours apart; None if no such channel exists.
    Greys that fit 1/2/4/8-bit greyscale need no palette at all."""
    tuples = [colour for _count, colour in colours]
    rgbs = [(colour[order[0]], colour[order[1]], colour[order[2]]) for colour in tuples]
    grey_bits = _grey_levels(rgbs)
    lut = list(range(256))
    if grey_bits is not None and grey_bits <= _bit_depth(len(rgbs)):
        step = 255 // ((1 << grey_bits) - 1)
        channel = image.getchannel(order[0])
        lut = [value // step for value in range(256)]
        bits, colour_type, palette = grey_bits, PNG_GREY, b""
    else:
        found = _key_channel(image, tuples)
        if found is None:
            return None
        channel, keys = found
        bits, colour_type = _bit_depth(len(rgbs)), PNG_INDEXED
        palette = b"".join(bytes(rgb) for rgb in rgbs)
        for index, key in enumerate(keys):
            lut[key] = index
    w, h = image.size
    packed = _pack(channel, lut, bits)
    return _write_png(w, h, packed, bits, colour_type, palette)


def exact_palette(
    image: Image.Image, colours: list[tuple[int, tuple[int, ...]]], order: tuple[int, int, int] = RGB_ORDER
) -> bytes | None:
    """PALETTE region data (media/palette.py) of an image with the given
    (count, colour) list, pixel-exact; None if no channel tells the colours
    apart (then exact_palette_png may still manage greys)."""
    tuples = [colour for _count, colour in colours]
    found = _key_channel(image, tuples)
    if found is None:
        return None
    channel, keys = found
    bits = palette_codec.bits_for(len(tuples))
    lut = [0] * 256
    for index, key in enumerate(keys):
        lut[key] = index
    packed = _pack(channel, lut, bits)
    rgbs = b"".join(bytes((colour[order[0]], colour[order[1]], colour[order[2]])) for colour in tuples)
    w, h = image.size
    return palette_codec.encode(w, h, bits, rgbs, packed)


def _pack(channel: Image.Image, lut: list[int], bits: int) -> bytes:
    """The channel's values mapped through lut, packed `bits` a pixel, rows padded to a byte."""
    w, h = channel.size
    if w * h <= SMALL_PACK_PIXELS:  # the same pixels as point() below (SMALL_PACK_PIXELS)
        mapped = channel.tobytes().translate(bytes(lut))
        if bits == 1:  # raw "1;8": a byte a pixel, any non-zero is set
            return Image.frombytes("1", (w, h), mapped, "raw", "1;8").tobytes()
        indexed = Image.frombytes("L", (w, h), mapped)
    elif bits == 1:
        return channel.point(lut, "1").tobytes()  # Pillow's mode "1" packs 8 pixels a byte
    else:
        indexed = channel.point(lut) if lut != list(range(256)) else channel
    if bits < 8:
        indexed.putpalette(bytes(3 << bits))  # mode P, so Pillow packs P;2/P;4
        return indexed.tobytes("raw", f"P;{bits}")
    return indexed.tobytes()


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _write_png(w: int, h: int, packed: bytes, bits: int, colour_type: int, palette: bytes) -> bytes:
    """A PNG of w x h indices packed `bits` per pixel (rows padded to a
    byte): no filters (they win nothing on palette data), one IDAT, no
    ancillary chunks."""
    row_bytes = (w * bits + 7) // 8
    rows = b"".join(b"\0" + packed[i : i + row_bytes] for i in range(0, row_bytes * h, row_bytes))
    level = PNG_SMALL_LEVEL if len(rows) <= PNG_SMALL_BYTES else PNG_COMPRESS_LEVEL
    header = struct.pack(">IIBBBBB", w, h, bits, colour_type, 0, 0, 0)
    chunks = [PNG_SIGNATURE, _chunk(b"IHDR", header)]
    if palette:
        chunks.append(_chunk(b"PLTE", palette))
    chunks += [_chunk(b"IDAT", zlib.compress(rows, level)), _chunk(b"IEND", b"")]
    return b"".join(chunks)

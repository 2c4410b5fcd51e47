# What the encoder (session agent) and the decoder (thin client) of display
# regions must agree on beyond the wire format in protocol/: the pixel
# layout of decoded regions, lz4's size prefix, and the dimensions an image
# file's header declares.
#
# Why header_size() is hand-written: a hostile server can send a PNG or
# JPEG whose header claims 20000x20000 pixels.  Pillow's Image.open already
# reacts to such a size (DecompressionBombError, or an allocation on load),
# so the client must learn the size before Pillow sees the file: from the
# PNG IHDR chunk (fixed offset) or the JPEG SOFn segment (a bounded walk
# over the segment headers before the first scan).  Nothing is allocated.
"""Region pixel layout, lz4 size prefix, and image header dimensions."""

from __future__ import annotations

import struct
from typing import Final

# Decoded regions are RGB24: three bytes per pixel, on the wire and in the client.
BYTES_PER_PIXEL: Final = 3
# FILL carries one RGB colour.
FILL_BYTES: Final = 3
# lz4.block.compress(store_size=True) prefix: decoded size, u32 little-endian.
LZ4_SIZE_PREFIX: Final = struct.Struct("<I")
PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
# PNG: signature, IHDR length and tag, then width and height (u32 big-endian).
_PNG_IHDR: Final = struct.Struct(">I4sII")
# JPEG: markers are 0xFF xx; SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC)
# carry the frame header: length u16, precision u8, height u16, width u16.
_JPEG_SOI: Final = b"\xff\xd8"
_JPEG_SOS: Final = 0xDA
_JPEG_EOI: Final = 0xD9
_JPEG_SOF: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field (TEM, RSTn).
_JPEG_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})
_JPEG_SOF_FIELDS: Final = struct.Struct(">HBHH")
# Segments walked before the frame header at most: real encoders put a few
# APPn/DQT/DHT segments first; a file that needs more is refused.
MAX_JPEG_SEGMENTS: Final = 64


class ImageHeaderError(ValueError):
    """The data is not a PNG/JPEG file whose dimensions can be read."""


def raw_bytes(width: int, height: int) -> int:
    """Bytes of a decoded width x height region."""
    return width * height * BYTES_PER_PIXEL


def header_size(data: bytes, fmt: str) -> tuple[int, int]:
    """(width, height) declared by the header of a "PNG" or "JPEG" file, read
    without decoding anything; ImageHeaderError if it cannot be found."""
    if fmt == "PNG":
        return _png_size(data)
    if fmt == "JPEG":
        return _jpeg_size(data)
    raise ImageHeaderError(f"no header reader for format {fmt!r}")


def _png_size(data: bytes) -> tuple[int, int]:
    if not data.startswith(PNG_SIGNATURE) or len(data) < len(PNG_SIGNATURE) + _PNG_IHDR.size:
        raise ImageHeaderError("not a PNG file (no signature and IHDR)")
    _length, tag, width, height = _PNG_IHDR.unpack_from(data, len(PNG_SIGNATURE))
    if tag != b"IHDR":
        raise ImageHeaderError("PNG file does not start with IHDR")
    return width, height


def _jpeg_size(data: bytes) -> tuple[int, int]:
    if not data.startswith(_JPEG_SOI):
        raise ImageHeaderError("not a JPEG file (no SOI marker)")
    offset = len(_JPEG_SOI)
    for _ in range(MAX_JPEG_SEGMENTS):
        while offset < len(data) and data[offset] == 0xFF and offset + 1 < len(data) and data[offset + 1] == 0xFF:
            offset += 1  # fill bytes before a marker
        if offset + 4 > len(data) or data[offset] != 0xFF:
            raise ImageHeaderError("JPEG file ends or breaks before its frame header")
        marker = data[offset + 1]
        if marker in _JPEG_STANDALONE:
            offset += 2
            continue
        if marker in (_JPEG_SOS, _JPEG_EOI):
            raise ImageHeaderError("JPEG file has no frame header before its scan")
        (length,) = struct.unpack_from(">H", data, offset + 2)
        if length < 2:
            raise ImageHeaderError("JPEG segment length is below 2")
        if marker in _JPEG_SOF:
            if offset + 2 + _JPEG_SOF_FIELDS.size > len(data):
                raise ImageHeaderError("JPEG frame header is truncated")
            _len, _precision, height, width = _JPEG_SOF_FIELDS.unpack_from(data, offset + 2)
            return width, height
        offset += 2 + length
    raise ImageHeaderError(f"JPEG file has more than {MAX_JPEG_SEGMENTS} segments before its frame header")

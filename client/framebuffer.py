# The client's copy of the session screen.
#
# H264 regions go through client/video.py (one decoder per stream id).
#
# COPY regions move pixels the client already has (a scroll); PALETTE
# regions are media/palette.py's compact few-colour bitmaps; GLYPHS regions
# (media/glyphs.py) draw cells from the display channel's glyph cache, which
# the desktop's and every window's framebuffer share.
#
# Why: Regions arrive from the network, so every one is untrusted input.
# Before anything is decompressed or decoded, the rectangle must lie inside
# the framebuffer and the announced decoded size must match w*h*3 (lz4's
# stored size, the PNG/JPEG header size read by media.region before Pillow
# sees the file), so a small hostile message can never make the client
# allocate or decode more than the region it claims.  The screen itself is
# bounded too: a DESKTOP_SIZE past MAX_FRAMEBUFFER_SIDE is refused before
# the image is allocated.
# The screen itself is a Pillow RGB image: pasting, screenshots and pixel
# probes in tests all come for free. Its pixels live in a bytearray of ours
# (client/fb_memory.py), so the viewer reads a changed rectangle's rows
# without a crop or a pack. Those pixels are in Qt's RGB32 order (B, G, R,
# pad on a little-endian machine, fb_memory.SWAP_RB): every decoder's
# output is pasted with red and blue exchanged (for PALETTE and GLYPHS only
# their few colours; RAW_LZ4 and H264 unpack as BGR in the pass they make
# anyway; PNG and JPEG pay one more pass, ~4 ms per 1084x654 tile), and
# image(), crop(), pixel() and save_png() exchange them back, so only
# pixels() hands out the memory's own order.

from __future__ import annotations

import io
import os
import struct
import zlib

import lz4.block
from PIL import Image

from client import glyph_paint
from client.fb_memory import SWAP_RB, PixelMemory, swap_colour, swap_palette, swap_rb
from media import glyphs, palette
from media.region import FILL_BYTES, ImageHeaderError, header_size, raw_bytes
from media.region import LZ4_SIZE_PREFIX as _LZ4_SIZE
from client.video import VideoDecodeError, VideoDecoders
from protocol.limits import MAX_REGION_RAW_BYTES
from protocol.messages import Encoding, Region

# Largest desktop side the client accepts: the largest screen a server can
# be configured for ([session] max_width / max_height <= 8192).  An 8192 x
# 8192 RGB framebuffer is 192 MiB; a DESKTOP_SIZE of 0x7fff x 0x7fff would
# have been 3 GiB.
MAX_FRAMEBUFFER_SIDE = 8192
# What Pillow may raise on a corrupt file (besides its own OSError family);
# DecompressionBombError only if a header slipped past media.region.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error,
                  Image.DecompressionBombError)  # fmt: skip
# Image file format Pillow must detect for each file-based encoding.
_FILE_FORMATS = {Encoding.PNG: "PNG", Encoding.JPEG: "JPEG"}


def _unpack_as_bgr(tile: Image.Image) -> bool:
    """Have an opened, not yet loaded 8-bit RGB PNG unpack its rows as B, G, R
    (the framebuffer memory's order), True if so. Pillow's PNG decoder
    unfilters the rows and then unpacks them with the tile's raw mode, so
    "BGR" there is the swap made in the pass it makes anyway (a 1084x654
    tile: 17.8 -> 13.8 ms, no swap_rb pass). JPEG has no such raw mode: its
    decoder sets libjpeg's output colour space from the raw mode and turns
    the colour conversion off for any it does not know ("BGR" would give
    raw YCbCr), so JPEG tiles are swapped after decoding."""
    if tile.format != "PNG" or tile.mode != "RGB" or len(tile.tile) != 1:
        return False
    first = tile.tile[0]
    if first.codec_name != "zip" or first.args != "RGB":  # 8-bit RGB only (16-bit is "RGB;16B"; Adam7 is not in args)
        return False
    tile.tile = [first._replace(args="BGR")]
    return True


class RegionError(ValueError):
    """A Region cannot be applied: out of bounds, wrong size or corrupt data."""


def _check_size(width: int, height: int) -> None:
    if not (1 <= width <= MAX_FRAMEBUFFER_SIDE and 1 <= height <= MAX_FRAMEBUFFER_SIDE):
        raise RegionError(
            f"framebuffer size {width}x{height} is out of range (1..{MAX_FRAMEBUFFER_SIDE} per side)"
        )


def store_glyphs(data: bytes, w: int, h: int, cache: glyphs.GlyphCache) -> glyphs.Cells:
    """Check a w x h GLYPHS region's data against CACHE and store its glyph
    definitions there (also for a region whose pixels are dropped: later
    regions may use its glyphs); RegionError, cache untouched, if malformed."""
    try:
        return glyphs.decode_cells(data, w, h, cache)
    except glyphs.GlyphError as exc:
        raise RegionError(str(exc)) from None


def _touches(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """True if two rectangles overlap."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


class Framebuffer:
    """An RGB image of the remote screen, updated by applying Regions."""

    def __init__(self, width: int, height: int, glyph_cache: glyphs.GlyphCache | None = None) -> None:
        _check_size(width, height)
        self._memory = PixelMemory(width, height)
        self._image = self._memory.image
        self.video = VideoDecoders()
        # The display channel's glyph cache (GLYPHS regions), shared with its other framebuffers.
        self.glyph_cache = glyphs.GlyphCache() if glyph_cache is None else glyph_cache
        # Video areas (x, y, w, h) whose pixels are the stream's last picture:
        # the next picture pastes only its changed rows there; any other
        # region that touches one (or a resize) makes it paste whole again.
        self._video_areas: set[tuple[int, int, int, int]] = set()
        # The rows the last H264 region pasted, as (first row, rows) in framebuffer
        # coordinates ([] if it pasted nothing: END, no picture): a viewer repaints only
        # those (client/viewer/damage.py), not the whole video area.
        self.video_rows: list[tuple[int, int]] = []

    @property
    def width(self) -> int:
        """Width in pixels."""
        return self._image.width

    @property
    def height(self) -> int:
        """Height in pixels."""
        return self._image.height

    def resize(self, width: int, height: int) -> None:
        """Change the size, keeping the overlapping top-left content (the
        rest is black until the server repaints it)."""
        _check_size(width, height)
        memory = PixelMemory(width, height)
        memory.image.paste(self._image, (0, 0))
        self._memory.frozen = True  # the viewer's GUI may still paint from it (client/viewer/gate.py)
        self._memory, self._image = memory, memory.image
        self._video_areas.clear()

    def detach(self) -> None:
        """Go on in a copy of the memory, leaving the current one frozen to
        whoever still reads it (the viewer's GUI: client/viewer/gate.py)."""
        memory = PixelMemory(self.width, self.height)
        memory.image.paste(self._image, (0, 0))
        self._memory.frozen = True
        self._memory, self._image = memory, memory.image

    @property
    def memory(self) -> PixelMemory:
        """The pixels' memory now (a new object after resize or detach)."""
        return self._memory

    def apply(self, region: Region) -> None:
        """Decode region and paste it; RegionError if it is invalid."""
        x, y, w, h = region.x, region.y, region.w, region.h
        if w < 1 or h < 1 or x < 0 or y < 0 or x + w > self.width or y + h > self.height:
            raise RegionError(
                f"region {w}x{h}+{x}+{y} does not fit the {self.width}x{self.height} framebuffer"
            )
        try:
            encoding = Encoding(region.encoding)
        except ValueError:
            raise RegionError(f"unknown region encoding {region.encoding!r}") from None
        data = bytes(region.data)
        if encoding is not Encoding.H264:  # painted over: a video area there pastes whole next time
            self._video_areas = {a for a in self._video_areas if not _touches(a, (x, y, w, h))}
        if encoding is Encoding.FILL:
            if len(data) != FILL_BYTES:
                raise RegionError(f"FILL data must be {FILL_BYTES} bytes, got {len(data)}")
            self._image.paste(swap_colour((data[0], data[1], data[2])), (x, y, x + w, y + h))
            return
        if encoding is Encoding.COPY:
            self._copy(data, x, y, w, h)
            return
        if encoding is Encoding.H264:
            self._paste_video(data, x, y, w, h)
            return
        raw_size = raw_bytes(w, h)
        if raw_size > MAX_REGION_RAW_BYTES:
            raise RegionError(
                f"region {w}x{h} decodes to {raw_size} bytes, over MAX_REGION_RAW_BYTES"
            )
        if encoding is Encoding.RAW_LZ4:
            tile = self._decode_lz4(data, w, h, raw_size)
        elif encoding is Encoding.PALETTE:
            try:
                two = palette.decode_two_colours(data, w, h, swap_palette)
                if two is not None:  # text: two pastes, no palette image
                    mask, first, second = two
                    self._image.paste((first[0], first[1], first[2]), (x, y, x + w, y + h))
                    self._image.paste((second[0], second[1], second[2]), (x, y, x + w, y + h), mask)
                    return
                tile = palette.decode(data, w, h, swap_palette)
            except palette.PaletteError as exc:
                raise RegionError(str(exc)) from None
        elif encoding is Encoding.GLYPHS:
            cell_w, cell_h, colours, shapes, indices = store_glyphs(data, w, h, self.glyph_cache)
            cells = (cell_w, cell_h, swap_palette(colours), shapes, indices)
            if glyph_paint.paint(cells, self._memory, x, y, w, h):  # numpy, once the viewer loaded it
                return
            tile = glyphs.render(cells, w, h)
        else:
            tile, in_memory_order = self._decode_file(data, w, h, _FILE_FORMATS[encoding])
            if not in_memory_order:
                tile = swap_rb(tile)
        self._image.paste(tile, (x, y))

    def _paste_video(self, data: bytes, x: int, y: int, w: int, h: int) -> None:
        """H264: decode, paste the rows that changed (all if the area was painted over)."""
        area = (x, y, w, h)
        self.video_rows = []
        try:
            picture = self.video.decode(data, w, h, "BGR" if SWAP_RB else "RGB")  # the memory's order, no extra pass
        except VideoDecodeError as exc:
            self._video_areas.discard(area)
            raise RegionError(str(exc)) from None
        if picture is None:
            self._video_areas.discard(area)
            return
        spans = self.video.changed_rows
        if spans is None or area not in self._video_areas or spans == [(0, h)]:
            self._image.paste(picture, (x, y))
            self.video_rows = [(y, h)]
        else:
            for first, rows in spans:
                self._image.paste(picture.crop((0, first, w, first + rows)), (x, y + first))
            self.video_rows = [(y + first, rows) for first, rows in spans]
        self._video_areas = {a for a in self._video_areas if not _touches(a, area)} | {area}

    def _copy(self, data: bytes, x: int, y: int, w: int, h: int) -> None:
        """COPY: the w x h rectangle at the source point, as it is now, to (x, y)."""
        if len(data) != palette.COPY_SOURCE.size:
            raise RegionError(f"COPY data must be {palette.COPY_SOURCE.size} bytes, got {len(data)}")
        src_x, src_y = palette.COPY_SOURCE.unpack(data)
        if src_x + w > self.width or src_y + h > self.height:
            raise RegionError(f"COPY source {w}x{h}+{src_x}+{src_y} is outside the framebuffer")
        # crop() copies, so an overlapping destination reads the old pixels.
        self._image.paste(self._image.crop((src_x, src_y, src_x + w, src_y + h)), (x, y))

    @staticmethod
    def _decode_lz4(data: bytes, w: int, h: int, raw_size: int) -> Image.Image:
        if len(data) < _LZ4_SIZE.size:
            raise RegionError("RAW_LZ4 data is shorter than its size prefix")
        (stored,) = _LZ4_SIZE.unpack_from(data)
        if stored != raw_size:
            raise RegionError(f"RAW_LZ4 announces {stored} bytes, region {w}x{h} needs {raw_size}")
        try:
            raw = lz4.block.decompress(data)
        except lz4.block.LZ4BlockError as exc:
            raise RegionError(f"RAW_LZ4 data is corrupt: {exc}") from None
        if len(raw) != raw_size:
            raise RegionError(f"RAW_LZ4 decoded to {len(raw)} bytes, expected {raw_size}")
        return Image.frombytes("RGB", (w, h), raw, "raw", "BGR" if SWAP_RB else "RGB")

    @staticmethod
    def _decode_file(data: bytes, w: int, h: int, fmt: str) -> tuple[Image.Image, bool]:
        """(the RGB tile, True if it is in the memory's order already: see _BGR_TILE)."""
        # The header's size first, read without Pillow: Image.open itself
        # reacts to a huge declared size (DecompressionBombError).
        try:
            declared = header_size(data, fmt)
        except (ImageHeaderError, struct.error) as exc:
            raise RegionError(f"{fmt} data is not a valid {fmt} image: {exc}") from None
        if declared != (w, h):
            raise RegionError(f"{fmt} image is {declared[0]}x{declared[1]}, region is {w}x{h}")
        try:
            # Image.open only parses the header; nothing is decoded yet.
            tile = Image.open(io.BytesIO(data), formats=[fmt])
        except _DECODE_ERRORS as exc:
            raise RegionError(f"{fmt} data is not a valid {fmt} image: {exc}") from None
        if tile.size != (w, h):
            raise RegionError(f"{fmt} image is {tile.size[0]}x{tile.size[1]}, region is {w}x{h}")
        swapped = SWAP_RB and _unpack_as_bgr(tile)
        try:
            tile.load()
        except _DECODE_ERRORS as exc:
            raise RegionError(f"{fmt} data is corrupt: {exc}") from None
        return (tile, swapped) if tile.mode == "RGB" else (tile.convert("RGB"), False)

    def image(self) -> Image.Image:
        """A copy of the current screen as an RGB image."""
        return swap_rb(self._image.copy())

    def crop(self, x: int, y: int, w: int, h: int) -> Image.Image:
        """A copy of the w x h rectangle at (x, y), clipped to the framebuffer."""
        return swap_rb(self._image.crop((x, y, min(x + w, self.width), min(y + h, self.height))))

    def pixels(self, x: int, y: int, w: int, h: int) -> tuple[int, int, bytes]:
        """(width, height, 4 bytes a pixel) of the w x h rectangle at (x, y),
        clipped to the framebuffer: its rows read straight from the pixels'
        memory, in its order (B G R pad if fb_memory.SWAP_RB, else R G B pad:
        Qt's Format_RGB32 or Format_RGBX8888)."""
        x, y = min(max(x, 0), self.width), min(max(y, 0), self.height)
        w, h = max(0, min(w, self.width - x)), max(0, min(h, self.height - y))
        return w, h, self._memory.rgbx(x, y, w, h) if w and h else b""

    def save_png(self, path: str | os.PathLike[str]) -> None:
        """Write the current screen to path as PNG."""
        swap_rb(self._image).save(path, "PNG")

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        """The (R, G, B) colour at (x, y)."""
        if not (0 <= x < self.width and 0 <= y < self.height):
            raise IndexError(f"pixel ({x}, {y}) is outside {self.width}x{self.height}")
        r, g, b = self._image.getpixel((x, y))  # type: ignore[misc]
        return swap_colour((int(r), int(g), int(b)))

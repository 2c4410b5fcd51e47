# Turning damaged rectangles of a captured frame into encoded Regions.
#
# Why: each rectangle gets the cheapest encoding that fits its content.
# A solid rectangle (cleared background, a selection bar) is 3 bytes (FILL).
# A large rectangle with many colours is a photo or video still: JPEG is ten
# times smaller and the eye does not mind (only when lossy is allowed).
# Everything else is UI or text and must stay pixel-exact: raw RGB through
# lz4 (1.3 ms per 1080p frame), or, for small few-colour areas such as a
# typed glyph, a palette PNG when that is smaller.  No numpy: Pillow does the
# pixel work in C, straight from the BGRX capture buffer.

from __future__ import annotations

import io
from collections.abc import Iterable

import lz4.block
from PIL import Image

from protocol.limits import MAX_REGION_RAW_BYTES
from protocol.messages import Encoding, Region

Rect = tuple[int, int, int, int]

BYTES_PER_PIXEL_IN = 4  # BGRX capture buffer
BYTES_PER_PIXEL_OUT = 3  # RGB24 on the wire
# A region smaller than this in either side is never treated as a photo:
# JPEG's 8x8/16x16 blocks and headers win nothing on small areas.
PHOTO_MIN_SIDE = 128
# Photo test: more distinct colours than this in a downscaled sample.
PHOTO_MIN_COLOURS = 256
# Downscale factor for the photo test sample (cheap: 1/16 of the pixels).
PHOTO_SAMPLE_STEP = 4
# Palette PNG is tried only up to this many pixels (PNG costs ~30x lz4 time).
PNG_TRY_MAX_PIXELS = 32 * 1024
# Palette PNG is tried only up to this many colours (quantizing costs grow
# with the palette: ~1 ms per 10k pixels at 17 colours, ~6 ms at 256).
PNG_MAX_COLOURS = 64
# zlib level for PNG: 1 is ~3x faster than the default for a few % size.
PNG_COMPRESS_LEVEL = 1
JPEG_QUALITY_RANGE = (1, 95)


class EncoderError(ValueError):
    """A rectangle lies outside the captured buffer or parameters are invalid."""


def stripes(rect: Rect, max_bytes: int = MAX_REGION_RAW_BYTES) -> list[Rect]:
    """Split rect into row stripes (and column tiles if a row is too wide) so
    that every piece has w*h*3 <= max_bytes."""
    x, y, w, h = rect
    max_w = max(1, max_bytes // BYTES_PER_PIXEL_OUT)
    pieces = []
    for col in range(x, x + w, max_w):
        piece_w = min(max_w, x + w - col)
        rows = max(1, max_bytes // (piece_w * BYTES_PER_PIXEL_OUT))
        for row in range(y, y + h, rows):
            pieces.append((col, row, piece_w, min(rows, y + h - row)))
    return pieces


class RegionEncoder:
    """Encodes rectangles of a BGRX frame buffer into protocol Regions."""

    def __init__(self, *, jpeg_quality: int = 75, allow_lossy: bool = True) -> None:
        low, high = JPEG_QUALITY_RANGE
        if not low <= jpeg_quality <= high:
            raise EncoderError(f"jpeg_quality {jpeg_quality} is outside {low}..{high}")
        self.jpeg_quality = jpeg_quality
        self.allow_lossy = allow_lossy
        # Load the PNG/JPEG codecs now, not on the first (latency-critical) frame.
        Image.preinit()

    def encode(
        self,
        buf: memoryview | bytes | bytearray,
        stride: int,
        rects: Iterable[Rect],
        *,
        width: int | None = None,
    ) -> list[Region]:
        """Encode each (x, y, w, h) of the BGRX buffer (`stride` bytes per
        row); large rectangles come back as several striped Regions.

        A rectangle outside the buffer (or right of `width`, the screen
        width, when given) raises EncoderError.
        """
        view = memoryview(buf).cast("B") if not isinstance(buf, memoryview) else buf
        regions: list[Region] = []
        for rect in rects:
            if width is not None and rect[0] + rect[2] > width:
                raise EncoderError(f"rectangle {rect} extends past the screen width {width}")
            image = self._crop(view, stride, rect)
            fill = self._solid_colour(image)
            if fill is not None:
                # FILL has no decoded payload, so it needs no striping.
                regions.append(Region(rect[0], rect[1], rect[2], rect[3], Encoding.FILL, fill))
                continue
            for piece in stripes(rect):
                regions.append(self._encode_piece(view, stride, piece))
        return regions

    def _crop(self, view: memoryview, stride: int, rect: Rect) -> Image.Image:
        x, y, w, h = rect
        if x < 0 or y < 0 or w < 1 or h < 1 or x * BYTES_PER_PIXEL_IN + w * BYTES_PER_PIXEL_IN > stride:
            raise EncoderError(f"rectangle {rect} is outside the frame (stride {stride})")
        start = y * stride + x * BYTES_PER_PIXEL_IN
        end = start + (h - 1) * stride + w * BYTES_PER_PIXEL_IN
        if end > len(view):
            raise EncoderError(f"rectangle {rect} is outside the frame buffer")
        return Image.frombuffer("RGB", (w, h), view[start:end], "raw", "BGRX", stride, 1)

    @staticmethod
    def _solid_colour(image: Image.Image) -> bytes | None:
        """The (R, G, B) bytes if every pixel has one colour, else None."""
        w, h = image.size
        first = image.getpixel((0, 0))
        if first != image.getpixel((w - 1, h - 1)) or first != image.getpixel((w // 2, h // 2)):
            return None  # cheap early exit for most non-solid rectangles
        # getcolors(1) stops counting at the second colour it meets.
        colours = image.getcolors(1)
        if colours is None:
            return None
        return bytes(colours[0][1])

    def _is_photo(self, image: Image.Image) -> bool:
        w, h = image.size
        if not self.allow_lossy or w < PHOTO_MIN_SIDE or h < PHOTO_MIN_SIDE:
            return False
        sample = image.reduce(PHOTO_SAMPLE_STEP) if PHOTO_SAMPLE_STEP > 1 else image
        return sample.getcolors(PHOTO_MIN_COLOURS) is None

    def _encode_piece(self, view: memoryview, stride: int, rect: Rect) -> Region:
        x, y, w, h = rect
        image = self._crop(view, stride, rect)
        fill = self._solid_colour(image)
        if fill is not None:
            return Region(x, y, w, h, Encoding.FILL, fill)
        if self._is_photo(image):
            out = io.BytesIO()
            image.save(out, "JPEG", quality=self.jpeg_quality)
            return Region(x, y, w, h, Encoding.JPEG, out.getvalue())
        raw = lz4.block.compress(image.tobytes(), store_size=True)
        if w * h <= PNG_TRY_MAX_PIXELS:
            png = self._palette_png(image)
            if png is not None and len(png) < len(raw):
                return Region(x, y, w, h, Encoding.PNG, png)
        return Region(x, y, w, h, Encoding.RAW_LZ4, raw)

    @staticmethod
    def _palette_png(image: Image.Image) -> bytes | None:
        """Lossless palette PNG of an image with few colours, else None."""
        colours = image.getcolors(PNG_MAX_COLOURS)
        if colours is None:
            return None
        # Median cut keeps every colour when there are no more of them than
        # palette entries; the check below guarantees exactness regardless.
        indexed = image.quantize(
            colors=max(len(colours), 2),
            method=Image.Quantize.MEDIANCUT,
            dither=Image.Dither.NONE,
        )
        if indexed.convert("RGB").tobytes() != image.tobytes():
            return None
        out = io.BytesIO()
        indexed.save(out, "PNG", compress_level=PNG_COMPRESS_LEVEL)
        return out.getvalue()

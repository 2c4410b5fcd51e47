# Turning damaged rectangles of a captured frame into encoded Regions.
#
# Why: each rectangle gets the cheapest encoding that fits its content.
# A solid rectangle (cleared background, a selection bar) is 3 bytes (FILL).
# A large rectangle with many colours is a photo or video still: JPEG is ten
# times smaller and the eye does not mind (only when lossy is allowed).
# Everything else is UI or text and must stay pixel-exact.  Text and flat UI
# have few colours: up to PALETTE_MAX_COLOURS they go out as a 1-, 2-, 4- or
# 8-bit palette PNG (like VNC Tight's two-colour rectangles) that this module
# writes itself (filter 0, zlib level 1): a 1080p screen of terminal text is
# ~60 kB this way against ~640 kB as raw+lz4, for ~2.5 ms per 1920x182
# stripe.  Any other content is raw RGB through lz4 (1.3 ms per 1080p frame)
# or, for small areas, a quantized palette PNG when that is smaller.  No
# numpy: Pillow does the pixel work in C, straight from the BGRX capture
# buffer.  Small exact palettes go out as PALETTE regions (media/palette.py:
# the same packed indices as the PNG, without its ~70 bytes of chunks), so an
# echoed glyph costs tens of bytes; large ones stay PNG, which browsers
# decode off their main thread.  Given a surface name, the encoder also
# remembers what it sent of that surface (sessiond/agent/scroll.py) and sends
# unchanged rows not at all and scrolled rows as one COPY (a frame that is
# one FILL of the whole surface is remembered by its colour alone).  For a client
# that decodes them, the whole text cells of a rectangle go out as GLYPHS
# (glyph_encoder.py: cached glyphs, one byte a cell), the rest as above;
# their two per-pixel passes read the capture in C (glyph_native.py).

from __future__ import annotations

import dataclasses
import io
from collections import OrderedDict
from collections.abc import Hashable, Iterable

import lz4.block
from PIL import Image

from media.region import BYTES_PER_PIXEL as BYTES_PER_PIXEL_OUT  # RGB24 on the wire
from media import palette as palette_codec
from protocol.limits import MAX_REGION_RAW_BYTES
from protocol.messages import Encoding, Region
from sessiond.agent.palette_png import (
    BGRX_ORDER,
    PNG_COMPRESS_LEVEL,
    RGB_ORDER,
    exact_palette,
    exact_palette_png,
)
from sessiond.agent.glyph_encoder import GlyphEncoder
from sessiond.agent.scroll import Source, SurfaceHistory

Rect = tuple[int, int, int, int]

BYTES_PER_PIXEL_IN = 4  # BGRX capture buffer
# A region smaller than this in either side is never treated as a photo:
# JPEG's 8x8/16x16 blocks and headers win nothing on small areas.
PHOTO_MIN_SIDE = 128
# Photo test: more distinct colours than this in a downscaled sample.
PHOTO_MIN_COLOURS = 256
# Downscale factor for the photo test sample (cheap: 1/16 of the pixels).
PHOTO_SAMPLE_STEP = 4
# Up to this many pixels, both PNG and lz4 are made and the smaller is sent,
# and the quantizer fallback (for few colours that no single band tells
# apart; it costs ~30x lz4 time) is tried.  Above it, an exact palette PNG
# is sent as is: on 1080p text it is ~10x smaller than lz4.
PNG_TRY_MAX_PIXELS = 32 * 1024
# ... and only up to this many colours (quantizing costs grow with the
# palette: ~1 ms per 10k pixels at 17 colours, ~6 ms at 256).
PNG_MAX_COLOURS = 64
# Exact palette encoding (one index per colour, no quantizer) is tried up to
# this many colours; above, the content is treated as non-palette.
PALETTE_MAX_COLOURS = 256
JPEG_QUALITY_RANGE = (1, 95)
# Surfaces whose last content is remembered (the desktop, or one per
# window): each costs its pixels (8 MiB at 1080p); the least recently
# encoded is forgotten past either bound, and simply gets no COPY next time.
# A surface that alone exceeds the byte budget (past a 4K screen) is never
# remembered.  (32 MiB: the same surfaces fit as when a history also kept
# two cached copies of its rows against 96 MiB.)
MAX_SURFACES = 32
MAX_HISTORY_BYTES = 32 * 1024 * 1024


class EncoderError(ValueError):
    """A rectangle lies outside the captured buffer or parameters are invalid."""


def history_bytes(width: int, height: int) -> int:
    """What remembering a width x height surface costs: its pixels (scroll.SurfaceHistory)."""
    return width * height * BYTES_PER_PIXEL_IN


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
        self._surfaces: OrderedDict[Hashable, SurfaceHistory] = OrderedDict()
        self.glyphs = GlyphEncoder()  # off until the display channel's client asks (VIDEO_CAPS bit 2)
        # Load the PNG/JPEG codecs now, not on the first (latency-critical) frame.
        Image.preinit()

    def forget(self, surface: Hashable | None = None) -> None:
        """Drop what was sent of `surface` (all surfaces if None): call it
        whenever the client's copy is unknown -- a new client, a refresh, a
        resize -- so that no COPY reads pixels the client does not have."""
        if surface is None:
            self._surfaces.clear()
        else:
            self._surfaces.pop(surface, None)

    def release_idle(self) -> int:
        """Pack every surface's history to give its pages back (idle_release.py);
        nothing is forgotten. Returns the bytes the packed histories keep."""
        return sum(history.release() for history in self._surfaces.values())

    def _history(self, surface: Hashable, width: int, height: int) -> SurfaceHistory | None:
        """The history of surface (made afresh if new or resized), or None
        if a surface of this size would exceed MAX_HISTORY_BYTES alone."""
        history = self._surfaces.get(surface)
        if history is not None and history.fits(width, height):
            self._surfaces.move_to_end(surface)
            return history
        self._surfaces.pop(surface, None)
        cost = history_bytes(width, height)
        if cost > MAX_HISTORY_BYTES:
            return None  # checked before allocating: no COPY for this surface
        while self._surfaces and (len(self._surfaces) >= MAX_SURFACES or
                                  sum(history_bytes(h.width, h.height) for h in self._surfaces.values()) + cost
                                  > MAX_HISTORY_BYTES):  # fmt: skip
            self._surfaces.popitem(last=False)
        history = self._surfaces[surface] = SurfaceHistory(width, height)
        return history

    def encode(
        self,
        buf: memoryview | bytes | bytearray,
        stride: int,
        rects: Iterable[Rect],
        *,
        width: int | None = None,
        height: int | None = None,
        surface: Hashable | None = None,
        origin: tuple[int, int] = (0, 0),
    ) -> list[Region]:
        """Encode each (x, y, w, h) of the BGRX buffer (`stride` bytes per
        row); large rectangles come back as several striped Regions.

        `origin`: where the buffer's first pixel lies in the rectangles'
        coordinates (a capture of just one damaged rectangle of a window is
        passed with origin = that rectangle's corner); Regions are in the
        rectangles' coordinates.

        With `surface` (any name: "desktop", a window id), rectangles are
        relative to that `width` x `height` surface (default: the buffer's
        stride and rows), and the encoder sends only what the client's copy
        lacks: COPY regions for rows that scrolled, nothing for unchanged
        rows.  The regions must then reach the client in order; call
        forget() when they did not.

        A rectangle outside the buffer (or right of `width`, the screen
        width, when given) raises EncoderError.
        """
        view = memoryview(buf).cast("B") if not isinstance(buf, memoryview) else buf
        regions: list[Region] = []
        ox, oy = origin
        history = None
        if surface is not None:
            history = self._history(surface, width if width is not None else stride // BYTES_PER_PIXEL_IN,
                                    height if height is not None else len(view) // stride)  # fmt: skip
        source = Source(view, stride, origin)
        for rect in rects:
            x, y, w, h = rect
            if width is not None and x + w > width:
                raise EncoderError(f"rectangle {rect} extends past the screen width {width}")
            self._bounds(view, stride, (x - ox, y - oy, w, h))
            if history is None:
                self._encode_rect(view, stride, rect, origin, regions, surface)
                continue
            if y + h > history.height:
                raise EncoderError(f"rectangle {rect} extends past the surface height {history.height}")
            plan, before = history.plan(source, rect), len(regions)
            for (cx, cy, cw, ch), src_x, src_y in plan.copies:
                regions.append(Region(cx, cy, cw, ch, Encoding.COPY, palette_codec.COPY_SOURCE.pack(src_x, src_y)))
            for piece in self._whole_cells(plan.rects, rect, surface, history):
                self._encode_rect(view, stride, piece, origin, regions, surface)
            last = regions[-1] if len(regions) > before else None
            if (last is not None and last.encoding is Encoding.FILL and rect == (0, 0, history.width, history.height)
                    and (last.x, last.y, last.w, last.h) == rect):  # fmt: skip
                start = (y - oy) * stride + (x - ox) * BYTES_PER_PIXEL_IN  # one colour: no copy (scroll.py)
                history.remember_solid(bytes(view[start : start + BYTES_PER_PIXEL_IN]))
            else:
                history.remember(source, rect)
        return regions

    def _whole_cells(self, pieces: list[Rect], rect: Rect, surface: Hashable, history: SurfaceHistory) -> list[Rect]:
        """The rows to send of rect, grown (inside rect) to whole text cells
        of the surface's grid where GLYPHS may take them: unchanged rows at
        a text line's edges (its blank rows) would otherwise cut the line
        off the cells and send it as PALETTE every frame.  Sending unchanged
        or copied rows again is exact: they hold what the client has."""
        x, y, w, h = rect
        grown: list[Rect] = []
        for piece in pieces:
            top, bottom = piece[1], piece[1] + piece[3]
            if self.glyphs.candidate(piece, surface):
                _gx, gy, _gw, gh = self.glyphs.grow(surface, piece, history.width, history.height)
                top, bottom = max(gy, y), min(gy + gh, y + h)
            if grown and top <= grown[-1][1] + grown[-1][3]:  # met the previous run: one rectangle
                top = grown.pop()[1]
            grown.append((x, top, w, bottom - top))
        return grown

    def _encode_rect(self, view: memoryview, stride: int, rect: Rect, origin: tuple[int, int],
                     regions: list[Region], surface: Hashable | None = None) -> None:  # fmt: skip
        """Append the Regions of one rectangle (striped if large; rect and
        Regions in surface coordinates, the buffer at `origin`) to regions;
        of a named surface, its whole text cells as GLYPHS if the client takes them."""
        ox, oy = origin
        local = (rect[0] - ox, rect[1] - oy, rect[2], rect[3])
        pieces = stripes(local)
        glyphs = surface is not None and self.glyphs.candidate(rect, surface)
        if len(pieces) > 1 and self._probes_match(view, stride, local):
            # FILL has no decoded payload, so a solid area needs no striping;
            # tested before GLYPHS, which a solid area never becomes.
            fill = self._solid_colour(*self._bgrx_view(view, stride, local))
            if fill is not None:  # (no text to look for: nothing for the glyph encoder to note)
                regions.append(Region(rect[0], rect[1], rect[2], rect[3], Encoding.FILL, fill))
                return
        if glyphs:
            image, order = self._bgrx_view(view, stride, local)
            split = self.glyphs.encode(image, order, rect, surface, lambda part: self._moved(
                self._encode_piece(view, stride, (part[0] - ox, part[1] - oy, part[2], part[3])), origin),
                (view, stride, (local[0], local[1])))  # fmt: skip
            if split is not None:
                regions.extend(split[0])
                for part in split[1]:
                    self._encode_rect(view, stride, part, origin, regions)
                return
        for piece in pieces:
            regions.append(self._moved(self._encode_piece(view, stride, piece), origin))

    @staticmethod
    def _moved(region: Region, origin: tuple[int, int]) -> Region:
        """A region of the buffer in surface coordinates (the buffer lies at origin)."""
        if origin == (0, 0):
            return region
        return dataclasses.replace(region, x=region.x + origin[0], y=region.y + origin[1])

    @staticmethod
    def _probes_match(view: memoryview, stride: int, rect: Rect) -> bool:
        """True if the corner and centre pixels of rect share one colour, read
        straight from the buffer: a cheap first test before a full scan."""
        x, y, w, h = rect
        probes = {
            bytes(view[offset : offset + BYTES_PER_PIXEL_OUT])
            for px, py in ((x, y), (x + w - 1, y + h - 1), (x + w // 2, y + h // 2))
            for offset in (py * stride + px * BYTES_PER_PIXEL_IN,)
        }
        return len(probes) == 1

    def _crop(self, view: memoryview, stride: int, rect: Rect) -> Image.Image:
        start, end = self._bounds(view, stride, rect)
        return Image.frombuffer("RGB", rect[2:], view[start:end], "raw", "BGRX", stride, 1)

    def _bgrx_view(self, view: memoryview, stride: int, rect: Rect) -> tuple[Image.Image, tuple[int, int, int]]:
        """rect as a zero-copy image of the capture (bands B, G, R, X, so
        colours come back in that order: see the returned RGB band order),
        or an RGB copy where the rows do not fit a mapped buffer."""
        start, _end = self._bounds(view, stride, rect)
        x, y, w, h = rect
        if start + h * stride <= len(view):
            mapped = Image.frombuffer("RGBX", (w, h), view[start : start + h * stride], "raw", "RGBX", stride, 1)
            return mapped, BGRX_ORDER
        return self._crop(view, stride, rect), RGB_ORDER

    @staticmethod
    def _bounds(view: memoryview, stride: int, rect: Rect) -> tuple[int, int]:
        """The buffer slice rect spans; EncoderError if it lies outside."""
        x, y, w, h = rect
        if x < 0 or y < 0 or w < 1 or h < 1 or x * BYTES_PER_PIXEL_IN + w * BYTES_PER_PIXEL_IN > stride:
            raise EncoderError(f"rectangle {rect} is outside the frame (stride {stride})")
        start = y * stride + x * BYTES_PER_PIXEL_IN
        end = start + (h - 1) * stride + w * BYTES_PER_PIXEL_IN
        if end > len(view):
            raise EncoderError(f"rectangle {rect} is outside the frame buffer")
        return start, end

    @staticmethod
    def _solid_colour(image: Image.Image, order: tuple[int, int, int]) -> bytes | None:
        """The (R, G, B) bytes if every pixel has one colour, else None
        (`order`: the image's bands that hold R, G and B)."""
        w, h = image.size
        first = image.getpixel((0, 0))
        if first != image.getpixel((w - 1, h - 1)) or first != image.getpixel((w // 2, h // 2)):
            return None  # cheap early exit for most non-solid rectangles
        # getcolors(1) stops counting at the second colour it meets.
        colours = image.getcolors(1)
        if colours is None:
            return None
        return bytes(colours[0][1][band] for band in order)

    def _is_photo(self, image: Image.Image) -> bool:
        w, h = image.size
        if not self.allow_lossy or w < PHOTO_MIN_SIDE or h < PHOTO_MIN_SIDE:
            return False
        sample = image.reduce(PHOTO_SAMPLE_STEP) if PHOTO_SAMPLE_STEP > 1 else image
        return sample.getcolors(PHOTO_MIN_COLOURS) is None

    def _encode_piece(self, view: memoryview, stride: int, rect: Rect) -> Region:
        x, y, w, h = rect
        # Fill and palette tests read the capture in place (saves ~0.35 ms per
        # 1920x182 stripe); photo and lz4 need an RGB copy.
        source, order = self._bgrx_view(view, stride, rect)
        fill = self._solid_colour(source, order)
        if fill is not None:
            return Region(x, y, w, h, Encoding.FILL, fill)
        # At most PALETTE_MAX_COLOURS (>= PHOTO_MIN_COLOURS) colours is never a photo.
        colours = source.getcolors(PALETTE_MAX_COLOURS)
        small = w * h <= PNG_TRY_MAX_PIXELS
        if colours is not None and small:
            # Large areas stay PNG: browsers decode PNG off the main thread
            # (createImageBitmap), and PNG's chunks are nothing there.
            compact = exact_palette(source, colours, order)
            if compact is not None:
                return Region(x, y, w, h, Encoding.PALETTE, compact)
        png = exact_palette_png(source, colours, order) if colours is not None else None
        if png is not None and not small:
            return Region(x, y, w, h, Encoding.PNG, png)
        image = source if order == RGB_ORDER else self._crop(view, stride, rect)
        if colours is None and self._is_photo(image):
            out = io.BytesIO()
            image.save(out, "JPEG", quality=self.jpeg_quality)
            return Region(x, y, w, h, Encoding.JPEG, out.getvalue())
        raw = lz4.block.compress(image.tobytes(), store_size=True)
        if png is None and small and colours is not None and len(colours) <= PNG_MAX_COLOURS:
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

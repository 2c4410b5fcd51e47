# The framebuffer's pixels in memory this process owns, readable as rows.
#
# Pillow keeps an "RGB" image as 4 bytes a pixel (R, G, B and a pad byte
# that its decoders set to 255): exactly Qt's Format_RGBX8888. The viewer's
# collector used to crop each damaged rectangle (one copy) and pack it to
# 3-byte RGB (a second pass through Pillow's encoder in 64 kB pieces, then a
# join): ~0.9 ms of the ~4.5 ms a 1084x654 scroll frame cost the viewer.
# Here the image is mapped onto a bytearray we allocate, so a rectangle is
# its rows sliced out of that memory (one join, no Pillow pass) and the
# GUI copies and paints those 4-byte pixels without unpacking them.
#
# Why a private Pillow call: Image.frombuffer maps shared memory only for
# modes whose raw layout it knows ("RGBX", not "RGB"), and an "RGBX" image
# makes every paste of an RGB tile a conversion (5x the paste's cost).
# map_buffer with the raw mode "RGB" gives an "RGB" image on our memory;
# Pillow is pinned (requirements.txt) and tests/unit/test_fb_memory.py
# fails if a Pillow release stops sharing the memory, in which case
# mapped_rgb falls back to a plain image whose rows are read via tobytes.
#
# Channel order (SWAP_RB): on a little-endian machine the framebuffer keeps
# blue in the image's first channel and red in its third, so its memory is
# B, G, R, pad: Qt's Format_RGB32, the format of the viewer's X backing
# store. Qt then draws a patch as a plain copy of rows; from RGBX8888 it
# converted every pixel, mostly in its own thread pool: ~0.42 ms of CPU per
# 1084x654 repaint (0.07 on the GUI thread, 0.35 in the pool), against
# ~0.28 ms for the copy (offscreen; in the harness's scroll the pool used
# 0.38-0.45 ms a repaint and the GUI thread 0.25 more without it: issue 15). The
# framebuffer (client/framebuffer.py) swaps what it pastes and what it hands
# out as images, so only the viewer's rows see the swapped order.
"""Framebuffer pixels on a bytearray: an RGB Pillow image and its rows in memory order."""

from __future__ import annotations

import sys

from PIL import Image

# Bytes a pixel in the mapped memory (R, G, B, pad) and in every RGBX row handed out.
PIXEL_BYTES = 4
# The pad byte of a pixel: opaque, what Pillow's decoders write and Qt's RGB32 / RGBX8888 expect.
PAD = 0xFF
# True where the memory holds B, G, R, pad (Qt's RGB32 on a little-endian machine), False for R, G, B, pad.
SWAP_RB = sys.byteorder == "little"


def swap_rb(image: Image.Image) -> Image.Image:
    """An RGB image in memory order: IMAGE with red and blue exchanged (a new
    image) if SWAP_RB, else IMAGE itself. Its own inverse."""
    if not SWAP_RB:
        return image
    # Not Image.merge of the bands (4x faster): it leaves the pad bytes 0, and Qt's RGB32 needs 255.
    return Image.frombytes("RGB", image.size, image.tobytes(), "raw", "BGR")


def swap_colour(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """An (R, G, B) colour in memory order (see swap_rb)."""
    return (colour[2], colour[1], colour[0]) if SWAP_RB else colour


def swap_palette(colours: bytes) -> bytes:
    """R, G, B triples in memory order (see swap_rb)."""
    if not SWAP_RB:
        return colours
    swapped = bytearray(colours)
    swapped[0::3], swapped[2::3] = colours[2::3], colours[0::3]
    return bytes(swapped)


class PixelMemory:
    """A width x height RGB Pillow image whose pixels live in `buffer`
    (row-major, PIXEL_BYTES a pixel, no gaps); `buffer` is None when Pillow
    would not map it (the image is then an ordinary one)."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        # True once the framebuffer has moved to other memory (resize, detach): never written again.
        self.frozen = False
        self.buffer: bytearray | None = bytearray(width * height * PIXEL_BYTES)  # black once filled below
        try:
            core = Image.core.map_buffer(self.buffer, (width, height), "raw", 0, ("RGB", 0, 1))
            image = Image.new("RGB", (0, 0))._new(core)
        except (AttributeError, TypeError, ValueError):
            core, image = None, None
        if image is None or image.mode != "RGB" or image.size != (width, height) or image.readonly:
            self.buffer = None
            image = Image.new("RGB", (width, height))
        image.paste((0, 0, 0), (0, 0, width, height))  # opaque black: Pillow's fill sets the pad bytes too
        self.image = image

    def rgbx(self, x: int, y: int, w: int, h: int) -> bytes:
        """The rows of the w x h rectangle at (x, y) (inside the image) as
        the image's R, G, B, pad bytes (its memory), top row first."""
        if self.buffer is None:
            return self.image.crop((x, y, x + w, y + h)).tobytes("raw", "RGBX")
        stride = self.width * PIXEL_BYTES
        start = y * stride + x * PIXEL_BYTES
        if w == self.width:  # whole rows: one slice
            return bytes(memoryview(self.buffer)[start : start + h * stride])
        memory, row = memoryview(self.buffer), w * PIXEL_BYTES
        return b"".join([memory[offset : offset + row] for offset in range(start, start + h * stride, stride)])

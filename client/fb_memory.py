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
"""Framebuffer pixels on a bytearray: an RGB Pillow image and its rows as RGBX bytes."""

from __future__ import annotations

from PIL import Image

# Bytes a pixel in the mapped memory (R, G, B, pad) and in every RGBX row handed out.
PIXEL_BYTES = 4
# The pad byte of a pixel: opaque, what Pillow's decoders write and Qt's RGBX8888 expects.
PAD = 0xFF


class PixelMemory:
    """A width x height RGB Pillow image whose pixels live in `buffer`
    (row-major, PIXEL_BYTES a pixel, no gaps); `buffer` is None when Pillow
    would not map it (the image is then an ordinary one)."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
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
        R, G, B, pad bytes, top row first."""
        if self.buffer is None:
            return self.image.crop((x, y, x + w, y + h)).tobytes("raw", "RGBX")
        stride = self.width * PIXEL_BYTES
        start = y * stride + x * PIXEL_BYTES
        if w == self.width:  # whole rows: one slice
            return bytes(memoryview(self.buffer)[start : start + h * stride])
        memory, row = memoryview(self.buffer), w * PIXEL_BYTES
        return b"".join([memory[offset : offset + row] for offset in range(start, start + h * stride, stride)])

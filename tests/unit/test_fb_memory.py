# The viewer reads changed rectangles straight from the framebuffer's memory
# (client/fb_memory.py): these tests fail if Pillow stops writing into that
# memory (a Pillow upgrade), if a decoder leaves a pad byte that is not 255,
# or if rows are cut at the wrong offsets.
"""Unit tests for client.fb_memory and Framebuffer.pixels."""

from __future__ import annotations

import io

import lz4.block
from PIL import Image

from client.fb_memory import PAD, PIXEL_BYTES, PixelMemory, swap_colour
from client.framebuffer import Framebuffer
from media import glyphs, palette
from protocol.messages import Encoding, Region


def test_pastes_land_in_the_mapped_memory() -> None:
    memory = PixelMemory(5, 3)
    assert memory.buffer is not None, "Pillow no longer maps the framebuffer's memory"
    memory.image.paste((1, 2, 3), (1, 1, 3, 2))
    stride = 5 * PIXEL_BYTES
    assert memory.buffer[stride + 4 : stride + 12] == bytes((1, 2, 3, PAD)) * 2
    assert memory.buffer[:4] == bytes((0, 0, 0, PAD))
    assert memory.image.tobytes("raw", "RGBX") == bytes(memory.buffer)


def test_rows_are_cut_at_the_rectangle() -> None:
    memory = PixelMemory(4, 3)
    memory.image.putdata([(i, 2 * i, 3 * i) for i in range(12)])
    assert memory.rgbx(1, 1, 2, 2) == bytes((5, 10, 15, PAD, 6, 12, 18, PAD, 9, 18, 27, PAD, 10, 20, 30, PAD))
    assert memory.rgbx(0, 2, 4, 1) == b"".join(bytes((i, 2 * i, 3 * i, PAD)) for i in range(8, 12))


def test_every_decoder_leaves_opaque_pad_bytes() -> None:
    fb = Framebuffer(16, 8)
    tile = Image.new("RGB", (4, 2), (9, 8, 7))
    png = io.BytesIO()
    tile.save(png, "PNG")
    cell = glyphs.pack_cell(bytes((1, 0, 0, 1)), 2, 2)
    for region in (
        Region(0, 0, 4, 2, Encoding.FILL, bytes((1, 2, 3))),
        Region(4, 0, 4, 2, Encoding.RAW_LZ4, lz4.block.compress(tile.tobytes(), store_size=True)),
        Region(8, 0, 4, 2, Encoding.PNG, png.getvalue()),
        Region(12, 0, 4, 2, Encoding.PALETTE, palette.encode(4, 2, 1, bytes((9, 8, 7, 6, 5, 4)), bytes((0x50, 0xA0)))),
        Region(0, 2, 4, 2, Encoding.GLYPHS, glyphs.encode(2, 2, bytes(6), [(3, cell)], [3], b"\0\0")),
        Region(4, 4, 8, 4, Encoding.COPY, palette.COPY_SOURCE.pack(0, 0)),
    ):
        fb.apply(region)
    _, _, rows = fb.pixels(0, 0, 16, 8)
    assert set(rows[3::4]) == {PAD}
    assert rows[: 4 * PIXEL_BYTES] == bytes((*swap_colour((1, 2, 3)), PAD)) * 4
    assert fb.pixels(4, 4, 4, 1)[2] == bytes((*swap_colour((1, 2, 3)), PAD)) * 4  # the COPY moved the FILL


def test_a_resized_framebuffer_keeps_its_pixels_in_new_memory() -> None:
    fb = Framebuffer(4, 4)
    fb.apply(Region(1, 1, 2, 2, Encoding.FILL, bytes((5, 6, 7))))
    fb.resize(6, 3)
    black, colour = bytes((0, 0, 0, PAD)), bytes((*swap_colour((5, 6, 7)), PAD))
    assert fb.pixels(0, 1, 6, 1)[2] == black + colour * 2 + black * 3
    fb.apply(Region(5, 2, 1, 1, Encoding.FILL, bytes((1, 1, 1))))
    assert fb.pixel(5, 2) == (1, 1, 1) and fb.pixels(5, 2, 1, 1)[2] == bytes((1, 1, 1, PAD))

# The client framebuffer is the first consumer of untrusted Region payloads:
# these tests cross every bound it checks and fuzz every decoder path.
"""Unit tests for client.framebuffer."""

from __future__ import annotations

import io
import random
import struct
import zlib
from types import SimpleNamespace
from typing import Any

import lz4.block
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from client.fb_memory import SWAP_RB
from client.framebuffer import MAX_FRAMEBUFFER_SIDE, Framebuffer, RegionError, swap_palette
from media import palette as palette_codec
from protocol.limits import MAX_REGION_RAW_BYTES
from protocol.messages import Encoding, Region


def raw_region(x: int, y: int, w: int, h: int, encoding: int, data: bytes) -> Any:
    """A Region look-alike that skips protocol validation (hostile input)."""
    return SimpleNamespace(x=x, y=y, w=w, h=h, encoding=encoding, data=data)


def image_bytes(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def gradient(w: int, h: int) -> Image.Image:
    image = Image.new("RGB", (w, h))
    image.putdata([(x * 7 % 256, y * 5 % 256, (x + y) % 256) for y in range(h) for x in range(w)])
    return image


def test_fill_and_pixel() -> None:
    fb = Framebuffer(64, 48)
    fb.apply(Region(10, 5, 20, 10, Encoding.FILL, bytes([1, 2, 3])))
    assert fb.pixel(10, 5) == (1, 2, 3)
    assert fb.pixel(29, 14) == (1, 2, 3)
    assert fb.pixel(30, 14) == (0, 0, 0)
    assert fb.pixel(9, 5) == (0, 0, 0)


def test_raw_lz4_png_jpeg_paste_where_told() -> None:
    fb = Framebuffer(100, 100)
    tile = gradient(20, 10)
    fb.apply(Region(5, 6, 20, 10, Encoding.RAW_LZ4, lz4.block.compress(tile.tobytes(), store_size=True)))
    assert fb.image().crop((5, 6, 25, 16)).tobytes() == tile.tobytes()
    fb.apply(Region(50, 60, 20, 10, Encoding.PNG, image_bytes(tile, "PNG")))
    assert fb.image().crop((50, 60, 70, 70)).tobytes() == tile.tobytes()
    palette_png = image_bytes(tile.convert("P", palette=Image.Palette.ADAPTIVE), "PNG")
    fb.apply(Region(0, 80, 20, 10, Encoding.PNG, palette_png))
    assert fb.image().mode == "RGB"
    solid = Image.new("RGB", (16, 16), (200, 100, 50))
    fb.apply(Region(80, 0, 16, 16, Encoding.JPEG, image_bytes(solid, "JPEG")))
    r, g, b = fb.pixel(88, 8)
    assert abs(r - 200) <= 3 and abs(g - 100) <= 3 and abs(b - 50) <= 3


@pytest.mark.parametrize(
    ("x", "y", "w", "h"),
    [(0, 0, 65, 1), (0, 0, 1, 49), (64, 0, 1, 1), (0, 48, 1, 1), (-1, 0, 1, 1), (0, 0, 0, 1), (0, 0, 1, 0)],
)
def test_out_of_bounds_regions_are_refused(x: int, y: int, w: int, h: int) -> None:
    fb = Framebuffer(64, 48)
    with pytest.raises(RegionError):
        fb.apply(raw_region(x, y, w, h, Encoding.FILL, b"\x01\x02\x03"))
    assert fb.pixel(0, 0) == (0, 0, 0)


def test_fill_needs_exactly_three_bytes() -> None:
    fb = Framebuffer(8, 8)
    for data in (b"", b"\x01\x02", b"\x01\x02\x03\x04"):
        with pytest.raises(RegionError, match="FILL"):
            fb.apply(raw_region(0, 0, 1, 1, Encoding.FILL, data))


def test_unknown_encoding_is_refused() -> None:
    with pytest.raises(RegionError, match="unknown region encoding"):
        Framebuffer(8, 8).apply(raw_region(0, 0, 1, 1, 99, b"\x00\x00\x00"))


def test_lz4_size_prefix_checked_before_decompressing(monkeypatch: pytest.MonkeyPatch) -> None:
    fb = Framebuffer(16, 16)
    calls = []
    monkeypatch.setattr(lz4.block, "decompress", lambda *a, **k: calls.append(a))
    lying = struct.pack("<I", 2**31) + b"\x00" * 8
    with pytest.raises(RegionError, match="announces"):
        fb.apply(raw_region(0, 0, 4, 4, Encoding.RAW_LZ4, lying))
    with pytest.raises(RegionError, match="shorter"):
        fb.apply(raw_region(0, 0, 4, 4, Encoding.RAW_LZ4, b"\x30"))
    assert calls == []


def test_lz4_corrupt_body_is_region_error() -> None:
    fb = Framebuffer(16, 16)
    data = struct.pack("<I", 4 * 4 * 3) + b"\xff" * 10
    with pytest.raises(RegionError, match="corrupt"):
        fb.apply(raw_region(0, 0, 4, 4, Encoding.RAW_LZ4, data))


def test_region_over_raw_limit_is_refused() -> None:
    side = 1024  # 1024*1024*3 > MAX_REGION_RAW_BYTES
    assert side * side * 3 > MAX_REGION_RAW_BYTES
    fb = Framebuffer(side, side)
    data = struct.pack("<I", side * side * 3)
    with pytest.raises(RegionError, match="MAX_REGION_RAW_BYTES"):
        fb.apply(raw_region(0, 0, side, side, Encoding.RAW_LZ4, data))


def test_image_size_must_match_before_decoding() -> None:
    fb = Framebuffer(64, 64)
    png = image_bytes(gradient(8, 8), "PNG")
    with pytest.raises(RegionError, match="8x8, region is 4x4"):
        fb.apply(raw_region(0, 0, 4, 4, Encoding.PNG, png))
    # A PNG announcing a huge size is refused from its header alone.
    with pytest.raises(RegionError):
        fb.apply(raw_region(0, 0, 8, 8, Encoding.PNG, png[:16] + struct.pack(">II", 60000, 60000) + png[24:]))


def test_wrong_format_and_truncation_are_region_errors() -> None:
    fb = Framebuffer(64, 64)
    png = image_bytes(gradient(8, 8), "PNG")
    with pytest.raises(RegionError, match="not a valid JPEG"):
        fb.apply(raw_region(0, 0, 8, 8, Encoding.JPEG, png))
    with pytest.raises(RegionError):
        fb.apply(raw_region(0, 0, 8, 8, Encoding.PNG, png[: len(png) // 2]))


def test_resize_keeps_top_left_and_limits_size() -> None:
    fb = Framebuffer(10, 10)
    fb.apply(Region(0, 0, 10, 10, Encoding.FILL, b"\x09\x08\x07"))
    fb.resize(20, 5)
    assert (fb.width, fb.height) == (20, 5)
    assert fb.pixel(9, 4) == (9, 8, 7)
    assert fb.pixel(10, 0) == (0, 0, 0)
    with pytest.raises(RegionError):
        fb.resize(MAX_FRAMEBUFFER_SIDE + 1, 10)
    with pytest.raises(RegionError):
        Framebuffer(0, 10)


def test_image_is_a_copy_and_save_png(tmp_path: Any) -> None:
    fb = Framebuffer(4, 4)
    fb.apply(Region(1, 1, 2, 2, Encoding.FILL, b"\xff\x00\x00"))
    copy = fb.image()
    copy.putpixel((1, 1), (0, 0, 0))
    assert fb.pixel(1, 1) == (255, 0, 0)
    path = tmp_path / "shot.png"
    fb.save_png(path)
    with Image.open(path) as saved:
        assert saved.convert("RGB").getpixel((2, 2)) == (255, 0, 0)
    with pytest.raises(IndexError):
        fb.pixel(4, 0)


@settings(max_examples=300, deadline=None)
@given(
    encoding=st.sampled_from([1, 2, 3, 4]),
    w=st.integers(1, 16),
    h=st.integers(1, 16),
    data=st.binary(max_size=200),
)
def test_fuzz_apply_raises_only_region_error(encoding: int, w: int, h: int, data: bytes) -> None:
    fb = Framebuffer(16, 16)
    try:
        fb.apply(raw_region(0, 0, w, h, encoding, data))
    except RegionError:
        pass
    assert fb.image().size == (16, 16)


_VALID = {
    Encoding.PNG: image_bytes(gradient(8, 8), "PNG"),
    Encoding.JPEG: image_bytes(gradient(8, 8), "JPEG"),
    Encoding.RAW_LZ4: lz4.block.compress(gradient(8, 8).tobytes(), store_size=True),
}


@settings(max_examples=300, deadline=None)
@given(encoding=st.sampled_from(sorted(_VALID)), position=st.integers(0, 10_000), value=st.integers(0, 255),
       cut=st.integers(0, 10_000))  # fmt: skip
def test_fuzz_mutated_valid_payloads(encoding: Encoding, position: int, value: int, cut: int) -> None:
    data = bytearray(_VALID[encoding])
    data[position % len(data)] = value
    fb = Framebuffer(8, 8)
    try:
        fb.apply(raw_region(0, 0, 8, 8, encoding, bytes(data[: max(1, len(data) - cut % 8)])))
    except RegionError:
        pass
    assert fb.image().size == (8, 8)


def test_pixels_gives_a_rectangle_or_the_whole_screen_as_rows_in_qt_order() -> None:
    fb = Framebuffer(6, 4)
    fb.apply(Region(x=1, y=1, w=2, h=2, encoding=Encoding.FILL, data=bytes((10, 20, 30))))
    colour = bytes((30, 20, 10, 255)) if SWAP_RB else bytes((10, 20, 30, 255))  # Qt's RGB32 on little-endian
    pixel = {(0, 0, 0): bytes((0, 0, 0, 255)), (10, 20, 30): colour}
    assert fb.pixels(0, 0, 6, 4) == (6, 4, b"".join(pixel[rgb] for rgb in fb.image().get_flattened_data()))
    assert fb.pixels(1, 1, 2, 1) == (2, 1, colour * 2)
    black = bytes((0, 0, 0, 255))
    assert fb.pixels(0, 1, 6, 1) == (6, 1, black + colour * 2 + black * 3)
    assert fb.pixels(5, 3, 4, 4) == (1, 1, bytes((0, 0, 0, 255)))  # clipped to the framebuffer


# -- two-colour PALETTE (text): pasted through a mask, the same pixels as decode() ----------
def _reference_paste(fb: Framebuffer, region: Region) -> None:
    """What apply() did for every PALETTE: decode() to RGB, one paste."""
    tile = palette_codec.decode(bytes(region.data), region.w, region.h, swap_palette)
    fb._image.paste(tile, (region.x, region.y))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 40), st.integers(1, 30), st.integers(0, 2**32), st.booleans())
def test_a_two_colour_palette_paints_what_decode_paints(w: int, h: int, seed: int, deflate: bool) -> None:
    rng = random.Random(seed)
    stride = palette_codec.row_bytes(w, 1)
    rows = bytes(rng.randrange(256) for _ in range(stride * h))
    colours = bytes(rng.randrange(256) for _ in range(6))
    data = bytes((1, 1)) + colours + (bytes((palette_codec.PACK_ZLIB,)) + zlib.compress(rows) if deflate
                                      else bytes((palette_codec.PACK_RAW,)) + rows)  # fmt: skip
    x, y = rng.randrange(50 - w + 1), rng.randrange(40 - h + 1)
    region = Region(x, y, w, h, Encoding.PALETTE, data)
    assert palette_codec.decode_two_colours(data, w, h) is not None  # the fast path is the one taken
    fast, reference = Framebuffer(50, 40), Framebuffer(50, 40)
    fast.apply(region)
    _reference_paste(reference, region)
    assert fast.pixels(0, 0, 50, 40) == reference.pixels(0, 0, 50, 40)


def test_other_palettes_are_not_taken_by_the_two_colour_path() -> None:
    one_colour = bytes((1, 0, 9, 9, 9, palette_codec.PACK_RAW, 0x00))
    four_colours = bytes((2, 3)) + bytes(12) + bytes((palette_codec.PACK_RAW, 0x1B))
    assert palette_codec.decode_two_colours(one_colour, 8, 1) is None
    assert palette_codec.decode_two_colours(four_colours, 4, 1) is None
    fb = Framebuffer(8, 1)
    with pytest.raises(RegionError):  # an index past a one-colour palette is still refused
        fb.apply(Region(0, 0, 8, 1, Encoding.PALETTE, bytes((1, 0, 9, 9, 9, palette_codec.PACK_RAW, 0x80))))
    with pytest.raises(RegionError):  # and rows of the wrong length, on the two-colour path too
        fb.apply(Region(0, 0, 8, 2, Encoding.PALETTE, bytes((1, 1)) + bytes(6) + bytes((palette_codec.PACK_RAW, 0))))


@pytest.mark.parametrize("kind", ["RGB", "P", "RGBA", "L", "I;16"])
def test_png_regions_land_exactly_in_memory_order(kind: str) -> None:
    # An 8-bit RGB PNG is unpacked as B, G, R by Pillow's own decoder pass (no swap_rb pass after it);
    # every other kind is converted and swapped as before. The memory holds the reference's pixels in its order.
    tile = gradient(23, 11)
    source = {"RGB": tile, "P": tile.convert("P", palette=Image.Palette.ADAPTIVE), "RGBA": tile.convert("RGBA"),
              "L": tile.convert("L"), "I;16": tile.convert("I;16")}[kind]  # fmt: skip
    data = image_bytes(source, "PNG")
    reference = Image.open(io.BytesIO(data)).convert("RGB").tobytes()
    fb = Framebuffer(30, 20)
    fb.apply(Region(3, 4, 23, 11, Encoding.PNG, data))
    assert fb.crop(3, 4, 23, 11).tobytes() == reference
    _w, _h, memory = fb.pixels(3, 4, 23, 11)
    pixels = [reference[i : i + 3] for i in range(0, len(reference), 3)]
    assert memory == b"".join((p[::-1] if SWAP_RB else p) + b"\xff" for p in pixels)
    assert fb.pixels(0, 0, 30, 4)[2] == bytes((0, 0, 0, 255)) * 30 * 4  # nothing above it touched


def test_an_rgb_png_is_decoded_straight_into_the_memory_order() -> None:
    tile = gradient(9, 7)
    decoded, in_memory_order = Framebuffer._decode_file(image_bytes(tile, "PNG"), 9, 7, "PNG")
    assert in_memory_order is SWAP_RB
    assert decoded.tobytes() == (tile.tobytes("raw", "BGR") if SWAP_RB else tile.tobytes())
    _jpeg, jpeg_in_order = Framebuffer._decode_file(image_bytes(tile, "JPEG"), 9, 7, "JPEG")
    assert jpeg_in_order is False  # JPEG has no B, G, R raw mode in Pillow's decoder: swapped after

# The encoder's contract, checked through the client's decoder: lossless
# encodings reproduce the captured pixels exactly, JPEG stays close, every
# Region respects MAX_REGION_RAW_BYTES, and few-colour content (text, flat
# UI) goes out as the smallest exact palette: PALETTE regions (the PNG writer
# is still checked on its own).
"""Unit tests for sessiond.agent.encoder (round trip via client.framebuffer)."""

from __future__ import annotations

import random

import lz4.block
import pytest
from PIL import Image

from client.framebuffer import Framebuffer
from protocol.limits import MAX_REGION_RAW_BYTES
from protocol.messages import Encoding
from sessiond.agent.encoder import EncoderError, RegionEncoder, exact_palette_png, stripes

STRIDE_PAD = 64  # bytes of row padding, like a real XImage may have


def bgrx_frame(image: Image.Image) -> tuple[bytearray, int]:
    """The BGRX buffer (with padded rows) a capture of `image` would give."""
    w, h = image.size
    stride = w * 4 + STRIDE_PAD
    buf = bytearray(stride * h)
    row = image.convert("RGBX").tobytes("raw", "BGRX")
    for y in range(h):
        buf[y * stride : y * stride + w * 4] = row[y * w * 4 : (y + 1) * w * 4]
    return buf, stride


def screen(w: int = 400, h: int = 300) -> Image.Image:
    """A screen with a solid area, two-colour noise, and a smooth 'photo'."""
    rng = random.Random(7)
    image = Image.new("RGB", (w, h), (30, 60, 90))
    noise = Image.new("RGB", (100, 100))
    noise.putdata([rng.choice([(0, 0, 0), (255, 255, 255)]) for _ in range(100 * 100)])
    image.paste(noise, (0, 0))
    photo = Image.new("RGB", (200, 150))
    photo.putdata([(x, y, (x + y) // 2 + rng.randrange(4)) for y in range(150) for x in range(200)])
    image.paste(photo, (150, 120))
    return image


def roundtrip(encoder: RegionEncoder, image: Image.Image, rects: list[tuple[int, int, int, int]]):
    buf, stride = bgrx_frame(image)
    regions = encoder.encode(memoryview(buf), stride, rects)
    fb = Framebuffer(*image.size)
    for region in regions:
        fb.apply(region)
    return regions, fb.image()


def test_solid_rect_is_fill() -> None:
    regions, _ = roundtrip(RegionEncoder(), screen(), [(300, 0, 50, 40)])
    assert [(r.encoding, r.data, r.w, r.h) for r in regions] == [(Encoding.FILL, bytes([30, 60, 90]), 50, 40)]


def test_large_solid_rect_is_one_fill_without_striping() -> None:
    image = Image.new("RGB", (1000, 400), (1, 2, 3))
    regions, out = roundtrip(RegionEncoder(), image, [(0, 0, 1000, 400)])
    assert len(regions) == 1 and regions[0].encoding is Encoding.FILL
    assert out.tobytes() == image.tobytes()


def test_few_colour_noise_is_lossless_png_or_lz4_and_exact() -> None:
    image = screen()
    regions, out = roundtrip(RegionEncoder(), image, [(0, 0, 100, 100)])
    assert [r.encoding for r in regions] == [Encoding.PALETTE]  # a palette beats lz4 on noise
    assert out.crop((0, 0, 100, 100)).tobytes() == image.crop((0, 0, 100, 100)).tobytes()


def test_text_like_area_is_exact() -> None:
    image = screen()
    rect = (90, 90, 80, 50)  # straddles noise, background and photo corner
    regions, out = roundtrip(RegionEncoder(), image, [rect])
    assert all(r.encoding in (Encoding.RAW_LZ4, Encoding.PNG, Encoding.PALETTE) for r in regions)
    box = (90, 90, 170, 140)
    assert out.crop(box).tobytes() == image.crop(box).tobytes()


def test_many_colour_photo_is_jpeg_within_tolerance() -> None:
    image = screen()
    regions, out = roundtrip(RegionEncoder(jpeg_quality=90), image, [(150, 120, 200, 150)])
    assert [r.encoding for r in regions] == [Encoding.JPEG]
    box = (150, 120, 350, 270)
    diffs = [abs(a - b) for a, b in zip(out.crop(box).tobytes(), image.crop(box).tobytes())]
    assert sum(diffs) / len(diffs) < 4
    assert max(diffs) < 48


def test_lossless_only_encoder_never_uses_jpeg() -> None:
    image = screen()
    regions, out = roundtrip(RegionEncoder(allow_lossy=False), image, [(0, 0, 400, 300)])
    assert Encoding.JPEG not in {r.encoding for r in regions}
    assert out.tobytes() == image.tobytes()


def test_big_rect_is_striped_within_limit_and_exact() -> None:
    rng = random.Random(3)
    w, h = 700, 600  # 1.26 MB of RGB: more than one Region
    image = Image.frombytes("RGB", (w, h), bytes(rng.randrange(256) for _ in range(w * h * 3)))
    regions, out = roundtrip(RegionEncoder(allow_lossy=False), image, [(0, 0, w, h)])
    assert len(regions) >= 2
    assert all(r.w * r.h * 3 <= MAX_REGION_RAW_BYTES for r in regions)
    assert sum(r.w * r.h for r in regions) == w * h
    assert out.tobytes() == image.tobytes()


def test_stripes_cover_exactly_and_tile_wide_rows() -> None:
    pieces = stripes((10, 20, 100, 7), max_bytes=3 * 40)  # 40 pixels per piece
    assert all(pw * ph * 3 <= 120 for _, _, pw, ph in pieces)
    covered = {(x + i, y + j) for x, y, pw, ph in pieces for i in range(pw) for j in range(ph)}
    assert covered == {(x, y) for x in range(10, 110) for y in range(20, 27)}
    assert len(covered) == sum(pw * ph for _, _, pw, ph in pieces)  # no overlap
    assert stripes((0, 0, 5, 5)) == [(0, 0, 5, 5)]


def test_rect_outside_buffer_is_refused() -> None:
    buf, stride = bgrx_frame(Image.new("RGB", (10, 10)))
    encoder = RegionEncoder()
    for rect in [(5, 5, 10, 1), (0, 5, 1, 6), (-1, 0, 1, 1), (0, 0, 0, 1)]:
        with pytest.raises(EncoderError):
            encoder.encode(memoryview(buf), stride, [rect], width=10)
    # Without the width, only the buffer itself bounds the rectangle.
    with pytest.raises(EncoderError):
        encoder.encode(memoryview(buf), stride, [(0, 0, stride // 4 + 1, 1)])


def test_bad_quality_is_refused() -> None:
    with pytest.raises(EncoderError):
        RegionEncoder(jpeg_quality=0)


# -- exact palette PNG (text and flat UI) ------------------------------------------


def png_header(data: bytes) -> tuple[int, int, list[bytes]]:
    """(bit depth, colour type, chunk tags) of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    tags, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        tags.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return data[24], data[25], tags


def palette_image(colours: list[tuple[int, int, int]], w: int, h: int, seed: int = 5) -> Image.Image:
    rng = random.Random(seed)
    image = Image.new("RGB", (w, h))
    image.putdata([rng.choice(colours) for _ in range(w * h)])
    return image


def test_black_and_white_text_is_one_bit_grey_png_without_palette() -> None:
    image = palette_image([(0, 0, 0), (255, 255, 255)], 400, 300)  # 120k px: lz4 is not tried
    regions, out = roundtrip(RegionEncoder(), image, [(0, 0, 400, 300)])
    assert [r.encoding for r in regions] == [Encoding.PNG]  # large: PNG, decoded off a browser's main thread
    bits, colour_type, tags = png_header(regions[0].data)
    assert (bits, colour_type) == (1, 0) and b"PLTE" not in tags
    assert tags == [b"IHDR", b"IDAT", b"IEND"]
    assert out.tobytes() == image.tobytes()


@pytest.mark.parametrize(
    ("count", "bits"),
    [(2, 1), (3, 2), (4, 2), (5, 4), (16, 4), (17, 8), (200, 8)],
)
def test_palette_png_uses_the_fewest_bits_and_is_exact(count: int, bits: int) -> None:
    # Distinct luminance for every colour: red ramps up while blue ramps down.
    colours = [(i, 40, 255 - i) for i in range(count)]
    image = palette_image(colours, 300, 200, seed=count)
    regions, out = roundtrip(RegionEncoder(), image, [(0, 0, 300, 200)])
    assert [r.encoding for r in regions] == [Encoding.PNG]
    depth, colour_type, tags = png_header(regions[0].data)
    assert (depth, colour_type) == (bits, 3) and b"PLTE" in tags
    # A small area of the same colours is a PALETTE of the same depth.
    small, _ = roundtrip(RegionEncoder(), image, [(0, 0, 100, 100)])
    assert [r.encoding for r in small] == [Encoding.PALETTE] and small[0].data[:2] == bytes([bits, count - 1])
    assert out.tobytes() == image.tobytes()


def test_colours_with_equal_luminance_are_told_apart_by_a_colour_band() -> None:
    # Pure red and the grey of the same luminance (76): only R separates them.
    image = palette_image([(255, 0, 0), (76, 76, 76), (0, 0, 255)], 300, 200)
    regions, out = roundtrip(RegionEncoder(), image, [(0, 0, 300, 200)])
    assert [r.encoding for r in regions] == [Encoding.PNG]
    assert out.tobytes() == image.tobytes()


def test_colours_no_band_tells_apart_fall_back_losslessly() -> None:
    # L, R, G and B each map two of these colours to one value.
    colours = [(0, 0, 0), (0, 1, 1), (1, 0, 0)]
    image = palette_image(colours, 300, 200)
    assert exact_palette_png(image, image.getcolors(256)) is None
    regions, out = roundtrip(RegionEncoder(allow_lossy=False), image, [(0, 0, 300, 200)])
    assert out.tobytes() == image.tobytes()


def test_region_at_the_end_of_the_buffer_is_exact() -> None:
    # The last rows right of x=0 cannot be mapped in place (the final row has
    # no padding after it): the RGB-copy path must give the same pixels.
    image = palette_image([(0, 0, 0), (250, 250, 250), (0, 128, 0)], 120, 90)
    rect = (10, 60, 100, 30)
    regions, out = roundtrip(RegionEncoder(), image, [rect])
    box = (10, 60, 110, 90)
    assert out.crop(box).tobytes() == image.crop(box).tobytes()


def test_typed_glyph_costs_tens_of_bytes() -> None:
    # One 6x13 glyph plus the moved block cursor, as xterm echoes a key.
    image = Image.new("RGB", (12, 13), (255, 255, 255))
    for x, y in [(1, 2), (2, 2), (3, 3), (1, 4), (4, 5), (2, 6), (3, 8), (1, 9), (4, 10)]:
        image.putpixel((x, y), (0, 0, 0))
    image.paste((0, 0, 0), (6, 0, 12, 13))
    regions, out = roundtrip(RegionEncoder(), image, [(0, 0, 12, 13)])
    assert [r.encoding for r in regions] == [Encoding.PALETTE]
    # 2 header bytes, 6 of colours, 1 packing byte, 13 rows of 2 bytes; the
    # grey PNG of the same glyph was 90 bytes.
    assert len(regions[0].data) <= 40
    assert out.tobytes() == image.tobytes()


def test_full_hd_text_screen_is_far_smaller_than_lz4() -> None:
    rng = random.Random(11)
    image = Image.new("RGB", (1920, 1080), (255, 255, 255))
    glyphs = [palette_image([(0, 0, 0), (255, 255, 255)], 5, 9, seed=n) for n in range(64)]
    for row in range(0, 1080 - 13, 13):
        for col in range(0, rng.randrange(600, 1920) - 6, 6):
            image.paste(rng.choice(glyphs), (col, row + 2))
    regions, out = roundtrip(RegionEncoder(), image, [(0, 0, 1920, 1080)])
    assert {r.encoding for r in regions} == {Encoding.PNG}
    assert all(r.w * r.h * 3 <= MAX_REGION_RAW_BYTES for r in regions)
    raw_lz4 = sum(len(lz4.block.compress(image.crop((r.x, r.y, r.x + r.w, r.y + r.h)).tobytes())) for r in regions)
    assert sum(len(r.data) for r in regions) * 4 < raw_lz4
    assert out.tobytes() == image.tobytes()

"""The palette encoder's small-image path (sessiond/agent/palette_png.py): a
keystroke's echo is mapped with bytes.translate instead of Image.point and
its colours' key channel is remembered; both must give the very bytes the
general path gives (the wire stays byte-identical), and the memo stays bounded."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sessiond.agent import palette_png
from sessiond.agent.palette_png import (
    MAX_KEY_MEMO,
    MAX_KEY_MEMO_COLOURS,
    SMALL_PACK_PIXELS,
    _channel_keys,
    _key_channel,
    _pack,
    exact_palette,
    exact_palette_png,
)


def point_pack(channel: Image.Image, lut: list[int], bits: int) -> bytes:
    """The general path (Image.point), as _pack did for every size."""
    if bits == 1:
        return channel.point(lut, "1").tobytes()
    indexed = channel.point(lut)
    if bits < 8:
        indexed.putpalette(bytes(3 << bits))
        return indexed.tobytes("raw", f"P;{bits}")
    return indexed.tobytes()


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 70), st.integers(1, 60), st.sampled_from([1, 2, 4, 8]), st.integers(0, 2**32))
def test_small_pack_gives_the_bytes_of_point(w: int, h: int, bits: int, seed: int) -> None:
    rng = random.Random(seed)
    channel = Image.frombytes("L", (w, h), bytes(rng.randrange(256) for _ in range(w * h)))
    lut = [rng.randrange(1 << bits) for _ in range(256)]
    assert _pack(channel, lut, bits) == point_pack(channel, lut, bits)


@pytest.mark.parametrize("w, h", [(64, 64), (64, 65), (1, SMALL_PACK_PIXELS), (1, SMALL_PACK_PIXELS + 1)])
def test_both_sides_of_the_small_pack_bound_agree(w: int, h: int) -> None:
    rng = random.Random(w * h)
    channel = Image.frombytes("L", (w, h), bytes(rng.choice((0, 255)) for _ in range(w * h)))
    lut = [0] * 256
    lut[255] = 1
    assert _pack(channel, lut, 1) == point_pack(channel, lut, 1)


def two_colour_image(w: int, h: int, colours: tuple[tuple[int, int, int], ...], seed: int) -> Image.Image:
    rng = random.Random(seed)
    image = Image.new("RGB", (w, h))
    image.putdata([rng.choice(colours) for _ in range(w * h)])
    return image


def test_remembered_keys_give_the_same_palette_as_fresh_ones() -> None:
    image = two_colour_image(12, 13, ((0, 0, 0), (255, 255, 255)), 1)
    colours = image.getcolors(16)
    assert colours is not None
    _channel_keys.cache_clear()
    first = exact_palette(image, colours)
    assert _channel_keys.cache_info().currsize == 1
    again = exact_palette(image, colours)  # from the memo
    assert first == again
    assert _channel_keys.cache_info().hits >= 1
    _channel_keys.cache_clear()
    assert exact_palette(image, colours) == first
    png = exact_palette_png(image, colours)
    assert png is not None and png == exact_palette_png(image, colours)


def test_colours_no_band_tells_apart_are_remembered_as_none() -> None:
    # Two share R, two share G, two share B, and the last two share their luminance: no key channel.
    colours = [(0, 0, 0), (0, 1, 40), (1, 0, 40)]
    image = Image.new("RGB", (3, 1))
    image.putdata(colours)
    assert _key_channel(image, colours) is None
    assert _key_channel(image, colours) is None  # the memo's None is kept as None


def test_the_memo_is_bounded_in_entries_and_skips_long_colour_lists() -> None:
    _channel_keys.cache_clear()
    image = Image.new("RGB", (1, 1))
    for index in range(MAX_KEY_MEMO + 10):  # past the bound
        colours = [(0, 0, 0), (index % 256, index // 256, 255)]
        assert _key_channel(image, colours) is not None
    assert _channel_keys.cache_info().currsize == MAX_KEY_MEMO
    _channel_keys.cache_clear()
    many = [(i, i, i) for i in range(MAX_KEY_MEMO_COLOURS + 1)]
    found = _key_channel(image, many)
    assert found is not None and found[1] == [i for i, _, _ in many]  # luminance of greys
    assert _channel_keys.cache_info().currsize == 0  # not remembered
    assert palette_png.MAX_KEY_MEMO_COLOURS >= 2  # text (two colours) is remembered

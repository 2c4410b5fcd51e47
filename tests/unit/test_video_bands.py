# media/yuv_bands.py: converting only the changed bands of rows gives the
# whole-frame conversion's frame byte for byte (in place, at an offset,
# with a stride, with a short last band), converts only the bands that
# changed, and stops comparing while every frame changes everywhere.
# Real libswscale from PyAV's wheel.
from __future__ import annotations

import random

import pytest

from media import yuv_bands
from media.swscale import YuvConverter
from media.yuv_bands import BAND_ROWS, FULL_STREAK, PROBE_FRAMES, BandYuvConverter


def noise(size: int, seed: int) -> bytearray:
    rng = random.Random(seed)
    return bytearray(rng.randbytes(size))


def planes(frame: object) -> list[bytes]:
    return [bytes(plane) for plane in frame.planes]  # type: ignore[attr-defined]


def change_rows(buffer: bytearray, stride: int, rect: tuple[int, int, int, int], rows: range, seed: int) -> None:
    """New pixels in `rows` (rect-relative) of rect."""
    x, y, w, _h = rect
    rng = random.Random(seed)
    for row in rows:
        start = (y + row) * stride + x * 4
        buffer[start : start + w * 4] = rng.randbytes(w * 4)


@pytest.mark.parametrize("geometry", [
    (96, 72, 96 * 4, (0, 0)),  # rows packed, a short last band (72 = 4 * 16 + 8)
    (61, 38, 200 * 4 + 32, (13, 5)),  # a rectangle of a wider buffer, odd width, a 6-row last band
])  # fmt: skip
def test_changed_bands_only_give_the_whole_conversion(geometry: tuple[int, int, int, tuple[int, int]]) -> None:
    width, height, stride, (x, y) = geometry
    rect = (x, y, width, height)
    coded = (width + 15) // 16 * 16, (height + 15) // 16 * 16
    buffer = noise(stride * (y + height + 2), 1)
    bands, whole = BandYuvConverter(width, height, coded), YuvConverter(width, height, coded)
    changes = [range(0), range(0, 1), range(BAND_ROWS + 3, BAND_ROWS + 5), range(height - 1, height), range(0)]
    for index, rows in enumerate(changes):
        change_rows(buffer, stride, rect, rows, 100 + index)
        got = planes(bands.convert(buffer, stride, x, y))
        assert got == planes(whole.convert(buffer, stride, x, y)), f"frame {index}: {list(rows)} changed"
        if index:
            assert bands.converted_bands == len({row // BAND_ROWS for row in rows})
    bands.close()
    whole.close()


def test_an_odd_height_is_converted_whole_and_exact() -> None:
    width, height, stride = 40, 37, 40 * 4
    buffer = noise(stride * height, 4)
    converter, whole = BandYuvConverter(width, height, (48, 48)), YuvConverter(width, height, (48, 48))
    for seed in range(3):
        change_rows(buffer, stride, (0, 0, width, height), range(seed, seed + 1), 50 + seed)
        assert planes(converter.convert(buffer, stride, 0, 0)) == planes(whole.convert(buffer, stride, 0, 0))
        assert converter.converted_bands == converter.bands


def test_the_first_frame_is_converted_whole() -> None:
    converter = BandYuvConverter(64, 64, (64, 64))
    converter.convert(noise(64 * 64 * 4, 2), 64 * 4, 0, 0)
    assert converter.converted_bands == converter.bands == 4


def test_a_picture_that_changes_everywhere_stops_the_comparing_for_a_while() -> None:
    width, height = 64, 64
    stride = width * 4
    converter, whole = BandYuvConverter(width, height, (64, 64)), YuvConverter(width, height, (64, 64))
    frames = 0

    def convert(buffer: bytearray) -> None:
        nonlocal frames
        frames += 1
        assert planes(converter.convert(buffer, stride, 0, 0)) == planes(whole.convert(buffer, stride, 0, 0))

    for seed in range(FULL_STREAK + 1):  # every pixel new, every frame
        convert(noise(stride * height, 10 + seed))
    still = noise(stride * height, 99)
    convert(still)
    one_row = bytearray(still)
    change_rows(one_row, stride, (0, 0, width, height), range(0, 1), 5)
    convert(one_row)
    assert converter.converted_bands == converter.bands  # paused: whole frames, no compare
    for _ in range(PROBE_FRAMES):
        convert(still)
    convert(one_row)  # compares again: only the band that changed
    assert converter.converted_bands == 1


def test_a_narrow_rectangle_at_the_buffer_end_is_converted_whole_and_exact() -> None:
    # libswscale over-reads a row's end: a rectangle ending at the buffer's
    # end goes through the whole converter's padded copy (swscale.py).
    width, height, stride = 8, 40, 8 * 4
    buffer = noise(stride * height, 3)
    converter, whole = BandYuvConverter(width, height, (16, 48)), YuvConverter(width, height, (16, 48))
    for seed in range(3):
        change_rows(buffer, stride, (0, 0, width, height), range(seed, seed + 1), seed)
        assert planes(converter.convert(buffer, stride, 0, 0)) == planes(whole.convert(buffer, stride, 0, 0))
        assert converter.converted_bands == converter.bands


def test_a_rectangle_outside_the_buffer_is_refused() -> None:
    converter = BandYuvConverter(32, 32, (32, 32))
    with pytest.raises(ValueError):
        converter.convert(bytearray(32 * 4 * 31), 32 * 4, 0, 0)


def test_bands_start_on_even_rows() -> None:
    assert BAND_ROWS % 2 == 0 and yuv_bands.WHOLE_SHARE < 1

# media/yuv_bands.py: converting only the changed bands of rows gives the
# whole-frame conversion's frame byte for byte (in place, at an offset,
# with a stride, with a short last band), converts only the bands that
# changed, and stops comparing while every frame changes everywhere.
# The client's side (media/rgb_bands.py, client.video, client.framebuffer):
# the RGB of only the changed bands is the whole conversion's, and a
# framebuffer pasting only changed rows ends equal to one pasting every
# picture whole, also when something else painted over the video between
# two pictures.  Real libswscale, libx264 and FFmpeg from PyAV's wheel.
from __future__ import annotations

import random

import av
import pytest

from client.framebuffer import Framebuffer
from media import yuv_bands
from media.rgb_bands import WHOLE_STREAK, BandRgbConverter
from media.swscale import RgbConverter, YuvConverter
from media.yuv_bands import BAND_ROWS, FULL_STREAK, PROBE_FRAMES, BandYuvConverter
from protocol.messages import Encoding, Region
from protocol.video import coded_size, pack
from sessiond.agent.h264 import H264Encoder


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


def rgb_rows(data: bytearray, stride: int, width: int, height: int) -> list[bytes]:
    return [bytes(data[row * stride : row * stride + width * 3]) for row in range(height)]


@pytest.mark.parametrize("size", [(96, 72), (61, 38), (40, 37)])
def test_rgb_of_changed_bands_only_is_the_whole_conversion(size: tuple[int, int]) -> None:
    width, height = size
    frame = av.VideoFrame(*coded_size(width, height), "yuv420p")
    rng = random.Random(8)
    for plane in frame.planes:
        plane.update(rng.randbytes(plane.buffer_size))
    bands, whole = BandRgbConverter(width, height), RgbConverter(width, height)
    for index in range(4):
        plane = frame.planes[index % 3]
        data = bytearray(bytes(plane))
        at = rng.randrange(len(data) - 8)
        data[at : at + 8] = rng.randbytes(8)
        plane.update(bytes(data))
        got = rgb_rows(bands.convert(frame), bands.stride, width, height)
        assert got == rgb_rows(whole.convert(frame), whole.stride, width, height), f"picture {index}"
        spans = bands.changed_rows()
        if index and bands.banded:  # one small change: one band (two if it straddles), never all
            assert sum(rows for _, rows in spans) <= 2 * BAND_ROWS
            changed_row = at // plane.line_size * (1 if index % 3 == 0 else 2)
            assert any(first <= changed_row < first + rows for first, rows in spans)


def test_rgb_stops_comparing_while_every_picture_changes_everywhere() -> None:
    frame = av.VideoFrame(64, 64, "yuv420p")
    converter = BandRgbConverter(64, 64)
    rng = random.Random(9)
    for _ in range(WHOLE_STREAK + 1):
        for plane in frame.planes:
            plane.update(rng.randbytes(plane.buffer_size))
        converter.convert(frame)
    converter.convert(frame)  # unchanged, but comparing is paused: reported whole
    assert converter.changed_rows() == [(0, 64)]


def pictures(count: int, width: int, height: int) -> list[bytes]:
    """BGRX frames where a moving block changes a few rows of a smooth background."""
    base = bytearray()
    for y in range(height):
        for x in range(width):
            base += bytes(((x * 3) % 256, (y * 5) % 256, (x + y) % 256, 0))
    out = []
    for index in range(count):
        frame = bytearray(base)
        top = (index * 7) % (height - 8)
        for y in range(top, top + 8):
            frame[(y * width + 10) * 4 : (y * width + 30) * 4] = bytes((index * 40 % 256, 90, 200, 0)) * 20
        out.append(bytes(frame))
    return out


def test_a_framebuffer_pasting_changed_rows_ends_equal_to_one_pasting_whole() -> None:
    width, height, x, y = 96, 160, 8, 16
    encoder = H264Encoder(width, height, bitrate=4_000_000)
    banded, whole = Framebuffer(128, 192), Framebuffer(128, 192)
    whole.video.banded = False
    fill = Region(x + 4, y + 100, 20, 10, Encoding.FILL, bytes((255, 0, 0)))
    moving = pictures(30, width, height)
    for index, data in enumerate(moving + [moving[-1]] * 20):  # then a still picture: nothing changes
        unit = pack(0, encoder.encode_pixels(data, width * 4, 0, 0), key=index == 0)
        if index == 45:
            assert banded.video.changed_rows == []  # the still picture: no rows were pasted
        for fb in (banded, whole):
            if index == 45:
                fb.apply(fill)  # painted over the video: the next picture must repaint it
            fb.apply(Region(x, y, width, height, Encoding.H264, unit))
        assert banded.image().tobytes() == whole.image().tobytes(), f"picture {index}"
    assert banded.image().getpixel((x + 10, y + 105)) != (255, 0, 0)  # the video painted over the FILL again

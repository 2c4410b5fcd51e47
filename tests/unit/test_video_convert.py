# The H.264 path's conversions (media/swscale.py): a rectangle of a
# BGRX buffer read in place -- at an offset, with a stride, from a writable
# shared-memory-like buffer or from bytes -- becomes the same stream as
# PyAV's copying path of the same pixels, within the buffer's bounds only;
# and the per-stage report line of a stream (video_stats.py) reads back as
# written.  Real libswscale/libx264/FFmpeg from PyAV's wheel, no X server.
from __future__ import annotations

import ctypes
import mmap
import random

import pytest
from PIL import Image

from client.video import VideoDecoders
from protocol.video import pack
from media import swscale
from sessiond.agent.h264 import H264Encoder, H264Error
from protocol.messages import Encoding, Region
from sessiond.agent.video import VideoRegions, VideoStream, image_of
from sessiond.agent.video_stats import REPORT_SECONDS, STAGES, StreamStats, format_report, parse_report
from media.swscale import RGB_ROW_ALIGN, RGB_TAIL, RgbConverter, YuvConverter



def test_the_pinned_pyav_wheel_carries_libswscale() -> None:
    # The in-place path is the one sessions use; the copying fallback exists for a PyAV built
    # without it, which requirements.txt does not pin. Every test below needs it: none may skip.
    assert swscale.available()


def screen(w: int, h: int, seed: int) -> bytearray:
    """A BGRX 'screen' of smooth many-colour content with a little noise."""
    rng = random.Random(seed)
    data = bytearray()
    for y in range(h):
        for x in range(w):
            data += bytes(((x + seed * 3) % 256, (y * 2) % 256, (x + y + rng.randrange(8)) % 256, 0))
    return data


def rgb_of(data: bytes | bytearray, stride: int, rect: tuple[int, int, int, int]) -> bytes:
    """RGB bytes of a rectangle of a BGRX buffer."""
    image = image_of((bytes(data), stride, rect[0], rect[1]), rect[2], rect[3])
    b, g, r, _x = image.split()
    return Image.merge("RGB", (r, g, b)).tobytes()


def mean_error(a: bytes, b: bytes) -> float:
    return sum(abs(x - y) for x, y in zip(a, b)) / len(a)


@pytest.mark.parametrize("size", [(96, 64), (61, 37)])
def test_a_rectangle_read_in_place_decodes_close_to_its_pixels(size: tuple[int, int]) -> None:
    width, height, stride = 160, 100, 160 * 4 + 64  # a padded stride, as a capture may have
    rect = (13, 21, *size)
    encoder, decoders = H264Encoder(*size, bitrate=5_000_000), VideoDecoders()
    assert encoder.direct
    for index in range(3):
        rows = screen(width, height, index)
        buffer = bytearray()
        for y in range(height):
            buffer += rows[y * width * 4 : (y + 1) * width * 4] + bytes(stride - width * 4)
        shared = memoryview(buffer)  # writable, like the MIT-SHM segment
        picture = decoders.decode(pack(0, encoder.encode_pixels(shared, stride, rect[0], rect[1]), key=index == 0),
                                  *size)  # fmt: skip
        assert picture is not None and picture.size == size
        assert mean_error(picture.tobytes(), rgb_of(buffer, stride, rect)) < 6
    assert set(encoder.stages) == {"convert", "encode"}


def test_in_place_and_copying_paths_give_the_same_picture() -> None:
    size, stride = (64, 48), 64 * 4
    data = bytes(screen(*size, 1))
    pictures = []
    for direct in (True, False):
        encoder = H264Encoder(*size, bitrate=20_000_000, direct=direct)
        picture = VideoDecoders().decode(pack(0, encoder.encode_pixels(data, stride, 0, 0), key=True), *size)
        assert picture is not None
        pictures.append(picture.tobytes())
    assert mean_error(*pictures) < 3  # point-sampled against PyAV's filtered chroma


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("corner", [(-1, 0), (0, -1), (97, 0), (0, 53)])
def test_a_rectangle_past_the_buffer_is_refused(direct: bool, corner: tuple[int, int]) -> None:
    data = bytes(screen(160, 100, 0))
    encoder = H264Encoder(64, 48, direct=direct)
    with pytest.raises(H264Error):
        encoder.encode_pixels(data, 160 * 4, *corner)  # 97 + 64 > 160, 53 + 48 > 100
    assert encoder.needs_key  # a failed frame restarts the stream


def test_the_converter_writes_only_the_coded_frame_it_owns() -> None:
    converter = YuvConverter(61, 37, (62, 38))
    frame = converter.convert(bytes(screen(61, 37, 2)), 61 * 4, 0, 0)
    assert (frame.width, frame.height) == (62, 38)
    assert converter.convert(bytes(screen(61, 37, 3)), 61 * 4, 0, 0) is frame  # reused, never reallocated
    converter.close()
    with pytest.raises(ValueError):
        converter.convert(bytes(screen(61, 37, 3)), 61 * 4, 0, 0)


def test_the_report_line_reads_back_as_written() -> None:
    seconds = {"capture": 0.020, "detect": 0.001, "convert": 0.040, "encode": 0.100, "send": 0.005, "cpu": 0.3}
    line = "2026-12-06 [agent] " + format_report(2, (1920, 1080), (10, 1), 5.01, 60_000, 2_500_000, seconds)
    report = parse_report(line)
    assert report is not None
    assert (report.stream, report.size, report.frames, report.keys) == (2, (1920, 1080), 10, 1)
    assert (report.bytes, report.kbps) == (60_000, 2500)
    assert report.ms_per_frame == {"capture": 2.0, "detect": 0.1, "convert": 4.0, "encode": 10.0, "send": 0.5,
                                   "cpu": 30.0}  # fmt: skip
    assert parse_report("video stream 1 1x1: garbage") is None
    assert parse_report("an unrelated line") is None


def test_a_stream_reports_every_report_seconds_and_when_it_ends() -> None:
    now = [0.0]
    lines: list[str] = []
    stats = StreamStats(lambda: now[0], (64, 48), lines.append)
    for _ in range(3):
        for stage in STAGES:
            stats.add(stage, 0.001)
        stats.frame(100, key=False)
        now[0] += REPORT_SECONDS / 2
        stats.tick(0, 3_000_000)
    assert len(lines) == 1  # at the second tick, REPORT_SECONDS in
    first = parse_report(lines[0])
    assert first is not None and first.frames == 2 and first.ms_per_frame["encode"] == pytest.approx(1.0)
    assert first.ms_per_frame["cpu"] >= 0  # the process's CPU per frame over the report
    stats.tick(0, 3_000_000, final=True)
    last = parse_report(lines[-1])
    assert len(lines) == 2 and last is not None and last.frames == 1
    stats.tick(0, 3_000_000, final=True)
    assert len(lines) == 2  # nothing sent since: no line


@pytest.mark.parametrize("size", [(3, 1), (15, 2), (61, 15), (256, 4)])
def test_a_rectangle_ending_at_an_unreadable_page_is_read_without_a_fault(size: tuple[int, int]) -> None:
    # libswscale reads whole groups of pixels past a row's end: a narrow
    # rectangle at the very end of a mapping (as at the bottom right of the
    # MIT-SHM segment) would fault if read in place.
    libc = ctypes.CDLL(None)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    width, height = 1024, 16
    length = width * 4 * height  # a whole number of pages, followed by a guard page
    mapping = mmap.mmap(-1, length + mmap.PAGESIZE)
    anchor = ctypes.c_char.from_buffer(mapping)
    assert libc.mprotect(ctypes.addressof(anchor) + length, mmap.PAGESIZE, 0) == 0  # PROT_NONE
    view = memoryview(mapping)[:length]
    view[:] = bytes(screen(width, height, 4))
    w, h = size
    converter = YuvConverter(w, h, (w + (w & 1), h + (h & 1)))
    frame = converter.convert(view, width * 4, width - w, height - h)
    assert frame.planes[0].line_size >= w
    converter.close()
    view.release()
    del anchor


def test_rgb_conversion_crops_the_coded_picture_into_a_padded_buffer() -> None:
    source = bytes(screen(61, 37, 5))
    frame = YuvConverter(61, 37, (62, 38)).convert(source, 61 * 4, 0, 0)
    converter = RgbConverter(61, 37)
    rgb = converter.convert(frame)
    assert converter.stride % RGB_ROW_ALIGN == 0 and len(rgb) >= converter.stride * 37 + RGB_TAIL
    picture = Image.frombuffer("RGB", (61, 37), rgb, "raw", "RGB", converter.stride, 1)
    assert mean_error(picture.tobytes(), rgb_of(source, 61 * 4, (0, 0, 61, 37))) < 4
    with pytest.raises(ValueError):
        RgbConverter(64, 37).convert(frame)  # wider than the frame: refused, never read past it


def test_the_send_of_a_frame_counts_for_the_stream_whose_unit_it_carried() -> None:
    video = VideoRegions(lambda: 0.0)
    stream = VideoStream(0, "desktop", (16, 8, 64, 48), H264Encoder(64, 48), 0.0)
    stream.stats = StreamStats(lambda: 0.0, (64, 48), lambda line: None)
    video.streams["desktop"] = stream
    unit = Region(16, 8, 64, 48, Encoding.H264, pack(0, b"\x00\x00\x01", key=True))
    video.note_sent([Region(0, 0, 4, 4, Encoding.FILL, b"\x00\x00\x00")], 0.5)  # no unit of the stream: not counted
    video.note_sent([unit], 0.002)
    assert stream.stats.seconds == {"send": 0.002}

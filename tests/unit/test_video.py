# Video regions (docs/protocol.md section 7a): the H264 REGION header and
# its bounds, the agent's detection / streams / lossless refinement, and the
# native client's decoders, paired in memory with the real libx264 and
# FFmpeg H.264 decoder that PyAV bundles (no X server).
from __future__ import annotations

import random

import pytest
from PIL import Image

from client.framebuffer import Framebuffer, RegionError
from client.video import VideoDecodeError, VideoDecoders
from protocol.limits import MAX_VIDEO_PAYLOAD, MAX_VIDEO_PIXELS, MAX_VIDEO_SIDE, MAX_VIDEO_STREAMS
from protocol.messages import Encoding, Region, VideoCaps
from protocol.video import VideoError, pack, parse
from sessiond.agent import video as video_mod
from sessiond.agent.h264 import H264Encoder, H264Error
from sessiond.agent.video import IDLE_SECONDS, START_FRAMES, VideoRegions, subtract, video_frame


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def noise(w: int, h: int, seed: int) -> Image.Image:
    """A picture-like RGBX image (many colours) holding BGRX bytes."""
    rng = random.Random(seed)
    return Image.frombytes("RGBX", (w, h), bytes(rng.getrandbits(8) for _ in range(w * h * 4)))


def gradient(w: int, h: int, shift: int) -> Image.Image:
    """Smooth many-colour content, as a test pattern (compresses well)."""
    data = bytearray()
    for y in range(h):
        for x in range(w):
            data += bytes(((x + shift) % 256, (y * 2) % 256, ((x + y + shift) // 2) % 256, 0))
    return Image.frombytes("RGBX", (w, h), bytes(data))


def rgb(image: Image.Image) -> Image.Image:
    """The RGB picture an RGBX-mode image of BGRX bytes shows."""
    b, g, r, _x = image.split()
    return Image.merge("RGB", (r, g, b))


# -- the wire header -----------------------------------------------------------------------------------


def test_header_round_trip_and_flags() -> None:
    unit = parse(pack(3, b"\x00\x00\x00\x01\x65", key=True), 64, 48)
    assert (unit.stream, unit.key, unit.end, unit.data) == (3, True, False, b"\x00\x00\x00\x01\x65")
    assert parse(pack(1, b"", end=True), 64, 48).end


@pytest.mark.parametrize(
    ("payload", "w", "h", "match"),
    [
        (pack(MAX_VIDEO_STREAMS, b"x"), 64, 48, "MAX_VIDEO_STREAMS"),
        (pack(MAX_VIDEO_STREAMS - 1, b"x"), MAX_VIDEO_SIDE + 1, 16, "MAX_VIDEO_SIDE"),
        (pack(0, b"x"), MAX_VIDEO_SIDE, MAX_VIDEO_PIXELS // MAX_VIDEO_SIDE + 1, "MAX_VIDEO_PIXELS"),
        (pack(0, b"x" * (MAX_VIDEO_PAYLOAD + 1)), 64, 48, "MAX_VIDEO_PAYLOAD"),
        (pack(0, b"x", end=True), 64, 48, "END"),
        (pack(0, b""), 64, 48, "without an access unit"),
        (b"\x00\x04x", 64, 48, "unknown bits"),
        (b"\x00", 64, 48, "header"),
    ],
)
def test_header_bounds_are_refused(payload: bytes, w: int, h: int, match: str) -> None:
    with pytest.raises(VideoError, match=match):
        parse(payload, w, h)
    with pytest.raises(ValueError, match=match):
        Region(0, 0, w, h, Encoding.H264, payload)  # the wire decoder refuses it too


def test_bounds_just_inside_are_accepted() -> None:
    parse(pack(MAX_VIDEO_STREAMS - 1, b"x" * MAX_VIDEO_PAYLOAD), MAX_VIDEO_SIDE, MAX_VIDEO_PIXELS // MAX_VIDEO_SIDE)
    # A 1080p stream is larger than MAX_REGION_RAW_BYTES allows stills, and legal.
    Region(0, 0, 1920, 1080, Encoding.H264, pack(0, b"x", key=True))


def test_video_caps_round_trip() -> None:
    assert VideoCaps.decode(VideoCaps(codecs=1).encode()) == VideoCaps(codecs=1)


# -- encoder and client decoders -------------------------------------------------------------------------


def test_stream_decodes_close_to_the_source_and_odd_sizes_are_cropped() -> None:
    encoder = H264Encoder(161, 97)
    decoders = VideoDecoders()
    for shift in range(3):
        source = gradient(161, 97, shift * 7)
        key = encoder.needs_key
        picture = decoders.decode(pack(0, encoder.encode(source), key=key), 161, 97)
        assert picture is not None and picture.size == (161, 97)
        expected = rgb(source)
        px = [(10, 10), (80, 50), (150, 90)]
        for point in px:
            got, want = picture.getpixel(point), expected.getpixel(point)
            assert all(abs(a - b) <= 24 for a, b in zip(got, want, strict=True)), (point, got, want)
    assert decoders.frames == 3


def test_a_unit_without_key_for_an_unknown_stream_is_refused() -> None:
    encoder = H264Encoder(64, 48)
    encoder.encode(noise(64, 48, 1))
    with pytest.raises(VideoDecodeError, match="no KEY"):
        VideoDecoders().decode(pack(0, encoder.encode(noise(64, 48, 2))), 64, 48)


def test_a_unit_for_another_size_than_its_stream_is_refused() -> None:
    decoders = VideoDecoders()
    encoder = H264Encoder(64, 48)
    decoders.decode(pack(0, encoder.encode(noise(64, 48, 1)), key=True), 64, 48)
    with pytest.raises(VideoDecodeError, match="continues a stream of 64x48"):
        decoders.decode(pack(0, encoder.encode(noise(64, 48, 2))), 96, 48)


def test_an_sps_larger_than_the_region_is_refused_before_allocation() -> None:
    """A hostile server's keyframe announcing 1920x1080 in a 64x48 REGION:
    FFmpeg's max_pixels stops it, nothing of 1080p is decoded."""
    big = H264Encoder(1920, 1080).encode(Image.new("RGBX", (1920, 1080)))
    decoders = VideoDecoders()
    with pytest.raises(VideoDecodeError):
        decoders.decode(pack(0, big, key=True), 64, 48)
    assert decoders.open_streams == 0


def test_end_frees_the_decoder_and_streams_stay_bounded() -> None:
    decoders = VideoDecoders()
    encoder = H264Encoder(32, 32)
    unit = encoder.encode(noise(32, 32, 1))
    for _ in range(3):
        for stream in range(MAX_VIDEO_STREAMS):
            decoders.decode(pack(stream, unit, key=True), 32, 32)
    assert decoders.open_streams == MAX_VIDEO_STREAMS
    assert decoders.decode(pack(1, b"", end=True), 32, 32) is None
    assert decoders.open_streams == MAX_VIDEO_STREAMS - 1


def test_framebuffer_paints_h264_and_refuses_garbage() -> None:
    fb = Framebuffer(100, 80)
    encoder = H264Encoder(40, 30)
    fb.apply(Region(10, 20, 40, 30, Encoding.H264, pack(0, encoder.encode(Image.new("RGBX", (40, 30), (0, 0, 255, 0))),
                                                       key=True)))  # fmt: skip
    red = fb.pixel(30, 35)
    assert red[0] > 200 and red[1] < 40 and red[2] < 40  # BGRX (0, 0, 255) is red
    assert fb.pixel(5, 5) == (0, 0, 0)
    with pytest.raises(RegionError):
        fb.apply(Region(0, 0, 40, 30, Encoding.H264, pack(1, b"\x00\x00\x00\x01garbage", key=True)))


def test_bitrate_is_bounded_and_resets_the_stream() -> None:
    encoder = H264Encoder(32, 32)
    encoder.encode(noise(32, 32, 1))
    assert not encoder.needs_key
    encoder.set_bitrate(1_000_000)
    assert encoder.needs_key and encoder.bitrate == 1_000_000
    with pytest.raises(H264Error):
        encoder.set_bitrate(1)


# -- detection and refinement ---------------------------------------------------------------------------


def test_subtract_covers_exactly_the_rest() -> None:
    pieces = subtract((0, 0, 100, 100), (20, 30, 50, 40))
    assert sum(w * h for _x, _y, w, h in pieces) == 100 * 100 - 50 * 40
    assert subtract((0, 0, 10, 10), (50, 50, 5, 5)) == [(0, 0, 10, 10)]


class Surface:
    """A fake surface: a BGRX picture that changes per frame, plus recorders."""

    def __init__(self, w: int, h: int) -> None:
        self.size = (w, h)
        self.picture = noise(w, h, 0)
        self.rest: list[tuple[list[tuple[int, int, int, int]], bool]] = []
        self.forgotten = 0

    def pixels(self, rect: tuple[int, int, int, int]) -> tuple[bytes, int, int, int]:
        """The whole picture's buffer, read in place at the rectangle's corner."""
        return self.picture.tobytes(), self.size[0] * 4, rect[0], rect[1]

    def encode_rest(self, rects: list[tuple[int, int, int, int]], lossless: bool) -> list[Region]:
        self.rest.append((rects, lossless))
        return [Region(x, y, w, h, Encoding.FILL, b"\x00\x00\x00") for x, y, w, h in rects]

    def forget(self) -> None:
        self.forgotten += 1

    def frame(self, video: VideoRegions, rects: list[tuple[int, int, int, int]]) -> list[Region]:
        return video_frame(video, "desktop", rects, self.size, self.pixels, self.encode_rest, self.forget)


def run(video: VideoRegions, surface: Surface, clock: Clock, frames: int, rects: list[tuple[int, int, int, int]],
        *, picture: bool = True) -> list[list[Region]]:  # fmt: skip
    out = []
    for n in range(frames):
        clock.now += 1 / 30
        surface.picture = noise(*surface.size, n) if picture else Image.new("RGBX", surface.size, (n, n, n, 0))
        out.append(surface.frame(video, rects))
    return out


def h264(regions: list[Region]) -> list[Region]:
    return [r for r in regions if r.encoding is Encoding.H264]


def test_a_changing_picture_becomes_video_then_exact_stills() -> None:
    clock = Clock()
    video = VideoRegions(clock)
    video.enabled = True
    surface = Surface(320, 240)
    area = [(0, 0, 320, 200)]
    before = run(video, surface, clock, START_FRAMES - 1, area)
    assert not any(h264(f) for f in before)  # not yet: stills
    frames = run(video, surface, clock, 4, area)
    units = [parse(r.data, r.w, r.h) for f in frames for r in h264(f)]
    assert len(units) == 4 and units[0].key and not any(u.key for u in units[1:])
    assert (frames[0][0].w, frames[0][0].h) == (320, 200)
    assert surface.forgotten == 1  # the history of the stream's area is not the client's copy
    # Other damage goes the ordinary way meanwhile.
    mixed = surface.frame(video, [(0, 0, 320, 200), (0, 210, 50, 20)])
    assert [r.encoding for r in mixed] == [Encoding.H264, Encoding.FILL]
    # It stops: nothing until IDLE_SECONDS, then END and a lossless resend of the area.
    clock.now += IDLE_SECONDS / 2
    assert surface.frame(video, []) == [] and not video.due("desktop")
    clock.now += IDLE_SECONDS
    assert video.due("desktop")
    surface.rest.clear()
    final = surface.frame(video, [])
    assert parse(final[0].data, final[0].w, final[0].h).end
    assert surface.rest == [([(0, 0, 320, 200)], True)]
    assert not video.streams and video.next_due_in() is None


def test_few_colours_never_become_video() -> None:
    """A scrolling terminal changes every frame too; it stays on the exact paths."""
    clock = Clock()
    video = VideoRegions(clock)
    video.enabled = True
    surface = Surface(320, 240)
    frames = run(video, surface, clock, START_FRAMES * 3, [(0, 0, 320, 240)], picture=False)
    assert not any(h264(f) for f in frames)


def test_no_video_unless_the_client_announced_it() -> None:
    clock = Clock()
    video = VideoRegions(clock)
    surface = Surface(320, 240)
    assert not any(h264(f) for f in run(video, surface, clock, START_FRAMES * 2, [(0, 0, 320, 240)]))


def test_small_or_wandering_damage_is_not_video() -> None:
    clock = Clock()
    video = VideoRegions(clock)
    video.enabled = True
    surface = Surface(640, 480)
    assert not any(h264(f) for f in run(video, surface, clock, START_FRAMES * 2, [(0, 0, 100, 100)]))
    for n in range(START_FRAMES * 2):
        clock.now += 1 / 30
        assert not h264(surface.frame(video, [((n % 2) * 320, 0, 320, 240)]))


def small_videos(monkeypatch: pytest.MonkeyPatch) -> tuple[Clock, VideoRegions]:
    """A clock and enabled VideoRegions that take 64 x 64 noise for a video."""
    monkeypatch.setattr(video_mod, "MIN_PIXELS", 16)
    monkeypatch.setattr(video_mod, "PHOTO_SAMPLE_STEP", 1)
    clock = Clock()
    video = VideoRegions(clock)
    video.enabled = True
    return clock, video


def test_streams_per_connection_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    clock, video = small_videos(monkeypatch)
    surfaces = [Surface(64, 64) for _ in range(MAX_VIDEO_STREAMS + 2)]
    for _ in range(START_FRAMES + 1):
        clock.now += 1 / 30
        for index, surface in enumerate(surfaces):
            surface.picture = noise(64, 64, index + int(clock.now * 30))
            video_frame(video, index, [(0, 0, 64, 64)], surface.size, surface.pixels, surface.encode_rest,
                        surface.forget)  # fmt: skip
    assert len(video.streams) == MAX_VIDEO_STREAMS
    assert sorted(s.stream_id for s in video.streams.values()) == list(range(MAX_VIDEO_STREAMS))


def test_reset_makes_the_next_unit_a_keyframe() -> None:
    clock = Clock()
    video = VideoRegions(clock)
    video.enabled = True
    surface = Surface(320, 240)
    run(video, surface, clock, START_FRAMES + 2, [(0, 0, 320, 240)])
    video.reset()
    (region,) = run(video, surface, clock, 1, [(0, 0, 320, 240)])[0]
    assert parse(region.data, region.w, region.h).key


def test_a_slow_player_is_not_refined_between_its_frames() -> None:
    """At 3 frames a second the gap between frames is no pause: refinement
    waits about three of the stream's own frame intervals (at most 1 s)."""
    clock = Clock()
    video = VideoRegions(clock)
    video.enabled = True
    surface = Surface(320, 240)
    area = [(0, 0, 320, 240)]
    for n in range(START_FRAMES + 4):
        clock.now += 0.34
        surface.picture = noise(320, 240, n)
        regions = surface.frame(video, area)
        if n >= START_FRAMES:
            assert [r.encoding for r in regions] == [Encoding.H264]  # never an END in between
    clock.now += 0.5
    assert not video.due("desktop")
    clock.now += 0.6
    assert video.due("desktop")


def test_a_unit_past_max_video_payload_ends_the_stream_losslessly(monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent never sends a unit the client would refuse: past the bound,
    the stream ends and its area goes out through the exact path."""
    clock = Clock()
    video = VideoRegions(clock)
    video.enabled = True
    surface = Surface(320, 240)
    area = [(0, 0, 320, 240)]
    run(video, surface, clock, START_FRAMES + 1, area)
    assert video.streams
    monkeypatch.setattr(video_mod, "MAX_VIDEO_PAYLOAD", 16)
    surface.rest.clear()
    (end, *rest) = run(video, surface, clock, 1, area)[0]
    assert parse(end.data, end.w, end.h).end and rest
    assert surface.rest == [([(0, 0, 320, 240)], True)]
    assert not video.streams


def test_set_bitrate_restarts_running_streams_with_a_keyframe() -> None:
    clock = Clock()
    video = VideoRegions(clock)
    video.enabled = True
    surface = Surface(320, 240)
    run(video, surface, clock, START_FRAMES + 2, [(0, 0, 320, 240)])
    video.set_bitrate(1_500_000)
    assert video.bitrate == 1_500_000
    (region,) = run(video, surface, clock, 1, [(0, 0, 320, 240)])[0]
    assert parse(region.data, region.w, region.h).key
    assert video.streams["desktop"].encoder.bitrate == 1_500_000
    with pytest.raises(H264Error):
        video.set_bitrate(10)


def test_covering_names_the_stream_area_only_when_it_holds_all_damage(monkeypatch: pytest.MonkeyPatch) -> None:
    clock, video = small_videos(monkeypatch)
    surface = Surface(64, 64)
    rect = (8, 8, 48, 40)
    for _ in range(START_FRAMES):
        clock.now += 0.03
        surface.picture = noise(64, 64, int(clock.now * 100))
        surface.frame(video, [rect])
    assert "desktop" in video.streams
    assert video.covering("desktop", [rect, (10, 10, 4, 4)], (64, 64)) == rect  # only the video changed
    assert video.covering("desktop", [rect, (0, 0, 4, 4)], (64, 64)) is None  # damage outside it too
    assert video.covering("desktop", [], (64, 64)) is None  # nothing to capture for (a refinement: the full path)
    assert video.covering("desktop", [rect], (40, 40)) is None  # the screen shrank under the stream
    assert video.covering("elsewhere", [rect], (64, 64)) is None

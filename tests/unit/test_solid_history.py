# A frame that is one FILL of the whole surface (the black screen sent when
# the display opens) is remembered by its colour alone (scroll.py SOLID
# bands): no pixels are allocated or copied, yet the next frames plan and
# decode exactly as after an ordinary remember -- unchanged rows are not
# sent, scrolled rows still COPY, and the client's pixels equal the screen.
# A solid rectangle that goes out as FILL before GLYPHS leaves the glyph
# encoder's detection bookkeeping as a failed detection would.
"""Unit tests for SurfaceHistory.remember_solid and the encoder's FILL-only frame."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from client.framebuffer import Framebuffer
from protocol.messages import Encoding
from sessiond.agent.encoder import RegionEncoder
from sessiond.agent.glyph_encoder import DETECT_MIN_PIXELS, GlyphEncoder
from sessiond.agent.scroll import RELEASE_BAND_ROWS, Source, SurfaceHistory
from unit.test_agent_cpu import COLOURS, ReferenceHistory, step_releasing
from unit.test_agent_cpu import HEIGHT as SPAN_HEIGHT
from unit.test_agent_cpu import WIDTH as SPAN_WIDTH
from unit.test_glyph_agent import bgrx, terminal

WIDTH, HEIGHT = 48, RELEASE_BAND_ROWS * 2 + 5


def solid_frame(colour: tuple[int, int, int], padding: int = 0) -> bytes:
    """A BGRX frame of one colour (padding: the X byte)."""
    blue_green_red = (colour[2], colour[1], colour[0], padding)
    return bytes(blue_green_red) * (WIDTH * HEIGHT)


def test_a_whole_fill_frame_allocates_no_history_pixels() -> None:
    encoder = RegionEncoder()
    frame = solid_frame((0, 0, 0))
    regions = encoder.encode(frame, WIDTH * 4, [(0, 0, WIDTH, HEIGHT)], surface="desktop")
    assert [region.encoding for region in regions] == [Encoding.FILL]
    history = encoder._surfaces["desktop"]
    assert history.known, "the client's copy is known after a whole FILL"
    assert len(history.pixels) == 0, "the FILL frame's pixels were copied into the history"
    assert encoder.encode(frame, WIDTH * 4, [(0, 0, WIDTH, HEIGHT)], surface="desktop") == []


@settings(max_examples=60, deadline=None)
@given(colour=st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)),
       padding=st.sampled_from((0, 255)), seed=st.integers(0, 2**16),
       top=st.integers(0, HEIGHT - 1), height=st.integers(1, HEIGHT))  # fmt: skip
def test_after_a_solid_frame_the_client_s_pixels_equal_the_screen(
        colour: tuple[int, int, int], padding: int, seed: int, top: int, height: int) -> None:  # fmt: skip
    """A solid frame, then a damaged band of random rows, then that band
    scrolled by a few rows: every frame decodes to the exact screen, and an
    unchanged solid row is never sent again."""
    rng = random.Random(seed)
    encoder, client = RegionEncoder(), Framebuffer(WIDTH, HEIGHT)
    frame = bytearray(solid_frame(colour, padding))
    box = (0, top, WIDTH, min(height, HEIGHT - top))
    for step in range(3):
        if step == 1:
            for row in range(box[1], box[1] + box[3]):
                if rng.random() < 0.7:
                    frame[row * WIDTH * 4 : (row + 1) * WIDTH * 4] = bytes(rng.randrange(256) for _ in range(WIDTH * 4))
        elif step == 2:
            stride, (_x, y, _w, h) = WIDTH * 4, box
            rows = [bytes(frame[(y + i) * stride : (y + i + 1) * stride]) for i in range(h)]
            for i in range(h):
                frame[(y + i) * stride : (y + i + 1) * stride] = rows[min(i + 3, h - 1)]
        rect = (0, 0, WIDTH, HEIGHT) if step == 0 else box
        regions = encoder.encode(bytes(frame), WIDTH * 4, [rect], surface="desktop")
        for region in regions:
            client.apply(region)
            if step == 1:
                assert region.y >= box[1] and region.y + region.h <= box[1] + box[3]
        expected = bytes(value for i in range(0, len(frame), 4) for value in (frame[i + 2], frame[i + 1], frame[i]))
        assert client.image().tobytes() == expected, f"frame {step}: the client's screen differs"


def test_a_solid_history_releases_and_unpacks_exactly() -> None:
    history, kept = SurfaceHistory(WIDTH, HEIGHT), SurfaceHistory(WIDTH, HEIGHT)
    frame = solid_frame((10, 200, 30), 7)
    history.remember_solid(frame[:4])
    kept.remember(Source(memoryview(frame), WIDTH * 4), (0, 0, WIDTH, HEIGHT))
    assert history.release() > 0
    history._unpack(0, HEIGHT)
    assert bytes(history.pixels) == frame == bytes(kept.pixels)


def test_a_solid_candidate_is_no_failed_detection() -> None:
    """A solid screen is FILL before GLYPHS and holds no text: the glyph encoder looks for a
    grid in the text that comes right after it, even in a smaller rectangle (it used to wait
    DETECT_RETRY_SECONDS, as after a failed search: a display open's black root kept the first
    screen of text from GLYPHS)."""
    encoder = RegionEncoder()
    encoder.glyphs = GlyphEncoder(clock=lambda: 100.0)  # no time passes
    encoder.glyphs.enabled = True
    image = terminal(60, 12)
    width, height = image.size
    assert width * height >= 4 * DETECT_MIN_PIXELS
    encoder.encode(bytes(width * height * 4), width * 4, [(0, 0, width, height)], surface="desktop")
    text = bgrx(image)
    half = (0, 0, width, height // 2)
    encoder.encode(text, width * 4, [half], surface="desktop")
    assert encoder.glyphs.grid("desktop") is not None, "no grid looked for right after a solid screen"


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**16), colour=st.sampled_from(((0, 0, 0), (255, 255, 255), (200, 30, 30))),
       steps=st.lists(st.tuples(st.integers(0, SPAN_HEIGHT - 1), st.integers(1, SPAN_HEIGHT), st.integers(-20, 20),
                                st.sampled_from(((0, SPAN_WIDTH), (0, 24), (8, 32), (20, 20), (8, 12))),
                                st.booleans()), min_size=1, max_size=8))  # fmt: skip
def test_a_solid_history_plans_exactly_as_a_copied_one(
        seed: int, colour: tuple[int, int, int],
        steps: list[tuple[int, int, int, tuple[int, int], bool]]) -> None:  # fmt: skip
    """Remembered by its colour (nothing written; SOLID bands written when
    touched), a history plans every later step as one that copied the solid
    frame (with the Python row passes), released or not."""
    rng = random.Random(seed)
    rows = [bytes(b for _ in range(SPAN_WIDTH) for b in (*rng.choice(COLOURS), 0)) for _ in range(4)]
    frame = bytes((colour[2], colour[1], colour[0], 0)) * (SPAN_WIDTH * SPAN_HEIGHT)
    solid, copied = SurfaceHistory(SPAN_WIDTH, SPAN_HEIGHT), ReferenceHistory(SPAN_WIDTH, SPAN_HEIGHT)
    solid.remember_solid(frame[:4])
    copied.plan(Source(memoryview(frame), SPAN_WIDTH * 4), (0, 0, SPAN_WIDTH, SPAN_HEIGHT))
    copied.remember(Source(memoryview(frame), SPAN_WIDTH * 4), (0, 0, SPAN_WIDTH, SPAN_HEIGHT))
    frame = step_releasing(rng, rows, frame, SPAN_HEIGHT, steps, solid, copied)
    assert bytes(solid.pixels) == frame == bytes(copied.pixels)

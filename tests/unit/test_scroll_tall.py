"""Tall rectangles in sessiond.agent.scroll: the shift voted on a sample of
rows (SAMPLE_ALL_ROWS and up) is still found as one COPY, and no mix of
whole-width and partial damage over repeated rows ever makes a wrong frame."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from client.framebuffer import Framebuffer
from media import palette
from protocol.messages import Encoding
from sessiond.agent.encoder import RegionEncoder
from sessiond.agent.scroll import SAMPLE_ALL_ROWS
from test_scroll import scrolled, send, text_rows

WIDTH, HEIGHT = 40, 4 * 100  # 400 rows: well past SAMPLE_ALL_ROWS


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), shift=st.integers(-150, 150).filter(lambda d: d != 0),
       top=st.integers(0, 40), height=st.integers(SAMPLE_ALL_ROWS + 1, 360))
def test_a_tall_scroll_is_one_copy_and_exact(seed: int, shift: int, top: int, height: int) -> None:
    rng = random.Random(seed)
    first = text_rows(rng, WIDTH, HEIGHT // 4)
    height = min(height, HEIGHT - top)
    box = (0, top, WIDTH, height)
    second = scrolled(first, shift, rng, box)
    encoder, fb = RegionEncoder(allow_lossy=False), Framebuffer(WIDTH, HEIGHT)
    send(encoder, fb, first, [(0, 0, WIDTH, HEIGHT)])
    regions = send(encoder, fb, second, [box])
    assert fb.image().tobytes() == second.tobytes()
    copies = [r for r in regions if r.encoding is Encoding.COPY]
    # Rows that stayed span at least 4 sample blocks (SAMPLE_STEP x SAMPLE_BLOCK_EVERY = 16 rows each).
    if abs(shift) <= height - 64:
        assert len(copies) == 1, regions
        assert copies[0].h == height - abs(shift)
        assert palette.COPY_SOURCE.unpack(copies[0].data) == (0, copies[0].y + shift)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), steps=st.lists(
    st.tuples(st.integers(0, 150), st.integers(1, 200), st.integers(-60, 60), st.booleans(),
              st.sampled_from((0, 0, 8, 20))), min_size=1, max_size=8))  # fmt: skip
def test_never_a_wrong_frame_on_a_tall_surface(seed: int, steps: list[tuple[int, int, int, bool, int]]) -> None:
    """Repeated rows, whole-width damage mixed with partial spans: the
    client always ends equal to the frame."""
    rng = random.Random(seed)
    width, height = 48, 200
    lines = [text_rows(rng, width, 1, 1) for _ in range(40)]  # some repeats among 200 rows
    frame = Image.new("RGB", (width, height), (255, 255, 255))
    for y in range(height):
        frame.paste(rng.choice(lines), (0, y))
    encoder, fb = RegionEncoder(allow_lossy=False), Framebuffer(width, height)
    send(encoder, fb, frame, [(0, 0, width, height)])
    for top, tall, shift, rewrite, left in steps:
        tall = min(tall, height - top)
        box = (left, top, width - left, tall)
        frame = scrolled(frame, shift, rng, box) if shift else frame
        if rewrite:
            frame.paste(rng.choice(lines).crop((0, 0, width - left, 1)), (left, top))
        send(encoder, fb, frame, [box])
        assert fb.image().tobytes() == frame.tobytes()
    # A last whole-surface frame reads every remembered row back (lazy ones included).
    regions = send(encoder, fb, frame, [(0, 0, width, height)])
    assert regions == [] and fb.image().tobytes() == frame.tobytes()

# The scroll path's contract, checked through the client's decoder: whatever
# moved, appeared or stayed between two frames of a surface, the regions the
# encoder sends (COPY + new rows) leave the client's framebuffer equal to the
# new frame, and a shift of distinct rows is found as one COPY.  Plus the
# PALETTE codec's round trip and the decoder's refusals.
"""Unit tests for sessiond.agent.scroll, COPY/PALETTE regions and media.palette."""

from __future__ import annotations

import random
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from client.framebuffer import Framebuffer, RegionError
from media import palette
from protocol.messages import Encoding, Region
from sessiond.agent.encoder import MAX_HISTORY_BYTES, MAX_SURFACES, RegionEncoder, history_bytes
from sessiond.agent.scroll import MIN_SCROLL_ROWS, SurfaceHistory

COLOURS = [(0, 0, 0), (255, 255, 255), (200, 30, 30), (30, 200, 30)]


def bgrx(image: Image.Image) -> bytearray:
    """The BGRX buffer of image (stride w*4), as a capture."""
    return bytearray(image.convert("RGBX").tobytes("raw", "BGRX"))


def text_rows(rng: random.Random, w: int, rows: int, row_h: int = 4) -> Image.Image:
    """A few-colour image of `rows` distinct-looking text lines row_h high."""
    image = Image.new("RGB", (w, rows * row_h), (255, 255, 255))
    image.putdata([rng.choice(COLOURS) for _ in range(w * rows * row_h)])
    return image


def send(encoder: RegionEncoder, fb: Framebuffer, image: Image.Image, rects: list[tuple[int, int, int, int]],
         surface: str = "s") -> list[Region]:  # fmt: skip
    w, h = image.size
    regions = encoder.encode(memoryview(bgrx(image)), w * 4, rects, width=w, height=h, surface=surface)
    for region in regions:
        fb.apply(Region.decode(region.encode()))  # through the wire format, checks included
    return regions


def scrolled(image: Image.Image, shift: int, rng: random.Random, box: tuple[int, int, int, int]) -> Image.Image:
    """image with box's content moved up by shift rows (down if negative), new rows random."""
    x, y, w, h = box
    out = image.copy()
    area = image.crop((x, y, x + w, y + h))
    fresh = text_rows(rng, w, h)
    moved = Image.new("RGB", (w, h))
    moved.paste(fresh, (0, 0))
    moved.paste(area, (0, -shift))
    out.paste(moved, (x, y))
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), shift=st.integers(-60, 60).filter(lambda d: d != 0),
       top=st.integers(0, 20), height=st.integers(8, 100))
def test_any_scroll_is_found_and_leaves_the_client_exact(seed: int, shift: int, top: int, height: int) -> None:
    rng = random.Random(seed)
    first = text_rows(rng, 64, 30)  # 64 x 120
    box = (5, top, 50, height)
    second = scrolled(first, shift, rng, box)
    encoder, fb = RegionEncoder(allow_lossy=False), Framebuffer(64, 120)
    send(encoder, fb, first, [(0, 0, 64, 120)])
    assert fb.image().tobytes() == first.tobytes()
    regions = send(encoder, fb, second, [box])
    assert fb.image().tobytes() == second.tobytes()
    copies = [r for r in regions if r.encoding is Encoding.COPY]
    if abs(shift) <= height - MIN_SCROLL_ROWS:
        # Random rows are distinct: exactly one COPY of all rows that stayed.
        assert len(copies) == 1
        assert copies[0].h == height - abs(shift)
        assert palette.COPY_SOURCE.unpack(copies[0].data) == (5, copies[0].y + shift)
        assert sum(r.h for r in regions if r.encoding is not Encoding.COPY) <= abs(shift) + 2


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), steps=st.lists(
    st.tuples(st.integers(0, 39), st.integers(1, 40), st.integers(-30, 30), st.booleans(), st.sampled_from((0, 8, 20))),
    min_size=1, max_size=8))
def test_never_a_wrong_frame(seed: int, steps: list[tuple[int, int, int, bool, int]]) -> None:
    """Blank rows, repeated rows, partial damage of different column spans
    (the row caches) and rewrites in any order: the client always ends
    equal to the current frame."""
    rng = random.Random(seed)
    palette_rows = [text_rows(rng, 48, 1, 1) for _ in range(3)]  # few distinct rows: many repeats
    frame = Image.new("RGB", (48, 40), (255, 255, 255))
    for y in range(40):
        frame.paste(rng.choice(palette_rows), (0, y))
    encoder, fb = RegionEncoder(allow_lossy=False), Framebuffer(48, 40)
    send(encoder, fb, frame, [(0, 0, 48, 40)])
    for top, height, shift, rewrite, left in steps:
        height = min(height, 40 - top)
        box = (left, top, 48 - left, height)
        frame = scrolled(frame, shift, rng, box) if shift else frame
        if rewrite:
            frame.paste(rng.choice(palette_rows).crop((0, 0, 48 - left, 1)), (left, top))
        send(encoder, fb, frame, [box])
        # Outside the damage nothing changed, inside it must be exact.
        assert fb.image().tobytes() == frame.tobytes()


def test_unchanged_damage_sends_nothing_and_unknown_surface_sends_all() -> None:
    rng = random.Random(3)
    image = text_rows(rng, 32, 8)
    encoder, fb = RegionEncoder(), Framebuffer(32, 32)
    # Before a whole frame was sent, the client's copy is unknown: all of it goes.
    assert send(encoder, fb, image, [(0, 8, 32, 8)])
    send(encoder, fb, image, [(0, 0, 32, 32)])
    assert send(encoder, fb, image, [(0, 0, 32, 32)]) == []
    encoder.forget("s")
    assert send(encoder, fb, image, [(0, 0, 32, 32)])


def test_without_a_surface_the_encoder_sends_every_damaged_rect_whole() -> None:
    image = text_rows(random.Random(4), 32, 8)
    encoder = RegionEncoder()
    buf = memoryview(bgrx(image))
    for _ in range(2):
        regions = encoder.encode(buf, 32 * 4, [(0, 0, 32, 32)])
        assert regions and all(r.encoding is not Encoding.COPY for r in regions)


def test_surfaces_are_bounded_and_a_new_geometry_starts_afresh() -> None:
    encoder = RegionEncoder()
    small = bytearray(4 * 4 * 4)
    for n in range(MAX_SURFACES + 5):
        encoder.encode(memoryview(small), 16, [(0, 0, 4, 4)], surface=n)
    assert len(encoder._surfaces) == MAX_SURFACES
    history = SurfaceHistory(4, 4)
    assert history.fits(4, 4) and not history.fits(4, 5)


def test_remembered_bytes_are_bounded_and_a_surface_past_the_budget_is_never_remembered() -> None:
    encoder = RegionEncoder()
    # A surface whose history alone crosses the budget: refused before allocation.
    side = 1
    while history_bytes(side * 64, 1024) <= MAX_HISTORY_BYTES:
        side += 1
    wide, fits = side * 64, (side - 1) * 64
    assert history_bytes(fits, 1024) <= MAX_HISTORY_BYTES < history_bytes(wide, 1024)
    row = bytearray(wide * 4 * 2)
    for _ in range(2):
        regions = encoder.encode(memoryview(row), wide * 4, [(0, 0, wide, 2)], width=wide, height=1024,
                                 surface="huge")  # fmt: skip
        assert regions  # sent whole both times: nothing was remembered
    assert "huge" not in encoder._surfaces
    # Surfaces that fit one by one but not together: the oldest are forgotten.
    encoder.encode(memoryview(bytearray(fits * 4)), fits * 4, [(0, 0, fits, 1)], width=fits, height=1024,
                   surface="first")  # fmt: skip
    encoder.encode(memoryview(bytearray(fits * 4)), fits * 4, [(0, 0, fits, 1)], width=fits, height=1024,
                   surface="second")  # fmt: skip
    assert list(encoder._surfaces) == ["second"]


def test_copy_region_is_checked_by_the_client() -> None:
    fb = Framebuffer(16, 16)
    with pytest.raises(RegionError, match="outside"):
        fb.apply(Region(0, 0, 8, 8, Encoding.COPY, palette.COPY_SOURCE.pack(9, 0)))
    with pytest.raises(ValueError, match="4 bytes"):
        Region(0, 0, 8, 8, Encoding.COPY, b"\0\0\0")


# -- PALETTE codec ---------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(w=st.integers(1, 40), h=st.integers(1, 20), count=st.integers(1, 256), seed=st.integers(0, 999))
def test_palette_round_trip(w: int, h: int, count: int, seed: int) -> None:
    rng = random.Random(seed)
    colours = [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(count)]
    bits = palette.bits_for(count)
    indices = [rng.randrange(count) for _ in range(w * h)]
    index_image = Image.new("P", (w, h))
    index_image.putdata(indices)
    index_image.putpalette(bytes(3 * 256))
    packed = index_image.tobytes("raw", "P" if bits == 8 else f"P;{bits}")
    data = palette.encode(w, h, bits, b"".join(bytes(c) for c in colours), packed)
    image = palette.decode(data, w, h)
    assert image.tobytes() == b"".join(bytes(colours[i]) for i in indices)


@pytest.mark.parametrize(("data", "message"), [
    (b"\x01", "shorter than its header"),
    (bytes([3, 1]) + bytes(6) + b"\0" + bytes(2), "bits"),
    (bytes([1, 2]) + bytes(9) + b"\0" + bytes(2), "colours at 1 bits"),
    (bytes([1, 1]) + bytes(6), "shorter than its colours"),
    (bytes([1, 1]) + bytes(6) + b"\x07" + bytes(2), "packing"),
    (bytes([1, 1]) + bytes(6) + b"\0" + bytes(3), "needs 2"),
    (bytes([1, 1]) + bytes(6) + b"\1" + zlib.compress(bytes(3)), "exactly"),
    (bytes([1, 1]) + bytes(6) + b"\1" + zlib.compress(bytes(1 << 20)), "exactly"),
    (bytes([1, 1]) + bytes(6) + b"\1" + b"junk", "corrupt"),
    (bytes([2, 1]) + bytes(6) + b"\0" + b"\xc0\x00", "past its 2 colours"),
])
def test_palette_decoder_refuses_bad_data(data: bytes, message: str) -> None:
    # A 2x2 region at 1 bit is 2 rows of 1 byte; at 2 bits also 1 byte a row.
    with pytest.raises(palette.PaletteError, match=message):
        palette.decode(data, 2, 2)
    fb = Framebuffer(4, 4)
    with pytest.raises(RegionError):
        fb.apply(Region(0, 0, 2, 2, Encoding.PALETTE, data))


def test_a_capture_of_just_the_damaged_rectangle_scrolls_like_the_whole_surface() -> None:
    """The seamless frame loop captures only a window's damaged rectangle:
    passed with origin = its corner, the encoder plans against the window's
    history and sends Regions in window coordinates."""
    rng = random.Random(9)
    first = text_rows(rng, 64, 30)
    box = (6, 10, 50, 80)
    second = scrolled(first, 12, rng, box)
    encoder, fb = RegionEncoder(allow_lossy=False), Framebuffer(64, 120)
    send(encoder, fb, first, [(0, 0, 64, 120)], surface="window 7")
    x, y, w, h = box
    only_box = second.crop((x, y, x + w, y + h))
    regions = encoder.encode(memoryview(bgrx(only_box)), w * 4, [box], width=64, height=120,
                             surface="window 7", origin=(x, y))  # fmt: skip
    for region in regions:
        fb.apply(region)
    assert [r.encoding for r in regions][0] is Encoding.COPY
    assert fb.image().tobytes() == second.tobytes()
    # Without a surface, origin still places the Regions.
    plain = RegionEncoder().encode(memoryview(bgrx(only_box)), w * 4, [box], origin=(x, y))
    assert min(r.x for r in plain) == x and min(r.y for r in plain) == y

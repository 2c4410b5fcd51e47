"""media.glyphs: the shared vectors (tests/vectors/glyphs.json), every bound
of docs/protocol.md 7c crossed, and a round trip of random regions."""

from __future__ import annotations

import json
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media import glyphs
from protocol.media import GLYPH_MAX_SIDE, GLYPH_MAX_USED, GLYPH_SLOTS
from unit import glyph_vectors

VECTORS: list[dict[str, Any]] = json.loads(glyph_vectors.PATH.read_text())


def test_vectors_file_is_current() -> None:
    assert glyph_vectors.PATH.read_text() == glyph_vectors.render()
    assert sum("error" in step for case in VECTORS for step in case["steps"]) >= 15


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_vector_decodes(case: dict[str, Any]) -> None:
    cache = glyphs.GlyphCache()
    for step in case["steps"]:
        data = bytes.fromhex(step["data_hex"])
        if "error" in step:
            before = dict(cache.slots)
            with pytest.raises(glyphs.GlyphError):
                glyphs.decode(data, step["w"], step["h"], cache)
            assert cache.slots == before  # a bad region changes nothing
        else:
            image = glyphs.decode(data, step["w"], step["h"], cache)
            assert image.tobytes().hex() == step["rgb_hex"]


def _cell(value: int, w: int, h: int) -> bytes:
    """Column-major 0/1 bytes of a w x h cell from an integer's bits."""
    return bytes((value >> i) & 1 for i in range(w * h))


def test_pack_and_unpack_are_inverse() -> None:
    for w, h in ((1, 1), (3, 2), (6, 13), (32, 32), (7, 5)):
        cell = _cell(0x9E3779B97F4A7C15 ** 3, w, h)
        bits = glyphs.pack_cell(cell, w, h)
        assert len(bits) == glyphs.bits_bytes(w, h)
        assert glyphs.unpack_bits(bits, w, h) == cell


def test_pack_is_row_major_msb_first() -> None:
    # A 2x2 cell, column-major (top-left, bottom-left, top-right, bottom-right) = 1, 0, 1, 1:
    # rows "11", "01" -> bits 1101 then 4 zero pad bits.
    assert glyphs.pack_cell(bytes((1, 0, 1, 1)), 2, 2) == b"\xd0"


def _region(cell_w: int, cell_h: int, cells: list[bytes], columns: int) -> tuple[bytes, int, int, bytes]:
    """GLYPHS data defining every distinct cell, and the expected 0/1 pixels."""
    slots: dict[bytes, int] = {}
    for cell in cells:
        slots.setdefault(cell, len(slots))
    defs = [(slot, glyphs.pack_cell(cell, cell_w, cell_h)) for cell, slot in slots.items()]
    data = glyphs.encode(cell_w, cell_h, bytes(6), defs, list(range(len(slots))), bytes(slots[c] for c in cells))
    rows = len(cells) // columns
    pixels = bytearray(columns * cell_w * rows * cell_h)
    for index, cell in enumerate(cells):
        cx, cy = index % columns * cell_w, index // columns * cell_h
        for i, bit in enumerate(cell):
            pixels[(cy + i % cell_h) * columns * cell_w + cx + i // cell_h] = bit
    return data, columns * cell_w, rows * cell_h, bytes(pixels)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, GLYPH_MAX_SIDE), st.integers(1, GLYPH_MAX_SIDE), st.integers(1, 5), st.integers(1, 4),
       st.data())  # fmt: skip
def test_round_trip(cell_w: int, cell_h: int, columns: int, rows: int, draw: st.DataObject) -> None:
    count = columns * rows
    values = draw.draw(st.lists(st.integers(0, 7), min_size=count, max_size=count))
    cells = [_cell(v * 0x2545F4914F6CDD1D, cell_w, cell_h) for v in values]
    data, w, h, pixels = _region(cell_w, cell_h, cells, columns)
    data = data[:2] + bytes((0, 0, 0, 255, 255, 255)) + data[8:]
    image = glyphs.decode(data, w, h, glyphs.GlyphCache())
    assert image.convert("L").tobytes() == bytes(255 * p for p in pixels)


def test_round_trip_draws_colours() -> None:
    cells = [_cell(v, 6, 13) for v in (1, 2, 3, 2, 1, 0)]
    data, w, h, pixels = _region(6, 13, cells, 3)
    data = data[:2] + bytes((1, 2, 3, 250, 251, 252)) + data[8:]
    image = glyphs.decode(data, w, h, glyphs.GlyphCache())
    assert image.tobytes() == b"".join(bytes((250, 251, 252)) if p else bytes((1, 2, 3)) for p in pixels)


def _body(defs: list[tuple[int, bytes]], used: list[int], indices: bytes) -> bytes:
    return glyph_vectors.stream(defs, used, list(indices))


def test_bounds_are_the_protocol_constants() -> None:
    assert (GLYPH_MAX_SIDE, GLYPH_SLOTS, GLYPH_MAX_USED) == (32, 4096, 256)
    one = glyphs.pack_cell(bytes(4), 2, 2)
    cache = glyphs.GlyphCache()
    # The last slot and the most used slots are fine; one more of either is not.
    used = list(range(GLYPH_SLOTS - GLYPH_MAX_USED, GLYPH_SLOTS))
    data = glyphs.encode(2, 2, bytes(6), [(s, one) for s in used], used, bytes(range(256)))
    glyphs.decode(data, 2 * 256, 2, cache)
    with pytest.raises(glyphs.GlyphError):
        glyphs.encode(2, 2, bytes(6), [], list(range(257)), bytes(257))
    too_many = bytes((2, 2)) + bytes(6) + zlib.compress(_body([], list(range(257)), bytes(257)))
    with pytest.raises(glyphs.GlyphError, match="uses 257"):
        glyphs.decode(too_many, 2 * 257, 2, cache)
    with pytest.raises(glyphs.GlyphError):
        glyphs.encode(2, 2, bytes(6), [(GLYPH_SLOTS, one)], [0], b"\x00")
    with pytest.raises(glyphs.GlyphError):
        glyphs.encode(GLYPH_MAX_SIDE + 1, 1, bytes(6), [], [0], b"\x00")


def test_inflates_no_more_than_the_counts_allow(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []
    real = zlib.decompressobj

    class Spy:
        def __init__(self) -> None:
            self._real = real()

        def decompress(self, data: bytes, max_length: int = 0) -> bytes:
            assert max_length > 0  # never unbounded
            asked.append(max_length)
            return self._real.decompress(data, max_length)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._real, name)

    monkeypatch.setattr(glyphs.zlib, "decompressobj", Spy)
    bomb = bytes((3, 2)) + bytes(6) + zlib.compress(_body([], [0], b"\x00") + bytes(1 << 20))
    with pytest.raises(glyphs.GlyphError):
        glyphs.decode(bomb, 3, 2, glyphs.GlyphCache())
    assert sum(asked) <= 2 + 2 + 2 + 1 + 1


def test_half_a_screen_decodes() -> None:
    cells = [_cell(v * 7919, 6, 13) for v in range(90)] * 48  # 180 x 24 cells: a stripe under MAX_REGION_RAW_BYTES
    data, w, h, pixels = _region(6, 13, cells, 180)
    assert (w, h) == (1080, 312)
    data = data[:2] + bytes((0, 0, 0, 255, 255, 255)) + data[8:]
    image = glyphs.decode(data, w, h, glyphs.GlyphCache())
    assert image.convert("L").tobytes() == bytes(255 * p for p in pixels)
    assert len(data) < 1500 + 90 * 12


def test_a_region_past_max_region_raw_bytes_is_refused_before_inflating() -> None:
    from protocol.limits import MAX_REGION_RAW_BYTES

    side = 1024  # 1024 x 342 x 3 > 1 MiB; 1024 x 341 x 3 fits
    assert side * 342 * 3 > MAX_REGION_RAW_BYTES >= side * 341 * 3
    cells = bytes(side * 342)
    data = glyphs.encode(1, 1, bytes(6), [(0, b"\x00")], [0], cells)
    with pytest.raises(glyphs.GlyphError, match="MAX_REGION_RAW_BYTES"):
        glyphs.decode(data, side, 342, glyphs.GlyphCache())
    fits = glyphs.encode(1, 1, bytes(6), [(0, b"\x00")], [0], bytes(side * 341))
    assert glyphs.decode(fits, side, 341, glyphs.GlyphCache()).size == (side, 341)


@pytest.mark.parametrize("used_count", [1, 2, 97, 255, 256])
def test_an_index_is_checked_against_its_used_slots_exactly(used_count: int) -> None:
    # The last used slot may be indexed anywhere in the region (first, middle, last cell); one past it may not.
    one = glyphs.pack_cell(bytes(4), 2, 2)
    used = list(range(used_count))
    for where in (0, 100, 255):
        indices = bytearray(256)  # a 512x2 region: 256 cells, room for a definition of every used slot
        indices[where] = used_count - 1
        glyphs.decode(glyphs.encode(2, 2, bytes(6), [(s, one) for s in used], used, bytes(indices)), 512, 2,
                      glyphs.GlyphCache())  # fmt: skip
        if used_count < 256:
            indices[where] = used_count
            body = _body([(s, one) for s in used], used, bytes(indices))
            with pytest.raises(glyphs.GlyphError, match=f"index {used_count} is past its {used_count} used"):
                glyphs.decode(bytes((2, 2)) + bytes(6) + zlib.compress(body), 512, 2, glyphs.GlyphCache())


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, GLYPH_SLOTS - 1), min_size=1, max_size=GLYPH_MAX_USED))
def test_used_slots_are_packed_big_endian_in_order(used: list[int]) -> None:
    # encode() packs the used slots in one call; the bytes are those of one ">H" per slot.
    data = glyphs.encode(1, 1, bytes(6), [], used, bytes(len(used)))
    payload = zlib.decompress(data[8:])
    reference = b"\x00\x00" + len(used).to_bytes(2, "big") + b"".join(s.to_bytes(2, "big") for s in used)
    assert payload == reference + bytes(len(used))

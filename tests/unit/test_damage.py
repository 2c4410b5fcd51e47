# merge_rects decides how many regions a frame carries and must never lose a
# damaged pixel: checked by example and by property.
"""Unit tests for sessiond.agent.damage.merge_rects."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sessiond.agent.damage import MAX_RECTS, merge_rects


def pixels(rects):
    return {(x + i, y + j) for x, y, w, h in rects for i in range(w) for j in range(h)}


def test_separate_rects_stay_separate_and_sorted() -> None:
    assert merge_rects([(50, 50, 5, 5), (0, 0, 10, 10)], 100, 100) == [(0, 0, 10, 10), (50, 50, 5, 5)]


def test_overlapping_and_adjacent_rects_merge() -> None:
    assert merge_rects([(0, 0, 10, 10), (5, 5, 10, 10)], 100, 100) == [(0, 0, 15, 15)]
    assert merge_rects([(0, 0, 10, 10), (10, 0, 10, 10)], 100, 100) == [(0, 0, 20, 10)]
    # A chain merges transitively, whatever the input order.
    chain = [(0, 0, 5, 5), (40, 0, 5, 5), (20, 0, 21, 5), (4, 0, 17, 5)]
    assert merge_rects(chain, 100, 100) == [(0, 0, 45, 5)]


def test_clipping_and_empty_rects() -> None:
    assert merge_rects([(-5, -5, 10, 10), (95, 95, 10, 10), (200, 0, 5, 5), (0, 0, 0, 5)], 100, 100) == [
        (0, 0, 5, 5),
        (95, 95, 5, 5),
    ]
    assert merge_rects([], 100, 100) == []


def test_many_rects_become_bands() -> None:
    # 40 separated cells in 2 rows: too many, so each row becomes a band.
    cells = [(x * 10, y * 50, 5, 5) for x in range(20) for y in range(2)]
    assert merge_rects(cells, 400, 400) == [(0, 0, 195, 5), (0, 50, 195, 5)]


def test_too_many_bands_become_bounding_box() -> None:
    cells = [(x, y, 5, 5) for x in (0, 20) for y in range(0, 10 * (MAX_RECTS + 1), 10)]
    assert merge_rects(cells, 1000, 1000) == [(0, 0, 25, 10 * MAX_RECTS + 5)]


rect = st.tuples(st.integers(-20, 120), st.integers(-20, 120), st.integers(0, 40), st.integers(0, 40))


@settings(max_examples=200, deadline=None)
@given(st.lists(rect, max_size=60))
def test_property_covers_input_within_screen_without_overlap(rects) -> None:
    merged = merge_rects(rects, 100, 80)
    assert len(merged) <= MAX_RECTS
    on_screen = {(x, y) for x, y in pixels(rects) if 0 <= x < 100 and 0 <= y < 80}
    out = pixels(merged)
    assert on_screen <= out
    assert all(0 <= x < 100 and 0 <= y < 80 for x, y in out)
    assert len(out) == sum(w * h for _, _, w, h in merged)  # no overlap

"""SharedFramebuffer.release_outside with a recorder libc: it frees whole pages
outside the shown area and never a byte of a shown pixel."""

from __future__ import annotations

import pytest

from sessiond.agent.xserver import MADV_REMOVE, PAGE_SIZE, SharedFramebuffer

HEADER = 3232  # Xvfb's XWD header and colormap before the pixels (measured)
BASE = 0x7F0000000000  # page-aligned, as shmat returns


class RecorderLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []

    def madvise(self, addr: int, length: int, advice: int) -> int:
        self.calls.append((addr, length, advice))
        return 0


def framebuffer(max_width: int, max_height: int) -> tuple[SharedFramebuffer, RecorderLibc]:
    fb = SharedFramebuffer.__new__(SharedFramebuffer)
    libc = RecorderLibc()
    fb._libc = libc  # noqa: SLF001 - no real segment in a unit test
    fb.stride = max_width * 4
    fb.max_height = max_height
    fb.size = HEADER + fb.stride * max_height
    fb.offset = HEADER
    fb._addr = BASE  # noqa: SLF001
    return fb, libc


def shown_bytes(fb: SharedFramebuffer, width: int, height: int) -> list[tuple[int, int]]:
    return [(fb.offset + y * fb.stride, fb.offset + y * fb.stride + width * 4) for y in range(height)]


@pytest.mark.parametrize("size", [(1280, 800), (800, 600), (64, 64), (3000, 2000), (3840, 2160), (3839, 1),
                                  (1920, 1080), (2560, 1440), (2816, 1)])  # fmt: skip
def test_releases_only_outside_the_shown_area(size: tuple[int, int]) -> None:
    fb, libc = framebuffer(3840, 2160)
    freed = fb.release_outside(*size)
    punched = [(addr - BASE, addr - BASE + length) for addr, length, advice in libc.calls]
    assert all(advice == MADV_REMOVE for _a, _l, advice in libc.calls)
    assert all(start % PAGE_SIZE == 0 and end % PAGE_SIZE == 0 for start, end in punched)
    assert all(end <= fb.size and start >= 0 for start, end in punched)
    for start, end in punched:
        for shown_start, shown_end in shown_bytes(fb, *size):
            assert end <= shown_start or start >= shown_end, f"punched {start}-{end} over a shown row"
    assert freed == sum(end - start for start, end in punched)
    # Everything below the shown rows goes, bar the partial first and last pages.
    unshown_rows = fb.size - (fb.offset + size[1] * fb.stride)
    assert freed >= unshown_rows - 2 * PAGE_SIZE


def test_the_bulk_of_a_4k_maximum_is_released_at_1280x800() -> None:
    fb, _libc = framebuffer(3840, 2160)
    freed = fb.release_outside(1280, 800)
    assert freed > 0.8 * (fb.size - 1280 * 800 * 4)


def test_a_4k_maximum_shown_at_1080p_gives_back_a_page_right_of_most_rows() -> None:
    # 7680 bytes of each 15360-byte row are unseen: at least one whole page in
    # seven of eight rows, whatever the header's offset.
    fb, libc = framebuffer(3840, 2160)
    fb.release_outside(1920, 1080)
    row_tails = [length for _addr, length, _advice in libc.calls[:-1]]
    assert len(row_tails) >= 0.85 * 1080 and all(length == PAGE_SIZE for length in row_tails)


def test_nothing_after_close() -> None:
    fb, libc = framebuffer(1920, 1080)
    fb._addr = None  # noqa: SLF001 - as after close()
    assert fb.release_outside(64, 64) == 0
    assert libc.calls == []

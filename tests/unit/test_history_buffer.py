# The scroll history's pixel buffer (scroll.zeroed()): anonymous memory whose
# pages are mapped by the allocating call (MAP_POPULATE), not a bytearray
# that zeroes its pages one fault at a time in the frame that first touches
# the history (the first xterm at login). Checked: the pages are resident
# before anything is written (mincore), the buffer reads as zeros
# and takes writes, both row passes copy into it, and a history's first
# touch gets such a buffer and holds exactly what it remembered.
"""Unit tests for sessiond.agent.scroll.zeroed and the history buffer it makes."""

from __future__ import annotations

import ctypes
import mmap
import random

import pytest

from sessiond.agent import row_native, scroll
from sessiond.agent.row_compare import PythonRows, RowPasses, Rows

PAGE = mmap.PAGESIZE


def resident_bytes(buffer: mmap.mmap) -> int:
    """Bytes of BUFFER's pages that are resident (mincore(2)), a page at a time."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    pages = -(-len(buffer) // PAGE)
    flags = ctypes.create_string_buffer(pages)
    pinned = ctypes.c_char.from_buffer(buffer)
    try:
        if libc.mincore(ctypes.addressof(pinned), len(buffer), flags) != 0:
            raise OSError(ctypes.get_errno(), "mincore failed")
    finally:
        del pinned
    return sum(flag & 1 for flag in flags.raw) * PAGE


def passes() -> list[RowPasses]:
    """The Python reference, and the C passes where built (test_scroll_rows requires them)."""
    native = row_native.load()
    return [PythonRows()] + ([native] if native is not None else [])


def test_zeroed_pages_are_resident_before_any_write() -> None:
    size = 64 * PAGE
    buffer = scroll.zeroed(size)
    assert resident_bytes(buffer) == size  # a lazy mapping would show 0 here
    assert len(buffer) == size and bytes(buffer) == bytes(size)
    buffer[PAGE : PAGE + 3] = b"abc"
    assert buffer[PAGE : PAGE + 3] == b"abc"


@pytest.mark.parametrize("rows", passes(), ids=lambda rows: type(rows).__name__)
def test_both_row_passes_copy_into_a_zeroed_buffer(rows: RowPasses) -> None:
    stride, row_bytes, h = 16, 12, 5
    rng = random.Random(3)
    src = bytes(rng.randrange(256) for _ in range(stride * h))
    dst = scroll.zeroed(stride * h)
    rows.copy(Rows(dst, stride, 0), Rows(src, stride, 0), row_bytes, h, b"\x00\x01\x00\x01\x00")
    expected = bytearray(stride * h)
    for row in (0, 2, 4):  # rows 1 and 3 skipped: the buffer keeps its zeros there
        expected[row * stride : row * stride + row_bytes] = src[row * stride : row * stride + row_bytes]
    assert bytes(dst) == bytes(expected)
    with pytest.raises(TypeError):
        rows.copy(Rows(bytes(stride * h), stride, 0), Rows(src, stride, 0), row_bytes, h)


def test_a_history_first_touched_holds_a_resident_zeroed_buffer() -> None:
    """The desktop at login: remembered black (no buffer), then a window's rectangle
    is planned and remembered: the buffer comes whole and resident, and holds the window."""
    width, height = 256, 96
    history = scroll.SurfaceHistory(width, height)
    history.remember_solid(bytes(4))
    assert len(history.pixels) == 0
    rng = random.Random(7)
    screen = bytearray(width * height * 4)
    rect = (8, 4, 100, 50)
    for y in range(rect[1], rect[1] + rect[3]):
        at = (y * width + rect[0]) * 4
        screen[at : at + rect[2] * 4] = bytes(rng.randrange(256) for _ in range(rect[2] * 4))
    source = scroll.Source(memoryview(screen), width * 4)
    assert history.plan(source, rect).rects == [rect]
    assert isinstance(history.pixels, mmap.mmap)
    assert resident_bytes(history.pixels) == -(-width * height * 4 // PAGE) * PAGE
    history.remember(source, rect)
    assert bytes(history.pixels) == bytes(screen)

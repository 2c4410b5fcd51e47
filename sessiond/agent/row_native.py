# The scroll plan's row passes in C (sessiond/agent/native/scroll_rows.c,
# built by `make install` into the same library as the GLYPHS passes,
# glyph_native.py), loaded with ctypes: the row comparison, the shift vote
# and the copy of the sent rows into the history, straight from the capture
# and the history's one contiguous buffer.
#
# Why: per frame of a scrolling 1084x654 xterm the Python passes
# (row_compare.PythonRows) made ~654 bytes objects of 4 KiB (malloc's large
# bins), SipHashed ~330 of them for the vote and kept them as the history
# (a second copy of the pixels): ~1 ms of the agent's ~2 ms a frame.  In C
# nothing is allocated and a row is hashed at memory speed.
#
# The results are row_compare.PythonRows' (tests/unit/test_scroll_rows.py
# runs both over random rows): where the library was not built, or is of
# another calling convention, the history uses PythonRows (passes()), as
# it does with SESSIOND_NATIVE_GLYPHS=0.  The C side checks every bound
# again, so a wrong argument is an error (ValueError), never a stray read.
"""NativeRows: the C row comparison, shift vote and row copy; passes(): it, or the Python reference."""

from __future__ import annotations

import ctypes
from array import array
from functools import cache
from typing import Any, Final

from sessiond.agent import glyph_native
from sessiond.agent.row_compare import MAX_ROW_REPEATS, WRITABLE, PythonRows, RowPasses, Rows, rule

_BAD_ARGS: Final = -1


class NativeRows:
    """RowPasses in C (see scroll_rows.c)."""

    def __init__(self, path: str) -> None:
        lib = glyph_native.open_library(path)
        size, pointer = ctypes.c_size_t, ctypes.c_void_p
        rows: list[Any] = [pointer, size, size, size]  # one set of rows: buffer, its length, stride, start
        self._equal = lib.sv_rows_equal
        self._equal.argtypes = [*rows, *rows, size, size, ctypes.c_long, pointer, size]
        self._equal.restype = ctypes.c_long
        self._vote = lib.sv_vote_shift
        self._vote.argtypes = [*rows, *rows, size, size, size, size, size, size, pointer, size, pointer, size,
                               pointer, size]  # fmt: skip
        self._vote.restype = ctypes.c_int
        self._scratch_bytes = lib.sv_vote_scratch_bytes
        self._scratch_bytes.argtypes = [size, size]
        self._scratch_bytes.restype = size
        self._copy = lib.sv_copy_rows
        self._copy.argtypes = [*rows, *rows, size, size, pointer, size]
        self._copy.restype = ctypes.c_int
        # The vote's scratch (8-byte aligned), kept and grown across frames: the C side overwrites what it uses.
        self._scratch = array("Q")

    def compare(self, cur: Rows, prev: Rows, row_bytes: int, h: int) -> tuple[bytes, int, bytes]:
        """row_compare.PythonRows.compare, in C."""
        how = rule(h)
        with glyph_native.Pinned(cur.buf) as (cur_at, cur_len), glyph_native.Pinned(prev.buf) as (prev_at, prev_len):
            here = (cur_at, cur_len, cur.stride, cur.start, prev_at, prev_len, prev.stride, prev.start, row_bytes, h)
            same = self.equal(here, 0)
            if 0 not in same:
                return same, 0, b""
            words = -(-self._scratch_bytes(h, how.step) // 8)
            if len(self._scratch) < words:
                self._scratch = array("Q", bytes(words * 8))
            scratch = self._scratch
            result = array("q", [0, 0])
            skip = same if how.changed_only else None  # (rows that are the same do not vote)
            with glyph_native.Pinned(scratch) as (scratch_at, scratch_len), \
                    glyph_native.Pinned(result) as (result_at, result_len):  # fmt: skip
                status = self._vote(*here, how.step, how.take, how.period, MAX_ROW_REPEATS, skip,
                                    len(skip) if skip is not None else 0, scratch_at, scratch_len, result_at,
                                    result_len)  # fmt: skip
            if status == _BAD_ARGS:
                raise ValueError(f"rows outside their buffers: {cur}, {prev}, {row_bytes} x {h}")
            shift, votes = result
            if votes < how.least:
                return same, 0, b""
            return same, shift, self.equal(here, shift)

    def equal(self, here: tuple[int, ...], shift: int) -> bytes:
        """[cur row i == prev row i + shift] of pinned rows `here` (see compare)."""
        out = bytearray(here[-1])
        with glyph_native.Pinned(out) as (out_at, out_len):
            if self._equal(*here, shift, out_at, out_len) == _BAD_ARGS:
                raise ValueError(f"rows outside their buffers: {here}")
        return bytes(out)

    def copy(self, dst: Rows, src: Rows, row_bytes: int, h: int, skip: bytes | None = None) -> None:
        """row_compare.PythonRows.copy, in C."""
        if not isinstance(dst.buf, WRITABLE):
            raise TypeError("copy() writes into a bytearray or an mmap")
        with glyph_native.Pinned(dst.buf) as (dst_at, dst_len), glyph_native.Pinned(src.buf) as (src_at, src_len):
            status = self._copy(dst_at, dst_len, dst.stride, dst.start, src_at, src_len, src.stride, src.start,
                                row_bytes, h, skip, len(skip) if skip is not None else 0)  # fmt: skip
        if status == _BAD_ARGS:
            raise ValueError(f"rows outside their buffers: {dst}, {src}, {row_bytes} x {h}")


def load(path: str | None = None) -> NativeRows | None:
    """The installed library's row passes, or None (absent, older, or SESSIOND_NATIVE_GLYPHS=0)."""
    if glyph_native.load(path) is None:
        return None
    return NativeRows(path or glyph_native.library_path())


@cache
def passes() -> RowPasses:
    """The row passes every SurfaceHistory of the agent uses: C if built, else Python."""
    return load() or PythonRows()

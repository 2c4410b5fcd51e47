# GLYPHS regions drawn straight into the framebuffer's memory with numpy
# (issue 15: the viewer's CPU during a scroll).
#
# media/glyphs.render, the reference, builds the region in Pillow: a join
# of every cell's bytes, a transpose, one paste per band of cells, a palette
# conversion to RGB, then the framebuffer's paste -- ~0.7 ms for half of a
# 180x50 xterm, 1.4 ms of the ~4.5 ms a scroll frame cost the viewer.
# Here each used glyph is first drawn once in the region's two colours (a
# few dozen cells of 4-byte pixels), then one gather of those cells by the
# region's indices is written through a (bands, cells, rows, columns) view
# of the framebuffer's own memory (client/fb_memory.py): ~0.25 ms, the
# same pixels (tests/unit/test_glyph_paint.py checks against the reference
# and the shared vectors).
#
# Why numpy is loaded late and only by the viewer: importing it costs about
# 0.1 s of CPU, which must not sit on the login's path nor on svclient's
# other subcommands. The viewer calls preload() 2 s after it painted its
# first frame (not on the way of the app's first text); until numpy is in,
# regions go the Pillow way (same pixels).
# numpy's bundled OpenBLAS starts a pool of worker threads at import that
# spin for a while (~0.07 s of CPU on a 2-core machine) and then sleep, for
# matrix work this module never does: the import asks for none (the
# environment's own OPENBLAS_NUM_THREADS, if set, wins).
# The same in C where `make install` built it (client/native/paint_cells.c,
# <venv>/lib/svclient-paint-cells.so, loaded by preload() instead of
# numpy): numpy's copy of the gathered cells into the screen's rows moves
# one cell_w-pixel piece at a time through its generic strided loops
# (0.32 ms per half of a 180x50 xterm); the C pass copies each row's cells
# in place (0.10 ms), and the viewer no longer imports numpy at all. numpy
# stays the fallback where the library did not build (and
# SVCLIENT_NATIVE_GLYPHS=0 picks it), Pillow's render the reference.
# Nothing here reads wire data: decode_cells (media/glyphs.py) has checked
# every bound and index before, and the write stays inside the rectangle
# Framebuffer.apply checked against its size (the C side checks every
# bound again before writing).
"""paint(): a checked GLYPHS region into a PixelMemory in C or with numpy, once preload() loaded one."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Final

from client.fb_memory import PAD, PIXEL_BYTES, PixelMemory
from media.glyphs import Cells

# OpenBLAS worker threads asked for when numpy is imported here (none beside the caller's).
BLAS_THREADS = "1"
# Where `make install` builds the C painter (Makefile), and its calling convention (SV_PAINT_CELLS_ABI).
LIBRARY_NAME: Final = "svclient-paint-cells.so"
ABI_VERSION: Final = 1
# Set to "0" to paint with numpy even where the C painter is built (benchmarks, tests of the fallback).
ENV_SWITCH: Final = "SVCLIENT_NATIVE_GLYPHS"
_numpy: Any = None  # the numpy module, once preload()'s thread imported it
_native: NativePainter | None = None  # the C painter, once preload()'s thread loaded it
_lock = threading.Lock()
_started = False


def preload() -> threading.Thread | None:
    """Import numpy in a daemon thread (once); the thread, or None if started before."""
    global _started
    with _lock:
        if _started:
            return None
        _started = True
    thread = threading.Thread(target=_load, name="svclient-numpy", daemon=True)
    thread.start()
    return thread


def _load() -> None:
    global _native
    if os.environ.get(ENV_SWITCH, "1") != "0":
        try:
            _native = NativePainter(library_path())
            return
        except (OSError, AttributeError):  # not built here (or an older build): numpy draws
            pass
    load_numpy()


def load_numpy() -> bool:
    """Import numpy for paint_numpy (in the calling thread); False if it is not installed."""
    global _numpy
    os.environ.setdefault("OPENBLAS_NUM_THREADS", BLAS_THREADS)
    try:
        import numpy
    except ImportError:  # svclient without the viewer extra: Pillow draws every region
        return False
    _numpy = numpy
    return True


def ready() -> bool:
    """True once the C painter or numpy is loaded (paint() draws from then on)."""
    return _native is not None or _numpy is not None


def native() -> NativePainter | None:
    """The C painter preload() loaded (None: numpy or Pillow draws)."""
    return _native


def library_path() -> str:
    """Where `make install` builds the C painter: <venv>/lib/svclient-paint-cells.so."""
    return os.path.join(sys.prefix, "lib", LIBRARY_NAME)


class NativePainter:
    """sv_paint_cells (client/native/paint_cells.c) through ctypes."""

    def __init__(self, path: str) -> None:
        import ctypes  # here, not at import: framebuffer.py (every svclient command) imports this module

        self._ctypes = ctypes
        lib = ctypes.CDLL(path)
        abi = getattr(lib, "sv_paint_cells_abi", None)
        if abi is None or abi() != ABI_VERSION:
            raise OSError(f"{path} is another build (calling convention {abi() if abi else '?'}, "
                          f"this client needs {ABI_VERSION}): run make install")  # fmt: skip
        size, data = ctypes.c_size_t, ctypes.c_char_p
        self._paint = lib.sv_paint_cells
        self._paint.argtypes = [ctypes.c_void_p, size, size, size, data, size, size, size, size, data, size, size,
                                size, data]  # fmt: skip
        self._paint.restype = ctypes.c_int

    def paint(self, cells: Cells, memory: PixelMemory, x: int, y: int, w: int, h: int) -> bool:
        """paint() in C; False (nothing drawn) if the memory is not ours or the C side refused the arguments."""
        buffer = memory.buffer
        if buffer is None:
            return False
        cell_w, cell_h, colours, glyphs, indices = cells
        ink = colours[:3] + bytes((PAD,)) + colours[3:6] + bytes((PAD,))
        bits = b"".join(glyphs)
        ctypes = self._ctypes
        target = (ctypes.c_char * len(buffer)).from_buffer(buffer)
        stride = memory.width * PIXEL_BYTES
        status = self._paint(ctypes.addressof(target), len(buffer), stride, y * stride + x * PIXEL_BYTES,
                             bits, len(bits), len(glyphs), cell_w, cell_h, indices, len(indices),
                             h // cell_h, w // cell_w, ink)  # fmt: skip
        del target  # the bytearray's export ends here
        return bool(status == 0)


def paint(cells: Cells, memory: PixelMemory, x: int, y: int, w: int, h: int) -> bool:
    """Draw checked cells (media.glyphs.decode_cells) of a w x h region at
    (x, y) into MEMORY; False (nothing drawn) if neither the C painter nor
    numpy is loaded or the memory is not ours, for the caller to paste
    media.glyphs.render."""
    painter = _native
    if painter is not None:
        return painter.paint(cells, memory, x, y, w, h)
    return paint_numpy(cells, memory, x, y, w, h)


def paint_numpy(cells: Cells, memory: PixelMemory, x: int, y: int, w: int, h: int) -> bool:
    """paint() with numpy; False (nothing drawn) if numpy is not loaded or the memory is not ours."""
    np = _numpy
    if np is None or memory.buffer is None:
        return False
    cell_w, cell_h, colours, glyphs, indices = cells
    bands, columns = h // cell_h, w // cell_w
    ink = np.frombuffer(colours[:3] + bytes((PAD,)) + colours[3:] + bytes((PAD,)), dtype=np.uint32)
    # Each used glyph in the two colours: column-major 0/1 cell bytes -> (cell_h, cell_w) pixels.
    bits = np.frombuffer(b"".join(glyphs), dtype=np.uint8).reshape(len(glyphs), cell_w, cell_h)
    drawn = ink[bits.transpose(0, 2, 1)]
    screen = np.frombuffer(memory.buffer, dtype=np.uint32).reshape(memory.height, memory.width)
    target = screen[y : y + h, x : x + w].reshape(bands, cell_h, columns, cell_w)
    grid = np.frombuffer(indices, dtype=np.uint8).reshape(bands, columns)
    target[...] = drawn[grid].transpose(0, 2, 1, 3)
    return True

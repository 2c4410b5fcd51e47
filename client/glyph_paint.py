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
# Nothing here reads wire data: decode_cells (media/glyphs.py) has checked
# every bound and index before, and the write stays inside the rectangle
# Framebuffer.apply checked against its size.
"""paint(): a checked GLYPHS region into a PixelMemory with numpy, once preload() loaded it."""

from __future__ import annotations

import os
import threading
from typing import Any

from client.fb_memory import PAD, PixelMemory
from media.glyphs import Cells

# OpenBLAS worker threads asked for when numpy is imported here (none beside the caller's).
BLAS_THREADS = "1"
_numpy: Any = None  # the numpy module, once preload()'s thread imported it
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
    global _numpy
    os.environ.setdefault("OPENBLAS_NUM_THREADS", BLAS_THREADS)
    try:
        import numpy
    except ImportError:  # svclient without the viewer extra: Pillow draws every region
        return
    _numpy = numpy


def ready() -> bool:
    """True once numpy is loaded (paint() draws from then on)."""
    return _numpy is not None


def paint(cells: Cells, memory: PixelMemory, x: int, y: int, w: int, h: int) -> bool:
    """Draw checked cells (media.glyphs.decode_cells) of a w x h region at
    (x, y) into MEMORY; False (nothing drawn) if numpy is not loaded or the
    memory is not ours, for the caller to paste media.glyphs.render."""
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

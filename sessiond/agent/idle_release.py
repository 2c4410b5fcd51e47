# What an agent gives back after its display has been idle for a while:
# memory it can rebuild, never state the client's pixels depend on.
#
# Why: in desktop mode an idle session kept ~16 MiB of pixel buffers that
# nobody reads until the screen changes again -- the whole-screen MIT-SHM
# capture segment (shared with Xvfb: 8 MiB at 1080p) and the encoder's copy
# of what the client holds, for scroll COPY (scroll.SurfaceHistory: 8 MiB);
# in seamless mode the windows' capture segment (composite.WindowPixels:
# as large as the largest rectangle captured, ~0.6 MiB for an xterm) and the
# windows' histories. After [session] idle_release_seconds (default
# IDLE_RELEASE_SECONDS) without a frame:
#  - the capture segments' pages are freed (madvise MADV_REMOVE, xshm.py);
#    a capture writes every pixel it returns, so the next frame refills the
#    pages it reads and nothing is lost;
#  - each surface history is packed into zlib bands (a desktop is mostly
#    flat colour: ~10-200x smaller) and its pages dropped; a band unpacks
#    when the next frame touches its rows, so COPY stays exact and available,
#    and the first keystroke after an idle spell unpacks one band;
#  - malloc_trim(0) returns the freed heap (encoder and GLYPHS buffers) to the
#    system: glibc keeps freed heap otherwise.
# One check per idle period while idle: a negligible wake-up, and nothing at
# all runs per frame.
"""IdleRelease: after an idle spell, release the display's rebuildable buffers."""

from __future__ import annotations

import asyncio
import ctypes
import time
from collections.abc import Callable

from sessiond.agent.clibs import library_path
from sessiond.agent.xshm import XShmError

# Seconds without a frame before the buffers are released, by default (the
# agent's settings carry [session] idle_release_seconds). Long enough that
# a user reading or thinking between keystrokes rarely pays the (~1 ms per
# touched band, a few ms for a whole-screen change) unpacking; short enough
# that an idle session is small when the next session needs the memory.
IDLE_RELEASE_SECONDS = 15.0


def malloc_trim() -> bool:
    """glibc's malloc_trim(0): free heap pages go back to the system. False
    if the C library has no such call (not glibc)."""
    name = library_path("c")
    if not name:
        return False
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    if trim is None:
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True


class IdleRelease:
    """Calls `release` once per idle spell: when `last_frame()` (a
    time.monotonic() value, as DisplayPipeline.last_frame_at) is at least
    `idle_seconds` old and no release ran since that frame."""

    def __init__(self, loop: asyncio.AbstractEventLoop, last_frame: Callable[[], float],
                 release: Callable[[], None], *, idle_seconds: float = IDLE_RELEASE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._loop = loop
        self._last_frame = last_frame
        self._release = release
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._released_after: float | None = None  # last_frame() when the last release ran
        self.releases = 0
        self._timer: asyncio.TimerHandle | None = loop.call_later(idle_seconds, self.check)

    def check(self) -> None:
        """Release if idle long enough; arm the next check."""
        last, now = self._last_frame(), self._clock()
        wait = self.idle_seconds
        if last != self._released_after:
            idle = now - last
            if idle >= self.idle_seconds:
                self._released_after = last
                self.releases += 1
                self._release()
            else:
                wait = self.idle_seconds - idle
        self._timer = self._loop.call_later(wait, self.check)

    def close(self) -> None:
        """Stop checking."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def release_display(encoder_release: Callable[[], int], source: object, log: Callable[[str], None],
                    idle_seconds: float = IDLE_RELEASE_SECONDS) -> None:  # fmt: skip
    """The display's release: the source's capture buffers (if it has
    release_idle, as DesktopSource and composite.WindowPixels), the encoder's
    histories, then the heap; the log line names IDLE_SECONDS (the setting)."""
    started = time.perf_counter()
    source_release = getattr(source, "release_idle", None)
    if source_release is not None:
        try:
            source_release()
        except (OSError, XShmError) as exc:  # the pages stay; the history and heap still go back
            log(f"display idle: the capture buffers stay resident: {exc}")
    packed = encoder_release()
    malloc_trim()
    log(f"display idle {idle_seconds:g} s: buffers released ({packed // 1024} KiB of packed history kept, "
        f"{(time.perf_counter() - started) * 1000:.0f} ms)")

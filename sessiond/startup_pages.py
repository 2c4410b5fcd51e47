# Gives back the pages of cryptography's Rust extension that only start-up
# used (issue 15: the daemon <= 40 MiB).
#
# Why: pyOpenSSL (TLS under Twisted) loads cryptography's _rust.abi3.so, a
# 14 MiB library with its own OpenSSL linked in. Loading it reads its whole
# relocation table (0.8 MiB, used once by the dynamic linker), and start-up
# runs a great deal of its code once: the Python classes it registers on
# import, Twisted's probe of the available ciphers when twisted.internet.ssl
# is imported, loading the host key. The kernel maps file pages in 64 KiB
# runs around each page touched, so about 8 MiB of it stays resident in the
# daemon, and no other process shares them. Measured (bench/
# bench_daemon_memory.py and a TLS 1.3 echo server doing three handshakes):
# once released, the daemon's serving and logins bring back ~5 MiB of it;
# ~3 MiB were start-up only.
#
# How: madvise(MADV_PAGEOUT) (Linux >= 5.4) on the extension's mappings that
# hold only clean file pages (not writable, no anonymous pages: never the
# relocated data, whose private copies would be lost). The kernel reclaims
# the pages no other process maps; a page needed again is read back from the
# file on its next use, as after any reclaim under memory pressure. Nothing
# else changes: the library stays loaded, TLS stays pyOpenSSL's. On an older
# kernel madvise fails with EINVAL and this does nothing.
#
# The garbage collector during start-up (issue 15: start -> first pixels):
# the daemon's imports allocate ~90 000 objects that live as long as it
# does, and the collector, which runs every 700 allocations, traversed them
# again and again: 125 collections, 30-40 ms of a ~230 ms import (measured,
# 3 runs). So `sessiond run` pauses the collector until it serves
# (pause_collector), then moves everything start-up made into the permanent
# generation (gc.freeze, serving_starts): later collections, during logins,
# never traverse the start's objects again. Start-up leaves ~1700 objects of
# cyclic garbage; collect_startup_garbage, with the page release below,
# collects them once the start is over.
"""release_startup_pages(): reclaim the clean file pages of cryptography's extension after start-up;
pause_collector(), serving_starts() and collect_startup_garbage(): the collector around start-up."""

from __future__ import annotations

import ctypes
import gc
import os
from collections.abc import Iterable
from typing import Callable

# The file whose start-up pages are released (cryptography's Rust extension).
RUST_EXTENSION = "_rust.abi3.so"
# Seconds after the reactor starts (start-up is over; nothing is serving yet).
RELEASE_DELAY_SECONDS = 1.0
# Seconds after the reactor starts before the start's garbage is collected (a full pass over
# its objects, ~20 ms): later than the page release, out of the way of a login that came
# with the daemon's start (a client started with it has its first frame within ~1 s).
GARBAGE_DELAY_SECONDS = 5.0
# linux/mman.h
MADV_PAGEOUT = 21
SMAPS = "/proc/self/smaps"


def clean_file_ranges(smaps: Iterable[str], name: str = RUST_EXTENSION) -> list[tuple[int, int]]:
    """The (start, end) address ranges in SMAPS (the lines of /proc/PID/smaps) of mappings of a
    file named NAME that are not writable and hold no anonymous (private, written) pages.
    Read line by line: the whole text is ~1 MiB of short-lived strings (their memory would stay)."""
    ranges: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    for line in smaps:
        head, _, rest = line.partition(" ")
        if not head.endswith(":"):  # a mapping: start-end perms offset dev inode [path]
            fields = rest.split(None, 4)
            path = fields[4].strip() if len(fields) > 4 else ""
            start, _, end = head.partition("-")
            ok = os.path.basename(path) == name and "w" not in fields[0]
            current = (int(start, 16), int(end, 16)) if ok else None
        elif head == "Anonymous:" and current is not None:
            if int(rest.split()[0]) == 0:
                ranges.append(current)
            current = None
    return ranges


def _libc_madvise() -> Callable[[int, int, int], int] | None:
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise  # type: ignore[no-any-return]


def release_startup_pages(name: str = RUST_EXTENSION, smaps_path: str = SMAPS) -> int:
    """madvise(MADV_PAGEOUT) the clean mappings of NAME in this process; returns the bytes
    advised (0 where the file is not mapped or the kernel or C library cannot)."""
    madvise = _libc_madvise()
    try:
        with open(smaps_path, encoding="utf-8", errors="replace") as handle:
            ranges = clean_file_ranges(handle, name)
    except OSError:
        return 0
    done = 0
    for start, end in ranges:
        if madvise is not None and madvise(start, end - start, MADV_PAGEOUT) == 0:
            done += end - start
    return done


def pause_collector() -> None:
    """No garbage collection until serving_starts() (the start's imports: see the header)."""
    gc.disable()


def serving_starts() -> None:
    """Freeze what start-up made (never traversed again) and collect again from now on."""
    gc.freeze()
    gc.enable()


def collect_startup_garbage() -> int:
    """Collect the start's cyclic garbage, then freeze again what survives; returns the
    objects collected (called with release_startup_pages, once start-up is over)."""
    gc.unfreeze()
    found = gc.collect()
    gc.freeze()
    return found

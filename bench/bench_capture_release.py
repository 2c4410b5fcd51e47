# What giving a capture segment's pages back after every frame would cost
# (xshm.QUIET_RELEASE_SECONDS): a window redrawn whole frame after frame (a
# video, a scroll of a small window) read into one ShmRegionCapture, its pages
# kept between frames ("keep") or released after each (madvise MADV_REMOVE,
# "release": every page faults in again, in Xvfb as it writes). The two
# alternate in each round on one Xvfb, so both see the same load.
"""Capture cost with the segment's pages kept vs released after every frame (prints medians and ratios)."""

from __future__ import annotations

import argparse
import statistics
import time

from sessiond.agent.xserver import start_xvfb
from sessiond.agent.xshm import CDisplay, ShmRegionCapture

# Window sizes read whole: an 80x24 xterm, a 180x50 one, a maximised 1080p window.
SIZES = ((484, 316), (1094, 664), (1920, 1080))


def per_capture_ms(capture: ShmRegionCapture, root: int, size: tuple[int, int], frames: int, release: bool) -> float:
    """Milliseconds per capture of SIZE at the root's corner (released after each if RELEASE)."""
    started = time.perf_counter()
    for _ in range(frames):
        capture.capture(root, 0, 0, *size)
        if release:
            capture.release()
    return (time.perf_counter() - started) * 1000 / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--frames", type=int, default=50, help="captures per variant and round")
    args = parser.parse_args()
    server = start_xvfb(1920, 1080)
    try:
        display = CDisplay(server.display)
        capture = ShmRegionCapture(display)
        print(f"{'window':>10} {'KiB':>6} {'keep ms':>8} {'release ms':>11} {'ratio':>6}")
        for size in SIZES:
            times: dict[bool, list[float]] = {False: [], True: []}
            capture.release()
            for _ in range(args.rounds):
                for release in (False, True):
                    times[release].append(per_capture_ms(capture, display.root, size, args.frames, release))
            keep, released = statistics.median(times[False]), statistics.median(times[True])
            print(f"{size[0]:>5}x{size[1]:<4} {size[0] * size[1] * 4 // 1024:>6} {keep:>8.3f} {released:>11.3f} "
                  f"{released / keep:>6.2f}")  # fmt: skip
        capture.close()
        display.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()

# What the scroll history's copy costs the encoder, and what a history that
# keeps the last capture instead of copying it would save: a measurement of a
# design, not of shipped code.  bench_scroll_replay's frames (a 1084x654
# xterm box on a 1920x1080 desktop) are encoded twice per round, each in a
# fresh process, alternated:
#   copy:    the agent as it is (SurfaceHistory.remember copies the sent rows
#            of the capture into the history's buffer: ~2.8 MB a frame);
#   overlay: OverlayHistory below: remember() of the rectangle the plan just
#            compared keeps a reference to that capture (the "overlay") and
#            copies nothing; the next plan of the same rectangle compares
#            against the overlay; any other rectangle, or release(), first
#            copies the overlay into the history (flatten).
# Exactness: the overlay holds the bytes the copy would have written (rows the
# plan found unchanged are equal in both), so every region is the same: the
# bench prints each variant's SHA-256 of all regions (bench_scroll_replay
# also checks the client's pixels every frame) and fails if they differ.
# Why only a measurement: in the agent the capture buffer (one XShm segment
# per ShmCapture) is overwritten by the next capture and its pages are given
# back by frame_done() after a whole-screen frame; an overlay needs two
# segments captured alternately, the segment the history holds never
# captured into nor released, and a flatten before every release.  The
# replay's frames are distinct buffers, so the overlay is safe here.
#   PYTHONPATH=. /opt/sv-NAME/venv/bin/python bench/bench_history_overlay.py [--rounds 5] [--frames 200]
"""Encoder CPU per frame with the scroll history's copy against an overlay that keeps the capture."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import weakref

from sessiond.agent import encoder as encoder_module
from sessiond.agent.row_compare import Rows
from sessiond.agent.scroll import BYTES_PER_PIXEL, Plan, Source, SurfaceHistory, plan_of

Rect = tuple[int, int, int, int]
VARIANTS = ("copy", "overlay")
MODES = ("new", "mixed")


class OverlayHistory(SurfaceHistory):
    """SurfaceHistory whose remember() of the planned rectangle keeps the source instead of copying it."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__(width, height)
        self._over: tuple[Source, Rect] | None = None
        self._compared: tuple[Rect, Source, bytes] | None = None

    def _flatten(self) -> None:
        """Copy the overlay into the history's buffer (the copy remember() skipped)."""
        if self._over is not None:
            source, (x, y, w, h) = self._over
            self._over = None
            self._unpack(y, h)
            target = Rows(self.pixels, self.stride, y * self.stride + x * BYTES_PER_PIXEL)
            self._passes.copy(target, source.rows((x, y, w, h)), w * BYTES_PER_PIXEL, h, None)

    def release(self) -> int:
        self._flatten()
        self._compared = None
        return super().release()

    def remember_solid(self, pixel: bytes) -> None:
        self._over, self._compared = None, None
        super().remember_solid(pixel)

    def plan(self, source: Source, rect: Rect) -> Plan:
        self._compared = None
        if self._over is None or self._over[1] != rect or not self.known:
            self._flatten()
            return super().plan(source, rect)
        x, y, w, h = rect
        self._planned = None
        same, shift, moved = self._passes.compare(source.rows(rect), self._over[0].rows(rect), w * BYTES_PER_PIXEL, h)
        self._compared = (rect, source, same)
        return plan_of(rect, same, shift, moved)

    def remember(self, source: Source, rect: Rect) -> None:
        compared, self._compared = self._compared, None
        planned = self._planned  # (SurfaceHistory.plan's, when it ran)
        matched = (compared is not None and compared[0] == rect and compared[1] is source) or (
            planned is not None and planned[0] == rect and planned[1]() is source)  # fmt: skip
        if matched and rect != (0, 0, self.width, self.height):
            if self._over is not None and self._over[1] != rect:
                self._flatten()
            self._planned, self._over = None, (source, rect)
            return
        self._flatten()
        if compared is not None:
            self._planned = (compared[0], weakref.ref(compared[1]), compared[2])
        super().remember(source, rect)


def child(variant: str, frames: int) -> None:
    """One process: encode both modes with `variant`'s history; print mode, ms per frame, hash."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_scroll_replay as replay  # (the bench directory is not a package)

    if variant == "overlay":
        encoder_module.SurfaceHistory = OverlayHistory  # type: ignore[misc]
    blocks = replay.line_blocks()
    for mode in MODES:
        times, digest, sent = replay.run(blocks, mode, frames, None)
        print(mode, f"{statistics.median(times):.4f}", digest, sent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 50 or not 1 <= args.frames <= 2000:
        parser.error("--rounds must be in [1, 50] and --frames in [1, 2000]")
    if args.child:
        child(args.child, args.frames)
        return 0
    times: dict[tuple[str, str], list[float]] = {}
    hashes: dict[str, set[str]] = {mode: set() for mode in MODES}
    for number in range(args.rounds):
        for variant in VARIANTS if number % 2 == 0 else VARIANTS[::-1]:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", variant, "--frames",
                                  str(args.frames)], capture_output=True, text=True, check=True).stdout  # fmt: skip
            for line in out.splitlines():
                mode, ms, digest, sent = line.split()
                times.setdefault((mode, variant), []).append(float(ms))
                hashes[mode].add(f"{digest[:16]} {sent} B")
    print(f"encoder CPU ms per frame (median of per-round medians), {args.rounds} rounds alternated, "
          f"{args.frames} frames; load {os.getloadavg()[0]:.2f}")
    for mode in MODES:
        copy, over = (statistics.median(times[mode, variant]) for variant in VARIANTS)
        print(f"{mode:6s} copy {copy:.3f}  overlay {over:.3f}  ratio {over / copy:.2f}x  "
              f"regions {sorted(hashes[mode])}")
    if any(len(found) != 1 for found in hashes.values()):
        print("REGIONS DIFFER between copy and overlay", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

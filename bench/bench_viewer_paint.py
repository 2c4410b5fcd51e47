# CPU of the native viewer's per-frame path for the scroll workload (issue
# 15): a full xterm screen of new text (bench_glyphs.screen) encoded by the
# agent's RegionEncoder (GLYPHS with its edges, or one-line scrolls as COPY
# + GLYPHS), then everything the viewer does with it: Framebuffer.apply
# (decode) on the reactor side, DamageCollector's patches at FRAME_END, and
# SessionWindow.apply_patches (copy into the QImage and repaint) on a real
# X server (the X server's own time is not counted). Prints median CPU ms
# (CPU time of the whole process: Qt converts images in worker threads) per
# frame and stage.
#
# Why: the peer sitting counts the viewer's CPU-s over the scroll; this
# splits it by stage, without a session, so a change to one stage is seen
# alone. Run under an X display (xvfb-run, or DISPLAY of a test Xvfb):
#   PYTHONPATH=. /opt/sessiond/venv/bin/python bench/bench_viewer_paint.py [--frames N] [--replay FILE]
# With PYTHONPATH naming another checkout (e.g. main's worktree) the same
# frames go through that checkout's client: the baseline of a change.
"""Viewer CPU per frame by stage: decode, patch, copy + paint (medians, ms)."""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import time
from typing import Any

from bench_glyphs import screen
from client.framebuffer import Framebuffer
from client.viewer.damage import DamageCollector, LatencyTrace, WindowState
from protocol.messages import FrameEnd, Region
from protocol.windows import WindowTarget
from sessiond.agent.encoder import RegionEncoder


# A recorded frame is the scroll's when its regions cover this share of the window.
SCROLL_SHARE = 0.5


class _Client:
    """The attributes DamageCollector reads from a SessionClient (desktop mode)."""

    def __init__(self, framebuffer: Framebuffer) -> None:
        self.framebuffer = framebuffer


class _Link:
    """The Sender a SessionWindow paints with (no network)."""

    trace = LatencyTrace(None)

    def call(self, method: str, *args: object) -> None:
        """Ignored."""

    def key(self, window: int, keysym: int, down: bool) -> None:
        """Ignored."""

    def close(self, window: int, force: bool) -> None:
        """Ignored."""

    def fit_screen(self, width: int, height: int) -> None:
        """Ignored."""


def frames(count: int) -> tuple[int, int, list[list[Any]]]:
    """(width, height, the regions of each frame) as the agent encodes them:
    every frame a new screen with nothing to copy (the agent's scroll
    history forgotten), as when xterm jumps a screen or more per frame."""
    encoder = RegionEncoder()
    encoder.glyphs.enabled = True
    images = [screen(seed) for seed in range(count)]
    width, height = images[0].size
    out = []
    for image in images:
        buffer = image.convert("RGBX").tobytes("raw", "BGRX")
        encoder.forget()
        out.append(encoder.encode(buffer, width * 4, [(0, 0, width, height)], surface="desktop"))
    return width, height, out


def replayed(path: str) -> tuple[int, int, list[list[Any]]]:
    """(width, height, the regions of each frame) of a recording: pickled
    display messages of one window (WINDOW_TARGET, REGIONs, FRAME_END)."""
    size, out, current = (0, 0), [], []
    with open(path, "rb") as handle:
        while True:
            try:
                message = pickle.load(handle)  # noqa: S301 - a recording the user made
            except EOFError:
                break
            if isinstance(message, WindowTarget):
                size = (message.width, message.height)
            elif isinstance(message, Region):
                current.append(message)
            elif isinstance(message, FrameEnd):
                if sum(region.w * region.h for region in current) >= SCROLL_SHARE * size[0] * size[1]:
                    out.append(current)  # a scroll frame (typing's echoes are left out)
                current = []
    return size[0], size[1], out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replay", help="pickled display messages of one window instead of synthetic frames")
    parser.add_argument("--desktop", metavar="WxH",
                        help="a desktop of this size with the frames at its top left (the peer harness: 1920x1080)")
    args = parser.parse_args(argv)
    from PySide6.QtWidgets import QApplication

    from client.viewer.window import SessionWindow

    app = QApplication.instance() or QApplication([])
    try:  # as the viewer does after its first frame (a checkout before client/glyph_paint.py has none)
        from client import glyph_paint

        loading = glyph_paint.preload()
        if loading is not None:
            loading.join()
    except ImportError:
        pass
    width, height, encoded = replayed(args.replay) if args.replay else frames(args.frames)
    if args.desktop:
        width, height = (max(int(side), own) for side, own in zip(args.desktop.split("x"), (width, height)))
    framebuffer = Framebuffer(width, height)
    collector = DamageCollector(_Client(framebuffer), lambda: None, lambda: None)
    state = WindowState(0, "bench", "", "normal", True, 0, 0, 0, width, height, "normal", True)
    window = SessionWindow(_Link(), state, False)  # type: ignore[arg-type]
    window.show()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    collector.refresh([0])  # the whole window once: every pixel compared below was painted
    window.apply_patches(collector.take())
    stages: dict[str, list[float]] = {"decode": [], "patch": [], "paint": [], "all": []}
    seq = 0
    for _round in range(args.rounds):
        for regions in encoded:
            seq += 1
            t0 = time.process_time()
            for region in regions:
                framebuffer.apply(region)
                collector(region)
            t1 = time.process_time()
            collector(FrameEnd(seq=seq, ack_now=True))
            patches = collector.take()
            t2 = time.process_time()
            window.apply_patches(patches)
            t3 = time.process_time()
            app.processEvents()
            for name, value in (("decode", t1 - t0), ("patch", t2 - t1), ("paint", t3 - t2), ("all", t3 - t0)):
                stages[name].append(1000 * value)
    from PySide6.QtGui import QImage

    packed = window.image.convertToFormat(QImage.Format.Format_RGB888)  # the baseline's own format, or RGBX
    bits, stride = bytes(packed.constBits()), packed.bytesPerLine()
    shown = b"".join(bits[row * stride : row * stride + width * 3] for row in range(height))
    ok = shown == framebuffer.image().tobytes()
    if not ok:
        print("the window's pixels differ from the framebuffer's", file=sys.stderr)
    print(f"viewer path, {width}x{height} window, {len(encoded)} frames x {args.rounds} rounds, "
          f"{sum(len(r) for r in encoded) / len(encoded):.1f} regions per frame; median CPU ms per frame")
    for name, values in stages.items():
        print(f"{name:7s} {statistics.median(values):7.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

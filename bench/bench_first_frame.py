# The encoder's cost of the first two frames of a new desktop session
# (issue 15, login -> first frame): the solid black 1920x1080 screen sent
# when the display opens (one FILL), then the frame that shows a new
# 1084x654 xterm of text (its first paint), each with a fresh RegionEncoder
# as a new display channel has, GLYPHS on, as in the agent.  The first
# frame is on the path of the first LAUNCH (the agent's loop encodes it
# before it serves the launch); the second shows whether work skipped in
# the first only moved to the next.  Prints median CPU ms (process time:
# the machine is shared) of each frame over --runs fresh encoders.  Run it
# from each checkout to compare (nothing gates):
#   cd /work/wt/NAME && PYTHONPATH=. /opt/sv-NAME/venv/bin/python bench/bench_first_frame.py [--runs 20]
"""CPU ms of a new session's first frame (black FILL) and second (an xterm's first paint)."""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from PIL import Image

from bench_glyphs import screen
from sessiond.agent.encoder import RegionEncoder

SCREEN = (1920, 1080)


def frames() -> tuple[bytes, bytes]:
    """(black screen, the same with an xterm-sized screen of text at 0, 0) as BGRX."""
    black = Image.new("RGB", SCREEN, (0, 0, 0))
    shown = black.copy()
    shown.paste(screen(1), (0, 0))
    return tuple(image.convert("RGBX").tobytes("raw", "BGRX") for image in (black, shown))  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 1000:
        parser.error("--runs must be in [1, 1000]")
    black, shown = frames()
    width, height = SCREEN
    xterm = (0, 0, *screen(1).size)
    costs: dict[str, list[float]] = {"first (black FILL)": [], "second (xterm's first paint)": []}
    for _run in range(args.runs):
        encoder = RegionEncoder()
        encoder.glyphs.enabled = True
        for spent, buf, rect in zip(costs.values(), (black, shown), ((0, 0, width, height), xterm)):
            started = time.process_time()
            encoder.encode(buf, width * 4, [rect], width=width, height=height, surface="desktop")
            spent.append(1000 * (time.process_time() - started))
    print(f"{width}x{height} desktop, {args.runs} fresh encoders, median CPU ms (process time)")
    for name, spent in costs.items():
        print(f"{name:30s} {statistics.median(spent):8.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

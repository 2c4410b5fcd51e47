# Encode and decode cost of a full xterm screen of new text (issue 15):
# 180x50 cells of 6x13 (1084x654 with xterm's borders), log-like lines in
# Pillow's bitmap font, every screen different, as the scroll workload's
# frames are.  Each screen goes through the agent's RegionEncoder (with its
# scroll history, as in the agent) with GLYPHS off and on, alternately, and
# through the client's Framebuffer; the client's pixels are checked against
# the screen every time.  Prints median CPU ms (process time: the machine
# is shared) and bytes per screen, and the on/off ratios.  Nothing gates.
#   PYTHONPATH=. /opt/sessiond/venv/bin/python bench/bench_glyphs.py [--screens N] [--rounds R]
"""GLYPHS vs PALETTE/PNG: encode ms, decode ms, bytes per full screen of new text."""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

from PIL import Image, ImageDraw, ImageFont

from client.framebuffer import Framebuffer
from sessiond.agent.encoder import RegionEncoder

COLUMNS, ROWS, CELL_W, CELL_H, BORDER = 180, 50, 6, 13, 2
WORDS = ("GET", "POST", "/api/v1/items", "200", "404", "served", "in", "ms", "status=ok", "user=alice", "took")


def screen(seed: int) -> Image.Image:
    """One xterm-sized screen of distinct log lines (black on white)."""
    font = ImageFont.load_default_imagefont()
    image = Image.new("RGB", (2 * BORDER + COLUMNS * CELL_W, 2 * BORDER + ROWS * CELL_H), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    rng = random.Random(seed)
    for row in range(ROWS):
        line = f"log {seed * ROWS + row:07d}: " + " ".join(rng.choice(WORDS) for _ in range(COLUMNS // 5))
        draw.text((BORDER, BORDER + row * CELL_H), line[:COLUMNS], font=font, fill=(0, 0, 0))
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--screens", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    screens = [screen(seed) for seed in range(args.screens)]
    buffers = [image.convert("RGBX").tobytes("raw", "BGRX") for image in screens]
    width, height = screens[0].size
    results: dict[bool, dict[str, list[float]]] = {flag: {"encode": [], "decode": [], "bytes": []}
                                                   for flag in (False, True)}  # fmt: skip
    encoders = {on: RegionEncoder() for on in (False, True)}
    framebuffers = {on: Framebuffer(width, height) for on in (False, True)}
    for on, encoder in encoders.items():
        encoder.glyphs.enabled = on
    for _round in range(args.rounds):
        for index, buffer in enumerate(buffers):
            for on in (False, True):
                started = time.process_time()
                regions = encoders[on].encode(buffer, width * 4, [(0, 0, width, height)], surface="desktop")
                encoded = time.process_time()
                for region in regions:
                    framebuffers[on].apply(region)
                decoded = time.process_time()
                if framebuffers[on].image().tobytes() != screens[index].tobytes():
                    print(f"glyphs={on}: the client's screen differs", file=sys.stderr)
                    return 1
                results[on]["encode"].append(1000 * (encoded - started))
                results[on]["decode"].append(1000 * (decoded - encoded))
                results[on]["bytes"].append(sum(len(region.data) for region in regions))
    print(f"full screen {width}x{height} ({COLUMNS}x{ROWS} cells of {CELL_W}x{CELL_H}), {args.screens} screens "
          f"x {args.rounds} rounds, medians (CPU ms: process time)")
    for name in ("encode", "decode", "bytes"):
        off, on = (statistics.median(results[flag][name]) for flag in (False, True))
        unit = "" if name == "bytes" else " ms"
        print(f"{name:7s} PALETTE/PNG {off:9.2f}{unit}   GLYPHS {on:9.2f}{unit}   ratio {on / off:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

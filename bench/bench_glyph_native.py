# The agent's encoder CPU per frame of a scrolling terminal, with the C
# passes of GLYPHS (sessiond/agent/native/glyph_cells.c) against the Python
# path they replace (SESSIOND_NATIVE_GLYPHS=0), alternated in the same run,
# and proof that the output is the same: a SHA-256 over every region of
# both.  Offline (no X server, no sessions): each child process encodes
# new 180x50 xterm screens of 6x13 text at (10, 30) of a 1920x1080 desktop
# with the scroll history and GLYPHS on, as the agent does when a flood
# makes every frame a new screen, and counts process time.  Nothing gates.
#   /opt/sv-NAME/venv/bin/python bench/bench_glyph_native.py [--rounds 3] [--frames 40]
# (the installed package and its built library; run from any directory).
"""Encoder CPU per new-screen frame: GLYPHS' C passes vs the Python path, with an output hash."""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import time
from typing import Final

BENCH_DIR: Final = os.path.dirname(os.path.abspath(__file__))
WIDTH, HEIGHT = 1920, 1080
TEXT_AT: Final = (10, 30)
SWITCH: Final = "SESSIOND_NATIVE_GLYPHS"


def child(frames: int) -> None:
    """Encode `frames` new screens; print 'ms_per_frame sha256 native?'."""
    sys.path.insert(0, BENCH_DIR)
    from bench_glyphs import screen  # a sibling bench script
    from PIL import Image

    from sessiond.agent.encoder import RegionEncoder

    buffers = []
    for number in range(frames + 1):
        desk = Image.new("RGB", (WIDTH, HEIGHT), (40, 80, 120))
        text = screen(number)
        desk.paste(text, TEXT_AT)
        buffers.append(desk.convert("RGBX").tobytes("raw", "BGRX"))
    rect = (*TEXT_AT, text.width, text.height)
    now = [0.0]
    encoder = RegionEncoder()
    encoder.glyphs.enabled, encoder.glyphs._clock = True, lambda: now[0]
    digest = hashlib.sha256()
    encoder.encode(buffers[0], WIDTH * 4, [(0, 0, WIDTH, HEIGHT)], surface="desktop")
    now[0] += 1.0  # past DETECT_RETRY_SECONDS: the text rectangle alone finds the grid
    encoder.encode(buffers[-1], WIDTH * 4, [rect], surface="desktop")
    if encoder.glyphs.grid("desktop") is None:
        sys.exit("no grid found: the frames would not be GLYPHS")
    sent = encoder.glyphs.sent
    started = time.process_time()
    for buf in buffers[1:]:
        now[0] += 0.02
        for region in encoder.encode(buf, WIDTH * 4, [rect], width=WIDTH, height=HEIGHT, surface="desktop"):
            digest.update(repr((region.x, region.y, region.w, region.h, int(region.encoding))).encode() + region.data)
    spent = time.process_time() - started
    if encoder.glyphs.sent - sent < frames:
        sys.exit(f"only {encoder.glyphs.sent - sent} GLYPHS regions in {frames} frames")
    print(f"{1000 * spent / frames:.3f} {digest.hexdigest()} {encoder.glyphs.native is not None}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.frames)
        return
    results: dict[str, list[float]] = {"python": [], "native": []}
    hashes: dict[str, set[str]] = {"python": set(), "native": set()}
    for _round in range(args.rounds):
        for name, switch in (("python", "0"), ("native", "1")):
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "--frames", str(args.frames)],
                                 env={**os.environ, SWITCH: switch}, check=True, capture_output=True, text=True,
                                 cwd="/").stdout.split()  # fmt: skip
            if (out[2] == "True") != (name == "native"):
                sys.exit(f"the {name} run did not use the path it was meant to (native loaded: {out[2]})")
            results[name].append(float(out[0]))
            hashes[name].add(out[1])
    python, native = statistics.median(results["python"]), statistics.median(results["native"])
    print(f"encoder CPU per new 180x50 screen at 1920x1080, {args.frames} frames x {args.rounds} rounds "
          f"alternated, medians; load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"python path  {python:7.3f} ms   rounds {' '.join(f'{v:.2f}' for v in results['python'])}")
    print(f"C passes     {native:7.3f} ms   rounds {' '.join(f'{v:.2f}' for v in results['native'])}   "
          f"ratio {native / python:.2f}x")  # fmt: skip
    same = len(hashes["python"]) == 1 and hashes["python"] == hashes["native"]
    print(f"output identical: {'yes' if same else 'NO'} (sha256 {sorted(hashes['native'])[0][:16]}...)")


if __name__ == "__main__":
    main()

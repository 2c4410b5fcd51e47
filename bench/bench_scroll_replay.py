# The agent's encoder on a replayed xterm scroll, in one process: CPU ms
# per frame of RegionEncoder.encode (scroll history, GLYPHS on, as the
# agent runs it) and a SHA-256 of every region it emits, so a change to
# the scroll or GLYPHS code can be timed without the X server, xterm and
# the client, and proven byte-identical (same hash before and after).
#
# The frames: a 1920x1080 desktop (black root) with a 180x50 xterm of 6x13
# cells (1084x654 with its 2-pixel border) at (10, 30), black text on white,
# log-like lines in Pillow's bitmap font.  After one whole-screen frame,
# each frame is a box capture of the xterm (origin at its corner, as
# frame_sources.DesktopSource captures a damage box) scrolled by some lines:
#   new:   a whole new screen every frame (bench_scroll's flood at ~700
#          lines a frame: what the agent meets in issue 15's workload);
#   mixed: 70% new screens, 20% scrolls of 1-30 lines, 10% of 1-5 lines,
#          some frames unchanged or scrolled back;
#   prompt: as `new`, but the xterm first shows PROMPT_LINES lines of text
#          (a prompt and a command) and the first box is those lines: the
#          GLYPHS grid is found on them (session 10 found a wrong cell
#          height there, ~4x the bytes until dropped).
# Every frame's regions are applied to the client's Framebuffer (not
# timed) and the xterm's pixels checked.  Nothing gates.
#   PYTHONPATH=. /opt/sv-NAME/venv/bin/python bench/bench_scroll_replay.py [--frames N] [--rounds R]
"""Replayed xterm scroll: encoder CPU ms per frame and a hash of every region emitted."""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import pstats
import random
import statistics
import sys
import time

from PIL import Image, ImageDraw, ImageFont

from client.framebuffer import Framebuffer
from protocol.messages import Region
from sessiond.agent.encoder import RegionEncoder

SCREEN_W, SCREEN_H = 1920, 1080
COLUMNS, ROWS, CELL_W, CELL_H, BORDER = 180, 50, 6, 13, 2
TERM_X, TERM_Y = 10, 30
TERM_W, TERM_H = 2 * BORDER + COLUMNS * CELL_W, 2 * BORDER + ROWS * CELL_H
# Distinct lines rendered (a prime: the line at a screen position repeats only after this many).
POOL_LINES = 1009
# Lines on the xterm before the prompt mode's scroll.
PROMPT_LINES = 4
WORDS = ("GET", "POST", "/api/v1/items", "200", "404", "served", "in", "ms", "status=ok", "user=alice", "took")


def line_blocks() -> list[bytes]:
    """POOL_LINES xterm lines as BGRX, each CELL_H rows of TERM_W pixels (border included)."""
    font = ImageFont.load_default_imagefont()
    rng = random.Random(7)
    blocks = []
    for number in range(POOL_LINES):
        image = Image.new("RGB", (TERM_W, CELL_H), (255, 255, 255))
        text = f"log {number:07d}: " + " ".join(rng.choice(WORDS) for _ in range(COLUMNS // 5))
        ImageDraw.Draw(image).text((BORDER, 0), text[: rng.randint(COLUMNS // 3, COLUMNS)], font=font, fill=(0, 0, 0))
        blocks.append(image.convert("RGBX").tobytes("raw", "BGRX"))
    return blocks


def prompt_frame(blocks: list[bytes]) -> bytes:
    """The xterm showing only PROMPT_LINES lines of text (the rest of its rows blank)."""
    blank = b"\xff\xff\xff\x00" * (TERM_W * CELL_H)
    border = b"\xff\xff\xff\x00" * (TERM_W * BORDER)
    return b"".join([border, *blocks[:PROMPT_LINES], *[blank] * (ROWS - PROMPT_LINES), border])


def term_frame(blocks: list[bytes], top: int) -> bytes:
    """The xterm's pixels (TERM_W x TERM_H BGRX) showing lines top..top+ROWS of the pool."""
    border = b"\xff\xff\xff\x00" * (TERM_W * BORDER)  # white, X 0 as Pillow's RGBX gives it
    return b"".join([border, *(blocks[(top + row) % POOL_LINES] for row in range(ROWS)), border])


def schedule(mode: str, frames: int) -> list[int]:
    """The first screen line of each frame."""
    rng, top, tops = random.Random(11), 0, []
    for _ in range(frames):
        pick = rng.random()
        if mode in ("new", "prompt") or pick < 0.7:
            top += rng.randint(ROWS + 1, 700)
        elif pick < 0.9:
            top += rng.randint(1, 30)
        elif pick < 0.95:
            top += rng.randint(1, 5)
        else:
            top += rng.choice((0, -3, -1))
        tops.append(top)
    return tops


def region_bytes(region: Region) -> bytes:
    """A region as hashed: its rectangle, encoding and payload."""
    head = f"{region.x},{region.y},{region.w},{region.h},{region.encoding.name},{len(region.data)};"
    return head.encode() + bytes(region.data)


def run(blocks: list[bytes], mode: str, frames: int, profile: cProfile.Profile | None) -> tuple[list[float], str, int]:
    """(CPU ms per frame, SHA-256 of all regions, bytes sent) of one replay."""
    encoder, fb = RegionEncoder(), Framebuffer(SCREEN_W, SCREEN_H)
    encoder.glyphs.enabled = True
    digest, sent, times = hashlib.sha256(), 0, []
    desktop = Image.new("RGB", (SCREEN_W, SCREEN_H), (0, 0, 0))
    desktop.paste(Image.frombytes("RGB", (TERM_W, TERM_H), term_frame(blocks, 0), "raw", "BGRX"), (TERM_X, TERM_Y))
    first = desktop.convert("RGBX").tobytes("raw", "BGRX")
    box = (TERM_X, TERM_Y, TERM_W, TERM_H)
    steps = [(first, SCREEN_W * 4, (0, 0, SCREEN_W, SCREEN_H), (0, 0))]
    if mode == "prompt":  # the box of the lines typed so far: BORDER + PROMPT_LINES lines and the next
        steps = [(prompt_frame(blocks), TERM_W * 4, (TERM_X, TERM_Y, TERM_W, BORDER + (PROMPT_LINES + 1) * CELL_H),
                  (TERM_X, TERM_Y))]  # fmt: skip
    steps += [(term_frame(blocks, top), TERM_W * 4, box, (TERM_X, TERM_Y)) for top in schedule(mode, frames)]
    for index, (buf, stride, rect, origin) in enumerate(steps):
        if profile is not None and index:
            profile.enable()
        started = time.process_time()
        regions = encoder.encode(buf, stride, [rect], width=SCREEN_W, height=SCREEN_H, surface="desktop",
                                 origin=origin)  # fmt: skip
        spent = time.process_time() - started
        if profile is not None:
            profile.disable()
        if index:
            times.append(1000 * spent)
        for region in regions:
            digest.update(region_bytes(region))
            sent += len(region.data)
            fb.apply(region)
        if index == 0 and mode == "prompt":  # only the box was sent
            continue
        shown = fb.image().crop((TERM_X, TERM_Y, TERM_X + TERM_W, TERM_Y + TERM_H)).tobytes()
        if shown != Image.frombytes("RGB", (TERM_W, TERM_H), buf if index else term_frame(blocks, 0),
                                    "raw", "BGRX").tobytes():  # fmt: skip
            raise SystemExit(f"frame {index}: the client's xterm differs from the frame")
    return times, digest.hexdigest(), sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default="new,mixed")
    parser.add_argument("--profile", action="store_true", help="cProfile the encode calls of the last round")
    args = parser.parse_args(argv)
    blocks = line_blocks()
    for mode in args.modes.split(","):
        medians, hashes, profile = [], set(), None
        for number in range(args.rounds):
            profile = cProfile.Profile() if args.profile and number == args.rounds - 1 else None
            times, digest, sent = run(blocks, mode, args.frames, profile)
            medians.append(statistics.median(times))
            hashes.add((digest, sent))
        (digest, sent), = hashes
        print(f"{mode:6s} {args.frames} frames x {args.rounds} rounds: encode CPU ms per frame, median of round "
              f"medians {statistics.median(medians):.3f} (rounds {' '.join(f'{m:.3f}' for m in medians)}); "
              f"regions sha256 {digest[:16]} {sent} B")  # fmt: skip
        if profile is not None:
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())

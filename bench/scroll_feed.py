# The text of the scroll workload (issue 15: the peer table's "scroll" row)
# and the program that pushes it through the bench's xterm.
#
# Why a program of our own inside the xterm: the bench must start and stop
# the scroll at chosen moments with or without a client attached (no client,
# no keyboard), and must know how many lines the xterm got through. The
# xterm runs this file (`xterm -e python scroll_feed.py --go F1 --result F2`);
# it waits on the FIFO F1 for a line "SECONDS", writes log-like lines to its
# terminal for that long (the write blocks while xterm is busy, so the count
# is what xterm consumed), and answers on F2 with "LINES ELAPSED". The
# bench holds both FIFOs open read-write, so neither side ever blocks on an
# open and the feeder survives several rounds (warm-up, measured windows).
#
# The text is deterministic (a seeded PRNG) and no two lines of a run are
# equal (each starts with its running number): identical lines would let a
# damage-driven pipeline send nothing and measure nothing. Standard library
# only: it runs under the session's python, imported by nothing heavy.
"""Deterministic log-like scroll text, its feeder, and the result line."""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

# Columns of the bench's xterm (-geometry 180x50): a line fills one row, the
# newline ends it (179 characters, so no line wraps onto a second row).
LINE_WIDTH = 179
# Distinct line bodies generated once; the running number keeps every line unique.
BODY_LINES = 4096
# Lines per write(): small enough to stop close to the deadline (a few kB).
LINES_PER_WRITE = 32
# Fixed seed: the same text in every run, so runs compare.
SEED = 20261206
# Bounds of a result line and of a round's length (bad input is rejected).
MAX_RESULT_LINE = 64
MAX_ROUND_SECONDS = 600.0
_LEVELS = ("INFO", "DEBUG", "WARN", "ERROR")
_WORDS = ("request", "session", "frame", "tile", "queue", "flush", "accept", "render", "commit",
          "retry", "socket", "buffer", "window", "cursor", "damage", "encode", "packet", "worker", "client",
          "agent")  # fmt: skip


def scroll_bodies(count: int = BODY_LINES, width: int = LINE_WIDTH - 9, seed: int = SEED) -> list[bytes]:
    """COUNT log-like line bodies of exactly WIDTH characters, from SEED."""
    rng = random.Random(seed)
    bodies = []
    for _ in range(count):
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 9)))
        text = (f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}."
                f"{rng.randint(0, 999999):06d} {_LEVELS[rng.randint(0, 3)]:5} pid={rng.randint(100, 65535):<5} "
                f"{words} id={rng.getrandbits(64):016x} bytes={rng.randint(0, 10**9)} ")  # fmt: skip
        while len(text) < width:
            text += f"{rng.getrandbits(32):08x} "
        bodies.append(text[:width].encode("ascii"))
    return bodies


def numbered(bodies: list[bytes], first: int, count: int) -> bytes:
    """COUNT lines from running number FIRST (8 digits + space + body), each ending in a newline."""
    size = len(bodies)
    return b"".join(b"%08d %s\n" % (n % 10**8, bodies[n % size]) for n in range(first, first + count))


def format_result(lines: int, seconds: float) -> bytes:
    """The feeder's answer: lines written and seconds it took."""
    return f"{lines} {seconds:.6f}\n".encode("ascii")


def parse_result(line: bytes) -> tuple[int, float]:
    """(lines, seconds) from a result line; ValueError if it is not one."""
    if len(line) > MAX_RESULT_LINE:
        raise ValueError(f"result line longer than {MAX_RESULT_LINE} bytes")
    parts = line.decode("ascii").split()
    if len(parts) != 2:
        raise ValueError(f"result line needs 2 fields, got {len(parts)}")
    lines, seconds = int(parts[0]), float(parts[1])
    if lines < 0 or not 0 < seconds <= MAX_ROUND_SECONDS * 2:
        raise ValueError(f"result out of range: {lines} lines in {seconds} s")
    return lines, seconds


def parse_round(line: bytes) -> float | None:
    """Seconds of the next round from a go line; None for "stop" or EOF."""
    text = line.decode("ascii", "replace").strip()
    if not text or text == "stop":
        return None
    seconds = float(text)
    if not 0 < seconds <= MAX_ROUND_SECONDS:
        raise ValueError(f"round of {seconds} s outside (0, {MAX_ROUND_SECONDS}]")
    return seconds


def feed(out_fd: int, bodies: list[bytes], first: int, seconds: float) -> tuple[int, float]:
    """Write numbered lines to OUT_FD for SECONDS; returns (lines written, seconds taken)."""
    start = time.monotonic()
    deadline = start + seconds
    written = 0
    while time.monotonic() < deadline:
        data = memoryview(numbered(bodies, first + written, LINES_PER_WRITE))
        while data:
            data = data[os.write(out_fd, data):]
        written += LINES_PER_WRITE
    return written, time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--go", required=True, help="FIFO the rounds' lengths come from")
    parser.add_argument("--result", required=True, help="FIFO the results go to")
    args = parser.parse_args(argv)
    bodies = scroll_bodies()
    out = sys.stdout.fileno()
    first = 0
    with open(args.go, "rb") as go, open(args.result, "wb", buffering=0) as result:
        while (seconds := parse_round(go.readline(MAX_RESULT_LINE))) is not None:
            lines, took = feed(out, bodies, first, seconds)
            first += lines
            result.write(format_result(lines, took))
    return 0


if __name__ == "__main__":
    sys.exit(main())

# The session agent's CPU per frame and per 1000 lines on the scroll
# workload (issue 15), ours against a baseline install in the same run:
# bench_scroll.py (1920x1080, xterm 180x50 flooded with distinct lines)
# runs once per install per round, the installs alternated so that load
# changes on the shared machine hit both, and this prints the medians of
# the agent's CPU ms per client frame and CPU-s per 1000 xterm lines (and
# Xvfb's and all processes' CPU per 1000 lines, frames/s, lines/s) with
# the ratios ours/baseline.  CPU time, not wall clock: the machine is
# shared.  Nothing gates.  Run as root after `make install` of both:
#   /opt/sv-NAME/venv/bin/python bench/bench_agent_cpu.py --prefix /opt/sv-NAME \
#       --baseline-prefix /opt/sv-NAME-base [--rounds 3] [--seconds 5]
"""Agent CPU per frame / per 1000 lines on the scroll workload: ours vs a baseline install."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from typing import Final

BENCH_DIR: Final = os.path.dirname(os.path.abspath(__file__))
# The client columns of bench_scroll's table this bench reads.
CLIENTS: Final = ("with library", "with viewer")
# bench_scroll's rows read, by their label.
ROWS: Final = ("frames/s at the client", "lines/s through the xterm", "CPU-s agent", "CPU-s Xvfb", "CPU-s all")
# One bench_scroll run may take this long before it is abandoned (s).
RUN_TIMEOUT: Final = 600


def parse(table: str) -> tuple[float, dict[str, dict[str, float]]]:
    """(window seconds, {client column: {row label: value}}) of bench_scroll's report."""
    seconds = 0.0
    values: dict[str, dict[str, float]] = {client: {} for client in CLIENTS}
    columns: list[str] = []
    for line in table.splitlines():
        if line.startswith("scroll workload"):
            columns = [name.strip() for name in line[len("scroll workload"):].split("  ") if name.strip()]
        elif line.startswith("means of windows of "):
            seconds = float(line[len("means of windows of "):].split()[0])
        for label in ROWS:
            if line.startswith(label + "  ") and columns:
                cells = line[len(label):].split()
                for client in CLIENTS:
                    if client in columns and columns.index(client) < len(cells):
                        values[client][label] = float(cells[columns.index(client)])
    return seconds, values


def figures(seconds: float, row: dict[str, float]) -> dict[str, float]:
    """The derived per-frame and per-1000-lines figures of one client column."""
    frames = row["frames/s at the client"] * seconds
    lines = row["lines/s through the xterm"] * seconds
    return {
        "agent CPU ms per frame": 1000 * row["CPU-s agent"] / max(frames, 1),
        "agent CPU ms per 1000 lines": 1e6 * row["CPU-s agent"] / max(lines, 1),
        "Xvfb CPU ms per 1000 lines": 1e6 * row["CPU-s Xvfb"] / max(lines, 1),
        "all CPU ms per 1000 lines": 1e6 * row["CPU-s all"] / max(lines, 1),
        "agent CPU-s per 10 s": 10 * row["CPU-s agent"] / seconds,
        "frames/s": row["frames/s at the client"],
        "lines/s": row["lines/s through the xterm"],
    }


def run_once(prefix: str, seconds: float, viewer: bool) -> tuple[float, dict[str, dict[str, float]]]:
    """One bench_scroll run (one pair) against the install at prefix."""
    env = dict(os.environ, SESSIOND_PREFIX=prefix)
    command = [sys.executable, os.path.join(BENCH_DIR, "bench_scroll.py"), "--pairs", "1",
               "--seconds", str(seconds), *([] if viewer else ["--no-viewer"])]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench_scroll against {prefix} failed:\n{done.stderr[-3000:]}")
    print(done.stdout, file=sys.stderr)
    return parse(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prefix", required=True, help="our install")
    parser.add_argument("--baseline-prefix", required=True, help="the baseline install")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="bench_scroll's measured window (s)")
    parser.add_argument("--no-viewer", action="store_true", help="the client library only")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 10 or not 0 < args.seconds <= 60:
        parser.error("--rounds must be in [1, 10] and --seconds in (0, 60]")
    load = os.getloadavg()
    results: dict[str, dict[str, dict[str, list[float]]]] = {"ours": {}, "base": {}}
    for number in range(args.rounds):
        order = (("base", args.baseline_prefix), ("ours", args.prefix))
        for name, prefix in order if number % 2 == 0 else order[::-1]:
            seconds, table = run_once(prefix, args.seconds, not args.no_viewer)
            for client, row in table.items():
                if len(row) == len(ROWS):
                    for key, value in figures(seconds, row).items():
                        results[name].setdefault(client, {}).setdefault(key, []).append(value)
    print(f"agent CPU on the scroll workload, {args.rounds} rounds alternated, medians; "
          f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, at end "
          + " ".join(f"{value:.2f}" for value in os.getloadavg()))
    print(f"ours {args.prefix}, baseline {args.baseline_prefix}")
    for client in CLIENTS:
        if client not in results["ours"] or client not in results["base"]:
            continue
        print(f"\n{client:30s} {'baseline':>10s} {'ours':>10s} {'ratio':>7s}")
        for key, ours in results["ours"][client].items():
            base = statistics.median(results["base"][client][key])
            mine = statistics.median(ours)
            print(f"{key:30s} {base:10.3f} {mine:10.3f} {mine / base if base else 0:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

# What bench_viewer_ab.py and bench_relay_ab.py share: one run of the peer
# harness (../shared/peers/xpra_baseline.py, the 5 s xterm scroll through
# `svclient view`, bench/peers_viewer_backend.py) per install and round, the
# two installs alternating, and the medians of both with their ratio. Each
# bench samples its own process beside the run (the viewer's threads, the
# daemon's) and reads what it needs from the harness's JSON.
"""Two installs through the peer harness, alternating: the runs and the median table."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
# The peer harness beside the checkout (shared/ next to the repository), as in ../shared/peers/README.md.
HARNESS = os.path.join(HERE, "..", "..", "shared", "peers", "xpra_baseline.py")
BACKEND = os.path.join(HERE, "peers_viewer_backend.py")
# The harness's scroll window (its --scroll-secs default) and the samplers' period.
SCROLL_SECONDS = 5.0
SAMPLE_SECONDS = 0.1
# A run gives up after this long.
RUN_TIMEOUT_SECONDS = 300


def ab_parser(description: str | None, display: int, port: int, workdir: str) -> argparse.ArgumentParser:
    """The arguments both benches take (defaults: each bench's own display, port and work directory)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--base", required=True, help="the baseline install's prefix")
    parser.add_argument("--new", required=True, help="the new install's prefix")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--display", type=int, default=display, help="server display N (the client's is N+1)")
    parser.add_argument("--port", type=int, default=port, help="server port (the harness's proxy is port+1)")
    parser.add_argument("--workdir", default=workdir)
    parser.add_argument("--harness", default=HARNESS, help="the peer harness's xpra_baseline.py")
    return parser


def rounds(args: argparse.Namespace, swap: bool) -> Iterator[tuple[int, str, str]]:
    """(round, label, prefix): base and new in turn, ROUNDS times; with SWAP the order is reversed every other round."""
    order = (("base", args.base), ("new", args.new))
    for round_ in range(args.rounds):
        for label, prefix in order[::-1] if swap and round_ % 2 else order:
            yield round_, label, prefix


def harness_run(prefix: str, args: argparse.Namespace, workdir: str, **env: str) -> dict[str, Any]:
    """One harness run of PREFIX's install in WORKDIR (ENV added to ours): its JSON's run."""
    out = os.path.join(workdir, "run.json")
    subprocess.run([sys.executable, args.harness, "--runs", "1", "--warmup", "0", "--backend-file", BACKEND,
                    "--display", str(args.display), "--port", str(args.port), "--workdir", workdir, "--json", out],
                   env=dict(os.environ, SESSIOND_PREFIX=prefix, **env), stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=RUN_TIMEOUT_SECONDS, check=True)  # fmt: skip
    with open(out) as handle:
        run: dict[str, Any] = json.load(handle)["runs"][0]
    return run


def print_medians(results: dict[str, list[dict[str, float]]], rows: tuple[tuple[str, str], ...], width: int,
                  digits: int) -> None:  # fmt: skip
    """Per row (key, what): the median of base and of new, and new/base."""
    for key, what in rows:
        base = statistics.median(r[key] for r in results["base"])
        new = statistics.median(r[key] for r in results["new"])
        ratio = f"{new / base:.2f}x" if base else "-"
        print(f"median {what:{width}s} base {base:{digits + 5}.{digits}f}  new {new:{digits + 5}.{digits}f}  "
              f"new/base {ratio}")  # fmt: skip

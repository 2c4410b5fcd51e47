# What the root daemon spends to relay a session's display, before and after
# the frame relay (issue 11), measured in one run on one machine:
#
#   1. real: the full-screen redraw workload (bench_spine's redraw app at
#      1920x1080 through a counting proxy) against sessiond installed under
#      two prefixes, alternated run by run (A B B A ...) so load hits both;
#      reported as sessiond's CPU milliseconds per MiB it relayed, and fps;
#   2. in-process: bench/relay_micro.py run by each prefix's Python, timing
#      only sessiond's two Connections while ~1 MiB REGION frames pass, and
#      the peak of extra memory held per frame (what the copies cost).
#
# Ratios are new / old; below 1 means the new version spends less. Nothing
# here gates anything. Run as root (it creates a user):
#   /opt/sessiond/venv/bin/python bench/bench_relay.py --old /opt/sv-old [--new /opt/sessiond]
# where the old prefix is an install of the version to compare against
# (`make install PREFIX=/opt/sv-old BINDIR=/tmp/sv-old-bin` from its checkout).
"""Relay cost of sessiond before/after: CPU per relayed MiB, copies per frame."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, task

import spine_server
from bench_spine import REDRAW_APP_ID, REPO, SCREEN, SHARED_APP_DIR, publish_bench_apps, redraw_visible
from byte_proxy import CountingProxy
from client.known_hosts import KnownHosts
from spine_server import BenchUsers, run_bench
from spine_workloads import cpu_seconds, open_session, within

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
# Warm-up before counting, so the app fills the screen and pacing settles.
WARMUP_SECONDS = 1.0
MIB = 1 << 20


@dataclass
class RealRun:
    """One redraw run against one prefix."""

    prefix: str
    seconds: float
    frames: int
    relayed: int  # bytes both ways through the proxy (TLS included)
    sessiond_cpu: float

    @property
    def cpu_ms_per_mib(self) -> float:
        return 1000 * self.sessiond_cpu / max(self.relayed / MIB, 1e-9)


async def real_run(reactor: Any, prefix: str, tmp: str, apps: str, user: Any, seconds: float) -> RealRun:
    """Start PREFIX's sessiond, run the redraw app for SECONDS, stop it."""
    spine_server.VENV_BIN = os.path.join(prefix, "venv", "bin")
    run_dir = tempfile.mkdtemp(dir=tmp)
    server = await spine_server.start_sessiond(reactor, run_dir, *SCREEN, [os.path.join(REPO, "conf", "apps"), apps])
    proxy = CountingProxy(reactor, server.host, server.port)
    port = proxy.listen()
    client = None
    try:
        known = KnownHosts(os.path.join(run_dir, "known_hosts"))
        client = await open_session(reactor, "127.0.0.1", port, known, user, REDRAW_APP_ID, redraw_visible)
        await task.deferLater(reactor, WARMUP_SECONDS, lambda: None)
        frames = 0
        counting = True

        async def count() -> None:
            nonlocal frames
            while counting:
                await client.next_frame()
                frames += 1

        counter = defer.ensureDeferred(count())
        counter.addErrback(lambda f: f.trap(defer.CancelledError))
        cpu0, bytes0, t0 = cpu_seconds(server.pid), proxy.count(), time.perf_counter()
        await task.deferLater(reactor, seconds, lambda: None)
        cpu1, bytes1, t1 = cpu_seconds(server.pid), proxy.count(), time.perf_counter()
        counting = False
        counter.cancel()
        return RealRun(prefix, t1 - t0, frames, (bytes1 - bytes0).total, cpu1 - cpu0)
    finally:
        if client is not None:
            client.disconnect()
        await proxy.close()
        await within(reactor, server.stop(reactor), "sessiond to stop", 30)


def micro(prefix: str) -> dict[str, Any]:
    """bench/relay_micro.py under PREFIX's Python (its own protocol/)."""
    python = os.path.join(prefix, "venv", "bin", "python")
    out = subprocess.run([python, os.path.join(BENCH_DIR, "relay_micro.py")], capture_output=True, text=True,
                         timeout=300, cwd="/")  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"relay_micro under {prefix} failed:\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def report(old: str, new: str, runs: list[RealRun], micros: dict[str, list[dict[str, Any]]]) -> str:
    med = statistics.median
    lines = [f"relay bench, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; nproc {os.cpu_count()}; "
             f"load average {os.getloadavg()[0]:.2f}; old = {old}, new = {new}", ""]  # fmt: skip
    rows = []
    for label, value in (
        ("sessiond CPU ms per relayed MiB (redraw, real)",
         lambda p: med(r.cpu_ms_per_mib for r in runs if r.prefix == p)),
        ("redraw frames/s at the client", lambda p: med(r.frames / r.seconds for r in runs if r.prefix == p)),
        ("relayed MB/s (both ways, TLS)", lambda p: med(r.relayed / r.seconds / 1e6 for r in runs if r.prefix == p)),
        ("root relay CPU ms per MiB (in-process)", lambda p: med(m["cpu_ms_per_mib"] for m in micros[p])),
        ("peak extra bytes per 1 MiB frame (in-process)",
         lambda p: med(m["peak_extra_bytes_per_frame"] for m in micros[p])),
    ):  # fmt: skip
        a, b = value(old), value(new)
        rows.append((label, f"{a:.3g}", f"{b:.3g}", f"{b / a:.3g}x" if a else "n/a"))
    widths = [max(len(r[i]) for r in rows + [("workload", "old", "new", "new/old")]) for i in range(4)]
    for row in [("workload", "old", "new", "new/old"), *rows]:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
    lines.append("")
    lines.append("runs: " + "; ".join(f"{'old' if r.prefix == old else 'new'} {r.cpu_ms_per_mib:.2f} ms/MiB "
                                      f"{r.frames / r.seconds:.1f} fps" for r in runs))  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--old", required=True, help="prefix of the version to compare against")
    parser.add_argument("--new", default=os.environ.get("SESSIOND_PREFIX", "/opt/sessiond"))
    parser.add_argument("--runs", type=int, default=3, help="redraw runs per version (alternated)")
    parser.add_argument("--seconds", type=float, default=5.0, help="counting window of each redraw run")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_relay: run as root (it creates a user and starts sessiond)", file=sys.stderr)
        return 2
    micros = {p: [micro(p) for _ in range(3)] for p in (args.old, args.new)}

    async def work(reactor: Any, tmp: str, users: BenchUsers) -> None:
        apps = publish_bench_apps(tmp)
        user = users.create("svb-relay")
        runs: list[RealRun] = []
        for index in range(args.runs):
            order = (args.old, args.new) if index % 2 == 0 else (args.new, args.old)
            for prefix in order:
                print(f"redraw run {index + 1}/{args.runs} on {prefix} ...", file=sys.stderr, flush=True)
                runs.append(await real_run(reactor, prefix, tmp, apps, user, args.seconds))
        print(report(args.old, args.new, runs, micros))

    return run_bench("bench_relay", "svbench-relay-", work, remove=(SHARED_APP_DIR,))

if __name__ == "__main__":
    sys.exit(main())

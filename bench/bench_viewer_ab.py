# The native viewer's CPU per scroll repaint, two installs in one sitting
# (issue 15): the peer harness's run (../shared/peers/xpra_baseline.py with
# bench/peers_viewer_backend.py: xterm 180x50 scrolling distinct text for
# 5 s, the viewer's repaints counted with XDamage on the client display) is
# run alternately with the baseline install and the new one, ROUNDS times
# each. Each run gives the viewer's CPU-s over the scroll (the harness's
# own figure) and its repaints; a sampler beside it reads the viewer's
# threads from /proc/<pid>/task/*/stat every 0.1 s (CPU time, not py-spy's
# samples, which count a thread waiting for a CPU as busy) and splits the
# busiest 5 s of the run (the scroll) into the GUI (main) thread and the
# others (the reactor). Prints per run and the medians, and new/base ratios.
#
# Why runs and not frames: the viewer's cost per repaint includes TLS,
# the protocol, Qt's event loop and the X server round trips, which
# bench_viewer_paint.py (one process, no network) leaves out. The server
# side is each install's own; the ratio is meaningful where the two differ
# only in client/.
#   python3 bench/bench_viewer_ab.py --base /opt/sv-base --new /opt/sv-new [--rounds 3] [--display 322 --port 15410]
#       [--harness ../shared/peers/xpra_baseline.py]
"""Viewer CPU ms per scroll repaint, baseline install against new, alternating runs (medians, ratios)."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

from harness_ab import SAMPLE_SECONDS, SCROLL_SECONDS, ab_parser, harness_run, print_medians, rounds

# Seconds after the viewer appears that are never the scroll (its start: imports, login, first frame).
START_SECONDS = 4.0


class ThreadSampler:
    """CPU seconds of each thread of the viewer whose argv names WORKDIR, sampled until it ends."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir.encode()
        self.rows: list[tuple[float, dict[int, float]]] = []
        self.tick = os.sysconf("SC_CLK_TCK")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _find(self) -> int | None:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as handle:
                    argv = handle.read().split(b"\0")
            except OSError:
                continue
            if any(arg.endswith(b"svclient") for arg in argv[:2]) and b"view" in argv and \
                    any(self.workdir in arg for arg in argv):  # fmt: skip
                return int(name)
        return None

    def _run(self) -> None:
        pid = None
        while pid is None and not self.stop.is_set():
            pid = self._find()
            time.sleep(SAMPLE_SECONDS / 2)
        while pid is not None and not self.stop.is_set():
            row: dict[int, float] = {}
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{tid}/stat") as handle:
                        fields = handle.read().rsplit(")", 1)[1].split()
                    row[int(tid)] = (int(fields[11]) + int(fields[12])) / self.tick
            except OSError:
                return  # the viewer ended
            self.rows.append((time.monotonic(), row))
            time.sleep(SAMPLE_SECONDS)

    def scroll_split(self) -> tuple[float, float]:
        """(main thread CPU-s, other threads' CPU-s) over the busiest SCROLL_SECONDS after the start."""
        self.stop.set()
        self.thread.join()
        rows = [r for r in self.rows if self.rows and r[0] >= self.rows[0][0] + START_SECONDS]
        best = (0.0, 0.0, -1.0)
        for i, (start, first) in enumerate(rows):
            j = next((j for j in range(i, len(rows)) if rows[j][0] >= start + SCROLL_SECONDS), None)
            if j is None:
                break
            last = rows[j][1]
            main = min(last)
            used = {tid: cpu - first.get(tid, 0.0) for tid, cpu in last.items()}
            total = sum(used.values())
            if total > best[2]:
                best = (used.get(main, 0.0), total - used.get(main, 0.0), total)
        return best[0], best[1]


def run_once(prefix: str, args: argparse.Namespace, label: str) -> dict[str, float]:
    """One harness run of PREFIX's install: repaints, viewer CPU-s, its thread split."""
    workdir = os.path.join(args.workdir, label)
    os.makedirs(workdir, exist_ok=True)
    sampler = ThreadSampler(workdir)
    run = harness_run(prefix, args, workdir)
    gui, others = sampler.scroll_split()
    repaints = run["scroll_client_damage_events_per_s"] * run["scroll_secs"]  # XDamage on the viewer's window
    cpu = run["scroll_cpu_s"]["client"]
    return {"repaints": repaints, "cpu": cpu, "ms": 1000 * cpu / max(repaints, 1),
            "gui_ms": 1000 * gui / max(repaints, 1), "other_ms": 1000 * others / max(repaints, 1)}


def main(argv: list[str] | None = None) -> int:
    args = ab_parser(__doc__, 322, 15410, "/tmp/bench-viewer-ab").parse_args(argv)
    results: dict[str, list[dict[str, float]]] = {"base": [], "new": []}
    print(f"viewer CPU per scroll repaint, {args.rounds} rounds alternating; load average {os.getloadavg()[0]:.1f}")
    for round_, label, prefix in rounds(args, swap=False):
        one = run_once(prefix, args, f"{label}-{round_}")
        results[label].append(one)
        print(f"round {round_ + 1} {label:4s}: {one['repaints']:5.0f} repaints, viewer {one['cpu']:.2f} CPU-s, "
              f"{one['ms']:.2f} ms/repaint (GUI thread {one['gui_ms']:.2f}, others {one['other_ms']:.2f}); "
              f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    rows = (("ms", "ms/repaint"), ("gui_ms", "GUI thread ms/repaint"), ("other_ms", "other threads ms/repaint"),
            ("repaints", "repaints in 5 s"))  # fmt: skip
    print_medians(results, rows, 26, 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

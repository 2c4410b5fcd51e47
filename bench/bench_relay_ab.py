# The daemon's CPU per relayed frame during a scroll, two installs in one
# sitting: the peer harness's run (../shared/peers/xpra_baseline.py with
# bench/peers_viewer_backend.py: xterm 180x50 scrolling distinct text for
# 5 s, watched by the native viewer) alternately with the baseline install
# and the new one, ROUNDS times each. Beside each run a sampler reads the
# daemon's threads (`sessiond run`, the root process that relays every
# frame between the agent and the client) from /proc/<pid>/task/*/schedstat
# every 0.1 s (nanoseconds of CPU, not the 10 ms ticks of /proc/<pid>/stat)
# and follows the agent's log, where SESSIOND_FRAME_TRACE=1 (set here) makes
# the agent mark "out" for every frame it hands to the link. The 5 s in
# which the agent sent the most frames (the scroll) give the daemon's CPU-s,
# split into its main (reactor) thread and the others, and the frames sent
# in that window: the daemon's CPU per relayed frame. Prints per run, the medians
# and new/base ratios.
#
# Why not the harness's own scroll_cpu_s: it is in 10 ms ticks (the daemon
# uses ~0.2-0.3 s in the scroll) and it has no frame count; the repaints the
# viewer makes are fewer than the frames relayed when the viewer falls behind.
#   python3 bench/bench_relay_ab.py --base /opt/sv-base --new /opt/sv-new [--rounds 3] \
#       [--display 340 --port 15500] [--harness ../shared/peers/xpra_baseline.py]
"""Daemon CPU per relayed scroll frame, baseline install against new, alternating runs (medians, ratios)."""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
import time

from harness_ab import SAMPLE_SECONDS, SCROLL_SECONDS, ab_parser, harness_run, print_medians, rounds

# The agent's FrameTrace line of a frame handed to the link (sessiond/agent/frame_trace.py).
OUT_MARK = re.compile(rb"^frame-trace out (\d+\.\d+)$", re.MULTILINE)


class DaemonSampler:
    """CPU ns of each thread of the daemon whose config is under WORKDIR, and
    the agent's "out" marks, sampled until the daemon ends."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir.encode()
        self.rows: list[tuple[float, dict[int, int]]] = []
        self.outs: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _find(self) -> tuple[int, str] | None:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as handle:
                    argv = handle.read().split(b"\0")
            except OSError:
                continue
            # `sessiond run --config WORKDIR/...`, through the venv's python or not
            for at in range(min(2, len(argv) - 3)):
                if argv[at].endswith(b"/sessiond") and argv[at + 1: at + 3] == [b"run", b"--config"] and \
                        argv[at + 3].startswith(self.workdir):  # fmt: skip
                    return int(name), argv[at + 3].decode()
        return None

    def _runtime_dir(self, config: str) -> str | None:
        try:
            with open(config) as handle:
                for line in handle:
                    key, _, value = line.partition("=")
                    if key.strip() == "runtime_dir":
                        return value.strip()
        except OSError:
            pass
        return None

    def _agent_logs(self, runtime: str | None, open_logs: dict[str, object]) -> None:
        if runtime is None:
            return
        for root, _dirs, files in os.walk(runtime):
            if "agent.log" in files:
                path = os.path.join(root, "agent.log")
                if path not in open_logs:
                    try:
                        open_logs[path] = open(path, "rb")  # noqa: SIM115 - read while the daemon deletes it
                    except OSError:
                        pass

    def _run(self) -> None:
        found = None
        while found is None and not self.stop.is_set():
            found = self._find()
            time.sleep(SAMPLE_SECONDS / 2)
        if found is None:
            return
        pid, config = found
        runtime = self._runtime_dir(config)
        logs: dict[str, object] = {}
        tails: dict[str, bytes] = {}
        while not self.stop.is_set():
            self._agent_logs(runtime, logs)
            for path, handle in logs.items():
                data = tails.get(path, b"") + handle.read()  # type: ignore[attr-defined]
                cut = data.rfind(b"\n") + 1
                tails[path] = data[cut:]
                self.outs.extend(float(m) for m in OUT_MARK.findall(data[:cut]))
            row: dict[int, int] = {}
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{tid}/schedstat") as handle:
                        row[int(tid)] = int(handle.read().split()[0])
            except OSError:
                break  # the daemon ended
            self.rows.append((time.monotonic(), row))
            time.sleep(SAMPLE_SECONDS)
        for handle in logs.values():
            handle.close()  # type: ignore[attr-defined]

    def scroll(self, pid_main: bool = True) -> tuple[float, float, int]:
        """(main thread CPU-s, other threads' CPU-s, frames out) over the SCROLL_SECONDS in which the
        agent sent the most frames (the scroll; the daemon's busiest seconds are the login's)."""
        self.stop.set()
        self.thread.join()
        rows = self.rows
        best = (0.0, 0.0, -1, 0.0)
        for i, (start, first) in enumerate(rows):
            j = next((j for j in range(i, len(rows)) if rows[j][0] >= start + SCROLL_SECONDS), None)
            if j is None:
                break
            end, last = rows[j]
            main = min(last)  # the process's first thread: the reactor
            used = {tid: (ns - first.get(tid, 0)) / 1e9 for tid, ns in last.items()}
            total = sum(used.values())
            frames = sum(1 for t in self.outs if start <= t < end)
            if (frames, total) > (best[2], best[3]):
                best = (used.get(main, 0.0), total - used.get(main, 0.0), frames, total)
        return best[0], best[1], max(best[2], 0)


def run_once(prefix: str, args: argparse.Namespace, label: str) -> dict[str, float]:
    """One harness run of PREFIX's install: the daemon's CPU-s in the scroll, frames relayed, per frame."""
    workdir = os.path.join(args.workdir, label)
    os.makedirs(workdir, exist_ok=True)
    sampler = DaemonSampler(workdir)
    run = harness_run(prefix, args, workdir, SESSIOND_FRAME_TRACE="1")
    main, others, frames = sampler.scroll()
    cpu = main + others
    return {"frames": frames, "cpu": cpu, "ms": 1000 * cpu / max(frames, 1), "main_ms": 1000 * main / max(frames, 1),
            "other_ms": 1000 * others / max(frames, 1), "kBps": run["scroll_s2c_Bps"] / 1000,
            "harness_cpu": run["scroll_cpu_s"].get("daemon") or 0.0}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = ab_parser(__doc__, 340, 15500, "/tmp/bench-relay-ab").parse_args(argv)
    results: dict[str, list[dict[str, float]]] = {"base": [], "new": []}
    print(f"daemon CPU per relayed scroll frame, {args.rounds} rounds alternating; "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    for round_, label, prefix in rounds(args, swap=True):
        one = run_once(prefix, args, f"{label}-{round_}")
        results[label].append(one)
        print(f"round {round_ + 1} {label:4s}: {one['frames']:5.0f} frames, daemon {one['cpu']:.3f} CPU-s "
              f"(harness {one['harness_cpu']:.2f}), {one['ms']:.3f} ms/frame (main thread {one['main_ms']:.3f}, "
              f"others {one['other_ms']:.3f}), {one['kBps']:.0f} kB/s; load {os.getloadavg()[0]:.1f}",
              flush=True)  # fmt: skip
    rows = (("ms", "ms/frame"), ("main_ms", "main thread ms/frame"), ("other_ms", "other threads ms/frame"),
            ("frames", "frames in the 5 s"), ("cpu", "daemon CPU-s"))  # fmt: skip
    print_medians(results, rows, 24, 3)
    return 0


if __name__ == "__main__":
    sys.exit(main())

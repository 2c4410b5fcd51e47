# Benchmark of the native viewer (`svclient view`, client/viewer/) showing a
# 1080p test video: ffplay of lavfi testsrc (bench_video.SOURCES) in a real
# seamless session, the viewer on a 1920x1080 client Xvfb of its own on the
# same machine, decoding and painting every frame.  bench_video.py measures
# the agent with a raw client library; this one measures what a user of the
# main client sees: frames the viewer painted per second (its LatencyTrace's
# "painted" marks, SVCLIENT_VIEWER_TRACE), frames it received (FRAME_END,
# the trace's "frame"), Mbit/s of everything that crossed the TCP connection
# (TLS included, through a counting forwarder in this process), the player's
# own rate (ffplay -stats: the ceiling under the same load), the agent's
# stages and target bitrate (its "video stream" reports) and CPU per process.
#
# --baseline-prefix runs the same on another installation (viewer and server
# of it) in the same run; --rounds alternates the two, --load N runs N CPU
# burners through every run (bench/cpu_load.py).  Run as root:
#   SESSIOND_PREFIX=/opt/sv-video /opt/sv-video/venv/bin/python bench/bench_video_viewer.py \
#       --baseline-prefix /opt/sv-video-base --rounds 3 [--load 3]
"""Video through the native viewer: painted fps and Mbit/s of a 1080p test video, baseline vs change."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
import spine_server  # noqa: E402  (also puts tests/ on sys.path)
import svtest  # noqa: E402
from bench_video import PLAYER_STATUS, SOURCES, VIDEO_FPS, WARMUP_SECONDS  # noqa: E402
from bench_viewer import cpu_seconds, read_trace  # noqa: E402
from cpu_load import start_load, stop_load  # noqa: E402
from video_cpu import AgentLogs, CpuSample, PlayerStatus, agent_stages  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(BENCH_DIR), "tests", "integration"))
from viewer_desktop import ClientDesktop  # noqa: E402
from viewer_session import GatedProxy  # noqa: E402

CLIENT_SCREEN = (1920, 1080)
START_TIMEOUT = 90.0
# Seconds after ffplay's status file appears before the warm-up starts (its window maps, the stream starts).
PLAYER_SETTLE_SECONDS = 3.0
STOP_TIMEOUT = 30.0


class _Counted:
    """A socket whose received bytes are added to its forwarder's `down`."""

    def __init__(self, sock: socket.socket, forwarder: CountingForwarder) -> None:
        self.sock, self.forwarder = sock, forwarder

    def recv(self, size: int) -> bytes:
        data = self.sock.recv(size)
        self.forwarder.down += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


class CountingForwarder(GatedProxy):
    """127.0.0.1:port forwarded to sessiond (viewer_session.GatedProxy, always open), counting
    the bytes sessiond sends."""

    def __init__(self, target_port: int) -> None:
        self.down = 0  # bytes from sessiond to the client
        super().__init__(target_port)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:  # type: ignore[override]
        from_server = source.getpeername()[1] == self.target_port
        GatedProxy._pump(_Counted(source, self) if from_server else source, sink)  # type: ignore[arg-type]


@dataclass
class Run:
    """What one viewer run measured."""

    painted: int = 0  # the viewer's paint events in the window
    received: int = 0  # FRAME_ENDs the viewer's library received in the window
    down_bytes: int = 0
    viewer_cpu: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)
    shown: tuple[float, int] | None = None
    agent_log: str = ""


def _in(moments: list[float], start: float, end: float) -> int:
    return sum(1 for moment in moments if start <= moment < end)


def measure(directory: str, server: svtest.Server, user: svtest.TestUser, prefix: str,
            args: argparse.Namespace) -> Run:  # fmt: skip
    """Play the video in user's seamless session, shown by the viewer of `prefix`."""
    desktop = ClientDesktop(*CLIENT_SCREEN)
    forwarder = CountingForwarder(server.port)
    trace_path = os.path.join(directory, "viewer-trace")
    argv = [os.path.join(prefix, "venv", "bin", "svclient"), "--server", f"127.0.0.1:{forwarder.port}",
            "--user", user.name, "--password-file", user.password_file,
            "--known-hosts", os.path.join(directory, "known_hosts"), "--token-dir", os.path.join(directory, "tokens"),
            "--no-resume", "view", "--launch", "xterm"]  # fmt: skip
    log = open(os.path.join(directory, "viewer.log"), "wb")  # noqa: SIM115 - closed below
    view = subprocess.Popen(argv, env=dict(desktop.env, SVCLIENT_VIEWER_TRACE=trace_path), stdout=log, stderr=log)
    try:
        def xterm() -> str:
            return (desktop.run("xdotool", "search", "--onlyvisible", "--name", "@").stdout.split() or ["0"])[0]

        window = int(desktop.wait_for(lambda: int(xterm()), START_TIMEOUT, "the viewer's xterm"))
        desktop.run("xdotool", "windowactivate", "--sync", str(window))
        time.sleep(1.0)
        graph = SOURCES[args.source].format(w=1920, h=1080, fps=VIDEO_FPS, seconds=int(60 + args.seconds))
        desktop.run("xdotool", "type", "--delay", "5",
                    f"exec ffplay -stats -loglevel error -an -noborder -left 0 -top 0 -f lavfi '{graph}'"
                    f" 2>{PLAYER_STATUS}")  # fmt: skip
        desktop.run("xdotool", "key", "Return")
        player = PlayerStatus(user.name, PLAYER_STATUS, VIDEO_FPS)
        desktop.wait_for(player._status, START_TIMEOUT, "ffplay's status line")  # noqa: SLF001 - bench helper
        time.sleep(PLAYER_SETTLE_SECONDS + WARMUP_SECONDS)
        cpu, logs = CpuSample(user.name, server.process.pid), AgentLogs(server.runtime_dir)
        logs.mark()
        player.mark()
        cpu.start()
        down0, vcpu0, t0 = forwarder.down, cpu_seconds(view.pid), time.monotonic()
        time.sleep(args.seconds)
        t1 = time.monotonic()
        run = Run(down_bytes=forwarder.down - down0, viewer_cpu=cpu_seconds(view.pid) - vcpu0)
        run.cpu, run.shown = cpu.stop(), player.shown()
        run.stages = agent_stages(logs.since_mark())[0]
        run.agent_log = logs.since_mark()  # with SESSIOND_FRAME_TRACE=1: where the agent's frames waited
    finally:
        view.send_signal(signal.SIGINT)
        try:
            view.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            view.kill()
            view.wait()
        log.close()
        forwarder.stop()
        desktop.stop()
    trace = read_trace(trace_path)
    run.painted, run.received = _in(trace.get("painted", []), t0, t1), _in(trace.get("frame", []), t0, t1)
    return run


def run_variant(tmp: str, users: spine_server.BenchUsers, index: int, prefix: str, args: argparse.Namespace) -> Run:
    """One measurement on a sessiond and viewer of the installation at `prefix`, under the bench's load."""
    directory = os.path.join(tmp, str(index))
    os.makedirs(directory)
    burners = start_load(args.load, args.load_in_sessions)
    installed = svtest.VENV_BIN
    svtest.VENV_BIN = os.path.join(prefix, "venv", "bin")  # start_sessiond runs sessiond from here
    try:
        server = svtest.start_sessiond(directory, session="mode = seamless\n",
                                       extra="[display]\nadaptive = false\n" if args.no_adaptive else "")  # fmt: skip
    finally:
        svtest.VENV_BIN = installed
    try:
        user = users.create(f"svb-vview-{index}")
        return measure(directory, server, user, prefix, args)
    finally:
        svtest.stop_sessiond(server)
        stop_load(burners)


def report(rounds: dict[str, list[Run]], args: argparse.Namespace) -> None:
    """Medians per variant (each figure its own median over the rounds), ratios change/baseline."""
    seconds = args.seconds
    print(f"# bench_video_viewer  {time.strftime('%Y-%m-%d %H:%M:%S')}  nproc={os.cpu_count()}  "
          f"kernel={platform.release()}  load={os.getloadavg()[0]:.2f}  source={args.source} 1920x1080 "
          f"{VIDEO_FPS} fps, {seconds:.0f} s measured, median of {args.rounds} round(s), load +{args.load} burners"
          + (" (in a cgroup beside the sessions)" if args.load_in_sessions and args.load else "")
          + (", [display] adaptive = false" if args.no_adaptive else ""))  # fmt: skip
    print("per round (painted fps): " + "; ".join(
        f"{name} " + " ".join(f"{r.painted / seconds:.1f}" for r in runs) for name, runs in rounds.items()))
    cols = ("painted/s", "recv/s", "Mbit/s", "shown/s", "viewer ms/f", "agent ms/f", "Xvfb ms/f", "ffplay ms/f",
            "kbit/s", "keys")  # fmt: skip
    print(f"{'variant':<12} " + " ".join(f"{c:>11}" for c in cols))
    table: dict[str, list[float]] = {}
    for name, runs in rounds.items():
        def med(values: list[float]) -> float:
            return statistics.median(values) if values else float("nan")

        frames = [max(1, r.painted) for r in runs]
        row = [med([r.painted / seconds for r in runs]), med([r.received / seconds for r in runs]),
               med([r.down_bytes * 8 / seconds / 1e6 for r in runs]),
               med([r.shown[0] / seconds for r in runs if r.shown is not None]),
               med([r.viewer_cpu * 1000 / f for r, f in zip(runs, frames)]),
               med([r.cpu.get("agent", 0.0) * 1000 / f for r, f in zip(runs, frames)]),
               med([r.cpu.get("Xvfb", 0.0) * 1000 / f for r, f in zip(runs, frames)]),
               med([r.cpu.get("ffplay", 0.0) * 1000 / f for r, f in zip(runs, frames)]),
               med([r.stages.get("kbps", float("nan")) for r in runs]),
               med([r.stages.get("keys", float("nan")) for r in runs])]  # fmt: skip
        table[name] = row
        print(f"{name:<12} " + " ".join(f"{v:11.2f}" for v in row))
    if "viewer-base" in table and "viewer" in table:
        base, new = table["viewer-base"], table["viewer"]
        print("ratio viewer/viewer-base: " + ", ".join(
            f"{c} {n / b:.2f}x" for c, b, n in zip(cols, base, new) if b and b == b and n == n))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--source", choices=sorted(SOURCES), default="testsrc", help="the lavfi video played")
    parser.add_argument("--rounds", type=int, default=1, help="runs per variant, alternated (medians)")
    parser.add_argument("--load", type=int, default=0, help="N CPU-burning processes during each run")
    parser.add_argument("--load-in-sessions", action="store_true", help="the burners run beside the sessions' cgroup")
    parser.add_argument("--no-adaptive", action="store_true", help="[display] adaptive = false")
    parser.add_argument("--baseline-prefix", help="also run the viewer and server of this installation")
    args = parser.parse_args()
    if shutil.which("ffplay") is None or shutil.which("xdotool") is None:
        print("ffplay and xdotool are needed (the Makefile's DEB_PACKAGES)", file=sys.stderr)
        return 2
    variants = [("viewer", svtest.PREFIX)]
    if args.baseline_prefix:
        variants.insert(0, ("viewer-base", args.baseline_prefix))
    tmp = tempfile.mkdtemp(prefix="bench-vview-")
    users = spine_server.BenchUsers(tmp)
    rounds: dict[str, list[Run]] = {name: [] for name, _ in variants}
    try:
        for turn in range(args.rounds):
            for step in range(len(variants)):
                name, prefix = variants[(step + turn) % len(variants)]
                rounds[name].append(run_variant(tmp, users, turn * len(variants) + step, prefix, args))
    finally:
        for problem in users.remove_all():
            print("cleanup:", problem, file=sys.stderr)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
    report(rounds, args)
    for name, runs in rounds.items():  # SESSIOND_FRAME_TRACE=1: the agent's marks (where its frames waited)
        for index, run in enumerate(runs):
            if "frame-trace" in run.agent_log or os.environ.get("SESSIOND_FRAME_TRACE") == "1":
                with open(f"/tmp/bench-vview-agent-{name}-{index}.log", "w", encoding="utf-8") as handle:
                    handle.write(run.agent_log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

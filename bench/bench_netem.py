# Benchmark of the display over a slow link (issue 15): typing latency
# against the link's round-trip time, and the scroll frame rate at 10 Mbit/s,
# with [display] adaptive on and off, in the same run, over the same emulated
# link (tests/netem_link.py: 20 ms each way, 10 Mbit/s each way, 1% loss each
# way, on real IP packets; this kernel has no sch_netem, so the link is a TUN
# forwarder in user space).
#
# The client is the real client library in the link's namespace
# (tests/integration/netem_client.py, its own process): it types letters at
# xterm's prompt and times each echo on screen, floods xterm with `seq`
# output and counts frames, then presses Ctrl+C, types a command that paints
# a red block and times the red. Baseline for the typing latency: the link's
# own round trip, measured right before with a TCP ping-pong through it.
#
# Why ratios: absolute times depend on this shared 2-core machine; both
# modes run minutes apart on the same link. Nothing here gates anything.
# Run as root: /opt/sessiond/venv/bin/python bench/bench_netem.py
"""Slow-link benchmark: typing latency vs RTT, scroll fps, adaptive on vs off."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from netem_link import NetemLink  # noqa: E402
from svtest import VENV_BIN, create_user, remove_user, start_sessiond, stop_sessiond  # noqa: E402

DRIVER = os.path.join(REPO, "tests", "integration", "netem_client.py")
DEFAULT_KEYSTROKES = 30
DEFAULT_FLOOD_SECONDS = 10.0
DEFAULT_VIDEO_SECONDS = 10.0
# The link's queue is sampled this often while a client runs.
QUEUE_SAMPLE_SECONDS = 0.25
# TCP round trips through the link for the RTT baseline.
PING_ROUNDS = 30
PING_CODE = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
rtts = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter(); s.sendall(b"p"); s.recv(1); rtts.append(time.perf_counter() - t)
print(sorted(rtts)[len(rtts) // 2])
"""


def link_rtt(link: NetemLink) -> float:
    """Median TCP round trip (1 byte each way) through the link, seconds."""
    server = socket.socket()
    server.bind((link.host_address, 0))
    server.listen(1)

    def echo() -> None:
        conn, _ = server.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := conn.recv(64):
                conn.sendall(data)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    argv = link.inside([sys.executable, "-c", PING_CODE, link.host_address, str(server.getsockname()[1]),
                        str(PING_ROUNDS)])  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    server.close()
    return float(done.stdout.strip())


class QueueSampler(threading.Thread):
    """The link's server -> client queue (packets waiting for the wire),
    sampled every QUEUE_SAMPLE_SECONDS while a client runs."""

    def __init__(self, link: NetemLink) -> None:
        super().__init__(daemon=True)
        self.link = link
        self.samples: list[tuple[float, int, int]] = []  # (monotonic time, packets, bytes)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(QUEUE_SAMPLE_SECONDS):
            depth = self.link.queue_depth()
            if depth is not None:
                self.samples.append((time.monotonic(), depth[0], depth[1]))

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)

    def during(self, start: float, end: float) -> dict[str, float]:
        """Queue depth between START and END: max, mean of the first and of the second half (bytes, packets)."""
        inside = [(at, packets, size) for at, packets, size in self.samples if start <= at <= end]
        middle = (start + end) / 2
        first = [size for at, _, size in inside if at < middle] or [0]
        second = [size for at, _, size in inside if at >= middle] or [0]
        return {"samples": len(inside), "max_packets": max((p for _, p, _ in inside), default=0),
                "max_bytes": max((b for _, _, b in inside), default=0),
                "first_half_bytes": statistics.mean(first), "second_half_bytes": statistics.mean(second)}


def run_mode(link: NetemLink, tmp: str, adaptive: bool, args: argparse.Namespace) -> dict[str, Any]:
    """One sessiond with [display] adaptive = ADAPTIVE, one new user, one client run."""
    mode_dir = tempfile.mkdtemp(prefix=f"adaptive-{adaptive}-", dir=tmp)
    display = f"[display]\nadaptive = {'true' if adaptive else 'false'}\n"
    if args.frames_in_flight:
        display += f"frames_in_flight = {args.frames_in_flight}\n"
    server = start_sessiond(mode_dir, host=link.host_address, session="mode = desktop\n", extra=display)
    user = create_user(f"svb-netem-{'on' if adaptive else 'off'}", mode_dir)
    try:
        argv = link.inside([os.path.join(VENV_BIN, "python"), DRIVER, "--server", f"{server.host}:{server.port}",
                            "--user", user.name, "--password-file", user.password_file, "--known-hosts",
                            os.path.join(mode_dir, "known_hosts"), "--keystrokes", str(args.keystrokes),
                            "--flood-seconds", str(args.flood_seconds), "--video-seconds",
                            str(args.video_seconds), "--save-screen",
                            os.path.join(tmp, f"failed-{adaptive}.png")])  # fmt: skip
        sampler = QueueSampler(link)
        sampler.start()
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        finally:
            sampler.stop()
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        result: dict[str, Any] = json.loads(lines[-1]) if lines else {"error": done.stderr[-2000:]}
        if "error" in result:
            raise RuntimeError(f"adaptive={adaptive}: {result['error']}\n{server.log()[-2000:]}")
        if "flood_started_at" in result:
            result["flood_queue"] = sampler.during(result["flood_started_at"], result["flood_ended_at"])
        return result
    finally:
        stop_sessiond(server)
        remove_user(user.name)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def report(rtt: float, on: dict[str, Any], off: dict[str, Any]) -> str:
    """The table: per mode, typing latency (median, p90, vs RTT), scroll fps, red delay; ratios on/off."""

    def typing(result: dict[str, Any], key: str = "echo_seconds") -> tuple[float, float, int]:
        arrived = sorted(v for v in result[key] if v is not None)
        missed = len(result[key]) - len(arrived)
        p90 = arrived[int(0.9 * (len(arrived) - 1))] if arrived else float("inf")
        return (statistics.median(arrived) if arrived else float("inf")), p90, missed

    rows = [("workload", "adaptive on", "adaptive off", "ratio on/off")]
    (med_on, p90_on, miss_on), (med_off, p90_off, miss_off) = typing(on), typing(off)
    rows.append((f"typing echo, median (link RTT {_ms(rtt)}; goal <= RTT + 10 ms)",
                 f"{_ms(med_on)} (RTT + {_ms(med_on - rtt)})", f"{_ms(med_off)} (RTT + {_ms(med_off - rtt)})",
                 f"{med_on / med_off:.2f}"))  # fmt: skip
    rows.append(("typing echo, p90 / missed", f"{_ms(p90_on)} / {miss_on}", f"{_ms(p90_off)} / {miss_off}",
                 f"{p90_on / p90_off:.2f}"))  # fmt: skip
    if "video_frames" in on and "video_frames" in off:
        (vmed_on, vp90_on, vmiss_on), (vmed_off, vp90_off, vmiss_off) = (typing(r, "video_echo_seconds")
                                                                         for r in (on, off))  # fmt: skip
        rows.append(("typing echo while a video plays beside xterm, median",
                     f"{_ms(vmed_on)} (RTT + {_ms(vmed_on - rtt)})", f"{_ms(vmed_off)} (RTT + {_ms(vmed_off - rtt)})",
                     f"{vmed_on / vmed_off:.2f}"))  # fmt: skip
        rows.append(("  ... p90 / missed", f"{_ms(vp90_on)} / {vmiss_on}", f"{_ms(vp90_off)} / {vmiss_off}",
                     f"{vp90_on / vp90_off:.2f}"))  # fmt: skip
        vfps_on, vfps_off = (r["video_frames"] / r["video_seconds"] for r in (on, off))
        rows.append(("video 480x360 (testsrc + noise, 30 fps), frames/s", f"{vfps_on:.1f}", f"{vfps_off:.1f}",
                     f"{vfps_on / vfps_off:.2f}"))  # fmt: skip
        vk_on, vk_off = (r["video_bytes"] / r["video_seconds"] / 1000 for r in (on, off))
        rows.append(("video, kB/s received (link: 1250 kB/s)", f"{vk_on:.0f}", f"{vk_off:.0f}",
                     f"{vk_on / vk_off:.2f}"))  # fmt: skip
    fps_on, fps_off = (r["flood_frames"] / r["flood_seconds"] for r in (on, off))
    rows.append(("flood scroll, frames/s at 10 Mbit/s (goal >= 20)", f"{fps_on:.1f}", f"{fps_off:.1f}",
                 f"{fps_on / fps_off:.2f}"))  # fmt: skip
    kbps_on, kbps_off = (r["flood_bytes"] / r["flood_seconds"] / 1000 for r in (on, off))
    rows.append(("flood scroll, kB/s received (protocol bytes)", f"{kbps_on:.0f}", f"{kbps_off:.0f}",
                 f"{kbps_on / kbps_off:.2f}"))  # fmt: skip
    q_on, q_off = on.get("flood_queue"), off.get("flood_queue")
    if q_on and q_off:
        def queue(q: dict[str, float]) -> str:
            return (f"max {q['max_bytes'] / 1000:.1f} kB ({q['max_packets']:.0f} pkts); "
                    f"mean {q['first_half_bytes'] / 1000:.1f} -> {q['second_half_bytes'] / 1000:.1f} kB")
        rows.append(("flood: link queue server->client (1st -> 2nd half)", queue(q_on), queue(q_off),
                     f"{(q_on['max_bytes'] + 1) / (q_off['max_bytes'] + 1):.2f}"))  # fmt: skip
    red_on, red_off = on["red_after_seconds"], off["red_after_seconds"]
    rows.append(("Ctrl+C in the flood -> red block on screen", _ms(red_on), _ms(red_off), f"{red_on / red_off:.2f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keystrokes", type=int, default=DEFAULT_KEYSTROKES)
    parser.add_argument("--flood-seconds", type=float, default=DEFAULT_FLOOD_SECONDS)
    parser.add_argument("--video-seconds", type=float, default=DEFAULT_VIDEO_SECONDS)
    parser.add_argument("--off-first", action="store_true", help="run adaptive off before on")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="one-way delay (RTT is twice this)")
    parser.add_argument("--rate-mbit", type=float, default=10.0)
    parser.add_argument("--loss-percent", type=float, default=1.0)
    parser.add_argument("--frames-in-flight", type=int, help="[display] frames_in_flight (default: installed)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_netem: run as root (it creates a namespace, users and sessiond)", file=sys.stderr)
        return 2
    if args.video_seconds > 0 and shutil.which("ffplay") is None:
        print("bench_netem: no ffplay (Debian package ffmpeg): the video workload is skipped", file=sys.stderr)
        args.video_seconds = 0.0
    load = os.getloadavg()[0]
    tmp = tempfile.mkdtemp(prefix="svbench-netem-")
    with NetemLink(args.delay_ms, args.rate_mbit, args.loss_percent) as link:
        rtt = link_rtt(link)
        print(f"link RTT {_ms(rtt)}", file=sys.stderr, flush=True)
        results = {}
        for adaptive in (False, True) if args.off_first else (True, False):
            print(f"adaptive {'on' if adaptive else 'off'} ...", file=sys.stderr, flush=True)
            results[adaptive] = run_mode(link, tmp, adaptive, args)
        on, off = results[True], results[False]
    shutil.rmtree(tmp, ignore_errors=True)  # kept on failure: the client's screen is saved there
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"sessiond slow-link benchmark, {now}; nproc {os.cpu_count()}; link {2 * args.delay_ms:.0f} ms RTT, "
          f"{args.rate_mbit:g} Mbit/s, {args.loss_percent:g}% loss each way (user-space TUN emulation); "
          f"desktop 1024x768, xterm; {args.keystrokes} keystrokes, {args.flood_seconds:g} s flood; "
          f"load average at start {load:.2f}"
          + (f"; frames_in_flight = {args.frames_in_flight}" if args.frames_in_flight else ""))  # fmt: skip
    print(report(rtt, on, off))
    return 0


if __name__ == "__main__":
    sys.exit(main())

# How long `svclient view` takes from its exec to its first TCP connect,
# per installation, in one run.
#
# Why apart from the peer harness: the harness's "start -> first pixels"
# adds the daemon's start, PAM, the sandbox and the app, so on a shared
# 2-core host the viewer's own part drowns in their noise. Here the server
# is a bare TCP listener that only notes when the viewer connected (and then
# closes), so the figure is the viewer's start alone: interpreter, imports,
# display checks, and (before the early connect, client/viewer/early.py)
# PySide6 and the QApplication. The viewer runs on a private Xvfb. The
# installations are run in turn, ROUNDS times, so load changes fall on all.
# Run as root or not:
#   python3 bench/bench_viewer_connect.py --prefix /opt/sv-startup-base --prefix /opt/sv-startup
"""Viewer exec -> first TCP connect, per installation (medians, ratio to the first)."""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

# Seconds a viewer may take to connect before the round counts as failed.
CONNECT_TIMEOUT = 60.0
DEFAULT_ROUNDS = 7


def start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    """A private Xvfb (-displayfd) for the viewer's display checks and Qt."""
    read_fd, write_fd = os.pipe()
    # No abstract socket (-nolisten local): sessions whose Xvfb has the same number in their private /tmp
    # but shares this host's network namespace would collide with it.
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x1024x24", "-nolisten", "tcp",
                             "-nolisten", "local"], pass_fds=(write_fd,), stderr=subprocess.DEVNULL)  # fmt: skip
    os.close(write_fd)
    number = b""
    while not number.endswith(b"\n"):
        chunk = os.read(read_fd, 16)
        if not chunk:
            raise RuntimeError("Xvfb did not start")
        number += chunk
    os.close(read_fd)
    return xvfb, f":{int(number)}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process PID so far (all its threads)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_start(prefix: str, display: str, work: str) -> tuple[float, float]:
    """(seconds from the viewer's exec to its TCP connect, its CPU seconds by then)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(CONNECT_TIMEOUT)
    port = listener.getsockname()[1]
    password = os.path.join(work, "password")
    with open(password, "w", encoding="utf-8") as handle:
        handle.write("unused\n")
    argv = [os.path.join(prefix, "venv", "bin", "svclient"), "--server", f"127.0.0.1:{port}", "--user", "nobody",
            "--password-file", password, "--known-hosts", os.path.join(work, "known_hosts"),
            "--token-dir", os.path.join(work, "tokens"), "--no-resume", "view", "--launch", "xterm"]  # fmt: skip
    env = {**os.environ, "DISPLAY": display}
    env.pop("QT_QPA_PLATFORM", None)
    started = time.monotonic()
    viewer = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn, _ = listener.accept()
        took = time.monotonic() - started
        cpu = cpu_seconds(viewer.pid)
        conn.close()
    finally:
        listener.close()
        viewer.kill()
        viewer.wait()
    return took, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prefix", action="append", required=True, help="an installation (repeat; first = baseline)")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    xvfb, display = start_xvfb()
    times: dict[str, list[tuple[float, float]]] = {prefix: [] for prefix in args.prefix}
    try:
        with tempfile.TemporaryDirectory(prefix="svconnect-") as work:
            one_start(args.prefix[0], display, work)  # warm the page cache once, not counted
            for _ in range(args.rounds):
                for prefix in args.prefix:
                    times[prefix].append(one_start(prefix, display, work))
    finally:
        xvfb.kill()
        xvfb.wait()
    base = statistics.median(wall for wall, _cpu in times[args.prefix[0]])
    base_cpu = statistics.median(cpu for _wall, cpu in times[args.prefix[0]])
    print(f"svclient view: exec -> first TCP connect, {args.rounds} rounds in turn; load average at start {load:.2f}, "
          f"at end {os.getloadavg()[0]:.2f}")
    for prefix, runs in times.items():
        walls, cpus = [wall for wall, _cpu in runs], [cpu for _wall, cpu in runs]
        med, cpu = statistics.median(walls), statistics.median(cpus)
        print(f"{prefix:32} wall median {med * 1000:5.0f} ms (min {min(walls) * 1000:.0f}, "
              f"max {max(walls) * 1000:.0f}) ratio {med / base:.2f}x; "
              f"viewer CPU by then {cpu * 1000:4.0f} ms, ratio {cpu / base_cpu:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

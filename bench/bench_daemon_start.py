# The daemon's start, as the peer harness and a client started with it see it.
#
# Why this bench: the harness's "t0 -> listening" is when the daemon's TCP
# port is in LISTEN state (/proc/net/tcp), and its client is spawned then.
# Since the daemon binds its port before its imports (sessiond/
# early_listen.py), LISTEN no longer means "serving"; so this bench reports,
# per start of `sessiond run` (fresh process, the host certificate made by a
# discarded first start):
#   t0 -> LISTEN       the port accepts connections (the kernel queues them);
#   t0 -> TLS done     a client that connects the moment the port listens has
#                      its TLS 1.3 handshake (ALPN) done: when it is served;
#   t0 -> "listening"  the daemon's own line, printed once it serves;
#   CPU at the line    the daemon's user+system CPU seconds then, and
#   CPU at +2 s        2 s later (what it did after the line: warm-ups).
# With --baseline-prefix, the two installations alternate, start by start,
# ROUNDS times each; medians and the ratio new/base. Run as root:
#   bench/bench_daemon_start.py --prefix /opt/sessiond --baseline-prefix /opt/sessiond-base --rounds 5
"""Daemon start-up benchmark: t0 -> LISTEN, -> TLS served, -> "listening" line, CPU."""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROUNDS = 5
# Seconds a start may take before the bench gives up on it.
START_TIMEOUT = 30.0
# Seconds after the "listening" line at which the CPU is read again.
AFTER_SECONDS = 2.0
# As the peer harness polls (a tighter poll takes a core from the daemon on a 2-core host).
POLL_SECONDS = 0.005
LISTEN_STATE = "0A"
ALPN = "sessiond/1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> bool:
    """Whether 127.0.0.1:PORT is in LISTEN state (/proc/net/tcp, as the peer harness checks)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp", encoding="ascii") as handle:
        return any(f[1] == want and f[3] == LISTEN_STATE for f in (line.split() for line in handle) if len(f) > 3)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def write_config(directory: str, apps: str) -> str:
    path = os.path.join(directory, "sessiond.conf")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"[server]\nlisten = 127.0.0.1:0\nstate_dir = {directory}/state\n"
                     f"runtime_dir = /run/sv-daemon-start-{os.path.basename(directory)}\n"
                     f"[admin]\nsocket = {directory}/control.sock\ntoken_file = {directory}/admin-token\n"
                     f"[apps]\ndirectories = {apps}\n")  # fmt: skip
    return path


def one_start(prefix: str, config: str) -> dict[str, float]:
    """Start PREFIX's sessiond once; its marks in seconds after t0 and its CPU seconds."""
    port = free_port()
    marks: dict[str, float] = {}
    t0 = time.monotonic()
    daemon = subprocess.Popen([os.path.join(prefix, "venv", "bin", "sessiond"), "run", "--config", config,
                               "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)  # fmt: skip

    def read_output() -> None:
        assert daemon.stdout is not None
        for line in daemon.stdout:
            if "sessiond listening on" in line and "line" not in marks:
                marks["line"] = time.monotonic() - t0
                marks["cpu at line"] = cpu_seconds(daemon.pid)

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    try:
        while not listening(port):
            if daemon.poll() is not None or time.monotonic() - t0 > START_TIMEOUT:
                raise RuntimeError(f"{prefix}: sessiond did not listen")
            time.sleep(POLL_SECONDS)
        marks["listen"] = time.monotonic() - t0
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols([ALPN])
        with socket.create_connection(("127.0.0.1", port), timeout=START_TIMEOUT) as raw:
            with context.wrap_socket(raw) as tls:
                marks["tls"] = time.monotonic() - t0
                if tls.version() != "TLSv1.3":
                    raise RuntimeError(f"{prefix}: TLS {tls.version()}")
        while "line" not in marks:
            if time.monotonic() - t0 > START_TIMEOUT:
                raise RuntimeError(f"{prefix}: no listening line")
            time.sleep(POLL_SECONDS)
        time.sleep(max(0.0, marks["line"] + AFTER_SECONDS - (time.monotonic() - t0)))
        marks["cpu after"] = cpu_seconds(daemon.pid)
    finally:
        daemon.terminate()
        daemon.wait(timeout=20)
        reader.join(timeout=5)
    return marks


ROWS = (("t0 -> LISTEN (s)", "listen"), ("t0 -> TLS handshake served (s)", "tls"),
        ("t0 -> 'listening' line (s)", "line"), ("CPU at the line (s)", "cpu at line"),
        (f"CPU {AFTER_SECONDS:.0f} s after the line (s)", "cpu after"))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prefix", default=os.environ.get("SESSIOND_PREFIX", "/opt/sessiond"))
    parser.add_argument("--baseline-prefix", default="")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--apps", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                       "conf", "apps"))  # fmt: skip
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_daemon_start: run as root (sessiond refuses otherwise)", file=sys.stderr)
        return 2
    prefixes = [p for p in (args.baseline_prefix, args.prefix) if p]
    load = os.getloadavg()
    results: dict[str, list[dict[str, float]]] = {p: [] for p in prefixes}
    with tempfile.TemporaryDirectory(prefix="sv-daemon-start-") as tmp:
        configs = {}
        for index, prefix in enumerate(prefixes):
            home = os.path.join(tmp, f"p{index}")
            os.makedirs(home)
            configs[prefix] = write_config(home, args.apps)
            one_start(prefix, configs[prefix])  # makes the host certificate; discarded
        for _ in range(args.rounds):
            for prefix in prefixes:
                results[prefix].append(one_start(prefix, configs[prefix]))
    print(f"sessiond start, median of {args.rounds}; load average at start {load[0]:.2f} {load[1]:.2f}")
    head = ["", *prefixes] + (["ratio"] if len(prefixes) == 2 else [])
    table = [head]
    for label, key in ROWS:
        values = [statistics.median(r[key] for r in results[p]) for p in prefixes]
        row = [label, *(f"{v:.3f}" for v in values)]
        if len(values) == 2:
            row.append(f"{values[1] / values[0]:.2f}x" if values[0] else "-")
        table.append(row)
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

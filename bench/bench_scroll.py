# The peer table's scroll workload in the project's own bench (issue 15):
# a 1920x1080 session, `xterm -geometry 180x50` at 0,0, and 5 s of
# deterministic log-like text, every line different, pushed through the
# xterm by scroll_feed.py. It prints frames/s and kB/s down at the client
# (the real client library through the counting TLS proxy), lines/s the
# xterm got through, and the CPU seconds of each process (client, sessiond,
# agent, Xvfb, xterm, the feeder) and of all of them.
#
# Baseline, measured in the same run on the same session: the same xterm
# and text with NO client attached (the client disconnects; the session
# lives on). That is the upper bound of lines/s and the CPU of the session
# alone; the ratios (with client / without) say what serving a client costs.
# Each window follows a warm-up round. Nothing here gates anything.
# With --glyphs-off, every pair is measured twice, on two sessiond
# instances started in turn: `[display] glyphs = true` (GLYPHS regions,
# docs/protocol.md 7c) and `= false`; the table has a column per client and
# setting, and the last lines give the on/off ratios of the medians.
# Rows "run-queue wait-s" say how long xterm, Xvfb, the agent, sessiond and
# the client were runnable but not running (schedstat): CPU contention, as
# opposed to work. --parent-weight N pins the weight of the sessions' parent
# cgroup during the windows (bench/sched_probe.py) to measure its effect.
# Run as root after `make install` (it creates a user):
#   SESSIOND_PREFIX=/opt/sessiond /opt/sessiond/venv/bin/python bench/bench_scroll.py [--glyphs-off]
"""Scroll through xterm: frames/s, kB/s, lines/s, CPU-s, with vs without a client."""

from __future__ import annotations

import argparse
import os
import pwd
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from twisted.internet import defer

import spine_server
from bench_spine import REPO, SCREEN, SHARED_APP_DIR, USER_PREFIX, header, publish_apps
from byte_proxy import ByteCount, CountingProxy
from client.known_hosts import KnownHosts
from client.session import SessionClient
from scroll_feed import MAX_RESULT_LINE, parse_result
from scroll_viewer import CLIENT_SCREEN, ClientDesktop, ViewerClient
from spine_workloads import XTERM_ARGS, FrameCounter, cpu_seconds, cpu_used, open_session, user_pids, within
from spine_workloads import xterm_visible
from sched_probe import parent_weight, pin_parent_weight, restore_parent_weight, run_delay, wait_used

SCROLL_APP_ID = "sessiond-bench-scroll"
# The peer table's window; and the warm-up round before each window.
DEFAULT_SECONDS = 5.0
WARMUP_SECONDS = 1.0
# A round's answer may come this much later than its length before the bench gives up.
ROUND_GRACE_SECONDS = 30.0
# Pairs of windows (with a client, then without), alternated so load changes hit both.
DEFAULT_PAIRS = 2
# A baseline CPU time below this (seconds) is idle: no ratio is printed against it.
MIN_BASE_CPU = 0.05
# Processes whose run-queue wait (schedstat) the table shows.
WAIT_LABELS = ("xterm", "Xvfb", "agent", "sessiond", "client")
# FIFO names in SHARED_APP_DIR (visible inside the session's sandbox).
GO_FIFO, RESULT_FIFO = "scroll-go", "scroll-result"


@dataclass
class ScrollRun:
    """One measured window: what the feeder wrote, what the client got, CPU per process."""

    lines: int
    seconds: float
    frames: int
    bytes: ByteCount
    cpu: dict[str, float]
    # Seconds each process spent runnable but waiting for a CPU (schedstat).
    wait: dict[str, float] = field(default_factory=dict)

    @property
    def lines_per_s(self) -> float:
        """Lines the xterm got through per second."""
        return self.lines / self.seconds

    @property
    def fps(self) -> float:
        """Complete frames per second at the client (0 without one)."""
        return self.frames / self.seconds

    @property
    def kb_down_per_s(self) -> float:
        """kB/s server -> client, TLS included (0 without a client)."""
        return self.bytes.down / self.seconds / 1000


def mean_run(runs: list[ScrollRun]) -> ScrollRun:
    """The mean window of RUNS (lines, seconds, frames, bytes, CPU per process)."""
    n = len(runs)
    if n == 0:
        raise ValueError("no windows to average")
    cpu: dict[str, float] = {}
    wait: dict[str, float] = {}
    for one in runs:
        for label, used in one.cpu.items():
            cpu[label] = cpu.get(label, 0.0) + used / n
        for label, used in one.wait.items():
            wait[label] = wait.get(label, 0.0) + used / n
    up, down = sum(one.bytes.up for one in runs), sum(one.bytes.down for one in runs)
    return ScrollRun(round(sum(one.lines for one in runs) / n), sum(one.seconds for one in runs) / n,
                     round(sum(one.frames for one in runs) / n), ByteCount(up // n, down // n), cpu, wait)


class _LineReader:
    """Reactor reader of one line from a non-blocking FIFO descriptor."""

    def __init__(self, reactor: Any, fd: int) -> None:
        self.reactor, self.fd, self.buffer = reactor, fd, b""
        self.done: defer.Deferred[bytes] = defer.Deferred()

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:  # noqa: N802 - Twisted name
        return "scroll-result"

    def doRead(self) -> None:  # noqa: N802 - Twisted name
        try:
            self.buffer += os.read(self.fd, MAX_RESULT_LINE)
        except BlockingIOError:
            return
        line, newline, _rest = self.buffer.partition(b"\n")
        if newline or len(self.buffer) > MAX_RESULT_LINE:
            self.reactor.removeReader(self)
            self.done.callback(line)

    def connectionLost(self, reason: Any) -> None:  # noqa: N802 - Twisted name
        pass


class ScrollFifos:
    """The bench's ends of the feeder's FIFOs, held read-write so no open blocks."""

    def __init__(self, reactor: Any, user: str) -> None:
        self.reactor = reactor
        entry = pwd.getpwnam(user)
        self.fds: list[int] = []
        for name in (GO_FIFO, RESULT_FIFO):
            path = os.path.join(SHARED_APP_DIR, name)
            if os.path.lexists(path):  # left by an interrupted run
                os.unlink(path)
            os.mkfifo(path, 0o600)
            os.chown(path, entry.pw_uid, entry.pw_gid)
            self.fds.append(os.open(path, os.O_RDWR | os.O_NONBLOCK))

    async def round(self, seconds: float) -> tuple[int, float]:
        """Have the feeder scroll for SECONDS; (lines, seconds) it reports."""
        reader = _LineReader(self.reactor, self.fds[1])
        os.write(self.fds[0], f"{seconds}\n".encode("ascii"))
        self.reactor.addReader(reader)
        try:
            line = await within(self.reactor, reader.done, "the scroll feeder", seconds + ROUND_GRACE_SECONDS)
        finally:
            self.reactor.removeReader(reader)
        return parse_result(line)

    def close(self) -> None:
        """Tell the feeder to stop and close the bench's ends."""
        os.write(self.fds[0], b"stop\n")
        for fd in self.fds:
            os.close(fd)


async def measure(fifos: ScrollFifos, seconds: float, proxy: CountingProxy, watched: list[int],
                  client: SessionClient | None = None, viewer: ViewerClient | None = None) -> ScrollRun:  # fmt: skip
    """A warm-up round, then one window of SECONDS: lines, frames, bytes, CPU of
    WATCHED (and of the VIEWER's processes). Frames: CLIENT's FrameEnds, or the
    VIEWER's repaints, or none (no client attached)."""
    await fifos.round(WARMUP_SECONDS)
    counter = FrameCounter(client) if client is not None else None
    extra = viewer.pids() if viewer is not None else {}
    before = {pid: cpu_seconds(pid) for pid in [*watched, *extra]}
    queued = {pid: extra.get(pid, "") for pid in [*watched, *extra]}
    waited = {pid: run_delay(pid) for pid in queued}
    start, begun = proxy.count(), time.monotonic()
    lines, took = await fifos.round(seconds)
    used, ended = proxy.count() - start, time.monotonic()
    cpu = cpu_used(watched, before)
    for pid, label in extra.items():
        cpu[label] = cpu.get(label, 0.0) + cpu_seconds(pid) - before[pid]
    wait = wait_used(queued, waited)
    frames = counter.stop() if counter is not None else viewer.repaints(begun, ended) if viewer is not None else 0
    return ScrollRun(lines, took, frames, used, cpu, wait)


def report(clients: list[tuple[str, list[ScrollRun]]], without: list[ScrollRun]) -> str:
    """One column per client (means of its windows) with its ratio to the
    baseline, then the baseline: the same scroll with no client attached."""
    ours = [(name, mean_run(runs)) for name, runs in clients if runs]
    base = mean_run(without)

    def ratio(a: float, b: float, floor: float = 0.0) -> str:
        return f"{a / b:.3g}x" if b > floor else "n/a"

    def row(label: str, value: Callable[[ScrollRun], float], fmt: str, floor: float = 0.0,
            baseline: str | None = None) -> list[str]:  # fmt: skip
        cells = [label]
        for _name, run in ours:
            cells += [format(value(run), fmt), "n/a" if baseline else ratio(value(run), value(base), floor)]
        return [*cells, baseline or format(value(base), fmt)]

    rows = [row("frames/s at the client", lambda r: r.fps, ".1f", baseline="no client"),
            row("kB/s down (TLS)", lambda r: r.kb_down_per_s, ".0f", baseline="no client"),
            row("lines/s through the xterm", lambda r: r.lines_per_s, ".0f")]
    labels = {label for _name, run in ours for label in run.cpu} | set(base.cpu)
    for label in sorted(labels, key=lambda name: -max(run.cpu.get(name, 0.0) for _n, run in [*ours, ("", base)])):
        rows.append(row(f"CPU-s {label}", lambda r, name=label: r.cpu.get(name, 0.0), ".2f", MIN_BASE_CPU))
    rows.append(row("CPU-s all", lambda r: sum(r.cpu.values()), ".2f"))
    rows.append(row("CPU-s all per 1000 lines", lambda r: 1000 * sum(r.cpu.values()) / max(r.lines, 1), ".3f"))
    for label in WAIT_LABELS:
        rows.append(row(f"run-queue wait-s {label}", lambda r, name=label: r.wait.get(name, 0.0), ".2f", MIN_BASE_CPU))
    head = ["scroll workload", *(cell for name, _run in ours for cell in (f"with {name}", "ratio")), "no client"]
    widths = [max(len(cells[i]) for cells in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells)).rstrip() for cells in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    each = "; ".join(f"{name} {', '.join(f'{one.lines_per_s:.0f}' for one in runs)}"
                     for name, runs in [*clients, ("no client", without)] if runs)  # fmt: skip
    lines.append(f"means of windows of {base.seconds:.2f} s, each after a warm-up; lines/s of each window: {each}")
    return "\n".join(lines)


def shows_xterm(client: SessionClient) -> bool:
    """The xterm just launched is on the client's screen."""
    return xterm_visible(client.framebuffer)


def on_off(clients: list[tuple[str, list[ScrollRun]]]) -> str:
    """Lines "<client>: glyphs on/off ..." from the medians of each client's
    windows with glyphs on and off (names "<client> glyphs" / "<client> no glyphs")."""
    runs = dict(clients)
    out = []
    for name in ("library", "viewer"):
        on, off = runs.get(f"{name} glyphs"), runs.get(f"{name} no glyphs")
        if not on or not off:
            continue

        def median(windows: list[ScrollRun], value: Callable[[ScrollRun], float]) -> float:
            return statistics.median(value(run) for run in windows)

        parts = []
        for label, value in (("kB/s", lambda r: r.kb_down_per_s), ("frames/s", lambda r: r.fps),
                             ("lines/s", lambda r: r.lines_per_s), ("CPU-s all", lambda r: sum(r.cpu.values()))):
            a, b = median(on, value), median(off, value)
            parts.append(f"{label} {a:.1f} vs {b:.1f} ({a / b:.2f}x)" if b else f"{label} {a:.1f} vs 0")
        out.append(f"{name}, glyphs on vs off (medians of {len(on)}/{len(off)} windows): " + "; ".join(parts))
    return "\n".join(out)


async def run(reactor: Any, tmp: str, users: spine_server.BenchUsers, seconds: float, pairs: int,
              with_viewer: bool, glyphs_off: bool, pin: int | None = None) -> None:  # fmt: skip
    """PAIRS times (per [display] glyphs setting with GLYPHS_OFF, each on its
    own sessiond): a window with the library attached, one without a client,
    and (WITH_VIEWER) one with the native viewer attached, then one more without."""
    load = os.getloadavg()[0]
    python = os.path.join(spine_server.VENV_BIN, "python")
    go, result = (os.path.join(SHARED_APP_DIR, name) for name in (GO_FIFO, RESULT_FIFO))
    feeder = os.path.join(SHARED_APP_DIR, "scroll_feed.py")
    apps = publish_apps(tmp, ("scroll_feed.py",), {SCROLL_APP_ID: (
        "Bench scroll", " ".join(("xterm", *XTERM_ARGS, "-e", python, feeder, "--go", go, "--result", result)))})
    user = users.create(f"{USER_PREFIX}scroll")
    fifos = ScrollFifos(reactor, user.name)
    desktop = ClientDesktop(*CLIENT_SCREEN) if with_viewer else None
    settings = (True, False) if glyphs_off else (None,)
    clients: dict[str, list[ScrollRun]] = {}
    without: list[ScrollRun] = []
    weight_seen = parent_weight()
    try:
        for pair in range(pairs):
            for glyphs in settings:
                suffix = "" if glyphs is None else " glyphs" if glyphs else " no glyphs"
                extra = None if glyphs is None else {"display": {"glyphs": "true" if glyphs else "false"}}
                where = os.path.join(tmp, f"server-{pair}{suffix.replace(' ', '-')}")
                os.makedirs(where)
                server = await spine_server.start_sessiond(reactor, where, *SCREEN,
                                                           [os.path.join(REPO, "conf", "apps"), apps], extra=extra)
                try:
                    weight_seen = await _pair(reactor, server, user, fifos, seconds, desktop,
                                              f"pair {pair + 1}/{pairs}{suffix}", suffix, clients, without, pin)
                except Exception:
                    print("--- sessiond log (tail) ---\n" + server.log()[-4000:], file=sys.stderr)
                    raise
                finally:
                    await within(reactor, server.stop(reactor), "sessiond to stop", 30)
        print(header(load, title="sessiond scroll benchmark")
              + f"; scroll windows of {seconds:.1f} s, each after {WARMUP_SECONDS:.1f} s warm-up"
              + f"; sessions' parent cgroup at the end: {weight_seen}")
        print(report(list(clients.items()), without))
        if glyphs_off:
            print(on_off(list(clients.items())))
    finally:
        fifos.close()
        if desktop is not None:
            desktop.stop()


async def _pair(reactor: Any, server: spine_server.BenchServer, user: Any, fifos: ScrollFifos, seconds: float,
                desktop: ClientDesktop | None, what: str, suffix: str, clients: dict[str, list[ScrollRun]],
                without: list[ScrollRun], pin: int | None) -> str:  # fmt: skip
    """On a fresh sessiond: launch the scroll xterm, then the windows of one pair
    (the sessions' parent cgroup weight pinned to PIN meanwhile, if given);
    returns the parent's weight as it was during the windows."""
    proxy = CountingProxy(reactor, server.host, server.port)
    port = proxy.listen()
    known = KnownHosts(os.path.join(server.tmp, "known_hosts"))

    def step(how: str) -> None:
        print(f"{what}: scroll {seconds:.0f} s {how} ...", file=sys.stderr, flush=True)

    previous: str | None = None
    try:
        client = await open_session(reactor, "127.0.0.1", port, known, user, SCROLL_APP_ID, shows_xterm)
        if pin is not None:
            previous = pin_parent_weight(pin)
        seen = parent_weight()
        watched = [os.getpid(), server.pid, *user_pids(user.name)]
        step("with the client library")
        clients.setdefault(f"library{suffix}", []).append(await measure(fifos, seconds, proxy, watched,
                                                                         client=client))  # fmt: skip
        client.disconnect()
        step("without a client")
        without.append(await measure(fifos, seconds, proxy, watched))
        if desktop is None:
            return seen
        viewer = await ViewerClient.start(reactor, desktop, port, user, server.tmp)
        try:
            step("with the native viewer")
            # The bench process only relays bytes here: it is not the client.
            clients.setdefault(f"viewer{suffix}", []).append(await measure(fifos, seconds, proxy, watched[1:],
                                                                            viewer=viewer))  # fmt: skip
        finally:
            await viewer.stop(reactor)
        step("without a client")
        without.append(await measure(fifos, seconds, proxy, watched))
        return seen
    finally:
        if previous is not None:
            restore_parent_weight(previous)
        await proxy.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="measured window (s)")
    parser.add_argument("--pairs", type=int, default=DEFAULT_PAIRS, help="with/without windows, alternated")
    parser.add_argument("--no-viewer", action="store_true", help="measure the client library only")
    parser.add_argument("--glyphs-off", action="store_true",
                        help="also measure every pair with [display] glyphs = false (its own sessiond)")
    parser.add_argument("--parent-weight", type=int, default=None, metavar="N",
                        help="pin the sessions' parent cgroup weight (v1 cpu.shares / v2 cpu.weight) to N "
                             "during the windows, then restore it")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 60 or not 1 <= args.pairs <= 10:
        parser.error("--seconds must be in (0, 60] and --pairs in [1, 10]")
    if os.geteuid() != 0:
        print("bench_scroll: run as root (it creates a user and starts sessiond)", file=sys.stderr)
        return 2
    started = time.monotonic()
    code = spine_server.run_bench("bench_scroll", "svscroll-", lambda reactor, tmp, users: run(
        reactor, tmp, users, args.seconds, args.pairs, not args.no_viewer, args.glyphs_off, args.parent_weight),
        (SHARED_APP_DIR,))
    print(f"bench_scroll: {time.monotonic() - started:.0f} s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())

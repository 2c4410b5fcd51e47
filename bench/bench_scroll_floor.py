# The floor of the peer table's scroll workload: what the X server and the
# xterm cost per line when nothing remotes the screen, against what they cost
# under the X-side work the agent asks for, and under a real session.
#
# Why: the peer sitting's total CPU for the scroll is mostly Xvfb and xterm
# (sessiond: Xvfb 3.6 + xterm 1.7 of 7.3 CPU-s). Whether a budget such as
# "<= 6 CPU-s at the best peer's lines/s" is reachable at all depends on what
# those two cost alone, and whether our stack makes them dearer per line.
# Conditions, alternated round by round in one run:
#   plain  Debian's plain `Xvfb :N -screen 0 1920x1080x24` + xterm, no client;
#   vnc    TigerVNC's Xvnc as the peer harness starts it, no viewer attached:
#          the X server inside the best peer, alone, + xterm;
#   a      Xvfb with the agent's own argv and environment (xserver.xvfb_argv,
#          xvfb_env: -shmem at the session's maximum size, seamless mode's
#          -background none -nocursor, -extension GLX, -r, -dpi 96, the malloc
#          tunable), RandR set to 1920x1080 as the agent does, + xterm;
#   b      a + the X-side work of a seamless agent with a client: Composite
#          manual redirection of the root's subwindows, a DamageReportNonEmpty
#          damage object on the xterm, and its damaged rectangles fetched and
#          captured through MIT-SHM at --capture-hz (the agent's own
#          composite.WindowPixels, driven by a loop here: nothing encoded);
#   c      the installed sessiond with the native viewer, as the peer harness
#          runs it (its xpra_baseline.py with bench/peers_viewer_backend.py,
#          one run of the harness per round).
# The workload is the peer harness's own (loaded from its directory, never
# copied here): its text generator and seed, its scroll.sh (cat in a loop
# through awk, which counts the lines), `xterm -geometry 180x50 -e /bin/bash
# --noprofile --norc` with PS1='$ ', the command typed with xdotool, and CPU-s
# counted as the harness does (utime + stime of each process over the 5 s
# from the Return key). lines/s, CPU-s per process and per 1000 lines, and the
# ratios against (a) are medians over the rounds. Nothing here gates anything.
# Run as root after `make install` (the harness's sessiond backend creates a user):
#   SESSIOND_PREFIX=/opt/sessiond /opt/sessiond/venv/bin/python bench/bench_scroll_floor.py \
#       --display 360 --port 15600 [--rounds 3] [--conditions plain,a,b,c]
"""Scroll floor: Xvfb + xterm CPU per line bare, with the agent's X-side work, and in a session."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import select
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_PEERS_DIR = os.path.join(os.path.dirname(REPO), "shared", "peers")
PREFIX = os.environ.get("SESSIOND_PREFIX", "/opt/sessiond")
# The session's screen in the peer harness, and the agent's defaults for a session
# started without a size request: its maximum ([session] max_width/max_height).
SCREEN = (1920, 1080)
AGENT_MAX = (2560, 1440)
DEPTH = 24
# The agent's frame rate ceiling; the (b) loop captures at most this often.
DEFAULT_CAPTURE_HZ = 60.0
DEFAULT_ROUNDS = 3
SCROLL_SECONDS = 5
# The harness's pause between typing the command and pressing Return.
TYPE_SETTLE_SECONDS = 0.3
# How long an X server, a window or awk's count may take to appear.
READY_TIMEOUT = 15.0
# One harness run of (c) (start, typing, scroll, stop) normally takes ~40 s.
HARNESS_TIMEOUT = 300
CONDITIONS = ("plain", "vnc", "a", "b", "c")
# Tries of one window whose setup failed (see one_window).
SETUP_TRIES = 2


@dataclass
class Window:
    """One measured scroll window of one condition."""

    condition: str
    lines_per_s: float
    cpu: dict[str, float]
    wait: dict[str, float] = field(default_factory=dict)
    captures_per_s: float = 0.0

    def per_kline(self, role: str) -> float:
        """CPU-ms of ROLE per 1000 lines (= CPU-s per 1000 lines x 1000)."""
        lines = self.lines_per_s * SCROLL_SECONDS
        return 1e6 * self.cpu.get(role, 0.0) / lines if lines else float("nan")


def load_harness(peers_dir: str) -> ModuleType:
    """The peer harness (xpra_baseline.py) as a module: its workload definition and /proc helpers."""
    path = os.path.join(peers_dir, "xpra_baseline.py")
    if not os.path.exists(path):
        raise SystemExit(f"bench_scroll_floor: the peer harness is not at {path}; pass --peers-dir")
    spec = importlib.util.spec_from_file_location("xpra_baseline", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"bench_scroll_floor: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["xpra_baseline"] = module
    spec.loader.exec_module(module)
    return module


def run_delay(pid: int) -> float:
    """Seconds PID spent runnable but not running (schedstat); 0 if gone."""
    try:
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as handle:
            return int(handle.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def wait_for(what: str, probe: Callable[[], Any], timeout: float = READY_TIMEOUT) -> Any:
    """PROBE's first truthy answer, polled; RuntimeError naming WHAT after TIMEOUT."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.02)


class BareDisplay:
    """An Xvfb (plain or with the agent's options) and the workload xterm on it."""

    def __init__(self, h: ModuleType, number: int, kind: str, workdir: str, port: int) -> None:
        self.h, self.number, self.display = h, number, f":{number}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.framebuffer: Any = None
        # A server left on the display would serve the xterm while ours exits: measure nothing.
        wait_for(f"display {self.display} to be free", lambda: h.display_free(number), timeout=5.0)
        self.log = open(os.path.join(workdir, f"xvfb-{number}.log"), "w+b")  # noqa: SIM115 - closed in stop()
        try:
            self._start(kind, port)
        except BaseException:
            self.stop()
            raise

    def _start(self, kind: str, port: int) -> None:
        h, number, log = self.h, self.number, self.log
        if kind == "agent":
            from sessiond.agent import xserver  # noqa: PLC0415 - only for (a) and (b)

            read_fd, write_fd = os.pipe()
            argv = xserver.xvfb_argv(*AGENT_MAX, DEPTH, write_fd, shared_framebuffer=True, root_shown=False,
                                     number=number)  # fmt: skip
            self.argv = argv
            xvfb = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                    pass_fds=(write_fd,), env=xserver.xvfb_env(h.child_env()),
                                    start_new_session=True)  # fmt: skip
            self.procs.append(xvfb)
            os.close(write_fd)
            try:
                xserver._read_display_number(read_fd, READY_TIMEOUT)
            finally:
                os.close(read_fd)
            self.framebuffer = xserver.SharedFramebuffer(xserver._framebuffer_shmid(log), *AGENT_MAX)
            self._agent_screen()
        else:
            if kind == "vnc":  # the peer harness's TigerVNC server command (tigervnc_backend.py), no viewer
                self.argv = ["Xvnc", self.display, "-geometry", f"{SCREEN[0]}x{SCREEN[1]}", "-depth", str(DEPTH),
                             "-SecurityTypes", "None", "-rfbport", str(port), "-localhost", "-br"]  # fmt: skip
            else:
                self.argv = ["Xvfb", self.display, "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x{DEPTH}"]
            # Readiness from -displayfd (no other effect): the socket appears before the server
            # answers, and a probe connection would make it reset when it leaves (MACHINE-NOTES).
            read_fd, write_fd = os.pipe()
            self.procs.append(subprocess.Popen([*self.argv, "-displayfd", str(write_fd)], stdin=subprocess.DEVNULL,
                                               stdout=subprocess.DEVNULL, stderr=log, pass_fds=(write_fd,),
                                               env=h.child_env(), start_new_session=True))  # fmt: skip
            os.close(write_fd)
            try:
                _read_line(read_fd)
            finally:
                os.close(read_fd)
        self.xvfb_pid = self.procs[0].pid
        env = h.child_env({"DISPLAY": self.display, "PS1": "$ ", "HISTFILE": "/dev/null"})
        self.env = env
        self.procs.append(subprocess.Popen(h.XTERM_CMD.split(), env=env, stdin=subprocess.DEVNULL,
                                           stdout=log, stderr=log, start_new_session=True))  # fmt: skip
        self.xterm_pid = self.procs[1].pid
        self.window = wait_for("the xterm's window", lambda: self._exited() or self._xterm_window())
        if any(proc.poll() is not None for proc in self.procs):
            raise RuntimeError(f"{self.argv[0]} or the xterm exited on {self.display}; see {log.name}")

    def _exited(self) -> int:
        for proc in self.procs:
            if proc.poll() is not None:
                log = self.log
                log.seek(0)
                raise RuntimeError(f"{proc.args[0]} exited on {self.display}: {log.read()[-2000:]!r}")
        return 0

    def _agent_screen(self) -> None:
        """RandR to the session's size and release the unseen framebuffer, as the agent does in seamless mode."""
        from Xlib import display as xdisplay  # noqa: PLC0415

        from sessiond.agent.screen import ScreenResizer  # noqa: PLC0415

        x = xdisplay.Display(self.display)
        try:
            ScreenResizer(x, *AGENT_MAX).set_size(*SCREEN)
        finally:
            x.close()
        self.framebuffer.release_outside(0, 0)

    def _xterm_window(self) -> int:
        """The xterm's top-level window once it is viewable (0 before). Through xdotool:
        python-xlib cannot open Xvnc's display (its extension event table breaks)."""
        found = self.h.xdotool(self.number, "search", "--onlyvisible", "--classname", "^xterm$", env=dict(self.env))
        ids = found.stdout.split()
        return int(ids[0]) if found.returncode == 0 and ids else 0

    def stop(self) -> None:
        """Stop the xterm, then Xvfb (by PID); release the framebuffer segment."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs = []
        if self.framebuffer is not None:
            self.framebuffer.close()
            self.framebuffer = None
        self.log.close()
        # Wait for the server's socket and lock to go, so the next condition starts on a free display.
        wait_for(f"display {self.display} to be released", lambda: self.h.display_free(self.number), timeout=5.0)


class AgentXWork:
    """The X-side work of a seamless agent serving a client (condition b), on a thread:
    composite.WindowPixels redirects the root's children, tracks the xterm's damage and
    captures each frame's damaged rectangles through MIT-SHM, at most HZ times a second."""

    def __init__(self, display: str, window: int, hz: float) -> None:
        from sessiond.agent.composite import WindowPixels  # noqa: PLC0415

        self.pixels = WindowPixels(display)
        self.pixels.track(window)
        self.window, self.period = window, 1.0 / hz
        self.captures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="agent-x-work", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        pixels, window = self.pixels, self.window
        tick = time.monotonic()
        while not self._stop.is_set():
            pixels.drain()
            if pixels.pending(window):
                for rect in pixels.take(window):
                    pixels.capture(window, rect)
                self.captures += 1
                pixels.drain()
            tick = max(tick + self.period, time.monotonic())
            self._stop.wait(max(0.0, tick - time.monotonic()))

    def stop(self) -> None:
        """End the loop and undo the redirection."""
        self._stop.set()
        self._thread.join()
        self.pixels.close()


def bare_window(h: ModuleType, condition: str, number: int, port: int, workdir: str, capture_hz: float) -> Window:
    """One scroll window on a fresh X server + xterm under CONDITION (plain, vnc, a or b)."""
    rundir = os.path.join(workdir, f"{condition}-{time.monotonic_ns()}")
    os.makedirs(rundir)
    scroll_sh = os.path.join(rundir, "scroll.sh")
    count_file = os.path.join(rundir, "scroll_lines")
    with open(scroll_sh, "w", encoding="ascii") as handle:
        handle.write(h.SCROLL_SH % {"secs": SCROLL_SECONDS, "textfile": os.path.join(workdir, "scroll.txt"),
                                    "countfile": count_file})  # fmt: skip
    kind = {"plain": "plain", "vnc": "vnc"}.get(condition, "agent")
    screen = BareDisplay(h, number, kind, rundir, port)
    work: AgentXWork | None = None
    try:
        if condition == "b":
            work = AgentXWork(screen.display, screen.window, capture_hz)
        time.sleep(0.5)  # bash's prompt is up
        # No window manager: keys go where the pointer is (PointerRoot), and the agent's screen
        # starts at its maximum size with the pointer in the middle, outside the xterm.
        h.xdotool(screen.number, "mousemove", "100", "100", env=dict(screen.env))
        h.xdotool(screen.number, "type", "--delay", "5", f"sh {scroll_sh}", env=dict(screen.env))
        time.sleep(TYPE_SETTLE_SECONDS)
        pids = {"xvfb": screen.xvfb_pid, "xterm": screen.xterm_pid}
        cpu0 = {role: h.cpu_s(pid) for role, pid in pids.items()}
        wait0 = {role: run_delay(pid) for role, pid in pids.items()}
        captured = work.captures if work is not None else 0
        started = time.monotonic()
        h.xdotool(screen.number, "key", "Return", env=dict(screen.env))
        while time.monotonic() < started + SCROLL_SECONDS:
            time.sleep(0.05)
        cpu = {role: h.cpu_s(pid) - cpu0[role] for role, pid in pids.items()}
        wait = {role: run_delay(pid) - wait0[role] for role, pid in pids.items()}
        captures = (work.captures - captured) / SCROLL_SECONDS if work is not None else 0.0
        lines = int(wait_for("awk's line count", lambda: _read(count_file)))
        return Window(condition, lines / SCROLL_SECONDS, cpu, wait, captures)
    finally:
        if work is not None:
            work.stop()
        screen.stop()


def _read_line(fd: int) -> bytes:
    """A line from FD (an X server's -displayfd pipe); RuntimeError on EOF or after READY_TIMEOUT."""
    deadline, data = time.monotonic() + READY_TIMEOUT, b""
    while b"\n" not in data:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 16) if ready else b""
        if not chunk:
            raise RuntimeError("the X server did not become ready (see its log)")
        data += chunk
    return data


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def session_window(peers_dir: str, number: int, port: int, workdir: str) -> Window:
    """One run of the peer harness with the native viewer backend (condition c)."""
    rundir = os.path.join(workdir, f"c-{time.monotonic_ns()}")
    os.makedirs(rundir)
    out = os.path.join(rundir, "result.json")
    argv = [sys.executable, os.path.join(peers_dir, "xpra_baseline.py"), "--runs", "1", "--warmup", "0",
            "--backend-file", os.path.join(HERE, "peers_viewer_backend.py"), "--display", str(number),
            "--port", str(port), "--workdir", rundir, "--json", out]  # fmt: skip
    env = {**os.environ, "SESSIOND_PREFIX": PREFIX, "SESSIOND_CHECKOUT": REPO}
    with open(os.path.join(rundir, "harness.log"), "wb") as log:
        subprocess.run(argv, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=HARNESS_TIMEOUT, check=False,
                       cwd=REPO)  # fmt: skip
    try:
        with open(out, encoding="utf-8") as handle:
            run = json.load(handle)["runs"][0]
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise RuntimeError(f"the harness run in {rundir} left no result ({exc}); see harness.log") from exc
    cpu = {role: used for role, used in run["scroll_cpu_s"].items() if used}
    renamed = {"server": "agent", "client": "viewer"}
    cpu = {renamed.get(role, role): used for role, used in cpu.items()}
    return Window("c", float(run["scroll_lines_per_s"]), cpu,
                  captures_per_s=float(run.get("scroll_client_damage_events_per_s") or 0.0))


def one_window(h: ModuleType, cond: str, args: argparse.Namespace) -> Window:
    """A window of COND; tried once more if its setup fails (on a loaded machine an xterm
    now and then cannot open a display that just answered): a failed try measures nothing."""
    for attempt in range(SETUP_TRIES):
        try:
            if cond == "c":
                return session_window(args.peers_dir, args.display, args.port, args.workdir)
            return bare_window(h, cond, args.display, args.port, args.workdir, args.capture_hz)
        except RuntimeError as exc:
            if attempt + 1 == SETUP_TRIES:
                raise
            print(f"{cond}: setup failed, trying again: {str(exc)[-300:]}", file=sys.stderr, flush=True)
    raise AssertionError("unreachable")


def median_of(windows: list[Window], value: Callable[[Window], float]) -> float:
    """Median of VALUE over WINDOWS (nan if none)."""
    values = [value(w) for w in windows]
    return statistics.median(values) if values else float("nan")


def report(by_condition: dict[str, list[Window]], capture_hz: float) -> str:
    """The table: medians per condition, and ratios against (a)."""
    conds = [c for c in CONDITIONS if by_condition.get(c)]
    base = by_condition.get("a", [])
    roles = sorted({role for ws in by_condition.values() for w in ws for role in w.cpu},
                   key=lambda r: (r not in ("xvfb", "xterm"), r))  # fmt: skip

    def cell(cond: str, value: Callable[[Window], float], fmt: str) -> list[str]:
        mine = median_of(by_condition[cond], value)
        if math.isnan(mine):  # not measured for this condition (the harness has no schedstat)
            return ["n/a", ""]
        ref = median_of(base, value)
        ratio = f"{mine / ref:.2f}x" if base and ref and cond != "a" else ""
        return [format(mine, fmt), ratio]

    rows: list[list[str]] = []

    def row(label: str, value: Callable[[Window], float], fmt: str) -> None:
        rows.append([label, *(c for cond in conds for c in cell(cond, value, fmt))])

    row("lines/s through the xterm", lambda w: w.lines_per_s, ".0f")
    for role in roles:
        row(f"CPU-s {role}", lambda w, r=role: w.cpu.get(r, 0.0), ".2f")
    row("CPU-s Xvfb + xterm", lambda w: w.cpu.get("xvfb", 0.0) + w.cpu.get("xterm", 0.0), ".2f")
    row("CPU-s all measured", lambda w: sum(w.cpu.values()), ".2f")
    row("CPU-ms Xvfb per 1000 lines", lambda w: w.per_kline("xvfb"), ".2f")
    row("CPU-ms xterm per 1000 lines", lambda w: w.per_kline("xterm"), ".2f")
    row("CPU-ms Xvfb+xterm per 1000 lines", lambda w: w.per_kline("xvfb") + w.per_kline("xterm"), ".2f")
    row("run-queue wait-s Xvfb", lambda w: w.wait.get("xvfb", float("nan")), ".2f")
    row("run-queue wait-s xterm", lambda w: w.wait.get("xterm", float("nan")), ".2f")
    row("captures/s (b) / client frames/s (c)", lambda w: w.captures_per_s, ".1f")
    head = ["scroll, 5 s, medians", *(c for cond in conds for c in (cond, "vs a"))]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for cond in conds:
        each = ", ".join(f"{w.lines_per_s:.0f}" for w in by_condition[cond])
        lines.append(f"{cond}: {len(by_condition[cond])} windows, lines/s {each}")
    if base:
        a_kline = median_of(base, lambda w: w.per_kline("xvfb") + w.per_kline("xterm"))
        lines.append(f"at (a)'s cost per line, Xvfb + xterm alone at 50,400 lines/s (TigerVNC's) would use "
                     f"{a_kline * 50.4 * SCROLL_SECONDS / 1000:.2f} CPU-s of the 5 s window")  # fmt: skip
    lines.append(f"(b) captures at most {capture_hz:g}/s; CPU-ms per 1000 lines = CPU-s / (lines / 1000) x 1000")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--display", type=int, required=True,
                        help="X display number for (plain/a/b); (c) uses it and the next one")
    parser.add_argument("--port", type=int, required=True, help="TCP port for (c) (and the next one)")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--conditions", default=",".join(CONDITIONS))
    parser.add_argument("--capture-hz", type=float, default=DEFAULT_CAPTURE_HZ)
    parser.add_argument("--peers-dir", default=os.environ.get("SESSIOND_PEERS_DIR", DEFAULT_PEERS_DIR))
    parser.add_argument("--workdir", default="/tmp/bench-scroll-floor")
    parser.add_argument("--json", help="write every window here")
    args = parser.parse_args(argv)
    conditions = [c for c in args.conditions.split(",") if c]
    if not set(conditions) <= set(CONDITIONS) or not conditions:
        parser.error(f"--conditions takes a list of {', '.join(CONDITIONS)}")
    if not 1 <= args.rounds <= 20 or not 1 <= args.capture_hz <= 240:
        parser.error("--rounds must be in [1, 20] and --capture-hz in [1, 240]")
    if os.geteuid() != 0 and "c" in conditions:
        parser.error("condition c runs the installed sessiond: run as root")
    h = load_harness(args.peers_dir)
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    h.make_scroll_text(os.path.join(args.workdir, "scroll.txt"))
    load = os.getloadavg()
    by_condition: dict[str, list[Window]] = {c: [] for c in conditions}
    for n in range(args.rounds):
        order = conditions if n % 2 == 0 else conditions[::-1]  # alternate, so drift hits all alike
        for cond in order:
            window = one_window(h, cond, args)
            by_condition[cond].append(window)
            cpu = ", ".join(f"{role} {used:.2f}" for role, used in window.cpu.items())
            print(f"round {n + 1}/{args.rounds} {cond}: {window.lines_per_s:.0f} lines/s; CPU-s {cpu}",
                  file=sys.stderr, flush=True)  # fmt: skip
    print(f"bench_scroll_floor: {args.rounds} rounds, load at start {load[0]:.2f}/{load[1]:.2f}, "
          f"{os.cpu_count()} CPUs; harness {args.peers_dir}")
    print(report(by_condition, args.capture_hz))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({c: [w.__dict__ for w in ws] for c, ws in by_condition.items()}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

# Keystroke -> client repaint of two installs with the native viewer, A/B in
# one run: a baseline (--baseline-prefix) and the install under test
# (SESSIOND_PREFIX), each its own sessiond, user, session (seamless, xterm)
# and `svclient view` on a client Xvfb of its own. Keys are pressed with
# XTEST on the SESSION's Xvfb (as the peer harness does with xdotool, but
# from one open connection, so no process start is inside the figure),
# alternately into one session and the other; the clock stops when XDamage
# reports the viewer's window repainted on the client Xvfb.
#
# Why this and not bench_echo_ab.py: that one measures KEY_TAP -> FRAME_END
# in the client library (the way up through sessiond, not the viewer's
# decode, paint and Qt flush); the peer figure is "key in the session ->
# client window repainted", which this measures, for both installs under
# the same load. With the agents' FrameTrace (SESSIOND_FRAME_TRACE=1, set
# here for both sessionds) and the viewers' LatencyTrace it also splits each
# keystroke by stage:
# inject -> agent notify -> frame -> encoded -> out -> viewer FRAME_END ->
# GUI woken -> copied -> paint -> painted -> client X damage, medians and
# p90 per stage for each install and their ratios.
#
# X displays and ports are given (--display, --port: two of each, from
# those), as the shared machine's helpers each use their own range.
# Run as root after `make install` of both:
#   SESSIOND_PREFIX=/opt/sv-x /opt/sv-x/venv/bin/python bench/bench_keystroke_ab.py \
#       --baseline-prefix /opt/sv-main --display 340 --port 15500
"""Keystroke (session X) -> viewer repaint A/B of two installs, interleaved, per stage."""

from __future__ import annotations

import argparse
import glob
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
sys.path[:0] = [os.path.join(REPO, "tests"), BENCH_DIR]
from session_pids import session_pids  # noqa: E402
from svtest import create_user, remove_user  # noqa: E402
from bench_viewer import DamageWatch, KeyInjector  # noqa: E402
from keystroke_timeline import read_marks  # noqa: E402

DEFAULT_KEYSTROKES = 120
GAP_SECONDS = 0.05  # after each keystroke (both sessions idle between keys)
LIMIT = 0.25  # a mark later than this after the previous one is not the same keystroke's
CLEAR_EVERY = 60  # keys typed before the line is cleared (ctrl+u, outside the figures)
CLIENT_SCREEN = (1280, 1024)
START_SECONDS = 90.0
LISTEN_RE = re.compile(r"sessiond listening on ([0-9.]+):(\d+)")
# (label, mark, whose): the chain after "inject" (agent = FrameTrace, viewer = LatencyTrace, x = XDamage).
CHAIN = (("X + xterm: key -> agent reads damage", "notify", "agent"),
         ("agent: notify -> frame starts", "frame", "agent"),
         ("agent: take + capture + encode", "encoded", "agent"),
         # Not "out" (after the agent's link write): that write wakes sessiond, which may run
         # (and the viewer after it) before the agent marks "out", so "out" can come after the
         # viewer's FRAME_END.
         ("agent: fold, write -> sessiond -> viewer FRAME_END", "frame", "viewer"),
         ("viewer: FRAME_END -> GUI woken", "woke", "viewer"),
         ("viewer: patches copied", "copied", "viewer"),
         ("viewer: Qt starts paint", "paint", "viewer"),
         ("viewer: painted", "painted", "viewer"),
         ("Qt flush -> client X damage", "damage", "x"))  # fmt: skip


class Side:
    """One install: sessiond, a user, a client Xvfb, the viewer, the session's Xvfb reached by a symlink."""

    def __init__(self, name: str, prefix: str, display: int, port: int, tmp: str) -> None:
        self.name, self.prefix, self.display, self.port = name, prefix, display, port
        self.work = os.path.join(tmp, name)
        os.makedirs(self.work)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.link: str | None = None
        self.user: Any = None
        self.trace = os.path.join(self.work, "viewer-trace")
        self.runtime = f"/run/sessiond-kab-{secrets.token_hex(4)}"
        self.sessiond: subprocess.Popen[bytes] | None = None
        self.viewer: subprocess.Popen[bytes] | None = None
        self.watch: DamageWatch | None = None
        self.keys: KeyInjector | None = None
        self.injected: list[float] = []

    def start(self, user_name: str) -> None:
        bin_dir = os.path.join(self.prefix, "venv", "bin")
        self.user = create_user(user_name, self.work)
        conf = os.path.join(self.work, "sessiond.conf")
        with open(conf, "w", encoding="utf-8") as handle:
            handle.write(f"[server]\nlisten = 127.0.0.1:{self.port}\nstate_dir = {self.work}/state\n"
                         f"runtime_dir = {self.runtime}\non_stop = logoff\n"
                         f"[session]\nwidth = 1280\nheight = 1024\npython = {bin_dir}/python\n"
                         f"[apps]\ndirectories = {REPO}/conf/apps\n")  # fmt: skip
        log = open(os.path.join(self.work, "sessiond.log"), "wb")
        # The agents' FrameTrace on both sides (the split by stage needs it; its cost is the same on both).
        self.sessiond = subprocess.Popen([os.path.join(bin_dir, "sessiond"), "run", "--config", conf],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         env=dict(os.environ, SESSIOND_FRAME_TRACE="1"))  # fmt: skip
        self.procs.append(self.sessiond)
        wait_for(lambda: LISTEN_RE.search(read(log.name)), 30, f"{self.name} sessiond to listen")
        xvfb = subprocess.Popen(["Xvfb", f":{self.display}", "-screen", "0", "%dx%dx24" % CLIENT_SCREEN,
                                 "-nolisten", "tcp", "-noreset"], stderr=subprocess.DEVNULL)  # fmt: skip
        self.procs.append(xvfb)
        env = dict(os.environ, DISPLAY=f":{self.display}", SVCLIENT_VIEWER_TRACE=self.trace)
        env.pop("QT_QPA_PLATFORM", None)
        wait_for(lambda: subprocess.run(["xdpyinfo"], env=env, capture_output=True).returncode == 0, 20, "Xvfb")
        self.procs.append(subprocess.Popen(["openbox"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5)
        argv = [os.path.join(bin_dir, "svclient"), "--server", f"127.0.0.1:{self.port}", "--user", self.user.name,
                "--password-file", self.user.password_file, "--known-hosts", os.path.join(self.work, "known_hosts"),
                "--token-dir", os.path.join(self.work, "tokens"), "--no-resume", "view", "--launch", "xterm"]
        self.viewer = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                       stderr=open(os.path.join(self.work, "viewer.log"), "wb"))  # fmt: skip
        self.procs.append(self.viewer)
        self.env = env
        window = wait_for(lambda: subprocess.run(["xdotool", "search", "--onlyvisible", "--pid", str(self.viewer.pid)],
                                                 env=env, capture_output=True, text=True).stdout.split(),
                          START_SECONDS, f"{self.name} viewer window")[0]  # fmt: skip
        self.watch = DamageWatch(f":{self.display}", int(window))
        self.watch.start()
        session_x = wait_for(self._session_x, 30, f"{self.name} session Xvfb")
        self.link = f"/tmp/.X11-unix/X{self.display + 10}"
        if os.path.lexists(self.link):
            os.unlink(self.link)
        os.symlink(session_x, self.link)
        self.keys = KeyInjector(f":{self.display + 10}")
        focus = wait_for(lambda: subprocess.run(["xdotool", "search", "--onlyvisible", "--class", "xterm"],
                                                env=dict(env, DISPLAY=f":{self.display + 10}"),
                                                capture_output=True, text=True).stdout.split(), 30, "session xterm")
        subprocess.run(["xdotool", "windowfocus", focus[0]], env=dict(env, DISPLAY=f":{self.display + 10}"))

    def _session_x(self) -> str | None:
        for pid in session_pids(self.user.name):  # the Xvfb may run as a slot's X uid
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    args = handle.read().split(b"\0")
            except OSError:
                continue
            if os.path.basename(args[0]) != b"Xvfb":
                continue
            number = next((a[1:].decode() for a in args if a.startswith(b":")), None)
            path = f"/proc/{pid}/root/tmp/.X11-unix/X{number}"
            if number is not None and os.path.exists(path):
                return path
        return None

    def tap(self, char: str) -> None:
        if self.keys is not None:
            self.injected.append(self.keys.tap(char))

    def clear(self) -> None:
        subprocess.run(["xdotool", "key", "ctrl+u"], env=dict(self.env, DISPLAY=f":{self.display + 10}"))

    def stop(self) -> list[str]:
        """Stop everything; the agents' logs copied out (their FrameTrace)."""
        if self.watch is not None:
            self.watch.stopping = True
        logs = []
        for index, path in enumerate(sorted(glob.glob(os.path.join(self.runtime, "**", "agent.log"), recursive=True))):
            logs.append(shutil.copy(path, os.path.join(self.work, f"agent-{index}.log")))
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(2)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self.link and os.path.lexists(self.link):
            os.unlink(self.link)
        if self.user is not None:
            remove_user(self.user.name)
        return logs


def read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def wait_for(check: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {seconds}s waiting for {what}")


def marks_of(paths: list[str], prefix: str | None) -> dict[str, list[float]]:
    """keystroke_timeline.read_marks over several traces (one per session log), merged and sorted."""
    marks: dict[str, list[float]] = {}
    for path in paths:
        for name, moments in read_marks(path, prefix).items():
            marks.setdefault(name, []).extend(moments)
    return {name: sorted(moments) for name, moments in marks.items()}


def _next(moments: list[float], after: float) -> float | None:
    for moment in moments:
        if after <= moment < after + LIMIT:
            return moment
    return None


def rows_of(side: Side, agent_logs: list[str]) -> list[dict[str, float | None]]:
    """Per keystroke: end to end (inject -> damage) and, where the traces chain, each stage's end."""
    agent = marks_of(agent_logs, "frame-trace")
    viewer = marks_of([side.trace], None) if os.path.exists(side.trace) else {}
    damage = side.watch.events if side.watch is not None else []
    rows: list[dict[str, float | None]] = []
    for inject in side.injected:
        row: dict[str, float | None] = {"inject": inject}
        end = _next(damage, inject)
        row["total"] = None if end is None else end - inject
        last: float | None = inject
        for label, mark, whose in CHAIN:
            source = agent if whose == "agent" else viewer if whose == "viewer" else {"damage": damage}
            found = _next(source.get(mark, []), last) if last is not None else None
            row[label], last = found, found
        rows.append(row)
    return rows


def stats(values: list[float]) -> tuple[float, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] * 1000


def report(sides: dict[str, Side], rows: dict[str, list[dict[str, float | None]]]) -> float | None:
    base, new = rows["baseline"], rows["tested"]
    print(f"keystroke on the session's X -> viewer window repainted, {len(base)} keystrokes each, interleaved; "
          f"load {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M:%S')}")  # fmt: skip
    print(f"  baseline {sides['baseline'].prefix}, tested {sides['tested'].prefix}")
    pairs = [(b["total"], t["total"]) for b, t in zip(base, new) if b["total"] is not None and t["total"] is not None]
    print(f"  missed: baseline {sum(r['total'] is None for r in base)}, tested {sum(r['total'] is None for r in new)}")
    diff = statistics.median(t - b for b, t in pairs) * 1000 if pairs else None
    if diff is not None:
        print(f"  median of per-pair differences (tested - baseline): {diff:+.3f} ms over {len(pairs)} pairs")
    print(f"  {'stage (ms)':46} {'base med':>9} {'p90':>7} {'new med':>9} {'p90':>7} {'ratio':>6}  n b/n")
    complete = {name: [r for r in rs if all(r[label] is not None for label, _m, _w in CHAIN)]
                for name, rs in rows.items()}  # fmt: skip
    previous = "inject"
    for label, _mark, _whose in (*CHAIN, ("end to end", "", "")):
        figures = []
        for name in ("baseline", "tested"):
            if label == "end to end":
                values = [r["total"] for r in rows[name] if r["total"] is not None]
            else:
                values = [r[label] - r[previous] for r in complete[name]]  # type: ignore[operator]
            figures.append((stats(values), len(values)))
        (b, nb), (t, nt) = figures
        ratio = f"{t[0] / b[0]:6.2f}" if b and t and b[0] > 0 else "   n/a"
        show = lambda f: f"{f[0]:9.3f} {f[1]:7.3f}" if f else f"{'n/a':>9} {'':>7}"  # noqa: E731
        print(f"  {label:46} {show(b)} {show(t)} {ratio}  {nb}/{nt}")
        previous = label
    return diff


def run(args: argparse.Namespace, swapped: bool) -> float | None:
    """Both installs up (the baseline's first, unless SWAPPED), keystrokes interleaved, the report;
    the median per-pair difference (ms)."""
    tested = os.environ.get("SESSIOND_PREFIX", "/opt/sessiond")
    tmp = tempfile.mkdtemp(prefix="bench-keystroke-ab-")
    os.chmod(tmp, 0o755)
    sides = {"baseline": Side("baseline", args.baseline_prefix, args.display, args.port, tmp),
             "tested": Side("tested", tested, args.display + 1, args.port + 1, tmp)}  # fmt: skip
    logs: dict[str, list[str]] = {}
    try:
        for name in reversed(list(sides)) if swapped else list(sides):
            sides[name].start(f"svkab{name[0]}")
        time.sleep(2.0)
        order = list(sides.values())
        for index in range(args.keystrokes):
            if index and index % CLEAR_EVERY == 0:
                for side in order:
                    side.clear()
                time.sleep(0.3)
            for side in order if index % 2 == 0 else reversed(order):
                side.tap("abcdefghij"[index % 10])
                time.sleep(GAP_SECONDS)
        time.sleep(2.5)  # the agents write their FrameTrace every second
    finally:
        for name, side in sides.items():
            logs[name] = side.stop()
    rows = {name: rows_of(side, logs[name]) for name, side in sides.items()}
    print(f"-- {'tested' if swapped else 'baseline'}'s sessiond and viewer started first")
    diff = report(sides, rows)
    print(f"  (traces kept in {tmp})")
    return diff


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline-prefix", required=True)
    parser.add_argument("--keystrokes", type=int, default=DEFAULT_KEYSTROKES)
    parser.add_argument("--display", type=int, required=True, help="first of 2 client displays (+10: the links)")
    parser.add_argument("--port", type=int, required=True, help="first of 2 ports")
    parser.add_argument("--one-way", action="store_true", help="no second run with the start order swapped")
    args = parser.parse_args()
    diffs = [run(args, swapped) for swapped in ((False,) if args.one_way else (False, True))]
    if len(diffs) == 2 and None not in diffs:
        print(f"change (tested - baseline), the two start orders averaged: {(diffs[0] + diffs[1]) / 2:+.3f} ms; "
              f"a side for being started second: {(diffs[0] - diffs[1]) / 2:+.3f} ms")  # type: ignore[operator]
    return 0


if __name__ == "__main__":
    sys.exit(main())

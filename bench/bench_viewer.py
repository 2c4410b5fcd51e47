# Benchmark of the native viewer (`svclient view`) against the raw client
# library (client.session.SessionClient, no GUI) on the same session, in the
# same run, on the same machine:
#
#   1. keystroke -> repaint, one run, like for like: an XTEST key press on
#      the client-side Xvfb (one open connection, no process per key) until
#      XDamage reports the viewer's window painted; the viewer records (a
#      LatencyTrace, SVCLIENT_VIEWER_TRACE) when Qt gave it the key, when
#      KEY went out, when FRAME_END came in, when the GUI woke, when it
#      painted, so the same keystrokes give the library's part (KEY sent ->
#      FRAME_END, what bench_spine.py measures) and the viewer's own time
#      split by stage; plus KEY_TAP -> FRAME_END in a library-only process;
#   2. scroll (`seq` flooding the xterm for SCROLL_SECONDS): frames/s the
#      viewer painted (XDamage events on its window) vs frames/s the library
#      received (FRAME_END), and CPU seconds of each client process;
#   3. memory: PSS of each client process, idle, attached.
#
# Each client is its own process (the library one is this file with --raw),
# one after the other on one session (a second login takes the session over).
# Why ratios: absolute times depend on the machine; the ratio says what the
# viewer costs on top of the library. Run as root after `make install`:
#   SESSIOND_PREFIX=/opt/sessiond /opt/sessiond/venv/bin/python bench/bench_viewer.py
"""svclient view vs the client library: latency, frames/s, CPU, memory (ratios)."""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
KEYSTROKES = 40
KEY_PERIOD = 0.1  # seconds between keystrokes (10/s)
LATENCY_LIMIT = 0.5  # a repaint later than this is not the keystroke's
SCROLL_SECONDS = 5.0
FLOOD = "seq 1 100000000"


def pss_kb(pid: int) -> int:
    """Proportional set size of PID in kB (smaps_rollup)."""
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of PID."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the raw library client (this file with --raw) ------------------------------------------
def raw_client(args: argparse.Namespace) -> None:
    """Log in with the library, measure tap -> FRAME_END and scroll frames; JSON on stdout."""
    from twisted.internet import defer, task

    from client.cli import open_session, open_windows
    from client.keysyms import keysym_for_char, keysym_from_name
    from protocol.messages import ChannelKind

    result: dict[str, Any] = {}

    async def body(reactor: Any) -> None:
        client, _result, _server = await open_session(reactor, args)
        await open_windows(reactor, client, 30)
        await client.open_channel(ChannelKind.INPUT)
        await client.open_channel(ChannelKind.DISPLAY)
        await client.next_frame()
        await task.deferLater(reactor, 1.0, lambda: None)
        latencies = []
        for char in "abcdefghij" * (KEYSTROKES // 10):
            frame = client.next_frame()
            sent = time.monotonic()
            client.tap(keysym_for_char(char))
            await frame
            latencies.append(time.monotonic() - sent)
            await task.deferLater(reactor, KEY_PERIOD, lambda: None)
        client.key(keysym_from_name("Control_L"), True)  # Ctrl+U clears the typed line
        client.tap(keysym_for_char("u"))
        client.key(keysym_from_name("Control_L"), False)
        result["pss_kb"] = pss_kb(os.getpid())
        for char in FLOOD:
            client.tap(keysym_for_char(char))
        frames = []
        client.tap(keysym_from_name("Return"))
        cpu0, t0 = cpu_seconds(os.getpid()), time.monotonic()
        while time.monotonic() - t0 < SCROLL_SECONDS:
            await client.next_frame()
            frames.append(time.monotonic())
        result["scroll_cpu_s"] = cpu_seconds(os.getpid()) - cpu0
        result["scroll_fps"] = len(frames) / SCROLL_SECONDS
        client.key(keysym_from_name("Control_L"), True)
        client.tap(keysym_for_char("c"))
        client.key(keysym_from_name("Control_L"), False)
        await client.sync()
        result["latency_ms"] = statistics.median(latencies) * 1000
        print(json.dumps(result), flush=True)
        client.disconnect()

    task.react(lambda reactor: defer.ensureDeferred(body(reactor)))


# -- the viewer ---------------------------------------------------------------------------------
class DamageWatch(threading.Thread):
    """Times of XDamage reports on one window of the client display."""

    def __init__(self, display_name: str, window: int) -> None:
        super().__init__(daemon=True)
        from Xlib import display
        from Xlib.ext import damage

        self.display = display.Display(display_name)
        self.display.damage_query_version()  # first, or the server refuses damage_create
        self.event_type = self.display.query_extension(damage.extname).first_event + damage.DamageNotifyCode
        target = self.display.create_resource_object("window", window)
        self.damage = target.damage_create(damage.DamageReportRawRectangles)
        self.display.flush()
        self.events: list[float] = []
        self.stopping = False

    def run(self) -> None:
        last = 0.0
        while not self.stopping:
            try:
                event = self.display.next_event()
            except Exception:  # noqa: BLE001 - the client display went away at the end of the run
                return
            if getattr(event, "type", None) == self.event_type:
                now = time.monotonic()
                if now - last > 0.002:  # the rectangles of one repaint arrive together: one paint
                    self.events.append(now)
                last = now

    def first_after(self, moment: float) -> float | None:
        later = [t for t in self.events if moment < t < moment + LATENCY_LIMIT]
        return later[0] - moment if later else None


class KeyInjector:
    """XTEST key presses on the client display from one open connection (no
    process spawned per key, unlike xdotool: the injection costs microseconds)."""

    def __init__(self, display_name: str) -> None:
        from Xlib import XK, display

        self.display = display.Display(display_name)
        self.xk = XK

    def tap(self, char: str) -> float:
        """Press and release CHAR's key; the moment the press was handed to the X server."""
        from Xlib import X
        from Xlib.ext import xtest

        code = self.display.keysym_to_keycode(self.xk.string_to_keysym(char))
        sent = time.monotonic()
        xtest.fake_input(self.display, X.KeyPress, code)
        xtest.fake_input(self.display, X.KeyRelease, code)
        self.display.sync()
        return sent


def read_trace(path: str) -> dict[str, list[float]]:
    """The viewer's LatencyTrace file: moments by name, each list sorted."""
    marks: dict[str, list[float]] = {}
    with open(path, encoding="ascii") as handle:
        for line in handle:
            name, moment = line.split()
            marks.setdefault(name, []).append(float(moment))
    return {name: sorted(moments) for name, moments in marks.items()}


def _next(moments: list[float], after: float | None) -> float | None:
    if after is None:
        return None
    later = [m for m in moments if after <= m < after + LATENCY_LIMIT]
    return later[0] if later else None


# The path of one keystroke, stage by stage: (name, from mark, to mark). "inject" is the XTEST
# press, "damage" the XDamage report of the viewer's window on the client display.
STAGES = (("X server + Qt deliver the key event", "inject", "key"),
          ("viewer: Qt key event -> KEY sent", "key", "sent"),
          ("library: KEY sent -> FRAME_END received", "sent", "frame"),
          ("viewer: FRAME_END -> GUI thread woken", "frame", "woke"),
          ("viewer: patches copied into the window image", "woke", "copied"),
          ("viewer: Qt starts the repaint", "copied", "paint"),
          ("viewer: window painted (Qt backing store)", "paint", "painted"),
          ("Qt flush -> client X server damage", "painted", "damage"))  # fmt: skip


def keystroke_paths(injected: list[float], trace: dict[str, list[float]],
                    damage: list[float]) -> list[dict[str, float]]:  # fmt: skip
    """Per keystroke, the moment of each stage (None-free rows only: a keystroke whose
    chain broke, e.g. a repaint later than LATENCY_LIMIT, is left out and counted)."""
    rows = []
    for inject in injected:
        row: dict[str, float] = {"inject": inject}
        last: float | None = inject
        for _label, _start, end in STAGES:
            last = _next(damage if end == "damage" else trace.get(end, []), last)
            if last is None:
                break
            row[end] = last
        if last is not None:
            rows.append(row)
    return rows


def latency_figures(rows: list[dict[str, float]]) -> dict[str, Any]:
    """Medians (ms) of the whole path, of each stage, of the library's part and of the viewer's own."""
    def med(values: list[float]) -> float | None:
        return statistics.median(values) * 1000 if values else None

    figures: dict[str, Any] = {"latency_n": len(rows)}
    figures["latency_ms"] = med([r["damage"] - r["inject"] for r in rows])
    figures["library_part_ms"] = med([r["frame"] - r["sent"] for r in rows])
    # The viewer's own time, as the issue defines it: Qt key event -> KEY sent, plus FRAME_END
    # (the regions decoded by the library) -> painted on the client X server.
    figures["viewer_own_ms"] = med([(r["sent"] - r["key"]) + (r["damage"] - r["frame"]) for r in rows])
    # Everything that is not the library's part: the above plus the local X server and Qt
    # delivering the key to the viewer (which any local app pays too).
    figures["not_library_ms"] = med([(r["damage"] - r["inject"]) - (r["frame"] - r["sent"]) for r in rows])
    figures["stages_ms"] = {label: med([r[end] - r[start] for r in rows]) for label, start, end in STAGES}
    return figures


def viewer_run(desktop: Any, argv: list[str], tmp: str) -> dict[str, Any]:
    """Run svclient view with xterm, measure it; the figures as a dict."""
    trace_path = os.path.join(tmp, "viewer-trace")
    env = dict(desktop.env, SVCLIENT_VIEWER_TRACE=trace_path)
    view = subprocess.Popen(argv + ["view", "--launch", "xterm"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    stopped = False
    try:
        window = int(desktop.wait_for(lambda: (desktop.run("xdotool", "search", "--onlyvisible", "--name", "@")
                                               .stdout.split() or [0])[0], 60, "the viewer's xterm"))  # fmt: skip
        desktop.run("xdotool", "windowactivate", "--sync", str(window))
        time.sleep(2.0)
        watch = DamageWatch(desktop.display, window)
        watch.start()
        keys = KeyInjector(desktop.display)
        injected = []
        for char in "abcdefghij" * (KEYSTROKES // 10):
            injected.append(keys.tap(char))
            time.sleep(KEY_PERIOD)
        desktop.run("xdotool", "key", "ctrl+u")
        time.sleep(1.0)
        pss = pss_kb(view.pid)
        desktop.run("xdotool", "type", "--delay", "5", FLOOD)
        time.sleep(0.5)
        desktop.run("xdotool", "key", "Return")
        cpu0, t0 = cpu_seconds(view.pid), time.monotonic()
        time.sleep(SCROLL_SECONDS)
        cpu = cpu_seconds(view.pid) - cpu0
        frames = [t for t in watch.events if t0 <= t < t0 + SCROLL_SECONDS]
        desktop.run("xdotool", "key", "ctrl+c")
        time.sleep(1.0)
        watch.stopping = True
        view.send_signal(2)
        view.wait(timeout=30)
        stopped = True
        rows = keystroke_paths(injected, read_trace(trace_path), watch.events)
        return {**latency_figures(rows), "pss_kb": pss, "scroll_fps": len(frames) / SCROLL_SECONDS,
                "scroll_cpu_s": cpu}  # fmt: skip
    finally:
        if not stopped:
            view.send_signal(2)
            try:
                view.wait(timeout=15)
            except subprocess.TimeoutExpired:
                view.kill()
                view.wait()


def keep_agent_logs(runtime_dir: str, tmp: str) -> list[str]:
    """Copies of the agents' logs (their FrameTrace marks) out of RUNTIME_DIR, which stop_sessiond removes."""
    kept = []
    for index, path in enumerate(sorted(glob.glob(os.path.join(runtime_dir, "**", "agent.log"), recursive=True))):
        kept.append(shutil.copy(path, os.path.join(tmp, f"agent-{index}.log")))
    return kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", action="store_true", help=argparse.SUPPRESS)
    for name in ("--server", "--user", "--password-file", "--known-hosts", "--token-dir"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw:
        args.no_resume, args.timeout, args.command = True, 30.0, "bench"  # (client.cli.open_session reads command)
        raw_client(args)
        return 0
    sys.path[:0] = [os.path.join(REPO, "tests"), os.path.join(REPO, "tests", "integration")]
    from svtest import VENV_BIN, create_user, remove_user, start_sessiond, stop_sessiond
    from viewer_desktop import ClientDesktop

    tmp = tempfile.mkdtemp(prefix="bench-viewer-")
    user = create_user("svbench-view", tmp)
    server = start_sessiond(tmp)
    desktop = ClientDesktop()
    common = ["--server", server.address, "--user", user.name, "--password-file", user.password_file,
              "--known-hosts", os.path.join(tmp, "known_hosts"),
              "--token-dir", os.path.join(tmp, "tokens")]  # fmt: skip
    try:
        viewer = viewer_run(desktop, [os.path.join(VENV_BIN, "svclient"), *common, "--no-resume"], tmp)
        raw = subprocess.run([os.path.join(VENV_BIN, "python"), os.path.abspath(__file__), "--raw", *common],
                             capture_output=True, text=True, timeout=300, cwd=REPO)  # fmt: skip
        if raw.returncode != 0:
            print(raw.stderr[-3000:], file=sys.stderr)
            return 1
        library = json.loads(raw.stdout.strip().splitlines()[-1]) if raw.stdout.strip() else {}
    finally:
        desktop.stop()
        agent_logs = keep_agent_logs(server.runtime_dir, tmp)
        stop_sessiond(server)
        remove_user(user.name)
    report(viewer, library)
    if os.environ.get("SESSIOND_FRAME_TRACE") == "1":  # the agent's marks too: one timeline per keystroke
        subprocess.run([sys.executable, os.path.join(BENCH_DIR, "keystroke_timeline.py"), "--first", str(KEYSTROKES),
                        os.path.join(tmp, "viewer-trace"), *agent_logs], check=False)  # fmt: skip
    print(json.dumps({"viewer": viewer, "library": library}))
    return 0


def show(value: Any) -> str:
    """A figure for the table (n/a when missing)."""
    return "n/a" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def report(viewer: dict[str, Any], library: dict[str, Any]) -> None:
    """Print the table with ratios viewer / library."""
    print(f"svclient view vs client library, same session, {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"{'metric':52} {'viewer':>10} {'library':>10} {'ratio':>8}")
    rows = [("keystroke -> repaint, median (ms) [a]", viewer.get("latency_ms"), viewer.get("library_part_ms")),
            ("same, library alone in its own process [b]", viewer.get("latency_ms"), library.get("latency_ms")),
            ("scroll: viewer repaints/s, library frames/s", viewer.get("scroll_fps"), library.get("scroll_fps")),
            ("CPU s during %.0f s of scroll" % SCROLL_SECONDS, viewer.get("scroll_cpu_s"),
             library.get("scroll_cpu_s")),
            ("PSS idle, attached (kB)", viewer.get("pss_kb"), library.get("pss_kb"))]  # fmt: skip
    for label, a, b in rows:
        ratio = f"{a / b:8.2f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "     n/a"
        print(f"{label:52} {show(a):>10} {show(b):>10} {ratio}")
    print(f"[a] one run, {viewer.get('latency_n')} of {KEYSTROKES} keystrokes: XTEST press on the client display ->"
          f" XDamage of the viewer's window; 'library' is the KEY sent -> FRAME_END part of the same keystrokes,"
          f" what bench_spine.py measures. [b] tap -> FRAME_END in a library-only process.")
    print("keystroke path, stage medians (ms):")
    for label, value in viewer.get("stages_ms", {}).items():
        print(f"  {label:50} {show(value):>10}")
    print(f"  {'viewer own: key event->sent + FRAME_END->damage':50} {show(viewer.get('viewer_own_ms')):>10}")
    print(f"  {'whole path - library part (+ local key delivery)':50} {show(viewer.get('not_library_ms')):>10}")


if __name__ == "__main__":
    sys.exit(main())

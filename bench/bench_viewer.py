# Benchmark of the native viewer (`svclient view`) against the raw client
# library (client.session.SessionClient, no GUI) on the same session, in the
# same run, on the same machine:
#
#   1. keystroke -> repaint: the viewer: `xdotool type` of one character
#      into the viewer's xterm window on a client-side Xvfb until XDamage
#      reports the viewer's window painted (xdotool's own run time is inside,
#      and measured alone); the library: KEY_TAP until the next FRAME_END;
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
import json
import os
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


def viewer_run(desktop: Any, argv: list[str]) -> dict[str, Any]:
    """Run svclient view with xterm, measure it; the figures as a dict."""
    view = subprocess.Popen(argv + ["view", "--launch", "xterm"], env=desktop.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        window = int(desktop.wait_for(lambda: (desktop.run("xdotool", "search", "--onlyvisible", "--name", "@")
                                               .stdout.split() or [0])[0], 60, "the viewer's xterm"))  # fmt: skip
        desktop.run("xdotool", "windowactivate", "--sync", str(window))
        time.sleep(2.0)
        watch = DamageWatch(desktop.display, window)
        watch.start()
        latencies, spawns = [], []
        for char in "abcdefghij" * (KEYSTROKES // 10):
            sent = time.monotonic()
            desktop.run("xdotool", "type", "--delay", "0", char)
            spawns.append(time.monotonic() - sent)
            time.sleep(KEY_PERIOD)
            latency = watch.first_after(sent)
            if latency is not None:
                latencies.append(latency)
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
        return {"latency_ms": statistics.median(latencies) * 1000 if latencies else None,
                "latency_n": len(latencies), "xdotool_ms": statistics.median(spawns) * 1000, "pss_kb": pss,
                "scroll_fps": len(frames) / SCROLL_SECONDS, "scroll_cpu_s": cpu}  # fmt: skip
    finally:
        view.send_signal(2)
        try:
            view.wait(timeout=15)
        except subprocess.TimeoutExpired:
            view.kill()
            view.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", action="store_true", help=argparse.SUPPRESS)
    for name in ("--server", "--user", "--password-file", "--known-hosts", "--token-dir"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw:
        args.no_resume, args.timeout = True, 30.0
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
        viewer = viewer_run(desktop, [os.path.join(VENV_BIN, "svclient"), *common, "--no-resume"])
        raw = subprocess.run([os.path.join(VENV_BIN, "python"), os.path.abspath(__file__), "--raw", *common],
                             capture_output=True, text=True, timeout=300, cwd=REPO)  # fmt: skip
        if raw.returncode != 0:
            print(raw.stderr[-3000:], file=sys.stderr)
            return 1
        library = json.loads(raw.stdout.strip().splitlines()[-1]) if raw.stdout.strip() else {}
    finally:
        desktop.stop()
        stop_sessiond(server)
        remove_user(user.name)
    report(viewer, library)
    print(json.dumps({"viewer": viewer, "library": library}))
    return 0


def show(value: Any) -> str:
    """A figure for the table (n/a when missing)."""
    return "n/a" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def report(viewer: dict[str, Any], library: dict[str, Any]) -> None:
    """Print the table with ratios viewer / library."""
    print(f"svclient view vs client library, same session, {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"{'metric':48} {'viewer':>10} {'library':>10} {'ratio':>8}")
    rows = [("keystroke -> repaint / frame, median (ms)", "latency_ms"),
            ("scroll: viewer repaints/s, library frames/s", "scroll_fps"),
            ("CPU s during %.0f s of scroll" % SCROLL_SECONDS, "scroll_cpu_s"), ("PSS idle, attached (kB)", "pss_kb")]
    for label, key in rows:
        a, b = viewer.get(key), library.get(key)
        ratio = f"{a / b:8.2f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "     n/a"
        print(f"{label:48} {show(a):>10} {show(b):>10} {ratio}")
    print(f"(viewer latency includes xdotool's own run, median {viewer.get('xdotool_ms', 0):.1f} ms; "
          f"{viewer.get('latency_n')} of {KEYSTROKES} keystrokes repainted within {LATENCY_LIMIT} s)")


if __name__ == "__main__":
    sys.exit(main())

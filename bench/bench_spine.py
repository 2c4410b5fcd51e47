# Benchmark of the sessiond spine (TLS gateway, PAM login, sandboxed agent
# with its own Xvfb, damage-driven display pipeline, input, thin client) on
# the workloads of DESIGN.md's budget table, against baselines measured in
# the same run on the same machine:
#
#   1. start-up: connect + TLS + PAM login + new session + launch xterm until
#      the client has a frame showing the window, vs bare Xvfb + xterm + one
#      XShm capture (the floor);
#   2. keystroke echo in xterm: bytes on the wire per keystroke (TLS
#      included, both directions, counted by a loopback proxy) and keystroke
#      -> client repaint latency, vs a naive server that sends the whole
#      framebuffer as PNG per update;
#   3. full-screen redraw (redraw_app.py scrolling distinct text): frames/s
#      and bytes/s at the client, vs the naive PNG encoder on the same screens.
#
# Why ratios: absolute times depend on the machine; a ratio against a
# baseline taken minutes apart on the same cores does not. Nothing here
# gates anything; it prints a table. Run as root (it creates users):
#   /opt/sessiond/venv/bin/python bench/bench_spine.py
"""sessiond spine benchmark: prints medians and ratios against baselines."""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import traceback
from typing import Any

from twisted.internet import defer, task

import spine_server
from byte_proxy import CountingProxy
from keystroke_tally import MessageTally
from client.known_hosts import KnownHosts
from client.session import SessionClient
from protocol.media import CAPS_TILE
from protocol.messages import ChannelKind, VideoCaps
from spine_server import BenchServer, BenchUsers
from spine_workloads import (
    ECHO_TIMEOUT_SECONDS,
    EchoResult,
    RedrawResult,
    StartupRun,
    echo,
    open_session,
    redraw,
    XTERM_ARGS,
    startup_once,
    user_pids,
    within,
    xterm_visible,
)

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
# Same screen as DESIGN.md's budget table, so the figures line up.
SCREEN = (1920, 1080)
# Start-up runs (each a new user, hence a new session); the brief asks >= 10.
DEFAULT_STARTUP_RUNS = 10
# Echoed keystrokes; the brief asks >= 50.
DEFAULT_KEYSTROKES = 60
# Measurement window of the redraw workload (seconds).
DEFAULT_REDRAW_SECONDS = 5.0
# Where the redraw app is copied so session users can run it (a session's
# /tmp is private, /opt is visible inside the sandbox).
# Under the prefix being measured (SESSIOND_PREFIX), so benches of two prefixes never share it.
SHARED_APP_DIR = os.path.join(spine_server.PREFIX, "bench")
REDRAW_APP_ID = "sessiond-bench-redraw"
XTERM_APP_ID = "sessiond-bench-xterm"
# Repaint rate asked of the redraw app: the display pipeline's max_fps.
REDRAW_APP_FPS = 60
USER_PREFIX = "svb-"
# CPU shares (% of one core) below this are left out of the report.
MIN_CPU_SHARE_SHOWN = 0.5


def set_compact(client: SessionClient, on: bool) -> None:
    """TILE frames (VIDEO_CAPS bit, sent again now) and KEY_TAP_ACK on or off:
    off is the previous keystroke encoding, the baseline of issue 15."""
    client.compact_keys = on
    client.video_codecs = client.video_codecs | CAPS_TILE if on else client.video_codecs & ~CAPS_TILE
    client.conn.send(int(ChannelKind.DISPLAY), VideoCaps(codecs=client.video_codecs))
    client.flush()


def negotiated(client: SessionClient) -> str:
    """The TLS version and cipher suite the client's connection negotiated."""
    handle = client.transport.getHandle() if client.transport is not None else None
    if handle is None or not hasattr(handle, "get_cipher_name"):
        return "unknown"
    return f"{handle.get_protocol_version_name()} {handle.get_cipher_name()}"


def desktop_entry(name: str, exec_line: str) -> str:
    """A bench-only .desktop entry."""
    return (
        f"[Desktop Entry]\nType=Application\nVersion=1.4\nName={name}\n"
        f"Comment=sessiond bench workload\nExec={exec_line}\nTerminal=false\n"
    )


def publish_apps(tmp: str, scripts: tuple[str, ...], entries: dict[str, tuple[str, str]]) -> str:
    """Copy the bench SCRIPTS where sessions can read them (SHARED_APP_DIR) and
    write ENTRIES (app id -> (name, Exec line)) as .desktop files into a new
    apps directory, which is returned."""
    os.makedirs(SHARED_APP_DIR, mode=0o755, exist_ok=True)
    for name in scripts:
        script = os.path.join(SHARED_APP_DIR, name)
        shutil.copyfile(os.path.join(BENCH_DIR, name), script)
        os.chmod(script, 0o644)
    apps = os.path.join(tmp, "apps")
    os.makedirs(apps, mode=0o755)
    for app_id, (name, exec_line) in entries.items():
        with open(os.path.join(apps, f"{app_id}.desktop"), "w", encoding="utf-8") as handle:
            handle.write(desktop_entry(name, exec_line))
    return apps


def publish_bench_apps(tmp: str) -> str:
    """The redraw app and xterm at the budget table's size (publish_apps)."""
    python = os.path.join(spine_server.VENV_BIN, "python")
    script = os.path.join(SHARED_APP_DIR, "redraw_app.py")
    return publish_apps(tmp, ("redraw_app.py",), {
        REDRAW_APP_ID: ("Bench redraw", f"{python} {script} --fps {REDRAW_APP_FPS}"),
        XTERM_APP_ID: ("Bench xterm", " ".join(("xterm", *XTERM_ARGS))),
    })


def redraw_visible(client: SessionClient) -> bool:
    """True once the redraw app's text reaches the bottom-right corner."""
    fb = client.framebuffer
    if fb is None:
        return False
    corner = fb.image().crop((SCREEN[0] - 400, SCREEN[1] - 200, SCREEN[0], SCREEN[1]))
    return corner.getcolors(1) is None  # more than one colour: text is there


# -- report ----------------------------------------------------------------------------
def _ms(seconds: float) -> str:
    if math.isinf(seconds):
        return "missed"
    return f"{seconds * 1000:.1f} ms"


def _ratio(ours: float, base: float) -> str:
    return f"{ours / base:.3g}x" if base and not math.isinf(ours) else "n/a"


def _size(count: float) -> str:
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count:.0f} B"


def report(startup: list[StartupRun], typed: EchoResult, scroll: RedrawResult, typed_each: EchoResult,
           typed_old: EchoResult) -> str:  # fmt: skip
    """The results table (medians; ratio = ours / baseline). typed_each: the
    same typing with every frame acked at once (the acknowledgement baseline);
    typed_old: with acks held but the previous encoding (no TILE, no KEY_TAP_ACK)."""
    med = statistics.median
    rows: list[tuple[str, str, str, str]] = []
    ours_start, base_start = med(r.first_frame for r in startup), med(r.baseline for r in startup)
    rows.append((f"start -> first frame with xterm (n={len(startup)})", _ms(ours_start),
                 f"{_ms(base_start)} bare Xvfb+xterm+XShm", _ratio(ours_start, base_start)))  # fmt: skip
    per_key = [u + d for u, d in zip(typed.bytes_up, typed.bytes_down)]
    naive_bytes = med(p.size for p in typed.naive_png)
    rows.append((f"bytes per echoed keystroke (n={len(per_key)})", f"{med(per_key):.0f} B",
                 f"{_size(naive_bytes)} naive PNG", _ratio(med(per_key), naive_bytes)))  # fmt: skip
    for label, ours, base in (("down", typed.bytes_down, typed_old.bytes_down),
                              ("up", typed.bytes_up, typed_old.bytes_up)):  # fmt: skip
        rows.append((f"keystroke bytes {label}, TILE + KEY_TAP_ACK",
                     f"{med(ours):.0f} B (mean {statistics.fmean(ours):.1f})",
                     f"{med(base):.0f} B (mean {statistics.fmean(base):.1f}) previous encoding",
                     _ratio(med(ours), med(base))))  # fmt: skip
    up, up_each = med(typed.bytes_up), med(typed_each.bytes_up)
    rows.append(("keystroke bytes up, acks held for the next key", f"{up:.0f} B",
                 f"{up_each:.0f} B every frame acked at once", _ratio(up, up_each)))  # fmt: skip
    down, down_each = med(typed.bytes_down), med(typed_each.bytes_down)
    rows.append(("keystroke bytes down, acks held for the next key", f"{down:.0f} B",
                 f"{down_each:.0f} B every frame acked at once", _ratio(down, down_each)))  # fmt: skip
    naive_encode = med(p.seconds for p in typed.naive_png)
    # A missed echo counts as infinitely late, so the median stays honest.
    latency = med(math.inf if value is None else value for value in typed.latency)
    missed = f" ({typed.missed} missed)" if typed.missed else ""
    rows.append((f"keystroke -> client repaint{missed}", _ms(latency),
                 f"{_ms(naive_encode)} naive PNG encode only", _ratio(latency, naive_encode)))  # fmt: skip
    naive_fps = 1 / med(p.seconds for p in scroll.naive_png)
    naive_frame = med(p.size for p in scroll.naive_png)
    rows.append((f"full-screen redraw, frames/s ({scroll.seconds:.1f} s)", f"{scroll.fps:.1f} fps",
                 f"{naive_fps:.1f} fps naive PNG encode", _ratio(scroll.fps, naive_fps)))  # fmt: skip
    ours_frame = scroll.bytes.down / max(scroll.frames, 1)
    rows.append(("full-screen redraw, bytes/frame (down)", _size(ours_frame), f"{_size(naive_frame)} naive PNG",
                 _ratio(ours_frame, naive_frame)))  # fmt: skip
    ours_rate = scroll.bytes.total / scroll.seconds
    naive_rate = naive_frame * scroll.fps
    rows.append(("full-screen redraw, bytes/s (both ways)", f"{_size(ours_rate)}/s",
                 f"{_size(naive_rate)}/s naive PNG at our fps", _ratio(ours_rate, naive_rate)))  # fmt: skip
    widths = [max(len(row[i]) for row in rows + [("workload", "ours", "baseline", "ratio")]) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(("workload", "ours", "baseline", "ratio")))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.append("")
    lines.append("start-up breakdown (medians from connect): TLS connect+hello {}, login+new session {}, "
                 "launch (window mapped) {}, first frame {}".format(
                     *(_ms(med(getattr(r, f) for r in startup)) for f in ("connected", "logged_in", "launched",
                                                                          "first_frame"))))  # fmt: skip
    arrived = [value for value in typed.latency if value is not None]
    p90 = _ms(statistics.quantiles(arrived, n=10)[-1]) if len(arrived) >= 2 else "n/a"
    lines.append(f"keystroke bytes: up {med(typed.bytes_up):.0f} B, down {med(typed.bytes_down):.0f} B (medians), "
                 f"mean {statistics.fmean(per_key):.0f} B; latency of arrived echoes p90 {p90}; "
                 f"echoes later than {ECHO_TIMEOUT_SECONDS:.0f} s: {typed.missed}/{len(typed.latency)}; "
                 f"changed area per echo {med(typed.changed_area):.0f} px")  # fmt: skip
    lines.append(f"redraw: {scroll.frames} frames, down {_size(scroll.bytes.down / scroll.seconds)}/s, "
                 f"up {_size(scroll.bytes.up / scroll.seconds)}/s; CPU (% of one core): "
                 + ", ".join(f"{label} {share:.0f}"
                             for label, share in sorted(scroll.cpu.items(), key=lambda item: -item[1])
                             if share >= MIN_CPU_SHARE_SHOWN))  # fmt: skip
    return "\n".join(lines)


# -- run ---------------------------------------------------------------------------------
class Bench:
    """One benchmark run: server, users, proxy; cleans up exactly once."""

    def __init__(self, reactor: Any, args: argparse.Namespace) -> None:
        self.reactor = reactor
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="svbench-")
        self.users = BenchUsers(self.tmp)
        self.known = KnownHosts(os.path.join(self.tmp, "known_hosts"))
        self.server: BenchServer | None = None
        self.proxy: CountingProxy | None = None
        self.clients: list[SessionClient] = []
        self.breakdown: list[tuple[str, MessageTally, EchoResult]] = []
        self.cipher = "unknown"
        self._cleaned = False

    async def run(self) -> str:
        reactor, args = self.reactor, self.args
        apps = publish_bench_apps(self.tmp)
        starters = [self.users.create(f"{USER_PREFIX}start-{i}") for i in range(args.startup_runs)]
        typist = self.users.create(f"{USER_PREFIX}echo")
        scroller = self.users.create(f"{USER_PREFIX}redraw")
        display = {"frames_in_flight": args.frames_in_flight} if args.frames_in_flight else None
        app_dirs = [os.path.join(REPO, "conf", "apps"), apps]
        self.server = await spine_server.start_sessiond(reactor, self.tmp, *SCREEN, app_dirs, display)
        host, port = self.server.host, self.server.port
        print(f"sessiond on {host}:{port}; start-up x{len(starters)} ...", file=sys.stderr, flush=True)
        startup = [
            await startup_once(reactor, host, port, self.known, user, XTERM_APP_ID, *SCREEN) for user in starters
        ]
        self.proxy = CountingProxy(reactor, host, port)
        pport = self.proxy.listen()
        print(f"keystroke echo x{args.keystrokes} ...", file=sys.stderr, flush=True)
        client = await open_session(reactor, "127.0.0.1", pport, self.known, typist, XTERM_APP_ID,
                                    lambda c: xterm_visible(c.framebuffer))  # fmt: skip
        self.clients.append(client)
        # Baseline of the acknowledgement: every frame acked at once in its own
        # record (clients before FRAME_END's ack_now); then the same typing with
        # acks held for the next keystroke (the default).
        client.hold_acks = False
        set_compact(client, False)
        typed_each = await echo(reactor, client, self.proxy, args.keystrokes)
        client.hold_acks = True
        # The previous encoding (REGION + FRAME_END down, KEY_TAP + FRAME_ACK up),
        # then TILE + KEY_TAP_ACK, on the same session (issue 15).
        tally_old = MessageTally(client)
        typed_old = await echo(reactor, client, self.proxy, args.keystrokes, tally_old)
        set_compact(client, True)
        tally_new = MessageTally(client)
        typed = await echo(reactor, client, self.proxy, args.keystrokes, tally_new)
        self.breakdown = [("previous encoding", tally_old, typed_old), ("TILE + KEY_TAP_ACK", tally_new, typed)]
        self.cipher = negotiated(client)
        self.save_screen(client, "echo.png")
        client.disconnect()
        print(f"full-screen redraw {args.redraw_seconds:.0f} s ...", file=sys.stderr, flush=True)
        client = await open_session(reactor, "127.0.0.1", pport, self.known, scroller, REDRAW_APP_ID,
                                    redraw_visible)  # fmt: skip
        self.clients.append(client)
        self.save_screen(client, "redraw.png")
        watched = [os.getpid(), self.server.pid, *user_pids(scroller.name)]
        scroll = await redraw(reactor, client, self.proxy, args.redraw_seconds, watched)
        return report(startup, typed, scroll, typed_each, typed_old) + "\n" + self.breakdown_text()

    def breakdown_text(self) -> str:
        """Frames and TLS records of one keystroke, previous encoding and now."""
        lines = [f"TLS of the echo connection: {self.cipher}"]
        for label, tally, result in self.breakdown:
            lines.append(f"keystroke breakdown, {label}:")
            lines.append(tally.table(result.records_down, result.records_up, result.bytes_down, result.bytes_up))
        return "\n".join(lines)

    def save_screen(self, client: SessionClient, name: str) -> None:
        """Write the client's framebuffer to --save-screens DIR/NAME."""
        if self.args.save_screens and client.framebuffer is not None:
            os.makedirs(self.args.save_screens, exist_ok=True)
            client.framebuffer.save_png(os.path.join(self.args.save_screens, name))

    async def cleanup(self) -> None:
        """Disconnect, stop sessiond (it ends the sessions), delete users."""
        if self._cleaned:
            return
        self._cleaned = True
        for client in self.clients:
            client.disconnect()
        if self.proxy is not None:
            await self.proxy.close()
        if self.server is not None:
            try:
                await within(self.reactor, self.server.stop(self.reactor), "sessiond to stop", 30)
            except Exception as exc:  # noqa: BLE001 - keep cleaning up
                print(f"bench: stopping sessiond: {exc}", file=sys.stderr)
        for problem in self.users.remove_all():
            print(f"bench: cleanup: {problem}", file=sys.stderr)
        shutil.rmtree(SHARED_APP_DIR, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def header(load: float, frames_in_flight: int | None = None, title: str = "sessiond spine benchmark") -> str:
    """Machine, date and load: other work on the machine skews every
    figure, so the report says how busy it was when the bench started."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{title}, {now}; nproc {os.cpu_count()}; {platform.machine()} "
            f"{platform.release()}; Python {platform.python_version()}; screen {SCREEN[0]}x{SCREEN[1]}, "
            f"xterm {XTERM_ARGS[-1]}; load average at start {load:.2f}"
            + (f"; frames_in_flight = {frames_in_flight} (not the default)" if frames_in_flight else ""))  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--startup-runs", type=int, default=DEFAULT_STARTUP_RUNS)
    parser.add_argument("--keystrokes", type=int, default=DEFAULT_KEYSTROKES)
    parser.add_argument("--redraw-seconds", type=float, default=DEFAULT_REDRAW_SECONDS)
    parser.add_argument("--save-screens", metavar="DIR", help="save the client's screen after the echo and "
                        "redraw workloads as PNG files in DIR (to check what was measured)")  # fmt: skip
    parser.add_argument("--frames-in-flight", type=int, metavar="N", help="sessiond's [display] frames_in_flight "
                        "for this run (default: the installed default); the header says when it is set")  # fmt: skip
    args = parser.parse_args(argv)
    if args.startup_runs < 1 or args.keystrokes < 2 or args.redraw_seconds <= 0:
        parser.error("--startup-runs >= 1, --keystrokes >= 2 and --redraw-seconds > 0 are required")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench_spine: run as root (it creates users and starts sessiond)", file=sys.stderr)
        return 2
    status = {"code": 0}
    load = os.getloadavg()[0]

    async def body(reactor: Any) -> None:
        bench = Bench(reactor, args)
        # Also clean up when the reactor stops early (Ctrl-C, SIGTERM).
        reactor.addSystemEventTrigger("before", "shutdown", lambda: defer.ensureDeferred(bench.cleanup()))
        try:
            table = await bench.run()
            print(header(load, args.frames_in_flight))
            print(table)
        except Exception as exc:  # noqa: BLE001 - one line, then the server log
            traceback.print_exc()
            print(f"bench_spine: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            if bench.server is not None:
                print("--- sessiond log (tail) ---\n" + bench.server.log()[-4000:], file=sys.stderr)
            status["code"] = 1
        finally:
            await bench.cleanup()

    try:
        task.react(lambda reactor: defer.ensureDeferred(body(reactor)))
    except SystemExit as exc:  # react() always exits; keep our own status
        if exc.code not in (0, None):
            return int(exc.code)
    return status["code"]


if __name__ == "__main__":
    sys.exit(main())

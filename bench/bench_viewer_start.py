# The native viewer's start as a user sees it: `svclient view [--desktop]
# --launch xterm` exec'd -> the xterm's prompt on the local screen, per
# installation, in one run. Without --desktop the viewer runs in seamless
# mode (its default, the one the peer sitting uses) against a seamless
# session, and the prompt is looked for in every window the viewer shows.
#
# Why next to the peer harness: the harness's "start -> first pixels" also
# starts the daemon and a cold session, whose spread on a shared 2-core host
# (1-5 s per run) hides a change of a few hundred ms in the viewer. Here each
# installation's sessiond runs all along with a warm pool (the bench waits
# for the slot to be refilled before each login, as bench_warm_start does),
# so what varies between the rows is mostly the viewer: its imports, when it
# connects, when Qt is up, and the requests of its start. Each login is a
# new user, in its own network namespace (as in bench_warm_start: the
# session's Xvfb must not meet an abstract X socket of the host's). Pixels
# are read as the harness reads them: a 64x32 box at the local window's
# top-left (no window manager on the client's Xvfb) that is
# mostly white with some black ("$ " and the cursor). The installations are
# run in turn, every other round in reverse order, each login after every
# warm pool refilled (bench_warm_start says why). Each viewer writes its
# trace (SVCLIENT_VIEWER_TRACE); the marks it has are printed as medians
# after its exec, so a change shows where in the start it lies. Run as root:
#   SESSIOND_PREFIX=/opt/sv-startup /opt/sv-startup/venv/bin/python bench/bench_viewer_start.py \
#       --prefix /opt/sv-startup-base --prefix /opt/sv-startup [--seamless] [--rounds N]
"""Viewer exec -> xterm's first pixels on the local screen, per installation (warm pool)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import Xlib.display
import Xlib.error
from twisted.internet import task, threads
from Xlib import X

import spine_server
from bench_memory import parse_settings
from bench_spine import REPO, SHARED_APP_DIR, XTERM_APP_ID, publish_bench_apps
from bench_viewer_connect import start_xvfb
from bench_warm_start import wait_for_slot
from spine_server import BenchUsers, run_bench

SCREEN = (1280, 800)
DEFAULT_ROUNDS = 5
# The probe of the peer harness (xpra_baseline.py), moved off the window's edge.
PROBE = (4, 4, 64, 32)
WHITE_FRACTION, MIN_BLACK = 0.5, 20
# Viewer trace marks printed (client/viewer: LatencyTrace), in the order of a start; a mark a viewer
# does not write is left out.
TRACE_MARKS = ("auth sent", "logged in", "qt loaded", "ui up", "launch sent", "frame", "painted")
# Seconds a viewer may take to show the xterm.
PIXELS_TIMEOUT = 60.0
POLL_SECONDS = 0.01


def xterm_shown(display: Any) -> bool:
    """The probe box of some viewable top-level window is mostly white with some black (the
    xterm's prompt): the root's in desktop mode (the viewer's window at 0,0), a window's own in
    seamless mode."""
    x, y, w, h = PROBE
    root = display.screen().root
    for window in [root, *root.query_tree().children]:
        try:
            if window != root:
                geometry = window.get_geometry()
                if window.get_attributes().map_state != X.IsViewable or geometry.width < x + w \
                        or geometry.height < y + h:
                    continue
            data = window.get_image(x, y, w, h, X.ZPixmap, 0xFFFFFFFF).data
        except Xlib.error.XError:  # gone meanwhile
            continue
        pixels = [data[i:i + 3] for i in range(0, len(data), 4)]
        white = sum(1 for p in pixels if p == b"\xff\xff\xff")
        black = sum(1 for p in pixels if p == b"\x00\x00\x00")
        if white >= WHITE_FRACTION * len(pixels) and black >= MIN_BLACK:
            return True
    return False


def trace_marks(path: str, started: float) -> dict[str, float]:
    """The first moment of each TRACE_MARKS mark in the viewer's trace, in seconds after STARTED."""
    marks: dict[str, float] = {}
    try:
        with open(path, encoding="ascii") as handle:
            for line in handle:
                what, _, moment = line.rpartition(" ")
                if what in TRACE_MARKS and what not in marks:
                    marks[what] = float(moment) - started
    except FileNotFoundError:
        pass
    return marks


def one_view(prefix: str, server: Any, user: Any, local: str, work: str,
             seamless: bool) -> tuple[float, dict[str, float]]:  # fmt: skip
    """Seconds from the viewer's exec to the xterm's pixels on the local screen, and its trace's marks."""
    mode = [] if seamless else ["--desktop"]
    argv = [os.path.join(prefix, "venv", "bin", "svclient"), "--server", f"{server.host}:{server.port}",
            "--user", user.name, "--password-file", user.password_file,
            "--known-hosts", os.path.join(work, "known_hosts"), "--token-dir", os.path.join(work, "tokens"),
            "--no-resume", "view", *mode, "--launch", XTERM_APP_ID]  # fmt: skip
    os.makedirs(work, exist_ok=True)
    trace = os.path.join(work, "trace")
    if os.path.exists(trace):
        os.unlink(trace)
    env = {**os.environ, "DISPLAY": local, "SVCLIENT_VIEWER_TRACE": trace}
    env.pop("QT_QPA_PLATFORM", None)
    display = Xlib.display.Display(local)
    log = open(os.path.join(work, "viewer.log"), "w", encoding="utf-8")  # noqa: SIM115 - closed below
    started = time.monotonic()
    viewer = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while not xterm_shown(display):
            if viewer.poll() is not None or time.monotonic() - started > PIXELS_TIMEOUT:
                with open(log.name, encoding="utf-8") as said:
                    raise RuntimeError(f"{prefix}: the viewer ended or showed nothing (status {viewer.poll()}): "
                                       f"{said.read()[-600:]}")
            time.sleep(POLL_SECONDS)
        took = time.monotonic() - started
    finally:
        viewer.terminate()  # SIGTERM: the viewer leaves its Qt loop and writes its trace
        viewer.wait()
        log.close()
        display.close()
    return took, trace_marks(trace, started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prefix", action="append", required=True, help="an installation (repeat; first = baseline)")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--seamless", action="store_true",
                        help="the viewer's seamless mode against a seamless session (default: --desktop)")
    parser.add_argument("--cold", action="store_true",
                        help="no warm pool: each login starts its session cold (the server's default)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_viewer_start: run as root (it creates users and starts sessiond)", file=sys.stderr)
        return 2
    load = os.getloadavg()[0]
    settings = ("session.network=loopback" + ("" if args.cold else ",session.warm_pool=1")
                + (",session.mode=seamless" if args.seamless else ""))

    async def work(reactor: Any, tmp: str, users: BenchUsers) -> None:
        apps = publish_bench_apps(tmp)
        servers = []
        xvfb, local = start_xvfb()
        times: list[list[float]] = [[] for _ in args.prefix]
        marks: list[list[dict[str, float]]] = [[] for _ in args.prefix]
        try:
            for index, prefix in enumerate(args.prefix):
                home = os.path.join(tmp, f"server-{index}")
                os.makedirs(home)
                servers.append(await spine_server.start_sessiond(
                    reactor, home, *SCREEN, [os.path.join(REPO, "conf", "apps"), apps],
                    extra=parse_settings(settings), venv_bin=os.path.join(prefix, "venv", "bin")))
            for run in range(args.rounds):
                # Every other round in reverse order, and every pool refilled before a login (bench_warm_start).
                order = range(len(args.prefix)) if run % 2 == 0 else range(len(args.prefix) - 1, -1, -1)
                for index in order:
                    prefix = args.prefix[index]
                    user = users.create(f"svv-{index}-{run}")
                    for server in servers if not args.cold else ():
                        await wait_for_slot(reactor, server.pid, settle=False)
                    await task.deferLater(reactor, 1.0, lambda: None)  # the refill's (or last session's) work done
                    took, seen = await threads.deferToThread(one_view, prefix, servers[index], user, local,
                                                             os.path.join(tmp, f"c{index}"), args.seamless)  # fmt: skip
                    times[index].append(took)
                    marks[index].append(seen)
                    print(f"{prefix}: run {run + 1}: {took * 1000:.0f} ms", file=sys.stderr, flush=True)
        except Exception:
            for server in servers:
                print("--- sessiond log (tail) ---\n" + server.log()[-2000:], file=sys.stderr)
            raise
        finally:
            for server in servers:
                await server.stop(reactor)
            xvfb.kill()
            xvfb.wait()
        base = statistics.median(times[0])
        mode = "" if args.seamless else " --desktop"
        pool = "no warm pool" if args.cold else "warm pool"
        print(f"svclient view{mode} --launch xterm: exec -> xterm's pixels on the local screen, {pool}, "
              f"{args.rounds} rounds; load average at start {load:.2f}, at end {os.getloadavg()[0]:.2f}")
        for prefix, runs, seen in zip(args.prefix, times, marks):
            med = statistics.median(runs)
            print(f"{prefix:32} median {med * 1000:5.0f} ms (min {min(runs) * 1000:.0f}, max {max(runs) * 1000:.0f})"
                  f"  ratio {med / base:.2f}x")
            steps = [f"{what} {statistics.median(m[what] for m in seen if what in m) * 1000:.0f}"
                     for what in TRACE_MARKS if any(what in m for m in seen)]
            print(f"{'':32} trace medians, ms after exec: {', '.join(steps) or 'none'}")

    return run_bench("bench_viewer_start", "svview-", work, remove=(SHARED_APP_DIR,))


if __name__ == "__main__":
    sys.exit(main())

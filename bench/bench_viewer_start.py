# The native viewer's start as a user sees it: `svclient view --desktop
# --launch xterm` exec'd -> the xterm's prompt on the local screen, per
# installation, in one run.
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
# run in turn, so a change of load falls on all. Run as root:
#   SESSIOND_PREFIX=/opt/sv-startup /opt/sv-startup/venv/bin/python bench/bench_viewer_start.py \
#       --prefix /opt/sv-startup-base --prefix /opt/sv-startup
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
from twisted.internet import threads
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
# Seconds a viewer may take to show the xterm.
PIXELS_TIMEOUT = 60.0
POLL_SECONDS = 0.01


def xterm_shown(display: Any) -> bool:
    """The probe box is mostly white with some black (the xterm's prompt)."""
    x, y, w, h = PROBE
    data = display.screen().root.get_image(x, y, w, h, X.ZPixmap, 0xFFFFFFFF).data
    pixels = [data[i:i + 3] for i in range(0, len(data), 4)]
    white = sum(1 for p in pixels if p == b"\xff\xff\xff")
    black = sum(1 for p in pixels if p == b"\x00\x00\x00")
    return white >= WHITE_FRACTION * len(pixels) and black >= MIN_BLACK


def one_view(prefix: str, server: Any, user: Any, local: str, work: str) -> float:
    """Seconds from the viewer's exec to the xterm's pixels on the local screen."""
    argv = [os.path.join(prefix, "venv", "bin", "svclient"), "--server", f"{server.host}:{server.port}",
            "--user", user.name, "--password-file", user.password_file,
            "--known-hosts", os.path.join(work, "known_hosts"), "--token-dir", os.path.join(work, "tokens"),
            "--no-resume", "view", "--desktop", "--launch", XTERM_APP_ID]  # fmt: skip
    env = {**os.environ, "DISPLAY": local}
    env.pop("QT_QPA_PLATFORM", None)
    display = Xlib.display.Display(local)
    os.makedirs(work, exist_ok=True)
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
        return time.monotonic() - started
    finally:
        viewer.terminate()
        viewer.wait()
        log.close()
        display.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prefix", action="append", required=True, help="an installation (repeat; first = baseline)")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_viewer_start: run as root (it creates users and starts sessiond)", file=sys.stderr)
        return 2
    load = os.getloadavg()[0]

    async def work(reactor: Any, tmp: str, users: BenchUsers) -> None:
        apps = publish_bench_apps(tmp)
        servers = []
        xvfb, local = start_xvfb()
        times: list[list[float]] = [[] for _ in args.prefix]
        try:
            for index, prefix in enumerate(args.prefix):
                home = os.path.join(tmp, f"server-{index}")
                os.makedirs(home)
                servers.append(await spine_server.start_sessiond(
                    reactor, home, *SCREEN, [os.path.join(REPO, "conf", "apps"), apps],
                    extra=parse_settings("session.warm_pool=1,session.network=loopback"),
                    venv_bin=os.path.join(prefix, "venv", "bin")))
            for run in range(args.rounds):
                for index, prefix in enumerate(args.prefix):
                    user = users.create(f"svv-{index}-{run}")
                    await wait_for_slot(reactor, servers[index].pid)
                    took = await threads.deferToThread(one_view, prefix, servers[index], user, local,
                                                       os.path.join(tmp, f"c{index}"))  # the reactor reads the logs
                    times[index].append(took)
                    print(f"{prefix}: run {run + 1}: {times[index][-1] * 1000:.0f} ms", file=sys.stderr, flush=True)
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
        print(f"svclient view --desktop --launch xterm: exec -> xterm's pixels on the local screen, warm pool, "
              f"{args.rounds} rounds in turn; load average at start {load:.2f}, at end {os.getloadavg()[0]:.2f}")
        for prefix, runs in zip(args.prefix, times):
            med = statistics.median(runs)
            print(f"{prefix:32} median {med * 1000:5.0f} ms (min {min(runs) * 1000:.0f}, max {max(runs) * 1000:.0f})"
                  f"  ratio {med / base:.2f}x")

    return run_bench("bench_viewer_start", "svview-", work, remove=(SHARED_APP_DIR,))


if __name__ == "__main__":
    sys.exit(main())

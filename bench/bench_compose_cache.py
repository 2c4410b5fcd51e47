# What libX11's global compose cache (isolation/compose_cache.py) saves an
# app's start: xterm (-geometry 180x50, the budget table's) from exec to its
# first map on a fresh Xvfb, run as a uid of the default [session] x_uids
# (no account, no home: a session user's apps find no cache of their own),
# in the sessions' default locale C.UTF-8; RUNS starts with the host's
# cache in place and RUNS with it moved aside, alternated (A B A B ...) so a
# change of load falls on both. The cache is made first if the host has
# none (the installed root half, as sessiond's start does) and is put back
# at the end whatever happens. Run as root:
#   SESSIOND_PREFIX=/opt/sessiond /opt/sessiond/venv/bin/python bench/bench_compose_cache.py
"""Compose-cache benchmark: xterm exec -> first map with and without libX11's global cache."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import Xlib.display
from Xlib import X

from isolation.compose_cache import CACHE_NAME_RE, GLOBAL_DIR, CacheError, build_cache, compose_file, is_current
from sessiond.agent.xserver import start_xvfb

LANG = "C.UTF-8"
# A uid of the default [session] x_uids at its top end (slots take the lowest free ones).
BENCH_UID = 1900009997
DEFAULT_RUNS = 15
XTERM = ("xterm", "-geometry", "180x50")
MAP_TIMEOUT_SECONDS = 10.0


def exec_to_map(display: str) -> float:
    """Seconds from xterm's spawn (as BENCH_UID) to its first map on DISPLAY."""
    watcher = Xlib.display.Display(display)
    try:
        watcher.screen().root.change_attributes(event_mask=X.SubstructureNotifyMask)
        watcher.sync()
        env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": LANG, "DISPLAY": display}
        argv = ["setpriv", f"--reuid={BENCH_UID}", f"--regid={BENCH_UID}", "--clear-groups", *XTERM]
        started = time.perf_counter()
        xterm = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = started + MAP_TIMEOUT_SECONDS
            while True:
                while watcher.pending_events():
                    event = watcher.next_event()
                    if event.type == X.MapNotify and not event.override:
                        return time.perf_counter() - started
                if time.perf_counter() > deadline:
                    raise RuntimeError("xterm did not map its window")
                time.sleep(0.0005)
        finally:
            xterm.kill()
            xterm.wait()
    finally:
        watcher.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="xterm starts with and without the cache each")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_compose_cache: run as root (the cache is root's)", file=sys.stderr)
        return 2
    load = os.getloadavg()[0]
    if not is_current(LANG):
        try:
            build_cache(BENCH_UID, LANG)
        except CacheError as exc:
            print(f"bench_compose_cache: {exc}", file=sys.stderr)
            return 1
    names = [name for name in os.listdir(GLOBAL_DIR) if CACHE_NAME_RE.fullmatch(name)]
    aside = {name: os.path.join(GLOBAL_DIR, f".bench-aside-{name}") for name in names}
    times: dict[str, list[float]] = {"with the cache": [], "without (parsing the Compose file)": []}
    server = start_xvfb(1920, 1080)
    try:
        for _ in range(args.runs):
            for label in times:
                if label.startswith("without"):
                    for name, moved in aside.items():
                        os.rename(os.path.join(GLOBAL_DIR, name), moved)
                try:
                    times[label].append(exec_to_map(server.display))
                finally:
                    for name, moved in aside.items():
                        if os.path.exists(moved):
                            os.rename(moved, os.path.join(GLOBAL_DIR, name))
    finally:
        server.stop()
    base = statistics.median(times["without (parsing the Compose file)"])
    print(f"compose-cache benchmark: xterm {' '.join(XTERM[1:])} exec -> first map as an unprivileged uid, "
          f"LANG={LANG} ({compose_file(LANG)}), median of {args.runs}; load average at start {load:.2f}")  # fmt: skip
    for label, values in times.items():
        median = statistics.median(values)
        print(f"  {label:<36} {median * 1000:6.1f} ms  {median / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

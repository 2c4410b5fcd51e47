# Twenty users logging in at once on this 2-core machine (issue 12, "Load"):
# each connects, logs in through PAM (a new sandboxed session each), opens the
# display and launches the bench xterm, all at the same moment; the figure is
# connect -> first frame showing the xterm, per user. The baseline is the
# same path for one user alone, measured in the same run just before.
#
# Prints the distribution (min, median, p90, max) and the ratio of the
# concurrent median to the lone login. Nothing gates anything. Run as root:
#   /opt/sessiond/venv/bin/python bench/bench_logins.py [--users 20]
"""Concurrent logins: distribution of connect -> first frame, against one login alone."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

from twisted.internet import defer

import spine_server
from bench_spine import REPO, SCREEN, SHARED_APP_DIR, XTERM_APP_ID, publish_bench_apps
from client.known_hosts import KnownHosts
from spine_server import BenchUsers, run_bench
from spine_workloads import XTERM_ARGS, StartupRun, startup_once, within

DEFAULT_USERS = 20


def distribution(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return (f"min {ordered[0] * 1000:.0f} ms, median {statistics.median(ordered) * 1000:.0f} ms, "
            f"p90 {p90 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms")  # fmt: skip


async def one_login(reactor: Any, host: str, port: int, known: KnownHosts, user: Any) -> StartupRun:
    return await startup_once(reactor, host, port, known, user, XTERM_APP_ID, *SCREEN, with_baseline=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=DEFAULT_USERS)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_logins: run as root (it creates users and starts sessiond)", file=sys.stderr)
        return 2

    async def work(reactor: Any, tmp: str, users: BenchUsers) -> None:
        server = None
        try:
            apps = publish_bench_apps(tmp)
            alone = users.create("svb-alone")
            crowd = [users.create(f"svb-crowd-{i}") for i in range(args.users)]
            app_dirs = [os.path.join(REPO, "conf", "apps"), apps]
            server = await spine_server.start_sessiond(reactor, tmp, *SCREEN, app_dirs)
            known = KnownHosts(os.path.join(tmp, "known_hosts"))
            load = os.getloadavg()[0]
            single = await one_login(reactor, server.host, server.port, known, alone)
            started = time.perf_counter()
            runs = await defer.gatherResults(
                [defer.ensureDeferred(one_login(reactor, server.host, server.port, known, u)) for u in crowd],
                consumeErrors=True)  # fmt: skip
            wall = time.perf_counter() - started
            firsts = [r.first_frame for r in runs]
            logins = [r.logged_in for r in runs]
            print(f"concurrent logins, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; nproc "
                  f"{os.cpu_count()}; load average at start {load:.2f}; {SCREEN[0]}x{SCREEN[1]}, xterm "
                  f"{XTERM_ARGS[-1]}")  # fmt: skip
            print(f"one login alone: connect -> first frame {single.first_frame * 1000:.0f} ms "
                  f"(login {single.logged_in * 1000:.0f} ms)")  # fmt: skip
            print(f"{len(runs)} at once, all working: connect -> login  {distribution(logins)}")
            print(f"{len(runs)} at once, all working: connect -> first frame  {distribution(firsts)}; "
                  f"all done in {wall:.2f} s")  # fmt: skip
            print(f"ratio median(concurrent) / alone: {statistics.median(firsts) / single.first_frame:.2f}x "
                  f"(the {len(runs)} sessions share 2 cores: the floor is about {len(runs) / 2:.0f}x)")  # fmt: skip
        except Exception:
            if server is not None:
                print(server.log()[-3000:], file=sys.stderr)
            raise
        finally:
            if server is not None:
                await within(reactor, server.stop(reactor), "sessiond to stop", 60)

    return run_bench("bench_logins", "svbench-logins-", work, remove=(SHARED_APP_DIR,))


if __name__ == "__main__":
    sys.exit(main())

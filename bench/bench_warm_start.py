# Login -> first frame with and without the warm pool, in one run.
#
# Three configurations of the installed sessiond, each on a fresh daemon
# with the bench's 1920x1080 screen, all running at once and logged into in
# turn, RUNS new users each (connect + TLS + PAM + new session + launch
# xterm, until the client has a frame showing the xterm):
#   cold, exec    [session] zygote = false: the entry execs a new agent
#                 interpreter (how sessions started before issue 15);
#   cold, zygote  the defaults: the entry preloads the agent and forks it;
#   warm pool     warm_pool = 1: the login claims a zygote spawned earlier.
# Before each warm login the bench waits until the pool has refilled (the
# slot is waiting with its imports done), as it would on a server between
# logins; a login that finds the pool empty starts cold, which is what the
# cold rows measure. Ratios are against the first row; the turns spread a
# change of load over every row. A second table breaks each login into its
# steps (client and server time stamps, bench/startup_breakdown.py), next to what
# is not sessiond's: one PAM authentication, Xvfb's start, xterm's own
# exec -> first map + capture, measured alone in the same run. With
# --baseline-prefix a warm pool of another installation runs first (the
# ratios' baseline); --warm-only skips the cold rows; --cold-only keeps only
# the defaults (cold, zygote), the baseline's too. Run as root:
#   SESSIOND_PREFIX=/opt/sessiond /opt/sessiond/venv/bin/python bench/bench_warm_start.py
"""Start-up benchmark: login -> first frame, cold (exec / zygote) vs warm pool."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

from twisted.internet import task

import spine_server
from bench_memory import parse_settings
from bench_spine import REPO, SHARED_APP_DIR, XTERM_APP_ID, publish_bench_apps
from client.known_hosts import KnownHosts
from spine_server import BenchUsers, run_bench
from sessiond.agent.display import TRACE_FLUSH_SECONDS
from startup_breakdown import (AFTER_OPEN, LAUNCH_ORDERS, breakdown_table, floors, pam_seconds, server_marks,
                               session_logs, timed_login)

SCREEN = (1920, 1080)
DEFAULT_RUNS = 5
USER_PREFIX = "svw-"
# Seconds the bench waits for a refilled warm slot before a warm login.
REFILL_TIMEOUT = 30.0
# As in bench_memory, a network namespace per session (spine_server already
# runs desktop mode, which its first-frame probe needs).
COMMON = "session.network=loopback"
CONFIGS = (
    ("cold, exec (zygote = false)", "session.zygote=false"),
    ("cold, zygote (defaults)", ""),
    ("warm pool (warm_pool = 1)", "session.warm_pool=1"),
)


def waiting_slots(daemon: int) -> int:
    """How many of DAEMON's children are zygotes that no session claimed yet."""
    parents: dict[int, int] = {}
    commands: dict[int, bytes] = {}
    zygotes = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except (OSError, ValueError, IndexError):
            continue
        parents[int(name)] = ppid
        commands[int(name)] = cmdline
        if ppid == daemon:
            zygotes.append(int(name))
    # A zygote with no child yet, or (a slot with a pre-started X server) a supervisor whose child
    # is still the slot's entry (it becomes the session's init once a login claims it).
    waiting = [pid for pid in zygotes if b"--zygote" in commands[pid] and pid not in set(parents.values())]
    waiting += [ppid for pid, ppid in parents.items() if ppid in zygotes and b"--x-slot" in commands[pid]]
    return len(waiting)


async def wait_for_slot(reactor: Any, daemon: int, settle: bool = True) -> None:
    """Until DAEMON's pool has a slot waiting, then (SETTLE) a second for its imports."""
    deadline = time.monotonic() + REFILL_TIMEOUT
    while waiting_slots(daemon) == 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the warm pool did not refill")
        await task.deferLater(reactor, 0.1, lambda: None)
    if settle:
        await task.deferLater(reactor, 1.0, lambda: None)  # its imports done, as between real logins


async def measure(reactor: Any, tmp: str, apps: str, users: BenchUsers, known: KnownHosts,
                  configs: list[tuple[str, str, str]], runs: int, order: str = AFTER_OPEN,
                  seamless: bool = False) -> list[list[dict[str, float]]]:  # fmt: skip
    """RUNS logins of new users on each of CONFIGS (name, settings, venv bin),
    one fresh sessiond each, all running at once and logged into in turn
    (run 1 on each, then run 2 on each in reverse order, ...), so that a change of the host's
    load during the bench falls on every configuration alike. Per
    configuration: each login's time stamps, client's and server's
    (startup_breakdown.STEPS)."""
    servers = []
    results: list[list[dict[str, float]]] = [[] for _ in configs]
    logins: list[list[tuple[str, dict[str, float]]]] = [[] for _ in configs]
    try:
        for index, (_name, settings, venv_bin) in enumerate(configs):
            home = os.path.join(tmp, f"config-{index}")  # its own state dir, certificate and config
            os.makedirs(home)
            extra = parse_settings(f"{COMMON},{settings}" + (",session.mode=seamless" if seamless else ""))
            servers.append(await spine_server.start_sessiond(reactor, home, *SCREEN,
                                                             [os.path.join(REPO, "conf", "apps"), apps],
                                                             extra=extra, venv_bin=venv_bin))  # fmt: skip
        for run in range(runs):
            # Every other round in reverse order: no configuration always logs in right after another's.
            order_of_run = range(len(configs)) if run % 2 == 0 else range(len(configs) - 1, -1, -1)
            for index in order_of_run:
                name, server = configs[index][0], servers[index]
                print(f"{name}: login {run + 1} of {runs}", file=sys.stderr, flush=True)
                user = users.create(f"{USER_PREFIX}{index}-{run}")
                # Every warm server's pool refilled first, not only this one's: the last login's
                # server refills REFILL_DELAY_SECONDS after its claim, the time of the pause below, and
                # that refill (an interpreter's imports, an Xvfb) ran during this login's PAM and start.
                for other, (_n, other_settings, _v) in zip(servers, configs):
                    if "warm_pool" in other_settings:
                        await wait_for_slot(reactor, other.pid, settle=False)
                await task.deferLater(reactor, 1.0, lambda: None)  # its imports done, as between real logins
                login = await timed_login(reactor, server.host, server.port, known, user, XTERM_APP_ID, order,
                                          seamless)  # fmt: skip
                logins[index].append((user.name, login.marks))
        # The server's marks are read at the end: an agent writes its frame trace once a second.
        await task.deferLater(reactor, TRACE_FLUSH_SECONDS + 0.5, lambda: None)
        for index, server in enumerate(servers):
            log_text, agent_logs = server.log(), session_logs(server.runtime_dir)
            results[index] = [{**marks, **server_marks(log_text, name, agent_logs)} for name, marks in logins[index]]
    except Exception:
        for server in servers:
            print("--- sessiond log (tail) ---\n" + server.log()[-3000:], file=sys.stderr)
        raise
    finally:
        for server in servers:
            await server.stop(reactor)
    return results


def report(rows: list[tuple[str, list[dict[str, float]]]]) -> str:
    """Medians per configuration; ratio against the first row."""
    med = statistics.median
    base = med(r["first frame"] - r["tls done"] for r in rows[0][1])
    head = ("configuration", "login -> first frame", "login -> logged in", "ratio")
    table = []
    for name, runs in rows:
        first = med(r["first frame"] - r["tls done"] for r in runs)
        login = med(r["auth result"] - r["tls done"] for r in runs)
        table.append((f"{name} (n={len(runs)})", f"{first * 1000:.0f} ms", f"{login * 1000:.0f} ms",
                      f"{first / base:.2f}x"))  # fmt: skip
    widths = [max(len(row[i]) for row in [head, *table]) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(head)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in table]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="logins per configuration")
    parser.add_argument("--baseline-prefix", default="",
                        help="also run the warm pool from another installation (e.g. an earlier commit installed "
                             "with make install PREFIX=...), first, as the ratios' baseline")  # fmt: skip
    parser.add_argument("--warm-only", action="store_true", help="skip the two cold configurations")
    parser.add_argument("--cold-only", action="store_true",
                        help="only the defaults (cold, zygote), and the baseline installation with the defaults too")
    parser.add_argument("--launch-order", choices=LAUNCH_ORDERS, default=AFTER_OPEN,
                        help="send the LAUNCH after the display channel opened (default), in the same flight "
                             "as its open (the viewer's desktop mode), or before it")  # fmt: skip
    parser.add_argument("--seamless", action="store_true",
                        help="run the sessions in seamless mode (the viewer's default) instead of desktop mode")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_warm_start: run as root (it creates users and starts sessiond)", file=sys.stderr)
        return 2
    load = os.getloadavg()[0]

    async def work(reactor: Any, tmp: str, users: BenchUsers) -> None:
        known = KnownHosts(os.path.join(tmp, "known_hosts"))
        apps = publish_bench_apps(tmp)
        configs = [(name, settings, spine_server.VENV_BIN) for name, settings in CONFIGS
                   if (not args.warm_only or "warm_pool" in settings) and (not args.cold_only or not settings)]
        if args.baseline_prefix:
            base = CONFIGS[1] if args.cold_only else CONFIGS[-1]
            configs.insert(0, (f"{base[0]}, {args.baseline_prefix}", base[1],
                               os.path.join(args.baseline_prefix, "venv", "bin")))  # fmt: skip
        measured = await measure(reactor, tmp, apps, users, known, configs, args.runs, args.launch_order,
                                 args.seamless)  # fmt: skip
        rows = [(name, runs) for (name, _settings, _venv), runs in zip(configs, measured)]
        floor_user = users.create(f"{USER_PREFIX}floor")
        pam = statistics.median(pam_seconds(floor_user) for _ in range(args.runs))
        parts = [floors(*SCREEN) for _ in range(args.runs)]
        xvfb, xterm = (statistics.median(part[i] for part in parts) for i in range(2))
        print(f"sessiond warm-start benchmark; login (after TLS connect) -> first frame with xterm, "
              f"{SCREEN[0]}x{SCREEN[1]}, {'seamless' if args.seamless else 'desktop'} mode; "
              f"LAUNCH {args.launch_order}; load average at start {load:.2f}")  # fmt: skip
        print(report(rows))
        print()
        print(breakdown_table(rows))
        print(f"not sessiond's, measured alone (median of {args.runs}): one PAM authentication {pam * 1000:.0f} ms; "
              f"Xvfb start {xvfb * 1000:.0f} ms; xterm exec -> first map + one capture {xterm * 1000:.0f} ms")

    return run_bench("bench_warm_start", "svwarm-", work, remove=(SHARED_APP_DIR,))

if __name__ == "__main__":
    sys.exit(main())

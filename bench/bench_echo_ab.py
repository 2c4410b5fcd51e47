# Keystroke echo latency of two installations at the same time: a baseline
# (--baseline-prefix, e.g. a checkout of main) and the one under test
# (SESSIOND_PREFIX), each its own sessiond, user and xterm session, typed
# into alternately, one keystroke here, one there, KEY_TAP -> first FRAME_END
# through the client library (what bench_spine.py's echo latency measures).
#
# Why alternate instead of running bench_spine twice: on a shared 2-core
# machine the load swings by a factor of two within minutes, and a change of
# a millisecond disappears between two runs minutes apart; keystrokes
# interleaved 50 ms apart see the same load, so the median of the per-pair
# differences says what the change did. The two sessions are not alike even
# so (an A/A run, one install against itself, showed the session started
# second 0.2-0.4 ms faster), so by default the run is repeated with the roles
# swapped (which install's sessiond starts first) and the change is half the
# difference of the two paired medians. It also prints the CPU time per
# keystroke of each install's sessiond and of its session's processes (by
# name: the agent is "python"), from /proc's schedstat over the keystrokes
# less what as long idle costs (measured just after): wall-clock latency
# swings with the load, CPU per keystroke much less.
# Run as root after `make install`:
#   SESSIOND_PREFIX=/opt/sv-x /opt/sv-x/venv/bin/python bench/bench_echo_ab.py --baseline-prefix /opt/sv-main
"""Echo latency A/B of two installs, keystrokes interleaved (medians, paired difference)."""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

from twisted.internet import defer, task

sys.path[:0] = [os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")]
import spine_server  # noqa: E402 - after the path
from bench_spine import REPO, SCREEN, XTERM_APP_ID, publish_apps  # noqa: E402
from client.keysyms import keysym_for_char  # noqa: E402
from client.known_hosts import KnownHosts  # noqa: E402
from client.session import SessionClient  # noqa: E402
from session_pids import session_pids  # noqa: E402
from spine_workloads import XTERM_ARGS, open_session, wait_quiet, within, xterm_visible  # noqa: E402

# Keystrokes per installation, and the pause after each (both sessions idle between keys).
DEFAULT_KEYSTROKES = 100
GAP_SECONDS = 0.05
# Both sessions idle this long after the keystrokes: the CPU that costs is taken off the per-key figures
# (after, not before: a session's start-up still costs CPU for a while after its first frame).
IDLE_SECONDS = 3.0
ECHO_TIMEOUT = 1.0


def cpu_seconds(pid: int) -> float:
    """CPU time of all threads of PID so far (schedstat, ns resolution); 0 if it is gone."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as handle:
                total += int(handle.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


def processes(server: Any, user: str) -> dict[str, list[int]]:
    """sessiond's pid, and the user's session's pids by command name."""
    found: dict[str, list[int]] = {"sessiond": [server.pid]}
    for pid in session_pids(user):
        try:
            with open(f"/proc/{pid}/comm") as handle:
                found.setdefault(handle.read().strip(), []).append(pid)
        except OSError:
            continue
    return found


def cpu_by_name(procs: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far, summed per command name."""
    return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in procs.items()}


async def tap_latency(reactor: Any, client: SessionClient, char: str) -> float | None:
    """Seconds from KEY_TAP to the next FRAME_END (None: none within ECHO_TIMEOUT)."""
    frame = client.next_frame()
    sent = time.perf_counter()
    client.tap(keysym_for_char(char))
    try:
        await within(reactor, frame, "an echo", ECHO_TIMEOUT)
    except Exception:  # noqa: BLE001 - a missed echo is counted, not fatal
        return None
    return time.perf_counter() - sent


async def run(reactor: Any, args: argparse.Namespace, swapped: bool) -> dict[str, list[float | None]]:
    """Both sessions up (the baseline's first, unless SWAPPED), keystrokes interleaved; latencies by role."""
    tmp = tempfile.mkdtemp(prefix="bench-echo-ab-")
    users = spine_server.BenchUsers(tmp)
    known = KnownHosts(os.path.join(tmp, "known_hosts"))
    apps = publish_apps(tmp, (), {XTERM_APP_ID: ("Bench xterm", " ".join(("xterm", *XTERM_ARGS)))})
    installs = {"baseline": os.path.join(args.baseline_prefix, "venv", "bin"), "tested": spine_server.VENV_BIN}
    if swapped:
        installs = dict(reversed(installs.items()))
    servers, clients, out = [], {}, {name: [] for name in installs}
    procs: dict[str, dict[str, list[int]]] = {}
    try:
        for name, venv_bin in installs.items():
            work = os.path.join(tmp, name)
            os.makedirs(work)
            app_dirs = [os.path.join(REPO, "conf", "apps"), apps]
            server = await spine_server.start_sessiond(reactor, work, *SCREEN, app_dirs, venv_bin=venv_bin)
            servers.append(server)
            user = users.create(f"svb-ab{name[0]}")
            clients[name] = await open_session(reactor, server.host, server.port, known, user, XTERM_APP_ID,
                                               lambda c: xterm_visible(c.framebuffer))  # fmt: skip
            procs[name] = processes(server, user.name)
        for client in clients.values():
            await wait_quiet(reactor, client)
        typing_from, before = time.perf_counter(), {name: cpu_by_name(p) for name, p in procs.items()}
        for index in range(args.keystrokes):
            order = list(clients.items()) if index % 2 == 0 else list(reversed(clients.items()))
            for name, client in order:
                out[name].append(await tap_latency(reactor, client, "abcdefghij"[index % 10]))
                await task.deferLater(reactor, GAP_SECONDS, lambda: None)
        typing_span, typed = time.perf_counter() - typing_from, {name: cpu_by_name(p) for name, p in procs.items()}
        await task.deferLater(reactor, ECHO_TIMEOUT, lambda: None)  # the last echo's frames
        idle_from, idle_at = time.perf_counter(), {name: cpu_by_name(p) for name, p in procs.items()}
        await task.deferLater(reactor, IDLE_SECONDS, lambda: None)
        idle_span = time.perf_counter() - idle_from
        for name, p in procs.items():  # CPU over the keystrokes less what the same time idle costs
            after, idle_end = typed[name], cpu_by_name(p)
            idle = {k: (idle_end.get(k, 0.0) - idle_at[name].get(k, 0.0)) * typing_span / idle_span for k in after}
            out[f"cpu {name}"] = [(after[k] - before[name].get(k, 0.0) - idle[k]) / args.keystrokes
                                  for k in sorted(after)]  # fmt: skip
            out[f"cpu names {name}"] = sorted(after)  # type: ignore[list-item]
    finally:
        for client in clients.values():
            client.disconnect()
        for server in servers:
            await within(reactor, server.stop(reactor), "sessiond to stop", 30)
        for problem in users.remove_all():
            print(f"bench: cleanup: {problem}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def report(out: dict[str, list[float | None]], args: argparse.Namespace, first: str) -> float:
    """Medians of each, the median paired difference (returned, ms) and the ratio."""
    base, tested = out["baseline"], out["tested"]
    pairs = [(b, t) for b, t in zip(base, tested) if b is not None and t is not None]
    med_b = statistics.median(b for b, _ in pairs) * 1000
    med_t = statistics.median(t for _, t in pairs) * 1000
    diff = statistics.median(t - b for b, t in pairs) * 1000
    print(f"echo KEY_TAP -> FRAME_END, {len(pairs)} interleaved pairs, {first}'s sessiond started first, "
          f"load {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M:%S')}")  # fmt: skip
    print(f"  baseline {args.baseline_prefix}: median {med_b:.2f} ms")
    print(f"  tested   {spine_server.PREFIX}: median {med_t:.2f} ms   ratio {med_t / med_b:.2f}")
    print(f"  median of per-pair differences (tested - baseline): {diff:+.2f} ms")
    print(f"  missed echoes: baseline {base.count(None)}, tested {tested.count(None)}")
    for role in ("baseline", "tested"):
        names, cpu = out.get(f"cpu names {role}", []), out.get(f"cpu {role}", [])
        per_key = ", ".join(f"{name} {seconds * 1000:.3f}" for name, seconds in zip(names, cpu))  # type: ignore[misc]
        print(f"  CPU ms per keystroke, {role}: {per_key}")
    return diff


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline-prefix", required=True, help="the other installation (its venv runs sessiond)")
    parser.add_argument("--keystrokes", type=int, default=DEFAULT_KEYSTROKES)
    parser.add_argument("--one-way", action="store_true", help="no second run with the roles swapped")
    args = parser.parse_args()
    results: list[dict[str, list[float | None]]] = []

    async def body(reactor: Any) -> None:
        for swapped in (False,) if args.one_way else (False, True):
            results.append(await run(reactor, args, swapped))

    try:
        task.react(lambda reactor: defer.ensureDeferred(body(reactor)))
    except SystemExit as exc:
        if exc.code not in (0, None):
            return int(exc.code)
    diffs = [report(out, args, "tested" if index else "baseline") for index, out in enumerate(results)]
    if len(diffs) == 2:
        print(f"change (tested - baseline), the two orders averaged: {sum(diffs) / 2:+.2f} ms; "
              f"a session for being started second: {(diffs[0] - diffs[1]) / 2:+.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

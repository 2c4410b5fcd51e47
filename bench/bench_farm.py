# Farm directory benchmark: how long does a placement decision take with
# 1000 sessions in the directory, against a baseline measured in the same run
# on the same etcd (a plain read of the very keys the decision reads)? The
# ratio is the cost of the farm logic on top of etcd itself; absolute times
# depend on the machine and gate nothing. Starts its own etcd member on
# loopback (Debian's etcd, as the tests do) and removes it at the end.
"""bench_farm: placement decision, claim and listing with 1000 sessions, as ratios to plain reads."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from etcdtest import start_cluster  # noqa: E402 - after the sys.path line
from twisted.internet import defer, task  # noqa: E402 - after the sys.path line

from sessiond.farm import placement  # noqa: E402 - after the sys.path line
from sessiond.farm.directory import HostLoad, SessionPlacement  # noqa: E402 - after the sys.path line
from sessiond.farm.etcd_client import EtcdClient, EtcdSettings  # noqa: E402 - after the sys.path line
from sessiond.farm.etcd_codec import op_put, op_range  # noqa: E402 - after the sys.path line
from sessiond.farm.etcd_directory import EtcdDirectory  # noqa: E402 - after the sys.path line
from sessiond.farm.records import FarmKeys, session_record  # noqa: E402 - after the sys.path line

HOSTS = ("h1", "h2", "h3")
# etcd's default --max-txn-ops: puts are batched this many per transaction.
TXN_OPS = 128


async def timed(fn: Callable[[], Awaitable[Any]], base: Callable[[], Awaitable[Any]],
                rounds: int) -> tuple[list[float], list[float]]:  # fmt: skip
    """Wall times in ms of FN and of its baseline BASE, alternated call by call (so load drifts
    hit both alike), after 10 warm-up calls of each."""
    for _ in range(10):
        await fn()
        await base()
    out: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for series, call in zip(out, (fn, base)):
            start = time.perf_counter()
            await call()
            series.append((time.perf_counter() - start) * 1000)
    return out


def row(name: str, values: list[float], base: list[float]) -> str:
    med, bmed = statistics.median(values), statistics.median(base)
    p95 = sorted(values)[int(len(values) * 0.95) - 1]
    return f"{name:<48} {med:8.3f} {p95:8.3f} {bmed:8.3f} {med / bmed:7.2f}x"


async def main(reactor: Any, sessions: int, rounds: int) -> None:
    cluster = start_cluster(1)
    try:
        client = EtcdClient.connect(reactor, EtcdSettings(tuple(cluster.endpoints)))
        keys = FarmKeys("/bench/")
        dirs = [EtcdDirectory(client, host_id=h, advertise=f"{h}:4443", clock=reactor, lease_ttl=30, keys=keys,
                              load_source=lambda: HostLoad(0, 8 << 30, 0.2, sessions))
                for h in HOSTS]
        for d in dirs:
            await d.start()
        lease = {d.host_id: d.keeper.lease for d in dirs}
        ops = []
        for i in range(sessions):
            host = HOSTS[i % 3]
            p = SessionPlacement(f"user{i}", f"s{i}", host, f"{host}:4443", lease[host], 0.0, "live")
            ops.append(op_put(keys.session(p.user), session_record(p)))
        for i in range(0, len(ops), TXN_OPS):
            await client.txn([], ops[i:i + TXN_OPS])
        for n, h in enumerate(HOSTS):
            await client.put(keys.count(h), b"%d" % len(range(n, sessions, 3)))
        reads = [op_range(keys.session("newcomer")), op_range(*keys.dir("hosts")), op_range(*keys.dir("counts")),
                 op_range(*keys.dir("drain"))]  # fmt: skip

        async def decide() -> None:
            snap = await dirs[0]._snapshot("newcomer")
            if placement.choose("newcomer", snap.hosts) is None:
                raise RuntimeError("no host chosen")

        counter = iter(range(10**9))

        async def claim_and_release() -> None:
            n = next(counter)
            c = await dirs[0].place(f"new{n}", f"n{n}")
            await dirs[0].release(c.placement.user, c.placement.session_id)

        async def plain_puts() -> None:
            await client.put(keys.session("scratch"), b"x" * 180)
            await client.delete(keys.session("scratch"))

        decision, base_read = await timed(decide, lambda: client.txn([], reads), rounds)
        claims, base_writes = await timed(claim_and_release, plain_puts, rounds // 4)
        listing, base_list = await timed(dirs[0].sessions, lambda: client.range_prefix(keys.dir("sessions")[0]),
                                         rounds // 4)  # fmt: skip
        print(f"bench_farm  {time.strftime('%Y-%m-%d %H:%M:%S')}  nproc={os.cpu_count()}  "
              f"sessions={sessions}  hosts={len(HOSTS)}  loadavg={os.getloadavg()[0]:.2f}")
        print(f"{'measure (ms)':<48} {'median':>8} {'p95':>8} {'base':>8} {'ratio':>8}")
        print(row("placement decision (read + score)", decision, base_read))
        print(row("claim+release (4 round trips) vs put+delete (2)", claims, base_writes))
        print(row(f"list {sessions} sessions with state vs range", listing, base_list))
        for d in dirs:
            await d.stop()
    finally:
        cluster.close()


async def logins(reactor: Any, runs: int) -> None:
    """Login -> first frame through the farm (redirect + ticket) against a single host (bench/farm_logins.py)."""
    from farm_logins import farm_logins

    cluster = start_cluster(1)
    try:
        out = await farm_logins(reactor, cluster.endpoints, runs)
    finally:
        cluster.close()
    print(f"bench_farm --logins  {time.strftime('%Y-%m-%d %H:%M:%S')}  nproc={os.cpu_count()}  runs={runs}")
    print(f"{'measure (ms)':<48} {'median':>8} {'p95':>8} {'base':>8} {'ratio':>8}")
    ms = {key: [v * 1000 for v in values] for key, values in out.items()}
    print(row("login -> first frame via redirect vs single host", ms["farm"], ms["single"]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--logins", type=int, default=8 if os.geteuid() == 0 else 0,
                        help="N logins -> first frame through a farm vs a single host (root; default 8 as root, "
                             "0 otherwise)")  # fmt: skip
    args = parser.parse_args()
    if not args.logins:
        print("bench_farm: login -> first frame skipped (needs root: it creates a user and starts sessiond hosts)")

    async def everything(reactor: Any) -> None:
        await main(reactor, args.sessions, args.rounds)
        if args.logins:
            await logins(reactor, args.logins)

    task.react(lambda reactor: defer.Deferred.fromCoroutine(everything(reactor)))

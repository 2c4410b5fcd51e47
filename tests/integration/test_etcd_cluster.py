"""A 3-member etcd cluster: losing one member (the leader, the endpoint every host talks to)
changes nothing for claims, lookups or host leases."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
from etcdtest import Cluster, ReactorThread, leader_url, reactor_thread, start_cluster
from twisted.internet import defer

from sessiond.farm.directory import Claim, HostLoad
from sessiond.farm.etcd_client import EtcdClient, EtcdSettings
from sessiond.farm.etcd_directory import EtcdDirectory
from sessiond.farm.records import FarmKeys

pytestmark = [pytest.mark.integration]
# Longer than the single-member tests: a leader election (election timeout 500 ms) must fit
# inside the lease's certain-liveness window with keepalives every TTL/3.
TTL = 5


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = start_cluster(3)
    yield c
    c.close()


def test_stopping_one_of_three_members_changes_nothing(cluster: Cluster) -> None:
    rt: ReactorThread = reactor_thread()
    first = leader_url(cluster)
    endpoints = tuple([first] + [u for u in cluster.endpoints if u != first])
    keys = FarmKeys("/cluster/")

    def make(name: str) -> EtcdDirectory:
        client = EtcdClient.connect(rt.reactor, EtcdSettings(endpoints, timeout=3.0))
        return EtcdDirectory(client, host_id=name, advertise=f"{name}:4443", clock=rt.reactor, lease_ttl=TTL,
                             keys=keys, load_source=lambda: HostLoad(0, 1 << 30, 0.0, 10))  # fmt: skip

    dirs = [rt.call(make, name) for name in ("a", "b", "c")]
    try:
        for d in dirs:
            rt.run(d.start)
        before = {f"u{i}": rt.run(lambda i=i: dirs[i % 3].place(f"u{i}", f"s{i}")).placement for i in range(6)}
        leader = next(m for m in cluster.members if m.client_url == first)
        cluster.stop_member(leader, signal.SIGKILL)

        # At once, through the election: lookups, new claims and a race all behave.
        assert {u: rt.run(lambda u=u: dirs[1].lookup(u)) for u in before} == before
        new = [rt.run(lambda i=i: dirs[i % 3].place(f"n{i}", f"t{i}")) for i in range(3)]
        assert all(not c.existing for c in new)

        async def race() -> list[Claim]:
            return list(await defer.gatherResults([defer.Deferred.fromCoroutine(dirs[0].place("r", "x")),
                                                   defer.Deferred.fromCoroutine(dirs[2].place("r", "y"))]))  # fmt: skip

        raced = rt.run(race)
        assert sorted(c.existing for c in raced) == [False, True]
        assert all(d.client.endpoints[d.client.current] != first for d in dirs)

        # Leases kept alive through the surviving members for well over a TTL.
        time.sleep(TTL * 1.5)
        assert all(rt.call(d.can_place) for d in dirs)
        assert [h.host_id for h in rt.run(dirs[2].hosts)] == ["a", "b", "c"]
        states = {s.user: s.state for s in rt.run(dirs[0].sessions)}
        assert len(states) == 10 and set(states.values()) == {"live"}
    finally:
        for d in dirs:
            try:
                rt.run(d.stop, timeout=10)
            except Exception:  # noqa: BLE001 - cleanup must not hide the test's own outcome
                pass

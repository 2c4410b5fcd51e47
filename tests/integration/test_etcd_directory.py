"""The farm directory on a real etcd member: one claim per user under races, capacity under
concurrency, placement by load, drain, lease expiry making sessions lost, etcd loss refusing placement."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
from etcdtest import Cluster, ReactorThread, reactor_thread, start_cluster
from twisted.internet import defer, task

from sessiond.farm.directory import Claim, FarmConflict, FarmFull, FarmUnavailable, HostLoad
from sessiond.farm.etcd_client import EtcdClient, EtcdSettings
from sessiond.farm.etcd_directory import EtcdDirectory
from sessiond.farm.records import FarmKeys

pytestmark = [pytest.mark.integration]
TTL = 2
_farms = itertools.count()


@pytest.fixture(scope="module")
def etcd() -> Iterator[Cluster]:
    cluster = start_cluster(1)
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def rt() -> ReactorThread:
    return reactor_thread()


class Farm:
    """Directory instances ("hosts") of one farm, each with its own etcd client, stopped at the end."""

    def __init__(self, rt: ReactorThread, endpoints: list[str]) -> None:
        self.rt, self.endpoints = rt, endpoints
        self.keys = FarmKeys(f"/farm{next(_farms)}/")
        self.dirs: dict[str, EtcdDirectory] = {}

    def host(self, name: str, capacity: int = 3, cpu: float = 0.0, timeout: float = 3.0) -> EtcdDirectory:
        def make() -> EtcdDirectory:
            client = EtcdClient.connect(self.rt.reactor, EtcdSettings(tuple(self.endpoints), timeout=timeout))
            return EtcdDirectory(client, host_id=name, advertise=f"{name}.test:4443", clock=self.rt.reactor,
                                 lease_ttl=TTL, keys=self.keys,
                                 load_source=lambda: HostLoad(0, 4 << 30, cpu, capacity))  # fmt: skip

        d = self.rt.call(make)
        self.rt.run(d.start)
        self.dirs[name] = d
        return d

    def close(self) -> None:
        for d in self.dirs.values():
            try:
                self.rt.run(d.stop, timeout=10)
            except Exception:  # noqa: BLE001 - cleanup must not hide the test's own outcome
                pass


@pytest.fixture
def farm(etcd: Cluster, rt: ReactorThread) -> Iterator[Farm]:
    f = Farm(rt, etcd.endpoints)
    yield f
    f.close()


def concurrently(rt: ReactorThread, calls: list[Any]) -> list[Any]:
    """Run the coroutine factories at once on the reactor; each result or the exception it raised."""

    async def go() -> list[Any]:
        ds = [defer.Deferred.fromCoroutine(call()) for call in calls]
        out = await defer.DeferredList(ds, consumeErrors=True)
        return [value if ok else value.value for ok, value in out]

    return rt.run(go)


def test_two_hosts_racing_for_one_user_make_exactly_one_claim(farm: Farm) -> None:
    a, b = farm.host("a", capacity=20), farm.host("b", capacity=20)
    for n in range(10):
        user = f"racer{n}"
        results = concurrently(farm.rt, [lambda u=user, n=n: a.place(u, f"A{n}"),
                                         lambda u=user, n=n: b.place(u, f"B{n}")])  # fmt: skip
        assert all(isinstance(r, Claim) for r in results), results
        assert sorted(r.existing for r in results) == [False, True]
        assert len({r.placement.session_id for r in results}) == 1  # both see the winner's session
    sessions = farm.rt.run(a.sessions)
    assert len(sessions) == 10
    assert sum(h.placed for h in farm.rt.run(a.hosts)) == 10


def test_capacity_holds_under_concurrent_claims(farm: Farm) -> None:
    hosts = [farm.host(name, capacity=3) for name in ("a", "b", "c")]
    results = concurrently(farm.rt, [lambda i=i: hosts[i % 3].place(f"u{i}", f"s{i}") for i in range(12)])
    won = [r for r in results if isinstance(r, Claim)]
    full = [r for r in results if isinstance(r, FarmFull)]
    assert len(won) == 9 and len(full) == 3, results
    per_host: dict[str, int] = {}
    for claim in won:
        per_host[claim.placement.host_id] = per_host.get(claim.placement.host_id, 0) + 1
    assert per_host == {"a": 3, "b": 3, "c": 3}
    assert {h.host_id: h.placed for h in farm.rt.run(hosts[0].hosts)} == {"a": 3, "b": 3, "c": 3}
    with pytest.raises(FarmFull, match="no farm host can take a new session"):
        farm.rt.run(lambda: hosts[1].place("late", "s-late"))


def test_placement_spreads_by_load(farm: Farm) -> None:
    a = farm.host("a", capacity=10)
    farm.host("b", capacity=10)
    farm.host("busy", capacity=10, cpu=2.0)
    placed = [farm.rt.run(lambda i=i: a.place(f"p{i}", f"s{i}")).placement.host_id for i in range(15)]
    counts = {name: placed.count(name) for name in ("a", "b", "busy")}
    # Fill dominates, CPU breaks ties: the idle hosts stay even and ahead of the busy one.
    assert abs(counts["a"] - counts["b"]) <= 1 and counts["busy"] < counts["a"] and counts["busy"] >= 1, counts


def test_release_frees_the_user_and_the_slot(farm: Farm) -> None:
    a = farm.host("a", capacity=1)
    claim = farm.rt.run(lambda: a.place("bob", "s1"))
    assert farm.rt.run(lambda: a.place("bob", "s2")).placement.session_id == "s1"
    assert farm.rt.run(lambda: a.release("bob", "other")) is False
    assert farm.rt.run(lambda: a.release("bob", claim.placement.session_id)) is True
    assert farm.rt.run(lambda: a.lookup("bob")) is None
    assert farm.rt.run(lambda: a.place("carol", "s3")).placement.host_id == "a"


def test_drain_stops_placements_and_reports_the_last_session_ending(farm: Farm) -> None:
    a, b = farm.host("a", capacity=5), farm.host("b", capacity=5)
    farm.rt.run(lambda: a.drain("b"))
    placed = {farm.rt.run(lambda i=i: a.place(f"d{i}", f"s{i}")).placement.host_id for i in range(4)}
    assert placed == {"a"}
    assert {h.host_id: h.draining for h in farm.rt.run(a.hosts)} == {"a": False, "b": True}
    farm.rt.run(lambda: a.drain("b", False))
    later = [farm.rt.run(lambda i=i: a.place(f"d{i}", f"s{i}")) for i in range(4, 10)]
    on_b = [c for c in later if c.placement.host_id == "b"]
    assert on_b
    farm.rt.run(lambda: a.drain("b"))

    async def drain_and_wait() -> float:
        waiting = defer.Deferred.fromCoroutine(a.wait_drained("b"))
        await task.deferLater(farm.rt.reactor, 0.3, lambda: None)
        assert not waiting.called
        for claim in on_b:
            await b.release(claim.placement.user, claim.placement.session_id)
        started = time.monotonic()
        await waiting
        return time.monotonic() - started

    assert farm.rt.run(drain_and_wait) < 1.0


def test_a_host_whose_lease_expires_shows_its_sessions_lost_and_users_get_new_ones(farm: Farm) -> None:
    a, b = farm.host("a", capacity=5), farm.host("b", capacity=5)
    farm.rt.run(lambda: a.drain("b"))
    claims = [farm.rt.run(lambda i=i: a.place(f"l{i}", f"s{i}")) for i in range(3)]
    assert {c.placement.host_id for c in claims} == {"a"}
    farm.rt.run(lambda: a.drain("b", False))
    farm.rt.call(a.crash)  # kill -9: no more keepalives, no revoke
    started = time.monotonic()
    while farm.rt.run(lambda: b.lookup("l0")).state != "lost":
        assert time.monotonic() - started < TTL + 2.0, "sessions of the dead host not shown lost within the TTL"
        time.sleep(0.1)
    assert [h.host_id for h in farm.rt.run(b.hosts)] == ["b"]
    assert {(s.user, s.state) for s in farm.rt.run(b.sessions)} == {("l0", "lost"), ("l1", "lost"), ("l2", "lost")}
    again = farm.rt.run(lambda: b.place("l1", "new-l1"))
    assert not again.existing and again.placement.host_id == "b" and again.placement.session_id == "new-l1"
    assert again.replaced_lost is not None and again.replaced_lost.host_id == "a"
    assert again.replaced_lost.session_id == claims[1].placement.session_id
    assert farm.rt.run(lambda: b.lookup("l1")).state == "live"


def test_a_reregistered_host_adopts_its_running_sessions(farm: Farm) -> None:
    a, b = farm.host("a", capacity=5), farm.host("b", capacity=5)
    farm.rt.run(lambda: b.drain("b"))
    claim = farm.rt.run(lambda: a.place("kept", "s-kept"))
    farm.rt.run(lambda: a.place("taken", "s-taken"))
    old_lease = a.keeper.lease
    farm.rt.run(a._register)  # what a restarted sessiond (or an expired lease) does: a new incarnation
    assert a.keeper.lease != old_lease
    assert farm.rt.run(lambda: b.lookup("kept")).state == "lost"
    farm.rt.run(lambda: b.drain("b", False))
    farm.rt.run(lambda: b.drain("a"))
    assert farm.rt.run(lambda: b.place("taken", "s-elsewhere")).placement.host_id == "b"  # replaced meanwhile
    assert farm.rt.run(lambda: a.adopt("kept", claim.placement.session_id)) is True
    assert farm.rt.run(lambda: a.adopt("taken", "s-taken")) is False
    assert farm.rt.run(lambda: b.lookup("kept")).state == "live"
    assert {h.host_id: h.placed for h in farm.rt.run(a.hosts)} == {"a": 1, "b": 1}


def test_a_host_that_loses_etcd_refuses_placement(rt: ReactorThread) -> None:
    cluster = start_cluster(1)
    farm = Farm(rt, cluster.endpoints)
    try:
        a = farm.host("a", capacity=5, timeout=1.0)
        rt.run(lambda: a.place("before", "s0"))
        cluster.stop_member(cluster.members[0])
        with pytest.raises(FarmUnavailable, match="cannot be reached"):
            rt.run(lambda: a.place("during", "s1"))
        time.sleep(TTL)
        assert not rt.call(a.can_place)
        with pytest.raises(FarmUnavailable, match="lost contact with the farm directory"):
            rt.run(lambda: a.place("after", "s2"))
        # etcd comes back: the keepalives resume (etcd renews leases on restart) and so do placements.
        cluster.start_member(cluster.members[0])
        cluster.wait_healthy()
        deadline = time.monotonic() + TTL + 3
        while not rt.call(a.can_place):
            assert time.monotonic() < deadline, "placements did not resume after etcd came back"
            time.sleep(0.1)
        assert not rt.run(lambda: a.place("after", "s2")).existing
        assert rt.run(lambda: a.lookup("before")).state == "live"
    finally:
        farm.close()
        cluster.close()


def test_a_restarting_host_adopts_before_anyone_may_replace_its_sessions(farm: Farm) -> None:
    a, b = farm.host("a", capacity=5), farm.host("b", capacity=5)
    farm.rt.run(lambda: b.drain("b"))
    claim = farm.rt.run(lambda: a.place("kept", "s-kept"))
    farm.rt.run(lambda: b.drain("b", False))
    gate: defer.Deferred[None] = defer.Deferred()

    async def adopt_local_sessions() -> None:
        await gate
        assert await a.adopt("kept", claim.placement.session_id)

    a.on_registered = adopt_local_sessions
    # A sessiond restart (wrapped in a list: blockingCallFromThread would wait on a bare Deferred).
    (registering,) = farm.rt.call(lambda: [defer.Deferred.fromCoroutine(a._register())])
    deadline = time.monotonic() + 5
    while not any(h.adopting for h in farm.rt.run(b.hosts)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert farm.rt.run(lambda: b.lookup("kept")).state == "lost"
    with pytest.raises(FarmConflict, match="restarted and is taking back its sessions"):
        farm.rt.run(lambda: b.place("kept", "s-duplicate"))
    assert farm.rt.run(lambda: b.place("newcomer", "s-new")).placement.host_id == "b"  # not on an adopting host
    farm.rt.call(gate.callback, None)
    while not farm.rt.call(lambda: registering.called):
        time.sleep(0.05)
    again = farm.rt.run(lambda: b.place("kept", "s-duplicate"))
    assert again.existing and again.placement.session_id == "s-kept" and again.placement.host_id == "a"
    assert not any(h.adopting for h in farm.rt.run(b.hosts))


def test_a_host_whose_lease_was_lost_reregisters_and_adopts_by_itself(farm: Farm) -> None:
    a, b = farm.host("a", capacity=5), farm.host("b", capacity=5)
    farm.rt.run(lambda: b.drain("b"))
    claim = farm.rt.run(lambda: a.place("survivor", "s-1"))
    farm.rt.run(lambda: b.drain("b", False))
    adopted: list[bool] = []

    async def adopt_local_sessions() -> None:
        adopted.append(await a.adopt("survivor", claim.placement.session_id))

    a.on_registered = adopt_local_sessions
    old = a.keeper.lease
    farm.rt.run(lambda: b.client.revoke(old))  # the lease ends under the host's feet
    deadline = time.monotonic() + TTL + 3
    while not adopted:
        assert time.monotonic() < deadline, "the host did not re-register within a TTL"
        time.sleep(0.1)
    assert adopted == [True] and a.keeper.lease not in (0, old) and farm.rt.call(a.can_place)
    found = farm.rt.run(lambda: b.lookup("survivor"))
    assert found.state == "live" and found.host_id == "a" and found.lease == a.keeper.lease

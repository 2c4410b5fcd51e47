"""LeaseKeeper: certain liveness from the host's clock, keepalive cadence, re-registration on expiry;
and a detached directory refusing placements without asking etcd."""

from __future__ import annotations

import pytest
from farm_fakes import FakeTransport, result_of
from twisted.internet import task

from sessiond.farm.directory import FarmUnavailable, HostLoad
from sessiond.farm.etcd_client import EtcdClient
from sessiond.farm.etcd_directory import EtcdDirectory
from sessiond.farm.hosts import MIN_LEASE_TTL, LeaseKeeper, local_load, read_mem_available

E = "http://127.0.0.1:1"


def keeper(t: FakeTransport, clock: task.Clock, expired: list[int]) -> LeaseKeeper:
    async def on_expired() -> None:
        expired.append(1)

    return LeaseKeeper(EtcdClient([E], t), 6, clock, on_expired)


def test_liveness_lapses_when_keepalives_stop_succeeding() -> None:
    t, clock, expired = FakeTransport(), task.Clock(), []
    t.script(E, {"ID": "42", "TTL": "6"})
    k = keeper(t, clock, expired)
    assert result_of(k.grant()) == 42 and k.alive()
    t.script(E, {"result": {"ID": "42", "TTL": "6"}})
    k.start()
    clock.advance(2.0)  # first keepalive at TTL/3, succeeds
    assert k.alive() and len(t.calls) == 2
    clock.advance(2.0)  # the next ones fail (etcd unreachable): refused connections
    clock.advance(2.0)
    assert k.alive()  # sent at t=2 + 6*0.8 = 6.8
    clock.advance(0.9)
    assert not k.alive() and expired == []
    k.stop()


def test_an_expired_lease_triggers_reregistration() -> None:
    t, clock, expired = FakeTransport(), task.Clock(), []
    t.script(E, {"ID": "42", "TTL": "6"}, {"result": {"ID": "42"}})
    k = keeper(t, clock, expired)
    result_of(k.grant())
    result_of(k.renew())
    assert expired == [1] and k.lease == 0 and not k.alive()


def test_ttl_below_the_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="minimum"):
        LeaseKeeper(EtcdClient([E], FakeTransport()), MIN_LEASE_TTL - 1, task.Clock(),
                    lambda: None)  # type: ignore[arg-type]


def test_a_detached_host_refuses_placement_without_asking_etcd() -> None:
    t = FakeTransport()
    d = EtcdDirectory(EtcdClient([E], t), host_id="a", advertise="a:1", clock=task.Clock(), lease_ttl=5,
                      load_source=lambda: HostLoad(0, 0, 0.0, 1))  # fmt: skip
    with pytest.raises(FarmUnavailable, match="lost contact with the farm directory"):
        result_of(d.place("alice", "s1"))
    assert t.calls == []


def test_local_load(tmp_path: object) -> None:
    import os

    meminfo = os.path.join(str(tmp_path), "meminfo")
    with open(meminfo, "w") as f:
        f.write("MemTotal: 100 kB\nMemAvailable: 2048 kB\n")
    assert read_mem_available(meminfo) == 2048 * 1024
    assert read_mem_available(meminfo + ".missing") == 0
    load = local_load(3, 10)
    assert load.sessions == 3 and load.capacity == 10 and load.mem_available > 0 and load.cpu_load >= 0


def test_a_failed_reregistration_is_retried_at_the_next_tick() -> None:
    t, clock = FakeTransport(), task.Clock()
    attempts: list[int] = []
    k: LeaseKeeper

    async def on_expired() -> None:
        attempts.append(1)
        await k.grant()  # etcd down on the first try: EtcdUnavailable; up on the second

    k = LeaseKeeper(EtcdClient([E], t), 6, clock, on_expired)
    t.script(E, {"ID": "42", "TTL": "6"})
    result_of(k.grant())
    k.start()
    t.script(E, {"result": {"ID": "42"}})  # the keepalive finds the lease gone
    clock.advance(2.0)
    assert attempts == [1] and k.lost and not k.alive()
    t.script(E, {"ID": "43", "TTL": "6"})
    clock.advance(2.0)
    assert attempts == [1, 1] and not k.lost and k.lease == 43 and k.alive()
    t.script(E, {"result": {"ID": "43", "TTL": "6"}})
    clock.advance(2.0)
    assert k.alive() and t.calls[-1][1] == {"ID": "43"}
    k.stop()

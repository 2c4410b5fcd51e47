"""Redirect tickets on a real etcd: single use (also when two redeem at once), bound to user and
host, gone after their lease, and only the hash is stored."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from etcdtest import Cluster, ReactorThread, reactor_thread, start_cluster
from twisted.internet import defer

from sessiond.farm import tickets
from sessiond.farm.etcd_client import EtcdClient, EtcdSettings
from sessiond.farm.records import FarmKeys

KEYS = FarmKeys("/tickets-test/")


@pytest.fixture(scope="module")
def etcd() -> Iterator[Cluster]:
    cluster = start_cluster(1)
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def rt() -> ReactorThread:
    return reactor_thread()


def client(rt: ReactorThread, etcd: Cluster) -> EtcdClient:
    return rt.call(lambda: EtcdClient.connect(rt.reactor, EtcdSettings(tuple(etcd.endpoints))))  # type: ignore[no-any-return]


def test_a_ticket_is_redeemed_once_for_its_user_and_host(rt: ReactorThread, etcd: Cluster) -> None:
    c = client(rt, etcd)
    ticket = rt.run(lambda: tickets.issue_ticket(c, KEYS, "alice", "b", "s1"))
    assert len(ticket) == tickets.TICKET_CHARS
    stored = rt.run(lambda: c.range_prefix(b"/tickets-test/tickets/"))
    assert ticket.encode() not in b"".join(kv.key + kv.value for kv in stored.kvs)  # only its hash
    assert not rt.run(lambda: tickets.redeem_ticket(c, KEYS, "mallory", ticket, "b"))  # wrong user: spent
    ticket = rt.run(lambda: tickets.issue_ticket(c, KEYS, "alice", "b", "s1"))
    assert not rt.run(lambda: tickets.redeem_ticket(c, KEYS, "alice", ticket, "c"))  # wrong host
    ticket = rt.run(lambda: tickets.issue_ticket(c, KEYS, "alice", "b", "s1"))
    assert rt.run(lambda: tickets.redeem_ticket(c, KEYS, "alice", ticket, "b"))
    assert not rt.run(lambda: tickets.redeem_ticket(c, KEYS, "alice", ticket, "b"))  # single use
    assert not rt.run(lambda: tickets.redeem_ticket(c, KEYS, "alice", "x" * 500, "b"))  # refused before etcd


def test_two_simultaneous_redeems_one_wins(rt: ReactorThread, etcd: Cluster) -> None:
    c1, c2 = client(rt, etcd), client(rt, etcd)
    for _ in range(5):
        ticket = rt.run(lambda: tickets.issue_ticket(c1, KEYS, "bob", "b", "s2"))

        async def both(ticket: str = ticket) -> list[bool]:
            results = await defer.gatherResults([
                defer.Deferred.fromCoroutine(tickets.redeem_ticket(c, KEYS, "bob", ticket, "b")) for c in (c1, c2)])
            return list(results)

        assert sorted(rt.run(both)) == [False, True]


def test_an_unused_ticket_expires(rt: ReactorThread, etcd: Cluster) -> None:
    c = client(rt, etcd)
    ticket = rt.run(lambda: tickets.issue_ticket(c, KEYS, "carol", "b", "s3", ttl=tickets.MIN_TICKET_TTL))
    time.sleep(4)
    assert not rt.run(lambda: tickets.redeem_ticket(c, KEYS, "carol", ticket, "b"))

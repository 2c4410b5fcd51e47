"""The etcd JSON-gateway client against a real etcd member: KV, txn, leases, watch streams, failover."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from etcdtest import Cluster, ReactorThread, free_port, reactor_thread, start_cluster
from twisted.internet import defer, task

from sessiond.farm.etcd_client import EtcdClient, EtcdSettings
from sessiond.farm.etcd_codec import Compare, EtcdLeaseNotFound, EtcdUnavailable, op_put, op_range

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def etcd() -> Iterator[Cluster]:
    cluster = start_cluster(1)
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def rt() -> ReactorThread:
    return reactor_thread()


def connect(rt: ReactorThread, endpoints: list[str], timeout: float = 3.0) -> EtcdClient:
    return rt.call(lambda: EtcdClient.connect(rt.reactor, EtcdSettings(tuple(endpoints), timeout=timeout)))


def test_kv_and_txn(etcd: Cluster, rt: ReactorThread) -> None:
    c = connect(rt, etcd.endpoints)

    async def go() -> Any:
        await c.put(b"/t1/a", b"1")
        await c.put(b"/t1/b", b"\x00\xffbinary")
        listed = await c.range_prefix(b"/t1/")
        first = await c.txn([Compare(b"/t1/new", "VERSION", "EQUAL", 0)], [op_put(b"/t1/new", b"x")])
        second = await c.txn([Compare(b"/t1/new", "VERSION", "EQUAL", 0)], [op_put(b"/t1/new", b"y")],
                             [op_range(b"/t1/new")])  # fmt: skip
        deleted = await c.delete(b"/t1/", b"/t10")
        return listed, first, second, deleted, await c.get(b"/t1/a")

    listed, first, second, deleted, gone = rt.run(go)
    assert [(kv.key, kv.value) for kv in listed.kvs] == [(b"/t1/a", b"1"), (b"/t1/b", b"\x00\xffbinary")]
    assert first.succeeded and not second.succeeded
    assert second.responses[0].kvs[0].value == b"x"  # the loser sees the winner's value
    assert deleted == 3 and gone is None


def test_a_key_under_a_lease_vanishes_when_keepalives_stop(etcd: Cluster, rt: ReactorThread) -> None:
    c = connect(rt, etcd.endpoints)

    async def go() -> Any:
        lease, ttl = await c.grant(2)
        await c.put(b"/t2/host", b"up", lease)
        for _ in range(4):  # kept alive for twice the TTL
            await task.deferLater(rt.reactor, 1.0, lambda: None)
            await c.keepalive(lease)
        alive = await c.get(b"/t2/host")
        started = time.monotonic()
        while await c.get(b"/t2/host") is not None:
            await task.deferLater(rt.reactor, 0.1, lambda: None)
        return ttl, alive, time.monotonic() - started, lease

    ttl, alive, vanished_after, lease = rt.run(go)
    assert ttl == 2 and alive is not None and alive.lease == lease
    assert vanished_after < 2 + 1.5  # TTL plus etcd's expiry check period and slack
    with pytest.raises(EtcdLeaseNotFound):
        rt.run(lambda: c.keepalive(lease))


def test_a_watch_streams_puts_and_deletes_without_a_thread(etcd: Cluster, rt: ReactorThread) -> None:
    c = connect(rt, etcd.endpoints)
    seen: list[tuple[str, bytes, bytes]] = []
    threads_before = threading.active_count()

    async def go() -> None:
        watch = c.watch(b"/t3/", b"/t30", lambda rev, events: seen.extend((e.kind, e.kv.key, e.kv.value)
                                                                          for e in events))  # fmt: skip
        await task.deferLater(rt.reactor, 0.3, lambda: None)
        await c.put(b"/t3/a", b"1")
        await c.put(b"/t3/b", b"2")
        await c.put(b"/t4/other", b"not watched")
        await c.delete(b"/t3/a")
        for _ in range(50):
            if len(seen) >= 3:
                break
            await task.deferLater(rt.reactor, 0.05, lambda: None)
        watch.cancel()
        await watch.done

    rt.run(go)
    assert seen == [("PUT", b"/t3/a", b"1"), ("PUT", b"/t3/b", b"2"), ("DELETE", b"/t3/a", b"")]
    assert threading.active_count() == threads_before


def test_a_dead_endpoint_is_skipped(etcd: Cluster, rt: ReactorThread) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    c = connect(rt, [dead, *etcd.endpoints])
    rt.run(lambda: c.put(b"/t5/x", b"1"))
    assert rt.run(lambda: c.get(b"/t5/x")).value == b"1"
    assert c.current == 1


def test_no_endpoint_reachable_is_a_clear_error_quickly(rt: ReactorThread) -> None:
    dead = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    c = connect(rt, dead, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(EtcdUnavailable, match="etcd is unreachable") as info:
        rt.run(lambda: c.range(b"x"))
    assert time.monotonic() - started < 3.0
    assert all(url in str(info.value) for url in dead)


def test_many_concurrent_requests_share_the_pool(etcd: Cluster, rt: ReactorThread) -> None:
    c = connect(rt, etcd.endpoints)

    async def go() -> list[int]:
        return list(await defer.gatherResults([defer.Deferred.fromCoroutine(c.put(b"/t6/%d" % i, b"v"))
                                               for i in range(100)]))  # fmt: skip

    revisions = rt.run(go)
    assert len(set(revisions)) == 100
    assert rt.run(lambda: c.range_prefix(b"/t6/")).count == 100


def test_tls_with_a_client_certificate(rt: ReactorThread) -> None:
    from sessiond.farm.etcd_http import EtcdTLS

    cluster = start_cluster(1, tls=True)
    try:
        certs = cluster.tls
        assert certs is not None and cluster.endpoints[0].startswith("https://")
        good = EtcdTLS(ca_file=certs.ca, cert_file=certs.client_cert, key_file=certs.client_key)
        c = rt.call(lambda: EtcdClient.connect(rt.reactor, EtcdSettings(tuple(cluster.endpoints), tls=good)))
        rt.run(lambda: c.put(b"/tls/x", b"secret"))
        assert rt.run(lambda: c.get(b"/tls/x")).value == b"secret"
        # Without the client certificate etcd refuses the handshake: a clear, typed error.
        anonymous = EtcdTLS(ca_file=certs.ca)
        c2 = rt.call(lambda: EtcdClient.connect(rt.reactor, EtcdSettings(tuple(cluster.endpoints), tls=anonymous,
                                                                          timeout=2.0)))  # fmt: skip
        with pytest.raises(EtcdUnavailable):
            rt.run(lambda: c2.get(b"/tls/x"))
        # Trusting another CA (here: the client's own certificate) fails verification of etcd.
        wrong = EtcdTLS(ca_file=certs.client_cert, cert_file=certs.client_cert, key_file=certs.client_key)
        c3 = rt.call(lambda: EtcdClient.connect(rt.reactor, EtcdSettings(tuple(cluster.endpoints), tls=wrong,
                                                                          timeout=2.0)))  # fmt: skip
        with pytest.raises(EtcdUnavailable, match="TLS failed.*certificate verify failed"):
            rt.run(lambda: c3.get(b"/tls/x"))
        with pytest.raises(ValueError, match="etcd_ca"):
            EtcdClient.connect(rt.reactor, EtcdSettings(tuple(cluster.endpoints)))
    finally:
        cluster.close()

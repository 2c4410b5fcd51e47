"""EtcdClient over a fake transport: failover between endpoints, error mapping, leases, watch lines."""

from __future__ import annotations

from typing import Any

import pytest
from farm_fakes import FakeTransport, result_of
from twisted.internet import defer
from twisted.internet.error import ConnectionRefusedError as TxRefused

from sessiond.farm.etcd_client import MAX_ENDPOINTS, EtcdClient, parse_endpoints
from sessiond.farm.etcd_codec import EtcdLeaseNotFound, EtcdRequestError, EtcdUnavailable

A, B, C = "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"
OK_PUT = {"header": {"revision": "7"}}


def client(transport: FakeTransport) -> EtcdClient:
    return EtcdClient([A, B, C], transport, timeout=1.0)


def test_requests_go_to_the_endpoint_that_answered_last() -> None:
    t = FakeTransport()
    t.script(A, TxRefused())
    t.script(B, OK_PUT, OK_PUT)
    c = client(t)
    assert result_of(c.put(b"k", b"v")) == 7
    assert result_of(c.put(b"k", b"v")) == 7
    assert [url for url, _ in t.calls] == [A + "/v3/kv/put", B + "/v3/kv/put", B + "/v3/kv/put"]
    assert c.current == 1


def test_a_call_tries_each_endpoint_once_while_other_calls_move_the_current_one() -> None:
    # While this call waits for A, another call succeeds on C (current = 2): this one still goes on to B
    # and C. A CI run's farm test once got "A refused" three times from a login while etcd elected a leader.
    t = FakeTransport()
    t.script(A, TxRefused())
    t.script(B, TxRefused())
    t.script(C, OK_PUT)
    c = client(t)
    post = t.post

    def meanwhile(url: str, body: bytes, timeout: float) -> Any:
        if url.startswith(A):
            c.current = 2
        return post(url, body, timeout)

    t.post = meanwhile  # type: ignore[method-assign]
    assert result_of(c.put(b"k", b"v")) == 7
    assert [url.split("/v3/")[0] for url, _ in t.calls] == [A, B, C]


def test_timeouts_and_no_leader_move_on_but_a_real_error_does_not() -> None:
    t = FakeTransport()
    t.script(A, defer.TimeoutError())
    t.script(B, {"error": "etcdserver: no leader", "code": 14})
    t.script(C, {"error": "etcdserver: mvcc: required revision has been compacted", "code": 11})
    with pytest.raises(EtcdRequestError) as info:
        result_of(client(t).range(b"k"))
    assert info.value.code == 11 and len(t.calls) == 3


def test_all_endpoints_down_is_one_clear_error_naming_each() -> None:
    t = FakeTransport()
    t.script(A, TxRefused())
    t.script(B, defer.TimeoutError())
    t.script(C, (502, b"<html>bad gateway</html>"))
    with pytest.raises(EtcdUnavailable) as info:
        result_of(client(t).range(b"k"))
    text = str(info.value)
    assert text.startswith("etcd is unreachable")
    assert A in text and B + ": timed out" in text and C + ": HTTP 502" in text


def test_lease_not_found_is_typed_and_not_retried_elsewhere() -> None:
    t = FakeTransport()
    t.script(A, {"error": "etcdserver: requested lease not found", "code": 5})
    with pytest.raises(EtcdLeaseNotFound):
        result_of(client(t).revoke(99))
    assert len(t.calls) == 1


def test_lease_grant_and_keepalive() -> None:
    t = FakeTransport()
    t.script(A, {"header": {}, "ID": "123456789012", "TTL": "5"},
             {"result": {"header": {}, "ID": "123456789012", "TTL": "5"}},
             {"result": {"header": {}, "ID": "123456789012"}})  # fmt: skip
    c = client(t)
    assert result_of(c.grant(5)) == (123456789012, 5)
    assert t.calls[0][1] == {"TTL": "5"}
    assert result_of(c.keepalive(123456789012)) == 5
    assert t.calls[1][1] == {"ID": "123456789012"}
    with pytest.raises(EtcdLeaseNotFound):  # the gateway leaves TTL out when the lease is gone
        result_of(c.keepalive(123456789012))


def test_txn_body() -> None:
    from sessiond.farm.etcd_codec import Compare, op_put, op_range

    t = FakeTransport()
    t.script(A, {"header": {"revision": "3"}, "succeeded": True, "responses": [{"response_put": {}}]})
    result = result_of(client(t).txn([Compare(b"k", "VERSION", "EQUAL", 0)], [op_put(b"k", b"v")], [op_range(b"k")]))
    assert result.succeeded and result.revision == 3
    body = t.calls[0][1]
    assert body["compare"][0]["version"] == "0"
    assert body["success"] == [{"request_put": {"key": "aw==", "value": "dg=="}}]
    assert body["failure"] == [{"request_range": {"key": "aw=="}}]


def test_watch_feeds_event_batches_and_skips_the_created_line() -> None:
    t = FakeTransport()
    seen: list[tuple[int, list[object]]] = []
    watch = client(t).watch(b"a", b"b", lambda rev, events: seen.append((rev, events)), start_revision=5)
    stream = t.streams[0]
    assert stream.url == A + "/v3/watch"
    assert stream.body == {"create_request": {"key": "YQ==", "range_end": "Yg==", "start_revision": "5"}}
    stream.on_line(b'{"result":{"header":{"revision":"5"},"created":true}}')
    stream.on_line(b'{"result":{"header":{"revision":"6"},"events":[{"kv":{"key":"YQ==","value":"eA=="}}]}}')
    assert len(seen) == 1 and seen[0][0] == 6
    with pytest.raises(EtcdRequestError, match="cancelled"):
        stream.on_line(b'{"result":{"canceled":true}}')
    watch.cancel()
    assert stream.cancelled and watch.done.called


@pytest.mark.parametrize("text", ["", "127.0.0.1:2379", "ftp://x:1", "http://x:1/v3", "http://a:1,https://b:2"])
def test_bad_endpoint_lists_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_endpoints(text)


def test_endpoint_count_is_bounded() -> None:
    assert len(parse_endpoints(",".join(f"http://h{i}:1" for i in range(MAX_ENDPOINTS)))) == MAX_ENDPOINTS
    with pytest.raises(ValueError, match="at most"):
        parse_endpoints(",".join(f"http://h{i}:1" for i in range(MAX_ENDPOINTS + 1)))

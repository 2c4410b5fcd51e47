"""etcd JSON gateway codec: bodies, parsing with omitted defaults, errors, bounds, stream lines."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessiond.farm import etcd_codec as codec
from sessiond.farm.etcd_codec import Compare, EtcdLeaseNotFound, EtcdProtocolError, EtcdRequestError


def test_put_and_range_bodies_are_base64_with_int64_as_strings() -> None:
    assert codec.put_request(b"k", b"v", lease=7) == {"key": "aw==", "value": "dg==", "lease": "7"}
    assert codec.range_request(b"a", b"b", limit=5) == {"key": "YQ==", "range_end": "Yg==", "limit": "5"}
    assert "lease" not in codec.put_request(b"k", b"v")


def test_compare_uses_the_field_of_its_target() -> None:
    assert Compare(b"k", "VERSION", "EQUAL", 0).to_json() == {"key": "aw==", "target": "VERSION",
                                                              "result": "EQUAL", "version": "0"}  # fmt: skip
    assert Compare(b"k", "LEASE", "NOT_EQUAL", 12).to_json()["lease"] == "12"
    assert Compare(b"k", "MOD", "EQUAL", 3).to_json()["mod_revision"] == "3"
    assert Compare(b"k", "VALUE", "EQUAL", b"x").to_json()["value"] == "eA=="


def test_prefix_end() -> None:
    assert codec.prefix_end(b"/a/") == b"/a0"
    assert codec.prefix_end(b"a\xff") == b"b"
    assert codec.prefix_end(b"\xff\xff") == b"\x00"


def test_range_response_with_defaults_left_out() -> None:
    raw = (b'{"header":{"revision":"9"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"3",'
           b'"version":"2","value":"YmFy","lease":"77"},{"key":"ZW1wdHk="}],"count":"2"}')  # fmt: skip
    result = codec.parse_range(codec.decode(raw))
    assert result.revision == 9 and result.count == 2 and not result.more
    assert result.kvs[0] == codec.KeyValue(b"foo", b"bar", 2, 3, 2, 77)
    assert result.kvs[1] == codec.KeyValue(b"empty", b"", 0, 0, 0, 0)
    assert codec.parse_range(codec.decode(b'{"header":{"revision":"4"}}')).kvs == ()


def test_txn_response_succeeded_is_false_when_omitted() -> None:
    raw = b'{"header":{"revision":"5"},"responses":[{"response_range":{"header":{}, "count":"0"}},' \
          b'{"response_put":{}},{"response_delete_range":{"deleted":"2"}}]}'
    result = codec.parse_txn(codec.decode(raw))
    assert result.succeeded is False
    assert isinstance(result.responses[0], codec.RangeResult) and result.responses[0].revision == 5
    assert result.responses[1:] == (None, 2)
    assert codec.parse_txn(codec.decode(b'{"header":{},"succeeded":true}')).succeeded


def test_gateway_errors_map_to_typed_exceptions() -> None:
    with pytest.raises(EtcdLeaseNotFound):
        codec.decode(b'{"error":"etcdserver: requested lease not found","code":5,'
                     b'"message":"etcdserver: requested lease not found"}')  # fmt: skip
    with pytest.raises(EtcdRequestError) as info:
        codec.decode(b'{"error":"etcdserver: no leader","code":14}')
    assert info.value.code == 14 and "no leader" in str(info.value)


@pytest.mark.parametrize("raw", [b"<html>502</html>", b"[1,2]", b"\xff\xfe", b'{"kvs":[{"key":"!!"}]}',
                                 b'{"header":{"revision":"x"}}'])  # fmt: skip
def test_garbage_is_a_protocol_error(raw: bytes) -> None:
    with pytest.raises(EtcdProtocolError):
        body = codec.decode(raw)
        codec.parse_range(body)


def test_a_response_over_the_bound_is_refused_before_parsing() -> None:
    raw = b'{"x":"' + b"a" * codec.MAX_RESPONSE_BYTES + b'"}'
    with pytest.raises(EtcdProtocolError, match="over"):
        codec.decode(raw)
    assert codec.decode(b'{"x":"' + b"a" * 100 + b'"}')["x"] == "a" * 100


def test_watch_lines() -> None:
    created = b'{"result":{"header":{"revision":"2"},"created":true}}'
    assert codec.parse_watch_line(created) == (2, [], False)
    line = (b'{"result":{"header":{"revision":"4"},"events":[{"kv":{"key":"YQ==","value":"MQ==","mod_revision":"3"}},'
            b'{"type":"DELETE","kv":{"key":"YQ==","mod_revision":"4"}}]}}')  # fmt: skip
    revision, events, canceled = codec.parse_watch_line(line)
    assert revision == 4 and not canceled
    assert [(e.kind, e.kv.key, e.kv.value) for e in events] == [("PUT", b"a", b"1"), ("DELETE", b"a", b"")]
    assert codec.parse_watch_line(b'{"result":{"canceled":true}}')[2] is True


def test_line_splitter_whole_bytewise_and_bounded() -> None:
    data = b'{"a":1}\n{"b":2}\n\n{"c"'
    whole = codec.LineSplitter().feed(data)
    splitter = codec.LineSplitter()
    bytewise = [line for i in range(len(data)) for line in splitter.feed(data[i:i + 1])]
    assert whole == bytewise == [b'{"a":1}', b'{"b":2}']
    assert splitter.feed(b":3}\n") == [b'{"c":3}']
    small = codec.LineSplitter(limit=10)
    assert small.feed(b"0123456789") == []
    with pytest.raises(EtcdProtocolError):
        small.feed(b"x")


@given(st.binary(max_size=64), st.binary(max_size=64), st.integers(min_value=0, max_value=2**63 - 1))
def test_kv_round_trips_through_the_gateway_form(key: bytes, value: bytes, lease: int) -> None:
    body = codec.put_request(key, value, lease)
    item = {"key": body["key"], "value": body["value"], "lease": body.get("lease", "0")}
    kv = codec.parse_kv(json.loads(json.dumps(item)))
    assert (kv.key, kv.value, kv.lease) == (key, value, lease)

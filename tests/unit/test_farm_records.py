"""Farm records: key layout, host ids and user names as key segments, corrupt records refused."""

from __future__ import annotations

import pytest

from sessiond.farm.directory import HostLoad, SessionPlacement
from sessiond.farm.etcd_codec import KeyValue
from sessiond.farm.records import (
    MAX_RECORD_BYTES,
    MAX_USER_BYTES,
    BadRecord,
    FarmKeys,
    check_host_id,
    check_user,
    host_record,  # fmt: skip
    parse_count,
    parse_host,
    parse_session,
    session_record,
)


def kv(key: bytes, value: bytes, lease: int = 0) -> KeyValue:
    return KeyValue(key, value, 1, 1, 1, lease)


def test_key_layout() -> None:
    keys = FarmKeys("/f/")
    assert keys.host("a") == b"/f/hosts/a"
    assert keys.session("bob") == b"/f/sessions/bob"
    assert keys.dir("sessions") == (b"/f/sessions/", b"/f/sessions0")
    assert keys.tail(b"/f/counts/h-1") == "h-1"


@pytest.mark.parametrize("bad", ["", "a/b", ".x", "x" * 65, "a b"])
def test_bad_host_ids(bad: str) -> None:
    with pytest.raises(ValueError):
        check_host_id(bad)


def test_user_names_as_key_segments() -> None:
    assert check_user("x" * MAX_USER_BYTES)
    for bad in ["", "a/b", "a\0", "x" * (MAX_USER_BYTES + 1)]:
        with pytest.raises(ValueError):
            check_user(bad)


def test_host_and_session_records_round_trip() -> None:
    raw = host_record("a", "a:4443", 9, HostLoad(2, 1 << 30, 0.5, 8), 100.0, "ab" * 32)
    info = parse_host(kv(b"/f/hosts/a", raw, lease=9), placed=3, draining=True)
    assert info.fingerprint == "ab" * 32
    assert (info.host_id, info.lease, info.placed, info.draining, info.load.capacity) == ("a", 9, 3, True, 8)
    p = SessionPlacement("bob", "s1", "a", "a:4443", 9, 5.0, "live")
    assert parse_session(kv(b"k", session_record(p)), {"a": 9}) == p
    assert parse_session(kv(b"k", session_record(p)), {"a": 10}).state == "lost"
    assert parse_session(kv(b"k", session_record(p)), {}).state == "lost"


@pytest.mark.parametrize("raw", [b"nope", b"[]", b'{"host_id": 5}', b'{"sessions": true}',
                                 b'{"x":"' + b"a" * MAX_RECORD_BYTES + b'"}'])  # fmt: skip
def test_corrupt_records_are_bad_records(raw: bytes) -> None:
    with pytest.raises(BadRecord):
        parse_host(kv(b"/f/hosts/a", raw), 0, False)
    with pytest.raises(BadRecord):
        parse_session(kv(b"/f/sessions/a", raw), {})


def test_counts() -> None:
    assert parse_count(None) == 0
    assert parse_count(kv(b"c", b"12")) == 12
    assert parse_count(kv(b"c", b"junk")) == 0
    assert parse_count(kv(b"c", b"-3")) == 0

"""LocalDirectory: the single-host registry behind the FarmDirectory interface."""

from __future__ import annotations

import pytest
from farm_fakes import result_of
from twisted.internet import defer, task

from sessiond.farm.directory import FarmDirectory, FarmFull, HostLoad
from sessiond.farm.local import WAIT_DRAINED_POLL_SECONDS, LocalDirectory
from sessiond.registry import Registry


def make(tmp_path: object, capacity: int = 2) -> tuple[LocalDirectory, Registry, task.Clock]:
    reg, clock = Registry(str(tmp_path)), task.Clock()
    d = LocalDirectory(reg, host_id="solo", advertise="solo:4443", clock=clock,
                       load_source=lambda: HostLoad(0, 1 << 30, 0.0, capacity))  # fmt: skip
    return d, reg, clock


def start(reg: Registry, user: str, sid: str) -> None:
    reg.add_session(id=sid, user=user, uid=1000, socket="/s", session_dir="/d", link_token="t", width=1, height=1)


def test_it_is_a_farm_directory(tmp_path: object) -> None:
    d: FarmDirectory = make(tmp_path)[0]
    assert d.can_place()


def test_one_session_per_user_and_capacity(tmp_path: object) -> None:
    d, reg, _ = make(tmp_path, capacity=2)
    first = result_of(d.place("alice", "s1"))
    assert not first.existing and first.placement.host_id == "solo"
    again = result_of(d.place("alice", "s-other"))  # before the row exists: the pending claim answers
    assert again.existing and again.placement.session_id == "s1"
    start(reg, "alice", "s1")
    assert result_of(d.lookup("alice")).session_id == "s1"
    result_of(d.place("bob", "s2"))
    with pytest.raises(FarmFull, match="capacity of 2"):
        result_of(d.place("carol", "s3"))
    assert result_of(d.release("bob", "s2")) is True
    assert not result_of(d.place("carol", "s3")).existing
    assert [s.user for s in result_of(d.sessions())] == ["alice", "carol"]
    assert result_of(d.hosts())[0].placed == 2


def test_drain_and_wait_drained(tmp_path: object) -> None:
    d, reg, clock = make(tmp_path, capacity=0)
    result_of(d.place("alice", "s1"))
    start(reg, "alice", "s1")
    result_of(d.drain("solo"))
    with pytest.raises(FarmFull, match="draining"):
        result_of(d.place("bob", "s2"))
    with pytest.raises(ValueError, match="not in a farm"):
        result_of(d.drain("other"))
    waiting = defer.Deferred.fromCoroutine(d.wait_drained("solo"))
    clock.advance(WAIT_DRAINED_POLL_SECONDS)
    assert not waiting.called
    reg.update_session("s1", state="ended")
    clock.advance(WAIT_DRAINED_POLL_SECONDS)
    assert waiting.called
    assert result_of(d.adopt("alice", "s1")) is False

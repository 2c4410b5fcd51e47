"""AbandonedClaims on a fake directory: a claim on this host whose client never came is released
only when it has been seen abandoned, unchanged, at two sweeps; never while a ticket for it is
outstanding, its session runs or starts here, a ticket was just redeemed, or this host is detached."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer, task

from sessiond.farm.abandoned import AbandonedClaims
from sessiond.farm.directory import SessionPlacement
from sessiond.farm.etcd_codec import KeyValue, RangeResult, TxnResult
from sessiond.farm.records import FarmKeys, session_record

KEYS = FarmKeys("/t/")
LEASE = 77


@dataclass
class FakeKeeper:
    lease: int = LEASE


@dataclass
class FakeClient:
    sessions: list[KeyValue] = field(default_factory=list)
    tickets: list[KeyValue] = field(default_factory=list)

    def txn(self, compares: list[Any], ops: list[Any]) -> defer.Deferred[TxnResult]:
        return defer.succeed(TxnResult(9, True, (RangeResult(9, tuple(self.sessions), len(self.sessions), False),
                                                 RangeResult(9, tuple(self.tickets), len(self.tickets), False))))


class FakeDirectory:
    host_id = "b"
    keys = KEYS

    def __init__(self) -> None:
        self.clock = task.Clock()
        self.keeper = FakeKeeper()
        self.client = FakeClient()
        self.attached = True
        self.released: list[tuple[str, str, int]] = []

    def can_place(self) -> bool:
        return self.attached

    async def release(self, user: str, session_id: str, revision: int = 0) -> bool:
        self.released.append((user, session_id, revision))
        self.client.sessions = [kv for kv in self.client.sessions if not kv.key.endswith(user.encode())]
        return True


def claim(user: str, session: str, host: str = "b", lease: int = LEASE, revision: int = 5) -> KeyValue:
    record = session_record(SessionPlacement(user, session, host, f"{host}:1", lease, 0.0, "live"))
    return KeyValue(KEYS.session(user), record, revision, revision, 1, 0)


def ticket(user: str, session: str, host: str = "b") -> KeyValue:
    value = json.dumps({"user": user, "host": host, "session": session}).encode()
    return KeyValue(b"/t/tickets/" + user.encode(), value, 3, 3, 1, 12)


def sweep(sweeper: AbandonedClaims) -> list[str]:
    result: list[str] = []
    defer.Deferred.fromCoroutine(sweeper.sweep()).addCallback(result.extend)
    return result


def make(busy: set[str] | None = None) -> tuple[FakeDirectory, AbandonedClaims]:
    d = FakeDirectory()
    return d, AbandonedClaims(d, lambda: set(busy or ()), 3.0)


def test_released_at_the_second_sweep_that_sees_it_abandoned_and_unchanged() -> None:
    d, sweeper = make()
    d.client.sessions = [claim("alice", "s1")]
    assert sweep(sweeper) == []  # first sight: may be a claim whose ticket is being issued
    assert sweep(sweeper) == ["alice"]
    assert d.released == [("alice", "s1", 5)]  # guarded on the revision seen twice
    assert sweep(sweeper) == []


def test_a_changed_record_starts_over() -> None:
    d, sweeper = make()
    d.client.sessions = [claim("alice", "s1", revision=5)]
    sweep(sweeper)
    d.client.sessions = [claim("alice", "s2", revision=8)]  # replaced meanwhile
    assert sweep(sweeper) == []
    assert sweep(sweeper) == ["alice"] and d.released == [("alice", "s2", 8)]


def test_never_while_a_ticket_is_outstanding_or_the_session_runs_or_was_just_redeemed() -> None:
    d, sweeper = make(busy={"bob"})
    d.client.sessions = [claim("alice", "s1"), claim("bob", "s2"), claim("carol", "s3")]
    d.client.tickets = [ticket("alice", "s1")]
    sweeper.redeemed("carol")
    for _ in range(3):
        assert sweep(sweeper) == []
    d.client.tickets = []  # alice's ticket expired unused
    assert sweep(sweeper) == []
    assert sweep(sweeper) == ["alice"]
    d.clock.advance(7)  # carol's redemption is long past and her session never started
    sweep(sweeper)
    assert sweep(sweeper) == ["carol"]
    assert [r[0] for r in d.released] == ["alice", "carol"]


def test_other_hosts_old_leases_and_tickets_for_other_hosts_are_not_ours() -> None:
    d, sweeper = make()
    d.client.sessions = [claim("alice", "s1", host="c"), claim("bob", "s2", lease=LEASE - 1), claim("dan", "s4")]
    d.client.tickets = [ticket("dan", "s4", host="c")]  # a ticket to another host does not keep dan's claim here
    sweep(sweeper)
    assert sweep(sweeper) == ["dan"]


def test_a_detached_host_releases_nothing_and_forgets_its_suspects() -> None:
    d, sweeper = make()
    d.client.sessions = [claim("alice", "s1")]
    sweep(sweeper)
    d.attached = False
    assert sweep(sweeper) == []
    d.attached = True
    assert sweep(sweeper) == []  # seen again for the first time
    assert sweep(sweeper) == ["alice"]


def test_runs_every_interval_on_the_clock() -> None:
    d, sweeper = make()
    d.client.sessions = [claim("alice", "s1")]
    sweeper.start()
    d.clock.advance(3)
    assert d.released == []
    d.clock.advance(3)
    assert d.released == [("alice", "s1", 5)]
    sweeper.stop()

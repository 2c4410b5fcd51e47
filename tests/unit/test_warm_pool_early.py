# Early slots (sessiond/warm_pool.py): an AUTH that would start a new session
# spawns a sandbox entry at once, so its interpreter and imports overlap
# PAM. What must hold: the login claims that very slot (one spec, one user),
# no slot is spawned when one waits already, failed logins cannot pile up
# root interpreters (MAX_EARLY_SLOTS, crossed here), an unclaimed early
# slot is ended after EARLY_SLOT_SECONDS without being "replaced", and a
# server without zygotes never spawns one.
"""sessiond.warm_pool early slots and SessionSupervisor.login_started (fake reactor)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sessiond.supervisor import SessionSupervisor
from sessiond.warm_pool import EARLY_SLOT_SECONDS, MAX_EARLY_SLOTS, REFILL_DELAY_SECONDS, WarmPool
from test_warm_start_units import PYTHON, FakeReactor


def early_pool(size: int = 0, early: bool = True) -> tuple[FakeReactor, WarmPool]:
    reactor = FakeReactor()
    pool = WarmPool(reactor, PYTHON, size, early=early)
    pool.start()
    return reactor, pool


def test_an_auth_spawns_a_slot_that_its_login_then_claims() -> None:
    reactor, pool = early_pool()
    assert reactor.spawned == [], "warm_pool = 0 keeps nothing waiting"
    assert pool.spawn_early()
    slot = pool.claim()
    assert slot is not None and slot.pid == 1000
    reactor.advance(EARLY_SLOT_SECONDS + 1)
    assert slot.transport.signals == [], "a claimed early slot is the session's: never expired"  # type: ignore[union-attr]
    assert len(reactor.spawned) == 1, "warm_pool = 0: no refill after the claim"


def test_no_early_slot_while_one_waits() -> None:
    reactor, pool = early_pool(size=1)
    assert not pool.spawn_early(), "the warm slot is there already"
    assert len(reactor.spawned) == 1
    pool.claim()
    assert pool.spawn_early(), "the pool is refilling: this login gets its own now"


def test_failed_logins_cannot_pile_up_early_slots() -> None:
    reactor, pool = early_pool()
    spawned = 0
    for _ in range(MAX_EARLY_SLOTS + 3):
        pool.idle.clear()  # as if each waiting slot were spoken for: only the bound stops the spawns
        spawned += pool.spawn_early()
    assert spawned == MAX_EARLY_SLOTS and len(reactor.spawned) == MAX_EARLY_SLOTS


def test_an_unclaimed_early_slot_ends_quietly_after_its_time() -> None:
    reactor, pool = early_pool()
    pool.spawn_early()
    slot = pool.idle[0]
    reactor.advance(EARLY_SLOT_SECONDS - 1)
    assert pool.idle == [slot]
    reactor.advance(2)
    assert pool.idle == [] and slot.transport.signals == ["KILL"]  # type: ignore[union-attr]
    slot.processEnded(Any)  # type: ignore[arg-type]
    reactor.advance(120)
    assert len(reactor.spawned) == 1, "an expired early slot is not replaced"
    assert pool.spawn_early(), "the bound counts unclaimed slots only"


def test_stopping_the_pool_ends_early_slots_and_their_timers() -> None:
    reactor, pool = early_pool()
    pool.spawn_early()
    slot = pool.idle[0]
    pool.stop()
    assert slot.transport.signals == ["KILL"] and reactor.getDelayedCalls() == []  # type: ignore[union-attr]
    assert not pool.spawn_early()


def test_without_zygotes_no_early_slot() -> None:
    reactor, pool = early_pool(early=False)
    assert not pool.spawn_early() and reactor.spawned == []


@dataclass
class Farm:
    enabled: bool


@dataclass
class Config:
    farm: Farm


def test_the_supervisor_asks_for_a_slot_only_for_a_login_that_would_start_a_session() -> None:
    supervisor = SessionSupervisor.__new__(SessionSupervisor)  # only what login_started reads
    reactor, supervisor.warm_pool = early_pool()
    supervisor.config = Config(farm=Farm(enabled=False))  # type: ignore[assignment]
    supervisor.sessions, supervisor._starting = {"alice": object()}, {}  # type: ignore[dict-item]
    supervisor.login_started("alice")
    assert reactor.spawned == [], "alice's session runs: her login resumes it"
    supervisor.login_started("bob")
    assert len(reactor.spawned) == 1
    supervisor.config = Config(farm=Farm(enabled=True))  # type: ignore[assignment]
    supervisor.warm_pool.idle.clear()
    supervisor.login_started("carol")
    assert len(reactor.spawned) == 1, "in a farm the session may be placed on another host"


def test_the_refill_waits_until_the_claimed_login_has_started_and_a_login_meanwhile_gets_an_early_slot() -> None:
    reactor, pool = early_pool(size=1)
    assert pool.claim() is not None
    reactor.advance(REFILL_DELAY_SECONDS / 2)
    assert len(reactor.spawned) == 1, "no interpreter competes with the claimed session's start"
    assert pool.spawn_early(), "a second login meanwhile overlaps its PAM with an early slot"
    reactor.advance(REFILL_DELAY_SECONDS)
    assert len(reactor.spawned) == 2 and len(pool.idle) == 1, "the early slot fills the pool: no third spawn"

# Warm and early slots with a pre-started X server (sessiond/warm_pool.py,
# [session] warm_x): each gets its own X uid and a slot line right after its
# spawn; a login takes only a slot whose screen fits (another stays); the uid
# comes back when the slot's process ends; an exhausted range gives a slot
# without X, spawned exactly as before.
"""WarmPool with SlotX (fake reactor, fake uid scan)."""

from __future__ import annotations

from twisted.python.failure import Failure

from isolation.launcher import enter_argv
from isolation.slot import parse_slot_line
from sessiond.agent.settings import XScreen
from sessiond.warm_pool import SlotX, WarmPool
from sessiond.x_uids import XUidPool, XUidRange
from test_warm_start_units import PYTHON, FakeReactor

SCREEN = XScreen(2560, 1440, 24, False)
NAMESPACES = ("mount", "ipc", "uts", "pid")


def x_pool(size: int, uids: tuple[int, int] = (5000, 5001)) -> tuple[FakeReactor, WarmPool, XUidPool]:
    reactor = FakeReactor()
    held = XUidPool(XUidRange(*uids), in_use=set, lock_dir=None)
    pool = WarmPool(reactor, PYTHON, size, early=True, x=SlotX(held, NAMESPACES, SCREEN))
    pool.start()
    return reactor, pool, held


def test_each_slot_gets_its_own_x_uid_and_its_slot_line_first() -> None:
    reactor, pool, _held = x_pool(2)
    lines = [parse_slot_line(slot.transport.written) for slot in pool.idle]  # type: ignore[union-attr]
    assert [line.x_uid for line in lines] == [5000, 5001]
    assert {(line.width, line.height, line.depth, line.root_shown, line.namespaces) for line in lines} == {
        (2560, 1440, 24, False, NAMESPACES)}
    assert [args for _p, args, _e in reactor.spawned] == [enter_argv(PYTHON, zygote=True, x_slot=True)] * 2
    assert enter_argv(PYTHON, zygote=True, x_slot=True)[-2:] == ["--zygote", "--x-slot"]


def test_a_login_takes_only_a_slot_whose_screen_fits() -> None:
    _reactor, pool, _held = x_pool(1)
    slot = pool.idle[0]
    assert pool.claim(XScreen(2560, 1440, 24, True)) is None, "seamless slot, desktop login: starts cold"
    assert pool.claim(XScreen(3000, 1440, 24, False)) is None
    assert pool.idle == [slot], "the slot stays for the next login"
    assert pool.claim(SCREEN) is slot


def test_the_uid_comes_back_when_the_slots_process_ends() -> None:
    reactor, pool, held = x_pool(1)
    slot = pool.claim(SCREEN)
    assert slot is not None and held.held == {5000}
    reactor.advance(1.0)  # the refill
    assert held.held == {5000, 5001}
    slot.processEnded(Failure(Exception("session over")))
    assert held.held == {5001}


def test_an_exhausted_range_spawns_a_slot_without_x_as_before() -> None:
    reactor, pool, held = x_pool(2, uids=(5000, 5000))
    with_x, without = pool.idle
    assert parse_slot_line(with_x.transport.written).x_uid == 5000  # type: ignore[union-attr]
    assert without.x is None and without.transport.written == b""  # type: ignore[union-attr]
    assert reactor.spawned[1][1] == enter_argv(PYTHON, zygote=True)
    assert pool.claim(XScreen(640, 480, 24, True)) is without, "a slot without X fits any login"
    without.processEnded(Failure(Exception("ended")))
    assert held.held == {5000}


def test_no_x_without_slot_x() -> None:
    reactor = FakeReactor()
    pool = WarmPool(reactor, PYTHON, 1)
    pool.start()
    slot = pool.idle[0]
    assert slot.x is None and reactor.spawned[0][1] == enter_argv(PYTHON, zygote=True)
    assert slot.transport.written == b""  # type: ignore[union-attr]
    assert pool.claim(SCREEN) is slot

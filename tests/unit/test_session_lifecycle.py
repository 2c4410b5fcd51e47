# The session lifecycle is a table; these tests walk it with a fake clock
# (task.Clock): the start timeout, the moves a user causes (attach, detach,
# log off) and the events that must be harmless when late or repeated. The
# last tests drive a real Session (no processes) through the same events.
"""Lifecycle transition table and start timer; Session start/end over it."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import task

from sessiond.lifecycle import TRANSITIONS, Lifecycle, LifecycleEvent, SessionState

S, E = SessionState, LifecycleEvent


def machine() -> tuple[Lifecycle, list[tuple[SessionState, SessionState, LifecycleEvent]]]:
    seen: list[tuple[SessionState, SessionState, LifecycleEvent]] = []
    return Lifecycle(lambda old, new, event: seen.append((old, new, event))), seen


def test_a_session_is_started_attached_detached_and_logged_off() -> None:
    life, seen = machine()
    for event in (E.AGENT_READY, E.ATTACH, E.DETACH, E.ATTACH, E.TERMINATE, E.AGENT_EXITED):
        assert life.fire(event)
    assert [new for _old, new, _e in seen] == [S.DISCONNECTED, S.ACTIVE, S.DISCONNECTED, S.ACTIVE, S.ENDING, S.ENDED]


def test_the_start_timer_fires_only_while_starting() -> None:
    clock = task.Clock()
    life, seen = machine()
    life.start_timer(clock, 15.0, lambda: life.fire(E.START_TIMEOUT))
    clock.advance(14.9)
    assert life.state is S.STARTING
    clock.advance(0.2)
    assert life.state is S.ENDING and seen[-1][2] is E.START_TIMEOUT

    life, seen = machine()
    life.start_timer(clock, 15.0, lambda: life.fire(E.START_TIMEOUT))
    life.fire(E.AGENT_READY)  # ready in time: the timer is cancelled
    clock.advance(60)
    assert life.state is S.DISCONNECTED and not clock.getDelayedCalls()


@pytest.mark.parametrize("state", list(SessionState))
def test_events_the_table_does_not_list_are_ignored_not_raised(state: SessionState) -> None:
    for event in LifecycleEvent:
        life, seen = machine()
        life.state = state
        changed = life.fire(event)
        assert changed == ((state, event) in TRANSITIONS)
        assert life.state is TRANSITIONS.get((state, event), state)
        assert len(seen) == int(changed)


def test_nothing_leaves_ended_and_nothing_attaches_while_ending() -> None:
    assert not any(state is S.ENDED for state, _event in TRANSITIONS)
    assert (S.ENDING, E.ATTACH) not in TRANSITIONS and (S.STARTING, E.ATTACH) not in TRANSITIONS


def test_force_ended_records_once() -> None:
    life, seen = machine()
    life.force_ended()
    life.force_ended()
    assert life.state is S.ENDED and len(seen) == 1


# -- a real Session over the lifecycle ---------------------------------------------------
def test_a_late_link_after_the_start_timeout_does_not_revive_the_session(tmp_path: Any) -> None:
    from relay_harness import Host

    from isolation.accounts import Account
    from sessiond.sessions import Session, SessionError

    host = Host(str(tmp_path))
    session = Session(host, Account("alice", 1000, 1000, (1000,), "/home/alice", "/bin/sh"))
    host.registry.add_session(id=session.id, user="alice", uid=1000, socket="x", session_dir="", link_token="t",
                              width=64, height=64)  # fmt: skip
    clock = task.Clock()
    session.reactor = clock
    failures: list[Any] = []
    session._started.addErrback(failures.append)  # noqa: SLF001 - what start() returns
    session.lifecycle.start_timer(clock, 15.0, session._start_timed_out)  # noqa: SLF001
    clock.advance(15)
    assert failures and failures[0].check(SessionError)
    assert session.state is S.ENDED  # nothing to signal: cleaned up at once
    assert host.ended == [session]
    session.link_ready(object())  # type: ignore[arg-type]
    assert session.state is S.ENDED
    assert host.registry.live_sessions() == []


def test_the_registry_follows_every_transition(tmp_path: Any) -> None:
    from relay_harness import Wired

    wired = Wired(str(tmp_path))
    registry, session = wired.session.registry, wired.session
    assert [r.id for r in registry.live_sessions()] == [session.id]
    session.detach(wired.handler)
    assert session.state is S.DISCONNECTED and session.last_disconnect is not None
    record = registry.live_sessions()[0]
    assert record.last_disconnect == session.last_disconnect
    session.terminate()
    assert session.state is S.ENDED and registry.live_sessions() == []


# -- the screen a login asks for (AUTH's screen) ------------------------------------------
def test_a_new_seamless_session_takes_the_logins_screen_clamped_and_a_desktop_one_does_not(tmp_path: Any) -> None:
    from relay_harness import Host

    from isolation.accounts import Account
    from sessiond.agent.settings import MIN_SIDE
    from sessiond.config import load_config
    from sessiond.sessions import Session

    alice = Account("alice", 1000, 1000, (1000,), "/home/alice", "/bin/sh")
    host = Host(str(tmp_path))
    host.config = load_config(None, {"server": {"state_dir": str(tmp_path)},
                                     "session": {"mode": "seamless", "width": "1280", "height": "800",
                                                 "max_width": "2560", "max_height": "1600"}})  # fmt: skip
    assert (Session(host, alice).width, Session(host, alice).height) == (1280, 800)
    assert (Session(host, alice, screen=(1920, 1050)).width, Session(host, alice, screen=(1920, 1050)).height) \
        == (1920, 1050)
    huge = Session(host, alice, screen=(65535, 65535))
    assert (huge.width, huge.height) == (2560, 1600)  # the X server's largest, as a RESIZE_REQUEST is clamped
    tiny = Session(host, alice, screen=(1, 1))
    assert (tiny.width, tiny.height) == (MIN_SIDE, MIN_SIDE)
    host.config = load_config(None, {"server": {"state_dir": str(tmp_path)},
                                     "session": {"mode": "desktop", "width": "1280", "height": "800"}})  # fmt: skip
    desktop = Session(host, alice, screen=(1920, 1050))
    assert (desktop.width, desktop.height) == (1280, 800)  # shown in one client window: the configured size

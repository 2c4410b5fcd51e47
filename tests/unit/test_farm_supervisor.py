"""The supervisor's farm logins over a fake directory: place first, start here or redirect,
a lost session replaced with a notice, release on failure and end, adopt on re-register."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer

from isolation.accounts import Account
from sessiond.config import load_config
from sessiond.farm.directory import Claim, FarmConflict, FarmUnavailable, SessionPlacement
from sessiond.registry import Registry
from sessiond.sessions import Session
from sessiond.supervisor import Redirect, SessionSupervisor

ALICE = Account("alice", 1500, 1500, (), "/home/alice", "/bin/sh")


def placement(sid: str, host: str, state: str = "live") -> SessionPlacement:
    return SessionPlacement("alice", sid, host, f"{host}.example:4443", 7, 0.0, state)  # type: ignore[arg-type]


class FakeDirectory:
    host_id = "a"

    def __init__(self) -> None:
        self.answer: Any = None
        self.placed: list[tuple[str, str]] = []
        self.released: list[tuple[str, str]] = []
        self.adopt_answer = True

    async def place(self, user: str, session_id: str) -> Claim:
        self.placed.append((user, session_id))
        if isinstance(self.answer, Exception):
            raise self.answer
        if self.answer is None:
            return Claim(placement(session_id, "a"), existing=False)
        return self.answer(session_id)  # type: ignore[no-any-return]

    async def release(self, user: str, session_id: str) -> bool:
        self.released.append((user, session_id))
        return True

    async def adopt(self, user: str, session_id: str) -> bool:
        return self.adopt_answer


def make(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, start_fails: bool = False
         ) -> tuple[SessionSupervisor, FakeDirectory, list[Session]]:  # fmt: skip
    supervisor = SessionSupervisor(load_config(None, {"server": {"state_dir": str(tmp_path)}}), None,
                                   Registry(str(tmp_path)))  # fmt: skip
    directory = FakeDirectory()
    supervisor.directory = directory  # type: ignore[assignment]
    started: list[Session] = []

    def start(account: Account, session: Session, first: Any = None) -> defer.Deferred[Any]:
        supervisor.sessions[account.name] = session
        started.append(session)
        return defer.fail(RuntimeError("no agent")) if start_fails else defer.succeed(session)

    monkeypatch.setattr(supervisor, "_start", start)
    return supervisor, directory, started


def result(d: defer.Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    return out[0]


def test_placed_here_starts_the_session_under_the_claimed_id(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    supervisor, directory, started = make(tmp_path, monkeypatch)
    session = result(supervisor.get_or_start(ALICE))
    assert isinstance(session, Session) and started == [session]
    assert directory.placed == [("alice", session.id)] and session.notice == ""


def test_placed_elsewhere_is_a_redirect_and_starts_nothing(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    supervisor, directory, started = make(tmp_path, monkeypatch)
    directory.answer = lambda sid: Claim(placement("s-b", "b"), existing=True)
    redirect = result(supervisor.get_or_start(ALICE))
    assert redirect == Redirect("alice", "s-b", "b", "b.example:4443")
    assert started == [] and "alice" not in supervisor.sessions


def test_a_lost_session_is_replaced_with_a_notice(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    supervisor, directory, _started = make(tmp_path, monkeypatch)
    lost = placement("old", "b", "lost")
    directory.answer = lambda sid: Claim(placement(sid, "a"), existing=False, replaced_lost=lost)
    session = result(supervisor.get_or_start(ALICE))
    assert "host b" in session.notice and "lost" in session.notice and "new session" in session.notice


def test_cut_off_from_etcd_refuses_with_the_directory_message(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    supervisor, directory, started = make(tmp_path, monkeypatch)
    directory.answer = FarmUnavailable("this host lost contact with etcd")
    failure = result(supervisor.get_or_start(ALICE))
    assert failure.check(FarmUnavailable) and "etcd" in failure.getErrorMessage() and started == []


def test_a_failed_start_releases_the_claim(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    supervisor, directory, started = make(tmp_path, monkeypatch, start_fails=True)
    failure = result(supervisor.get_or_start(ALICE))
    assert failure.check(RuntimeError) and directory.released == [("alice", started[0].id)]


def test_concurrent_logins_of_one_user_place_once(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    supervisor, directory, _started = make(tmp_path, monkeypatch)
    gate: defer.Deferred[None] = defer.Deferred()

    async def slow_place(user: str, session_id: str) -> Claim:
        directory.placed.append((user, session_id))
        await gate
        return Claim(placement(session_id, "a"), existing=False)

    monkeypatch.setattr(directory, "place", slow_place)
    first, second = supervisor.get_or_start(ALICE), supervisor.get_or_start(ALICE)
    gate.callback(None)
    assert result(first) is result(second) and len(directory.placed) == 1


def test_session_end_releases_and_a_replaced_session_is_ended(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    supervisor, directory, _started = make(tmp_path, monkeypatch)
    session = result(supervisor.get_or_start(ALICE))
    supervisor.session_ended(session)
    assert directory.released == [("alice", session.id)] and "alice" not in supervisor.sessions
    supervisor.sessions["alice"] = session
    ended: list[Session] = []
    monkeypatch.setattr(session, "terminate", lambda: ended.append(session))
    directory.adopt_answer = False
    result(defer.Deferred.fromCoroutine(supervisor.adopt_farm_sessions()))
    assert ended == [session]
    assert any(e["event"] == "farm_duplicate" for e in supervisor.registry.audit_entries())


def test_a_session_still_ending_is_not_started_twice(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    supervisor, directory, started = make(tmp_path, monkeypatch)
    session = result(supervisor.get_or_start(ALICE))  # never linked: not usable, as while ending
    directory.answer = lambda sid: Claim(placement(session.id, "a"), existing=True)
    failure = result(supervisor.get_or_start(ALICE))
    assert failure.check(FarmConflict) and "ending" in failure.getErrorMessage() and started == [session]


def test_a_claim_here_without_a_session_starts_it_under_its_id(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    supervisor, directory, _started = make(tmp_path, monkeypatch)
    directory.answer = lambda sid: Claim(placement("abandoned", "a"), existing=True)  # a redirect never followed
    assert result(supervisor.get_or_start(ALICE)).id == "abandoned"


def test_a_lost_session_replaced_elsewhere_sends_the_notice(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    supervisor, directory, _started = make(tmp_path, monkeypatch)
    lost = placement("old", "b", "lost")
    directory.answer = lambda sid: Claim(placement(sid, "c"), existing=False, replaced_lost=lost)
    redirect = result(supervisor.get_or_start(ALICE))
    assert isinstance(redirect, Redirect) and "host b" in redirect.notice and "lost" in redirect.notice

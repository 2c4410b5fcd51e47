"""Registry: sessions, the append-only audit log, and hashed single-use resume tokens."""

from __future__ import annotations

import os
import sqlite3

import pytest

from sessiond import registry as registry_mod
from sessiond.registry import Registry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def reg(tmp_path: object) -> Registry:
    return Registry(str(tmp_path), clock=Clock())


def add(reg: Registry, sid: str = "s1", user: str = "alice") -> None:
    reg.add_session(id=sid, user=user, uid=1000, socket="/run/x.sock", session_dir="/run/x", link_token="t",
                    width=10, height=20)  # fmt: skip


def test_database_is_private(tmp_path: object, reg: Registry) -> None:
    assert os.stat(reg.path).st_mode & 0o777 == 0o600


def test_session_round_trip_and_updates(reg: Registry) -> None:
    add(reg)
    reg.update_session("s1", state="active", client_address="10.1.2.3", apps={"42": "xterm"})
    record = reg.session("s1")
    assert record is not None and record.state == "active" and record.apps == {"42": "xterm"}
    assert [r.id for r in reg.live_sessions()] == ["s1"]
    reg.update_session("s1", state="ended")
    assert reg.live_sessions() == []
    with pytest.raises(ValueError):
        reg.update_session("s1", user="mallory")


def test_registry_survives_reopening(tmp_path: object) -> None:
    first = Registry(str(tmp_path))
    add(first)
    first.audit("login", user="alice")
    first.close()
    second = Registry(str(tmp_path))
    assert second.session("s1") is not None
    assert [e["event"] for e in second.audit_entries()] == ["login"]


def test_audit_is_ordered_and_filtered_by_time(reg: Registry) -> None:
    clock = reg.clock
    reg.audit("login", user="a")
    clock.now += 10  # type: ignore[attr-defined]
    reg.audit("logoff", user="a", detail="x")
    assert [e["event"] for e in reg.audit_entries()] == ["login", "logoff"]
    assert [e["event"] for e in reg.audit_entries(since=1005.0)] == ["logoff"]


def test_tokens_are_hashed_single_use_and_bound_to_the_user(reg: Registry) -> None:
    token = reg.issue_token("alice", lifetime=60)
    assert len(token) >= 43
    raw = sqlite3.connect(reg.path).execute("SELECT hash FROM resume_tokens").fetchall()
    assert token not in str(raw)
    assert not reg.redeem_token("bob", token)  # wrong user: refused, and consumed
    assert not reg.redeem_token("alice", token)
    token = reg.issue_token("alice", lifetime=60)
    assert reg.redeem_token("alice", token)
    assert not reg.redeem_token("alice", token)


def test_tokens_expire(reg: Registry) -> None:
    token = reg.issue_token("alice", lifetime=60)
    reg.clock.now += 61  # type: ignore[attr-defined]
    assert not reg.redeem_token("alice", token)


def test_live_tokens_per_user_are_bounded(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_mod, "MAX_TOKENS_PER_USER", 3)
    tokens = []
    for _ in range(5):
        reg.clock.now += 1  # type: ignore[attr-defined]
        tokens.append(reg.issue_token("alice", lifetime=600))
    count = sqlite3.connect(reg.path).execute("SELECT COUNT(*) FROM resume_tokens").fetchone()[0]
    assert count == 3
    assert not reg.redeem_token("alice", tokens[0])
    assert reg.redeem_token("alice", tokens[-1])


def test_a_resume_chain_ends_a_lifetime_after_the_password_login(reg: Registry) -> None:
    clock = reg.clock
    first = reg.issue_token("alice", lifetime=100)  # password login at t0
    expires = reg.redeem_token("alice", first)
    assert expires is not None
    clock.now += 60  # type: ignore[attr-defined]
    second = reg.issue_token("alice", lifetime=100, not_after=expires)  # renewed on a resume at t0+60
    clock.now += 50  # type: ignore[attr-defined]  # t0+110: past the chain's end, although the second token is only 50 s old
    assert reg.redeem_token("alice", second) is None


def test_revoke_removes_every_token_of_one_user(reg: Registry) -> None:
    tokens = [reg.issue_token("alice", lifetime=60) for _ in range(3)]
    other = reg.issue_token("bob", lifetime=60)
    assert reg.revoke_tokens("alice") == 3
    assert all(reg.redeem_token("alice", t) is None for t in tokens)
    assert reg.redeem_token("bob", other) is not None


def test_a_session_keeps_the_display_it_started_with_also_in_an_older_registry(tmp_path: object) -> None:
    # A re-adopted session reports what its agent runs (issue 17), not what the config now says.
    state = str(tmp_path)
    old = sqlite3.connect(os.path.join(state, registry_mod.DB_FILE))
    old.executescript(registry_mod.SCHEMA.replace(",\n    display TEXT NOT NULL DEFAULT ''", ""))
    old.close()
    reg = Registry(state, clock=Clock())
    add(reg, "before")  # a row as an older sessiond wrote it: no display
    reg.add_session(id="s2", user="bob", uid=1001, socket="/s", session_dir="/d", link_token="t", width=1, height=1,
                    display="xpra")  # fmt: skip
    again = Registry(state, clock=Clock())
    before, s2 = again.session("before"), again.session("s2")
    assert before is not None and before.display == ""
    assert s2 is not None and s2.display == "xpra"

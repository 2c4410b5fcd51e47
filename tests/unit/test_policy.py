"""Session policies against a fake clock and recorder fakes (no processes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sessiond.policy import PolicyService
from sessiond.config import PolicySection
from sessiond.lifecycle import SessionState


@dataclass
class FakeAccount:
    name: str = "alice"


@dataclass
class FakeClient:
    closed: list[str] = field(default_factory=list)

    def take_over(self, reason: str) -> None:
        self.closed.append(reason)


@dataclass
class FakeSession:
    state: SessionState
    last_input: float = 0.0
    last_disconnect: float | None = None
    created: float = 0.0
    id: str = "s1"
    account: FakeAccount = field(default_factory=FakeAccount)
    client: Any = None
    calls: list[str] = field(default_factory=list)

    def terminate(self) -> None:
        self.calls.append("terminate")

    def detach(self, client: Any) -> None:
        self.calls.append("detach")
        self.client = None
        self.state = SessionState.DISCONNECTED


class FakeRegistry:
    def __init__(self) -> None:
        self.events: list[str] = []

    def audit(self, event: str, **fields: Any) -> None:
        self.events.append(event)


class FakeSupervisor:
    def __init__(self, *sessions: FakeSession) -> None:
        self.sessions = {str(i): s for i, s in enumerate(sessions)}


def service(supervisor: FakeSupervisor, registry: FakeRegistry, now: float, **policy: float) -> PolicyService:
    values = {"idle_disconnect": 0.0, "idle_logoff": 0.0, "disconnected_logoff": 0.0, "check_interval": 1.0}
    values.update(policy)
    return PolicyService(supervisor, registry, PolicySection(**values), clock=lambda: now)  # type: ignore[arg-type]


def test_idle_disconnect_detaches_only_after_the_limit() -> None:
    client = FakeClient()
    session = FakeSession(SessionState.ACTIVE, last_input=100.0, client=client)
    registry = FakeRegistry()
    service(FakeSupervisor(session), registry, now=159.0, idle_disconnect=60).check()
    assert session.calls == [] and client.closed == []
    service(FakeSupervisor(session), registry, now=160.0, idle_disconnect=60).check()
    assert session.calls == ["detach"] and len(client.closed) == 1
    assert registry.events == ["policy_idle_disconnect"]


def test_disconnected_logoff_counts_from_the_disconnect() -> None:
    session = FakeSession(SessionState.DISCONNECTED, last_input=0.0, last_disconnect=500.0)
    registry = FakeRegistry()
    service(FakeSupervisor(session), registry, now=599.0, disconnected_logoff=100).check()
    assert session.calls == []
    service(FakeSupervisor(session), registry, now=600.0, disconnected_logoff=100).check()
    assert session.calls == ["terminate"] and registry.events == ["policy_disconnected_logoff"]


def test_idle_logoff_applies_to_connected_sessions_too() -> None:
    session = FakeSession(SessionState.ACTIVE, last_input=0.0, client=FakeClient())
    registry = FakeRegistry()
    service(FakeSupervisor(session), registry, now=3600.0, idle_logoff=3600, idle_disconnect=60).check()
    assert session.calls == ["terminate"] and registry.events == ["policy_idle_logoff"]


def test_disabled_policies_never_fire() -> None:
    session = FakeSession(SessionState.DISCONNECTED, last_input=0.0, last_disconnect=0.0)
    registry = FakeRegistry()
    service(FakeSupervisor(session), registry, now=1e9).check()
    assert session.calls == [] and registry.events == []

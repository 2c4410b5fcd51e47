# Session policies from [policy]: idle disconnect, idle logoff, disconnected
# logoff. Checked on a timer; each firing logs a line and writes an audit
# entry so an admin can always tell why a session went away.
"""PolicyService: timed session policies."""

from __future__ import annotations

import time
from typing import Any, Callable

from twisted.application import service
from twisted.internet import task
from twisted.logger import Logger

from sessiond.registry import Registry
from sessiond.config import PolicySection
from sessiond.lifecycle import SessionState
from sessiond.supervisor import SessionSupervisor

log = Logger()


class PolicyService(service.Service):
    """Applies idle_disconnect, idle_logoff and disconnected_logoff."""

    def __init__(self, supervisor: SessionSupervisor, registry: Registry, policy: PolicySection,
                 clock: Callable[[], float] = time.time, reactor: Any = None) -> None:  # fmt: skip
        self.supervisor = supervisor
        self.registry = registry
        self.idle_disconnect = policy.idle_disconnect
        self.idle_logoff = policy.idle_logoff
        self.disconnected_logoff = policy.disconnected_logoff
        self.interval = policy.check_interval
        self.clock = clock
        self._loop = task.LoopingCall(self.check)
        if reactor is not None:
            self._loop.clock = reactor

    def startService(self) -> None:  # noqa: N802 - Twisted name
        super().startService()
        if self.idle_disconnect or self.idle_logoff or self.disconnected_logoff:
            self._loop.start(self.interval, now=False)

    def stopService(self) -> None:  # noqa: N802
        super().stopService()
        if self._loop.running:
            self._loop.stop()

    def check(self) -> None:
        """One pass over every session."""
        now = self.clock()
        for session in list(self.supervisor.sessions.values()):
            idle = now - session.last_input
            if self.idle_logoff and idle >= self.idle_logoff and session.state in (
                    SessionState.ACTIVE, SessionState.DISCONNECTED):
                self._fire(session, "policy_idle_logoff", f"no input for {idle:.0f} s")
                session.terminate()
            elif self.disconnected_logoff and session.state is SessionState.DISCONNECTED and \
                    now - (session.last_disconnect or session.created) >= self.disconnected_logoff:
                self._fire(session, "policy_disconnected_logoff",
                           f"disconnected for {now - (session.last_disconnect or session.created):.0f} s")
                session.terminate()
            elif self.idle_disconnect and session.state is SessionState.ACTIVE and idle >= self.idle_disconnect:
                client = session.client
                if client is not None:
                    self._fire(session, "policy_idle_disconnect", f"no input for {idle:.0f} s")
                    session.detach(client)
                    client.take_over("disconnected after being idle; log in again to resume your session")

    def _fire(self, session: Any, event: str, why: str) -> None:
        log.info("policy {event} for session {session} of {user}: {why}", event=event, session=session.id,
                 user=session.account.name, why=why)  # fmt: skip
        self.registry.audit(event, user=session.account.name, session=session.id, detail=why)

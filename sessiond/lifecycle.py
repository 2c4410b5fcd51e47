# A session's lifecycle as an explicit state machine: one transition table
# says which event moves which state where, so "can a session that is
# ending be attached?" is answered by reading a table, not by following
# flags through a 600-line class. Events that the table does not list for
# the current state are ignored (returned False) and never raise: a late
# agent_ready after a timeout, or a second terminate, must be harmless.
#
# The start timer lives here too (start_timeout fires the event), driven by
# an IReactorTime so tests use twisted.internet.task.Clock.
"""SessionState, LifecycleEvent, TRANSITIONS and Lifecycle."""

from __future__ import annotations

import enum
from typing import Any, Callable, Final


class SessionState(enum.Enum):
    """Where a session is; stored in the registry by value."""

    STARTING = "starting"
    ACTIVE = "active"
    DISCONNECTED = "disconnected"
    ENDING = "ending"
    ENDED = "ended"


class LifecycleEvent(enum.Enum):
    """What can happen to a session."""

    AGENT_READY = "agent_ready"  # the link to the agent is authenticated
    ATTACH = "attach"  # a client became the session's connection
    DETACH = "detach"  # that client went away
    TERMINATE = "terminate"  # log off, policy, failure: stop the agent
    AGENT_EXITED = "agent_exited"  # the agent process is gone
    START_TIMEOUT = "start_timeout"  # the agent was not ready in time
    START_FAILED = "start_failed"  # the agent could not be started or reached


S, E = SessionState, LifecycleEvent
# (state, event) -> next state. Anything else is ignored.
TRANSITIONS: Final[dict[tuple[SessionState, LifecycleEvent], SessionState]] = {
    (S.STARTING, E.AGENT_READY): S.DISCONNECTED,
    (S.STARTING, E.START_TIMEOUT): S.ENDING,
    (S.STARTING, E.START_FAILED): S.ENDING,
    (S.STARTING, E.TERMINATE): S.ENDING,
    (S.STARTING, E.AGENT_EXITED): S.ENDED,
    (S.DISCONNECTED, E.ATTACH): S.ACTIVE,
    (S.DISCONNECTED, E.TERMINATE): S.ENDING,
    (S.DISCONNECTED, E.AGENT_EXITED): S.ENDED,
    (S.ACTIVE, E.ATTACH): S.ACTIVE,  # taken over by another connection
    (S.ACTIVE, E.DETACH): S.DISCONNECTED,
    (S.ACTIVE, E.TERMINATE): S.ENDING,
    (S.ACTIVE, E.AGENT_EXITED): S.ENDED,
    (S.ENDING, E.AGENT_EXITED): S.ENDED,
}
del S, E


class Lifecycle:
    """The state of one session; ON_CHANGE(old, new, event) runs after each transition."""

    def __init__(self, on_change: Callable[[SessionState, SessionState, LifecycleEvent], None],
                 state: SessionState = SessionState.STARTING) -> None:  # fmt: skip
        self.state = state
        self.on_change = on_change
        self._start_timer: Any = None  # an IDelayedCall

    @property
    def usable(self) -> bool:
        """True while a client may attach (the agent is up and not ending)."""
        return self.state in (SessionState.ACTIVE, SessionState.DISCONNECTED)

    @property
    def over(self) -> bool:
        """True once the session is ending or ended."""
        return self.state in (SessionState.ENDING, SessionState.ENDED)

    def allows(self, event: LifecycleEvent) -> bool:
        """Whether EVENT would change anything now."""
        return (self.state, event) in TRANSITIONS

    def fire(self, event: LifecycleEvent) -> bool:
        """Apply EVENT; True if it was a transition of the table, False if ignored."""
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            return False
        old, self.state = self.state, new
        if old is SessionState.STARTING:
            self.cancel_start_timer()
        self.on_change(old, new, event)
        return True

    def force_ended(self) -> None:
        """Cleanup ran without an agent exit (nothing was ever spawned): ENDED now."""
        if self.state is not SessionState.ENDED:
            old, self.state = self.state, SessionState.ENDED
            self.cancel_start_timer()
            self.on_change(old, SessionState.ENDED, LifecycleEvent.AGENT_EXITED)

    def start_timer(self, clock: Any, timeout: float, on_timeout: Callable[[], None]) -> None:
        """Call ON_TIMEOUT after TIMEOUT seconds unless the session leaves STARTING first
        (ON_TIMEOUT is expected to fire START_TIMEOUT, with its side effects)."""
        self.cancel_start_timer()
        self._start_timer = clock.callLater(timeout, on_timeout)

    def cancel_start_timer(self) -> None:
        timer, self._start_timer = self._start_timer, None
        if timer is not None and timer.active():
            timer.cancel()

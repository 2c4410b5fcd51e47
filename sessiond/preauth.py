# Bounds on connections that have not logged in yet, for the one root reactor
# that serves everyone (issue 12 item 2; OpenSSH's LoginGraceTime and
# MaxStartups play the same part).
#
# Why here and not in the gateway: the gateway's login timer starts when the
# first byte arrives after the TLS handshake, so a TCP connection that never
# speaks, or never finishes TLS, held a descriptor for ever. The port
# multiplexer (sessiond/portmux.py) sees every connection at accept, for the
# native port and HTTP/WebSocket alike, so it asks this tracker for a ticket
# there; the ticket's grace timer covers TLS, HTTP and the login until the
# gateway reports the connection authenticated (authenticated() below).
#
# Full is never a reason to refuse a newcomer, or a flood of idle sockets would
# lock real users out until the flood's grace ran out. Instead the connection
# that has shown the least progress (accepted < TLS done < application data),
# and among those the oldest, from the source that holds the most, is dropped
# to make room. A real client speaks at once, so it outlives an idle flood.
"""Pre-authentication grace timer and caps on unauthenticated connections."""

from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from twisted.logger import Logger

if TYPE_CHECKING:
    from sessiond.config import Config

log = Logger()

# How far a connection got before logging in; lower is dropped first when full.
ACCEPTED, TLS_DONE, SPOKE = 0, 1, 2


@dataclass(frozen=True)
class PreauthLimits:
    """[server] login_grace, max_unauthenticated and max_unauthenticated_per_source."""

    grace: float
    max_total: int
    max_per_source: int


def limits_from_config(config: Config) -> PreauthLimits:
    """The one place the pre-auth settings are read from the configuration."""
    server = config.server
    return PreauthLimits(server.login_grace, server.max_unauthenticated, server.max_unauthenticated_per_source)


@dataclass(eq=False)
class Ticket:
    """One unauthenticated connection: its source, progress and grace timer."""

    tracker: PreauthTracker
    source: str
    serial: int
    drop: Callable[[], None]
    level: int = ACCEPTED
    timer: Any = field(default=None, repr=False)
    done: bool = False

    def progress(self, level: int) -> None:
        """The connection got as far as LEVEL (TLS_DONE, SPOKE)."""
        self.level = max(self.level, level)

    def authenticated(self) -> None:
        """Logged in: no longer counted, no grace timer."""
        self.tracker.release(self)

    def closed(self) -> None:
        """The connection is gone."""
        self.tracker.release(self)


class PreauthTracker:
    """Counts unauthenticated connections globally and per source address."""

    def __init__(self, reactor: Any, limits: PreauthLimits) -> None:
        self.reactor = reactor
        self.limits = limits
        self._serial = itertools.count()
        # Accept order, oldest first; per-source sets of the same tickets.
        self._all: collections.OrderedDict[int, Ticket] = collections.OrderedDict()
        self._by_source: dict[str, dict[int, Ticket]] = {}
        self.expired = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._all)

    def count(self, source: str) -> int:
        """Unauthenticated connections from SOURCE now."""
        return len(self._by_source.get(source, ()))

    def admit(self, source: str, drop: Callable[[], None]) -> Ticket:
        """A connection from SOURCE was accepted; DROP aborts it.

        Makes room first if SOURCE or everyone is at the cap, so the count
        never exceeds it.
        """
        same = self._by_source.get(source)
        if same is not None and len(same) >= self.limits.max_per_source:
            self._evict(same.values(), "per-source cap")
        if len(self._all) >= self.limits.max_total:
            self._evict(self._all.values(), "global cap")
        ticket = Ticket(self, source, next(self._serial), drop)
        ticket.timer = self.reactor.callLater(self.limits.grace, self._expire, ticket)
        self._all[ticket.serial] = ticket
        self._by_source.setdefault(source, {})[ticket.serial] = ticket
        return ticket

    def release(self, ticket: Ticket) -> None:
        """Forget TICKET (authenticated or closed); idempotent."""
        if ticket.done:
            return
        ticket.done = True
        if ticket.timer is not None and ticket.timer.active():
            ticket.timer.cancel()
        self._all.pop(ticket.serial, None)
        same = self._by_source.get(ticket.source)
        if same is not None:
            same.pop(ticket.serial, None)
            if not same:
                del self._by_source[ticket.source]

    def _expire(self, ticket: Ticket) -> None:
        if ticket.done:
            return
        self.expired += 1
        log.info("closing unauthenticated connection from {source}: no login within {grace} s",
                 source=ticket.source, grace=self.limits.grace)  # fmt: skip
        self.release(ticket)
        ticket.drop()

    def _evict(self, candidates: Any, why: str) -> None:
        # Least progress first, then the source holding the most, then the oldest.
        victim = min(candidates, key=lambda t: (t.level, -self.count(t.source), t.serial))
        self.evicted += 1
        log.info("dropping unauthenticated connection from {source} ({why})", source=victim.source, why=why)
        self.release(victim)
        victim.drop()


def ticket_of(transport: Any) -> Ticket | None:
    """The pre-auth ticket of the connection under TRANSPORT (native TLS or a WebSocket stream)."""
    transport = getattr(transport, "underlying", transport)  # sessiond.web.WebSocketStream
    mux = getattr(transport, "wrappedProtocol", None)  # the TLS transport wraps portmux.MuxProtocol
    ticket = getattr(mux, "preauth", None)
    return ticket if isinstance(ticket, Ticket) else None


def authenticated(transport: Any) -> None:
    """The gateway's hook: the connection under TRANSPORT has logged in."""
    ticket = ticket_of(transport)
    if ticket is not None:
        ticket.authenticated()

# The single-host directory: the FarmDirectory interface over the embedded
# SQLite registry, so the broker has one code path whether or not a [farm]
# section exists. On one host there is nothing to race with but ourselves:
# the reactor is single-threaded, and the registry row is written by the
# session lifecycle right after place() says "here". Between the two, a claim
# is held in memory (pending), so a second login of the same user, or a
# login that would cross the capacity, sees it.
"""LocalDirectory: FarmDirectory for a single host, on sessiond.registry.Registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import task

from sessiond.farm.directory import Claim, FarmFull, HostInfo, HostLoad, SessionPlacement
from sessiond.registry import Registry, SessionRecord

# Seconds between checks while waiting for a drained host's last session to end.
WAIT_DRAINED_POLL_SECONDS = 1.0


class LocalDirectory:
    """This host alone: live sessions come from the registry; capacity 0 means unlimited."""

    def __init__(self, registry: Registry, *, host_id: str, advertise: str, clock: Any,
                 load_source: Callable[[], HostLoad]) -> None:  # fmt: skip
        self.registry = registry
        self.host_id = host_id
        self.advertise = advertise
        self.clock = clock
        self.load_source = load_source
        self.draining = False
        self._pending: dict[str, SessionPlacement] = {}

    async def start(self) -> None:
        """Nothing to register on a single host."""

    async def stop(self) -> None:
        """Nothing to leave on a single host."""

    def can_place(self) -> bool:
        """Always: the registry is local."""
        return True

    async def publish_load(self, load: HostLoad) -> None:
        """Nothing to publish on a single host."""

    def _live(self) -> dict[str, SessionRecord]:
        newest: dict[str, SessionRecord] = {}
        for record in self.registry.live_sessions():  # ordered by creation: the newest wins
            newest[record.user] = record
        for user, pending in list(self._pending.items()):
            if user in newest and newest[user].id == pending.session_id:
                del self._pending[user]  # the lifecycle has written its row
        return newest

    def _placement(self, user: str, session_id: str, claimed: float) -> SessionPlacement:
        return SessionPlacement(user, session_id, self.host_id, self.advertise, 0, claimed, "live")

    async def place(self, user: str, session_id: str) -> Claim:
        """USER's live (or pending) session, else SESSION_ID here, unless draining or full."""
        live = self._live()
        if user in live:
            return Claim(self._placement(user, live[user].id, live[user].created), existing=True)
        if user in self._pending:
            pending = self._pending[user]
            return Claim(pending, existing=pending.session_id != session_id)
        capacity = self.load_source().capacity
        if self.draining:
            raise FarmFull(f"host {self.host_id} is draining and takes no new sessions")
        if capacity > 0 and len(live) + len(self._pending) >= capacity:
            raise FarmFull(f"host {self.host_id} is at its capacity of {capacity} sessions")
        claim = self._placement(user, session_id, self.clock.seconds())
        self._pending[user] = claim
        return Claim(claim, existing=False)

    async def lookup(self, user: str) -> SessionPlacement | None:
        """USER's live or pending session, or None (a single host never has lost sessions)."""
        live = self._live()
        if user in live:
            return self._placement(user, live[user].id, live[user].created)
        return self._pending.get(user)

    async def release(self, user: str, session_id: str) -> bool:
        """Forget a pending claim; a started session's row is ended by the lifecycle itself."""
        pending = self._pending.get(user)
        if pending is not None and pending.session_id == session_id:
            del self._pending[user]
            return True
        record = self._live().get(user)
        return record is not None and record.id == session_id

    async def adopt(self, user: str, session_id: str) -> bool:
        """Whether the registry still holds USER's session SESSION_ID as live."""
        record = self._live().get(user)
        return record is not None and record.id == session_id

    async def hosts(self) -> list[HostInfo]:
        """This host, with its load and the number of live and pending sessions."""
        placed = len(self._live()) + len(self._pending)
        return [HostInfo(self.host_id, self.advertise, 0, self.load_source(), placed, self.draining,
                         self.clock.seconds())]  # fmt: skip

    async def sessions(self) -> list[SessionPlacement]:
        """Live and pending sessions, by user."""
        found = {u: self._placement(u, r.id, r.created) for u, r in self._live().items()}
        found.update({u: p for u, p in self._pending.items() if u not in found})
        return [found[u] for u in sorted(found)]

    async def drain(self, host_id: str, draining: bool = True) -> None:
        """Drain (or undrain) this host; any other id is an error."""
        if host_id != self.host_id:
            raise ValueError(f"unknown host {host_id!r}: this sessiond is not in a farm (host {self.host_id!r})")
        self.draining = draining

    async def wait_drained(self, host_id: str) -> None:
        """Fires once this host has no live or pending session (checked every second)."""
        await self.drain(host_id, self.draining)  # validates host_id
        while self._live() or self._pending:
            await task.deferLater(self.clock, WAIT_DRAINED_POLL_SECONDS, lambda: None)

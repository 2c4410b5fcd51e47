# A login through host A that is placed on host B claims the user's session
# key and one of B's slots before the client is sent to B with a ticket. If
# the client never arrives (closed laptop, a client that does not follow
# redirects, a network error), nothing would ever start that session: the
# claim would count against B's capacity forever and the user's next login
# would be sent to B again for a session that does not exist.
#
# The target host is the one that knows whether the client arrived, so it
# sweeps its own claims: every ticket_ttl seconds it reads, at one revision,
# the session records and the outstanding tickets. A record that names this
# host's current lease, whose user has no session running or starting here,
# no unexpired ticket for it, and no ticket redeemed here lately, is suspect;
# one still suspect and unchanged (same revision) at the next sweep is
# released, freeing the key and the slot (the same compare-guarded release
# as a session that ended). Two sweeps, because a claim is written a moment
# before its ticket: a claim younger than one sweep is never released. A
# redirect to a host that dies needs no sweep: its records read as lost.
"""AbandonedClaims: release claims on this host whose redirected client never came."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from sessiond.farm.etcd_codec import EtcdError, RangeResult, op_range
from sessiond.farm.records import BadRecord, parse_session

log = Logger()

# Largest ticket record read back during a sweep (as in tickets.redeem_ticket).
MAX_TICKET_RECORD = 1024


class AbandonedClaims:
    """Sweeps this host's claims every INTERVAL seconds (see the module comment)."""

    def __init__(self, directory: Any, busy_users: Callable[[], set[str]], interval: float) -> None:
        """DIRECTORY: this host's EtcdDirectory; BUSY_USERS: users with a session running or starting here."""
        self.directory = directory
        self.busy_users = busy_users
        self.interval = interval
        # user -> (session id, mod revision) seen abandoned at the previous sweep.
        self._suspects: dict[str, tuple[str, int]] = {}
        # user -> when a ticket of theirs was redeemed here (the session is about to start).
        self._redeemed: dict[str, float] = {}
        self._loop: task.LoopingCall | None = None

    def start(self) -> None:
        """Sweep every INTERVAL seconds from now on."""
        self._loop = task.LoopingCall(lambda: defer.Deferred.fromCoroutine(self._sweep_quietly()))
        self._loop.clock = self.directory.clock
        self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        """Stop sweeping."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def redeemed(self, user: str) -> None:
        """A ticket of USER was just redeemed here: their session is about to start."""
        self._redeemed[user] = self.directory.clock.seconds()

    async def _sweep_quietly(self) -> None:
        try:
            await self.sweep()
        except EtcdError as exc:  # etcd unreachable: try again at the next tick
            log.warn("farm: abandoned-claim sweep failed: {error}", error=str(exc))
        except Exception:  # noqa: BLE001 - the sweep must keep running
            log.failure("farm: abandoned-claim sweep failed")

    async def sweep(self) -> list[str]:
        """One sweep; returns the users whose abandoned claim was released."""
        d = self.directory
        now = d.clock.seconds()
        self._redeemed = {u: t for u, t in self._redeemed.items() if now - t < 2 * self.interval}
        lease = d.keeper.lease
        if lease == 0 or not d.can_place():
            self._suspects = {}
            return []
        result = await d.client.txn([], [op_range(*d.keys.dir("sessions")), op_range(*d.keys.dir("tickets"))])
        sessions, tickets = (r for r in result.responses if isinstance(r, RangeResult))
        waited = self._tickets_for_me(tickets)
        busy = self.busy_users() | set(self._redeemed)
        suspects: dict[str, tuple[str, int]] = {}
        for kv in sessions.kvs:
            try:
                record = parse_session(kv, {})
            except BadRecord:
                continue
            if record.host_id != d.host_id or record.lease != lease or record.user in busy:
                continue
            if (record.user, record.session_id) in waited:
                continue
            suspects[record.user] = (record.session_id, kv.mod_revision)
        released = []
        for user, seen in suspects.items():
            if self._suspects.get(user) != seen or user in self.busy_users() | set(self._redeemed):
                continue
            if await d.release(user, seen[0], revision=seen[1]):
                log.info("farm: released session {session} of {user}: redirected here, the client never came",
                         session=seen[0], user=user)  # fmt: skip
                released.append(user)
        self._suspects = {u: s for u, s in suspects.items() if u not in released}
        return released

    def _tickets_for_me(self, tickets: RangeResult) -> set[tuple[str, str]]:
        waited = set()
        for kv in tickets.kvs:
            if len(kv.value) > MAX_TICKET_RECORD:
                continue
            try:
                record = json.loads(kv.value)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("host") == self.directory.host_id:
                waited.add((str(record.get("user")), str(record.get("session"))))
        return waited

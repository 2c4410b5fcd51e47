# The farm directory on etcd. Every decision that must be unique across the
# farm is one etcd transaction whose compares encode the invariant:
#   - one session per user: sessions/<user> must be absent (or the lost
#     record we read, unchanged, whose host is gone);
#   - capacity: counts/<host> must be the revision we read, and we only write
#     count+1 after checking count < capacity, so two racing claims for one
#     host cannot both pass;
#   - the chosen host is alive in the incarnation we scored: hosts/<host> is
#     attached to the lease we read; it is not draining: drain/<host> absent;
#   - the placing host itself still holds its lease.
# A lost race re-reads and re-decides; a replayed claim (ambiguous failover)
# finds its own session id and counts as won.
"""EtcdDirectory: FarmDirectory on etcd (leases, claims by transaction)."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from sessiond.farm import placement
from sessiond.farm.abandoned import AbandonedClaims
from sessiond.farm.directory import (
    Claim,
    FarmConflict,
    FarmFull,
    FarmUnavailable,
    HostInfo,
    HostLoad,
    SessionPlacement,  # fmt: skip
)
from sessiond.farm.etcd_client import EtcdClient
from sessiond.farm.etcd_codec import (
    Compare,
    EtcdError,
    EtcdLeaseNotFound,
    KeyValue,
    RangeResult,
    op_delete,
    op_put,  # fmt: skip
    op_range,
)
from sessiond.farm.hosts import LOAD_REFRESH_SECONDS, LeaseKeeper
from sessiond.farm.tickets import TICKET_TTL
from sessiond.farm.records import (
    BadRecord,
    FarmKeys,
    check_host_id,
    check_user,
    host_record,
    parse_count,
    parse_host,  # fmt: skip
    parse_session,
    session_record,
)

# Claim attempts before giving up with FarmConflict (each lost race re-reads;
# 9 simultaneous logins over 3 hosts settle in ~4 rounds).
MAX_CLAIM_ATTEMPTS = 16
# Upper bound of the random pause after a lost race, times the attempt number.
CLAIM_BACKOFF_SECONDS = 0.02

log = Logger()


@dataclass(frozen=True)
class _Snapshot:
    revision: int
    session: KeyValue | None
    hosts: list[HostInfo]
    count_revisions: dict[str, int]  # host id -> mod_revision of counts/<host> (0: absent)
    host_revisions: dict[str, int]  # host id -> mod_revision of hosts/<host> (0: absent)


class EtcdDirectory:
    """This host's view of the farm directory in etcd."""

    def __init__(self, client: EtcdClient, *, host_id: str, advertise: str, clock: Any,
                 load_source: Callable[[], HostLoad], lease_ttl: int, keys: FarmKeys | None = None,
                 on_registered: Callable[[], Awaitable[None]] | None = None,
                 fingerprint: str = "", ticket_ttl: int = TICKET_TTL) -> None:  # fmt: skip
        self.client = client
        self.ticket_ttl = ticket_ttl  # seconds a redirect ticket to this farm's hosts stays redeemable
        self.abandoned: AbandonedClaims | None = None  # set by service.build_directory
        self.fingerprint = fingerprint
        self.host_id = check_host_id(host_id)
        self.advertise = advertise
        self.clock = clock
        self.load_source = load_source
        self.keys = keys or FarmKeys()
        # Called after every registration (the first one included) to adopt() the sessions this
        # host still runs; until it returns, the host record says "adopting" (see place()).
        self.on_registered = on_registered
        self.adopting = False
        self.keeper = LeaseKeeper(client, lease_ttl, clock, self._reregister)
        self._publisher: task.LoopingCall | None = None

    # -- membership --------------------------------------------------------------------
    async def start(self) -> None:
        """Register under a new lease (count reset to 0), adopt this host's sessions (on_registered),
        then keep the lease alive and publish load."""
        await self._register()
        self.keeper.start()
        self._publisher = task.LoopingCall(lambda: defer.Deferred.fromCoroutine(self._publish_quietly()))
        self._publisher.clock = self.clock
        self._publisher.start(LOAD_REFRESH_SECONDS, now=False)
        if self.abandoned is not None:
            self.abandoned.start()

    def _record(self, lease: int, load: HostLoad) -> bytes:
        return host_record(self.host_id, self.advertise, lease, load, self.clock.seconds(), self.fingerprint,
                           self.adopting)  # fmt: skip

    async def _register(self) -> None:
        lease = await self.keeper.grant()
        self.adopting = self.on_registered is not None
        await self.client.txn([], [op_put(self.keys.host(self.host_id), self._record(lease, self.load_source()),
                                          lease), op_put(self.keys.count(self.host_id), b"0")])  # fmt: skip
        log.info("farm: host {host} registered under lease {lease:x}", host=self.host_id, lease=lease)
        if self.on_registered is not None:
            try:
                await self.on_registered()
            finally:
                self.adopting = False
                await self.publish_load(self.load_source())

    async def _reregister(self) -> None:
        # Errors propagate to LeaseKeeper, which logs them and retries at its next tick.
        await self._register()

    async def stop(self) -> None:
        """Stop publishing and keepalives, and revoke the lease (the host vanishes at once)."""
        if self._publisher is not None and self._publisher.running:
            self._publisher.stop()
        if self.abandoned is not None:
            self.abandoned.stop()
        self.keeper.stop()
        await self.keeper.revoke()

    def crash(self) -> None:
        """Stop keepalives and publishing WITHOUT revoking: what kill -9 does (tests, drills)."""
        if self._publisher is not None and self._publisher.running:
            self._publisher.stop()
        self.keeper.stop()

    def can_place(self) -> bool:
        """Whether this host certainly still holds its lease."""
        return self.keeper.alive()

    async def publish_load(self, load: HostLoad) -> None:
        """Rewrite this host's record with LOAD (under the same lease)."""
        if self.keeper.lease == 0:
            return
        try:
            await self.client.put(self.keys.host(self.host_id), self._record(self.keeper.lease, load),
                                  self.keeper.lease)
        except EtcdLeaseNotFound:
            self.keeper.mark_lost()  # the keepalive loop re-registers

    async def _publish_quietly(self) -> None:
        try:
            await self.publish_load(self.load_source())
        except EtcdError as exc:
            log.warn("farm: load not published: {error}", error=str(exc))

    # -- reads ---------------------------------------------------------------------------
    async def _read(self, ops: list[dict[str, Any]]) -> tuple[int, list[RangeResult]]:
        try:
            result = await self.client.txn([], ops)
        except EtcdError as exc:
            raise FarmUnavailable(f"the farm directory (etcd) cannot be reached: {exc}") from exc
        return result.revision, [r for r in result.responses if isinstance(r, RangeResult)]

    def _hosts(self, hosts: RangeResult, counts: RangeResult, drains: RangeResult) -> list[HostInfo]:
        count_of = {self.keys.tail(kv.key): parse_count(kv) for kv in counts.kvs}
        drained = {self.keys.tail(kv.key) for kv in drains.kvs}
        infos = []
        for kv in hosts.kvs:
            name = self.keys.tail(kv.key)
            try:
                infos.append(parse_host(kv, count_of.get(name, 0), name in drained))
            except BadRecord as exc:
                log.warn("farm: ignoring host record: {error}", error=str(exc))
        return infos

    async def _snapshot(self, user: str) -> _Snapshot:
        revision, (session, hosts, counts, drains) = await self._read(
            [op_range(self.keys.session(user)), op_range(*self.keys.dir("hosts")),
             op_range(*self.keys.dir("counts")), op_range(*self.keys.dir("drain"))])  # fmt: skip
        revisions = {self.keys.tail(kv.key): kv.mod_revision for kv in counts.kvs}
        host_revisions = {self.keys.tail(kv.key): kv.mod_revision for kv in hosts.kvs}
        return _Snapshot(revision, session.kvs[0] if session.kvs else None, self._hosts(hosts, counts, drains),
                         revisions, host_revisions)

    def _placement(self, kv: KeyValue, hosts: list[HostInfo]) -> SessionPlacement | None:
        try:
            return parse_session(kv, {h.host_id: h.lease for h in hosts})
        except BadRecord as exc:
            log.warn("farm: ignoring session record: {error}", error=str(exc))
            return None

    async def hosts(self) -> list[HostInfo]:
        """Live hosts, with placed counts and drain state, sorted by id."""
        _, (hosts, counts, drains) = await self._read(
            [op_range(*self.keys.dir(k)) for k in ("hosts", "counts", "drain")])
        return sorted(self._hosts(hosts, counts, drains), key=lambda h: h.host_id)

    async def lookup(self, user: str) -> SessionPlacement | None:
        """USER's session (live or lost), or None."""
        snap = await self._snapshot(check_user(user))
        return self._placement(snap.session, snap.hosts) if snap.session else None

    async def sessions(self) -> list[SessionPlacement]:
        """Every session with its host and state, by user."""
        _, (sessions, hosts) = await self._read([op_range(*self.keys.dir("sessions")),
                                                 op_range(*self.keys.dir("hosts"))])  # fmt: skip
        live = self._hosts(hosts, RangeResult(0, (), 0, False), RangeResult(0, (), 0, False))
        found = [self._placement(kv, live) for kv in sessions.kvs]
        return sorted((p for p in found if p is not None), key=lambda p: p.user)

    # -- claims ---------------------------------------------------------------------------
    def _refuse_if_detached(self) -> None:
        if not self.can_place():
            raise FarmUnavailable(f"host {self.host_id} has lost contact with the farm directory (etcd); it "
                                  "refuses new sessions until it is back, so that no user gets two sessions")

    async def place(self, user: str, session_id: str) -> Claim:
        """USER's live session, or a new claim of SESSION_ID on the best host (see FarmDirectory.place)."""
        check_user(user)
        for attempt in range(MAX_CLAIM_ATTEMPTS):
            self._refuse_if_detached()
            snap = await self._snapshot(user)
            current = self._placement(snap.session, snap.hosts) if snap.session else None
            if current is not None and current.state == "live":
                return Claim(current, existing=current.session_id != session_id)
            if current is not None and any(h.host_id == current.host_id and h.adopting for h in snap.hosts):
                raise FarmConflict(f"host {current.host_id} restarted and is taking back its sessions; "
                                   "try again in a few seconds")  # fmt: skip
            choice = placement.choose(user, snap.hosts)
            if choice is None:
                raise FarmFull("no farm host can take a new session now (all full, draining or down)")
            won = await self._try_claim(user, session_id, choice.host, snap, current)
            if won is not None:
                return won
            await task.deferLater(self.clock, random.uniform(0, CLAIM_BACKOFF_SECONDS * (attempt + 1)), lambda: None)
        raise FarmConflict(f"could not claim a session for {user} after {MAX_CLAIM_ATTEMPTS} attempts; try again")

    async def _try_claim(self, user: str, session_id: str, host: HostInfo, snap: _Snapshot,
                         old: SessionPlacement | None) -> Claim | None:  # fmt: skip
        old_kv = snap.session
        count_revision = snap.count_revisions.get(host.host_id, 0)
        own_lease = self.keeper.lease
        if own_lease == 0:  # lost while we were reading (a LEASE compare with 0 would match a missing key)
            self._refuse_if_detached()
        new = SessionPlacement(user=user, session_id=session_id, host_id=host.host_id, advertise=host.advertise,
                               lease=host.lease, claimed=self.clock.seconds(), state="live")  # fmt: skip
        key = self.keys.session(user)
        compares = [Compare(self.keys.host(host.host_id), "LEASE", "EQUAL", host.lease),
                    Compare(self.keys.drain(host.host_id), "VERSION", "EQUAL", 0),
                    Compare(self.keys.host(self.host_id), "LEASE", "EQUAL", own_lease),
                    Compare(self.keys.host(self.host_id), "VERSION", "GREATER", 0),
                    Compare(self.keys.count(host.host_id), "MOD", "EQUAL", count_revision)]  # fmt: skip
        success = [op_put(key, session_record(new)), op_put(self.keys.count(host.host_id), b"%d" % (host.placed + 1))]
        if old_kv is None:
            compares.append(Compare(key, "VERSION", "EQUAL", 0))
        else:
            if old is None:  # a corrupt record: replace it only if unchanged
                compares.append(Compare(key, "MOD", "EQUAL", old_kv.mod_revision))
            else:
                # The old host's record must be exactly as read (gone, or re-registered and done
                # adopting): a host that re-registers meanwhile gets to adopt first.
                compares += [Compare(key, "MOD", "EQUAL", old_kv.mod_revision),
                             Compare(self.keys.host(old.host_id), "LEASE", "NOT_EQUAL", old.lease),
                             Compare(self.keys.host(old.host_id), "MOD", "EQUAL",
                                     snap.host_revisions.get(old.host_id, 0))]  # fmt: skip
                success.append(op_put(self.keys.lost(user), session_record(old)))
        try:
            result = await self.client.txn(compares, success)
        except EtcdError as exc:
            raise FarmUnavailable(f"the farm directory (etcd) cannot be reached: {exc}") from exc
        if result.succeeded:
            return Claim(new, existing=False, replaced_lost=old)
        return None

    async def _count_revision(self, host_id: str) -> tuple[int, int]:
        kv = await self._get(self.keys.count(host_id))
        return (kv.mod_revision, parse_count(kv)) if kv is not None else (0, 0)

    async def _get(self, key: bytes) -> KeyValue | None:
        _, (result,) = await self._read([op_range(key)])
        return result.kvs[0] if result.kvs else None

    async def release(self, user: str, session_id: str, revision: int = 0) -> bool:
        """Free USER's session key and its host's slot (if the record still names SESSION_ID and,
        with REVISION, was not rewritten since that revision: see abandoned.py)."""
        key = self.keys.session(check_user(user))
        for _ in range(MAX_CLAIM_ATTEMPTS):
            snap = await self._snapshot(user)
            current = self._placement(snap.session, snap.hosts) if snap.session else None
            if snap.session is None or current is None or current.session_id != session_id:
                return False
            if revision and snap.session.mod_revision != revision:
                return False
            compares = [Compare(key, "MOD", "EQUAL", snap.session.mod_revision)]
            ops = [op_delete(key)]
            if current.state == "live":
                count_rev = snap.count_revisions.get(current.host_id, 0)
                count = next(h.placed for h in snap.hosts if h.host_id == current.host_id)
                compares.append(Compare(self.keys.count(current.host_id), "MOD", "EQUAL", count_rev))
                compares.append(Compare(self.keys.host(current.host_id), "LEASE", "EQUAL", current.lease))
                ops.append(op_put(self.keys.count(current.host_id), b"%d" % max(0, count - 1)))
            if (await self._txn(compares, ops)).succeeded:
                return True
        raise FarmConflict(f"could not release the session of {user}; try again")

    async def adopt(self, user: str, session_id: str) -> bool:
        """Re-attach USER's session SESSION_ID to this host's current lease (after re-registering)."""
        key = self.keys.session(check_user(user))
        for _ in range(MAX_CLAIM_ATTEMPTS):
            kv = await self._get(key)
            lease = self.keeper.lease
            if kv is None or lease == 0:
                return False
            old = parse_session(kv, {})
            if old.host_id != self.host_id or old.session_id != session_id:
                return False
            if old.lease == lease:
                return True
            count_rev, count = await self._count_revision(self.host_id)
            new = SessionPlacement(user, session_id, self.host_id, self.advertise, lease, old.claimed, "live")
            compares = [Compare(key, "MOD", "EQUAL", kv.mod_revision),
                        Compare(self.keys.host(self.host_id), "LEASE", "EQUAL", lease),
                        Compare(self.keys.count(self.host_id), "MOD", "EQUAL", count_rev)]  # fmt: skip
            ops = [op_put(key, session_record(new)), op_put(self.keys.count(self.host_id), b"%d" % (count + 1))]
            if (await self._txn(compares, ops)).succeeded:
                return True
        raise FarmConflict(f"could not adopt the session of {user}; try again")

    async def _txn(self, compares: list[Compare], ops: list[dict[str, Any]]) -> Any:
        try:
            return await self.client.txn(compares, ops)
        except EtcdError as exc:
            raise FarmUnavailable(f"the farm directory (etcd) cannot be reached: {exc}") from exc

    # -- admin ----------------------------------------------------------------------------
    async def drain(self, host_id: str, draining: bool = True) -> None:
        """Stop (or resume) new placements on HOST_ID."""
        key = self.keys.drain(check_host_id(host_id))
        if draining:
            await self._txn([], [op_put(key, b'{"since":%.3f}' % self.clock.seconds())])
        else:
            await self._txn([], [op_delete(key)])

    async def wait_drained(self, host_id: str) -> None:
        """Fires once counts/HOST_ID is 0 (watched, not polled; re-watched if the stream breaks)."""
        key = self.keys.count(check_host_id(host_id))
        while True:
            _, (result,) = await self._read([op_range(key)])
            if not result.kvs or parse_count(result.kvs[0]) == 0:
                return
            emptied: defer.Deferred[None] = defer.Deferred()

            def seen(_revision: int, events: list[Any], emptied: defer.Deferred[None] = emptied) -> None:
                if not emptied.called and any(e.kind == "DELETE" or parse_count(e.kv) == 0 for e in events):
                    emptied.callback(None)

            def ended(_result: object, emptied: defer.Deferred[None] = emptied) -> None:
                if not emptied.called:  # the stream broke: re-read and re-watch
                    emptied.callback(None)

            watch = self.client.watch(key, None, seen, start_revision=result.revision + 1)
            watch.done.addBoth(ended)
            try:
                await emptied
            finally:
                watch.cancel()

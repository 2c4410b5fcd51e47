# A host's membership in the farm is one etcd lease. This module keeps it
# alive and knows, from the host's own clock, until when the lease is
# certainly still alive: the last keepalive that succeeded was *sent* at T,
# so etcd holds the lease at least until T + TTL. Past that point (minus a
# margin for clock rate differences) this host may already be gone from the
# farm and another host may have taken its users, so the directory refuses
# new placements. That is the "a host that loses etcd refuses placements
# rather than risk a duplicate" rule, enforced locally even while etcd is
# unreachable, and again by etcd itself in every claim transaction.
"""LeaseKeeper (lease liveness of this host) and the host's local load."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, task
from twisted.logger import Logger

from sessiond.farm.directory import HostLoad
from sessiond.farm.etcd_codec import EtcdError, EtcdLeaseNotFound
from sessiond.farm.records import MIN_LEASE_TTL

if TYPE_CHECKING:  # the client itself (an HTTP stack) loads only with [farm] etcd (service.py)
    from sessiond.farm.etcd_client import EtcdClient

# Lease TTL in seconds when [farm] lease_ttl is not set: a dead host's users
# wait at most this long (plus the keepalive period) before their sessions
# show as lost and they can get new ones.
DEFAULT_LEASE_TTL = 10
# Keepalives per TTL: 3 means two may be lost before the lease is at risk.
KEEPALIVES_PER_TTL = 3
# Fraction of the TTL kept as a margin before the end of certain liveness.
LIVENESS_MARGIN = 0.2
# Seconds between load publications ("a few times a minute").
LOAD_REFRESH_SECONDS = 15.0

log = Logger()


class LeaseKeeper:
    """Grants this host's lease, renews it every TTL/3, and reports whether it is certainly alive."""

    def __init__(self, client: EtcdClient, ttl: int, clock: Any,
                 on_expired: Callable[[], Awaitable[None]]) -> None:  # fmt: skip
        if ttl < MIN_LEASE_TTL:
            raise ValueError(f"farm lease TTL {ttl}s is below the minimum of {MIN_LEASE_TTL}s")
        self.client = client
        self.ttl = ttl
        self.clock = clock
        self.on_expired = on_expired
        self.lease = 0
        self.alive_until = 0.0  # host clock; before it the lease is certainly alive
        self.lost = False  # the lease expired and has not been replaced yet
        self._loop: task.LoopingCall | None = None

    async def grant(self) -> int:
        """A fresh lease (the previous one, if any, is forgotten, not revoked)."""
        sent = self.clock.seconds()
        self.lease, granted = await self.client.grant(self.ttl)
        self.alive_until = sent + granted * (1 - LIVENESS_MARGIN)
        return self.lease

    def alive(self) -> bool:
        """True while the lease is certainly held (a keepalive succeeded recently enough)."""
        return self.lease != 0 and self.clock.seconds() < self.alive_until

    def start(self) -> None:
        """Renew the lease every TTL/KEEPALIVES_PER_TTL seconds until stop()."""
        if self._loop is None:
            self._loop = task.LoopingCall(lambda: defer.Deferred.fromCoroutine(self.renew()))
            self._loop.clock = self.clock
            self._loop.start(self.ttl / KEEPALIVES_PER_TTL, now=False).addErrback(
                lambda f: log.failure("farm lease keepalive loop stopped", f))

    def stop(self) -> None:
        """Stop renewing (the lease then expires on its own unless revoked)."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def mark_lost(self) -> None:
        """The lease is gone (etcd said so): not alive; the next tick re-registers."""
        if self.lease:
            log.warn("farm lease {lease:x} expired; this host re-registers", lease=self.lease)
        self.lease = 0
        self.alive_until = 0.0
        self.lost = True

    async def renew(self) -> None:
        """One keepalive; a lost lease is replaced through on_expired, retried every tick until it works."""
        if self.lease == 0:
            if self.lost:
                await self._recover()
            return
        sent = self.clock.seconds()
        try:
            ttl = await self.client.keepalive(self.lease)
        except EtcdLeaseNotFound:
            self.mark_lost()
            await self._recover()
            return
        except EtcdError as exc:
            log.warn("farm lease keepalive failed: {error}", error=str(exc))
            return
        self.alive_until = max(self.alive_until, sent + ttl * (1 - LIVENESS_MARGIN))

    async def _recover(self) -> None:
        try:
            await self.on_expired()
        except Exception:  # noqa: BLE001 - whatever fails, the keepalive loop must go on
            log.failure("farm: re-registration failed; retried at the next keepalive")
        if self.lease != 0:
            self.lost = False

    async def revoke(self) -> None:
        """Revoke the lease now (a clean leave); errors are logged, the lease then simply expires."""
        lease, self.lease, self.alive_until = self.lease, 0, 0.0
        if lease:
            try:
                await self.client.revoke(lease)
            except EtcdError as exc:
                log.warn("farm lease revoke failed ({error}); it expires within its TTL", error=str(exc))


def read_mem_available(path: str = "/proc/meminfo") -> int:
    """MemAvailable in bytes (0 if the kernel does not say)."""
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def local_load(sessions: int, capacity: int) -> HostLoad:
    """This machine's load now: SESSIONS running, free memory, load average per CPU, CAPACITY."""
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        load1 = 0.0
    return HostLoad(sessions=sessions, mem_available=read_mem_available(),
                    cpu_load=round(load1 / (os.cpu_count() or 1), 3), capacity=capacity)  # fmt: skip

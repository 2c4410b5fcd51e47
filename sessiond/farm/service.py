# Wires the farm directory into the daemon: [farm] with etcd endpoints builds
# an EtcdDirectory, otherwise the single-host LocalDirectory over the SQLite
# registry, so the supervisor, gateway and admin always hold one
# FarmDirectory. The directory starts only after the supervisor has
# re-adopted its sessions (a re-registering host adopts them in etcd before
# anyone may replace them), and stopping revokes the lease so the host
# vanishes from the farm at once instead of after its TTL.
"""build_directory() and DirectoryService."""

from __future__ import annotations

import socket
from typing import Any, Callable

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from sessiond.config_sections import FarmSection
from sessiond.farm.directory import FarmDirectory, HostLoad
from sessiond.farm.hosts import local_load
from sessiond.registry import Registry

log = Logger()

# Seconds between attempts to join the farm while etcd cannot be reached at startup.
START_RETRY_SECONDS = 5.0


def build_directory(farm: FarmSection, reactor: Any, registry: Registry, sessions: Callable[[], int],
                    fingerprint: str, on_registered: Callable[[], Any] | None = None,
                    busy_users: Callable[[], set[str]] | None = None) -> FarmDirectory:  # fmt: skip
    """The directory [farm] asks for: etcd with endpoints, else this host's registry alone.

    BUSY_USERS: users with a session running or starting on this host (for the
    sweep that releases claims whose redirected client never came, abandoned.py).
    """

    def load() -> HostLoad:
        return local_load(sessions(), farm.capacity)

    if not farm.enabled:
        from sessiond.farm.local import LocalDirectory

        return LocalDirectory(registry, host_id=socket.gethostname(), advertise="", clock=reactor,
                              load_source=lambda: local_load(sessions(), 0))  # fmt: skip
    from sessiond.farm.etcd_client import EtcdClient, EtcdSettings
    from sessiond.farm.etcd_directory import EtcdDirectory
    from sessiond.farm.etcd_http import EtcdTLS
    from sessiond.farm.records import FarmKeys

    tls = EtcdTLS(farm.etcd_ca, farm.etcd_cert, farm.etcd_key) if farm.etcd_ca else None
    client = EtcdClient.connect(reactor, EtcdSettings(farm.etcd, tls))
    directory = EtcdDirectory(client, host_id=farm.host_id, advertise=farm.advertise, clock=reactor,
                              load_source=load, lease_ttl=farm.lease_ttl, keys=FarmKeys(farm.prefix),
                              on_registered=on_registered, fingerprint=fingerprint,
                              ticket_ttl=farm.ticket_ttl)  # fmt: skip
    if busy_users is not None:
        from sessiond.farm.abandoned import AbandonedClaims

        directory.abandoned = AbandonedClaims(directory, busy_users, float(farm.ticket_ttl))
    return directory


class DirectoryService(service.Service):
    """Starts the directory once READY has fired (the supervisor's adopt_all); stop revokes the lease.

    Until a start succeeds the host refuses new placements (can_place() is
    False) and keeps its sessions, as after a lost lease; a failed start is
    logged and tried again every START_RETRY_SECONDS.
    """

    def __init__(self, directory: FarmDirectory, ready: Callable[[], defer.Deferred[Any]], clock: Any) -> None:
        self.directory = directory
        self.ready = ready
        self.clock = clock
        self.started: defer.Deferred[None] | None = None
        self._retry: Any = None

    def startService(self) -> None:  # noqa: N802 - Twisted name
        super().startService()
        d = self.ready()
        d.addCallback(lambda _: defer.Deferred.fromCoroutine(self._join()))
        self.started = d

    async def _join(self) -> None:
        while self.running:
            try:
                await self.directory.start()
                return
            except Exception as exc:  # noqa: BLE001 - etcd down at startup: keep serving, try again
                log.warn("farm: this host could not join the farm ({why}); retrying in {s}s", why=str(exc),
                         s=START_RETRY_SECONDS)  # fmt: skip
            self._retry = task.deferLater(self.clock, START_RETRY_SECONDS, lambda: None)
            try:
                await self._retry
            except defer.CancelledError:
                return

    def stopService(self) -> Any:  # noqa: N802 - Twisted name
        super().stopService()
        if self._retry is not None and not self._retry.called:
            self._retry.cancel()

        async def stop() -> None:
            try:
                await self.directory.stop()
            except Exception:  # noqa: BLE001 - the lease then expires by its TTL instead
                log.failure("farm: could not revoke this host's lease")

        return defer.Deferred.fromCoroutine(stop())

# Builds sessiond's service tree from a Config in one place, with explicit
# injection points for tests (reactor, authenticator): a MultiService holding
# the session supervisor and the TLS listener. Its listeners are ListenService
# rather than twisted.application.internet's, whose module also builds the
# reconnecting-client state machines (automat; about 1 MiB of the daemon),
# and its HTTP site is built with the first HTTP connection (SiteOnFirstUse).
"""The sessiond service tree."""

from __future__ import annotations

import os
import socket
from typing import Any, Callable

from twisted.application import service
from twisted.internet import defer, protocol
from twisted.logger import Logger

from apps.catalog import Catalog
from apps.reload import CatalogReloader
from sessiond.admin import AdminOps, ControlFactory, ensure_admin_token, web_root
from sessiond.auth import PamAuthenticator
from sessiond.config import Config
from sessiond.farm.service import DirectoryService, build_directory
from sessiond.gateway import GatewayFactory
from sessiond.metrics import Metrics
from sessiond.policy import PolicyService
from sessiond.portmux import MuxFactory
from sessiond.early_listen import LISTEN_BACKLOG, adopt_tls
from sessiond.preauth import PreauthTracker, limits_from_config
from sessiond.registry import Registry
from sessiond.supervisor import SessionSupervisor
from sessiond.tls import certificate_fingerprint, ensure_host_certificate_forked, server_context_factory
from sessiond.web import install_web_client

log = Logger()

# Seconds from the start to the check of libX11's compose cache (sessiond/compose_cache.py): its
# import and check (~10 ms of CPU) and a build stay off the start and its first logins.
COMPOSE_CACHE_DELAY_SECONDS = 2.0


class ListenService(service.Service):
    """Listens while running: LISTEN() returns the port at start; stopping stops listening."""

    def __init__(self, listen: Callable[[], Any]) -> None:
        self._listen = listen
        self._port: Any = None

    def startService(self) -> None:  # noqa: N802 - Twisted name
        super().startService()
        if self._port is None:
            self._port = self._listen()  # CannotListenError reaches the caller (sessiond/cli.py)

    def stopService(self) -> Any:  # noqa: N802 - Twisted name
        super().stopService()
        port, self._port = self._port, None
        return None if port is None else port.stopListening()


class SiteOnFirstUse(protocol.Factory):
    """The TLS port's HTTP side, built (sessiond/admin_site.py, twisted.web.server) with the
    first HTTP connection; RESOURCES is its root resource and TOKEN the admin token."""

    def __init__(self, resources: Any, token: str) -> None:
        self.resources = resources
        self.token = token
        self.site: protocol.Factory | None = None

    def buildProtocol(self, addr: Any) -> Any:  # noqa: N802 - Twisted name
        if self.site is None:
            from sessiond.admin_site import GuardedSite

            self.site = GuardedSite(self.resources, self.token)
        return self.site.buildProtocol(addr)


class SupervisorService(service.Service):
    """Re-adopts live sessions at start; on stop keeps or ends them ([server] on_stop)."""

    def __init__(self, supervisor: SessionSupervisor) -> None:
        self.supervisor = supervisor
        self._adopted: defer.Deferred[Any] | None = None
        self._compose: Any = None  # IDelayedCall of the compose cache's check

    def startService(self) -> None:  # noqa: N802 - Twisted name
        super().startService()
        self._adopted = self.supervisor.adopt_all()
        self.supervisor.warm_pool.start()
        # Off the start's path (its CPU and the first logins'): libX11's compose cache, made if missing.
        self._compose = self.supervisor.reactor.callLater(COMPOSE_CACHE_DELAY_SECONDS,
                                                          self.supervisor.refresh_compose_cache)  # fmt: skip

    def adopted(self) -> defer.Deferred[None]:
        """Fires (never fails) once the sessions a previous sessiond left are re-adopted."""
        d: defer.Deferred[None] = defer.Deferred()
        if self._adopted is None:
            d.callback(None)
            return d

        def fire(result: Any) -> Any:
            d.callback(None)
            return result

        self._adopted.addBoth(fire)
        return d

    def stopService(self) -> Any:  # noqa: N802 - Twisted name
        super().stopService()
        if self._compose is not None and self._compose.active():
            self._compose.cancel()
        self.supervisor.warm_pool.stop()
        return self.supervisor.stop_all()


def build_service(config: Config, reactor: Any, authenticator: PamAuthenticator | None = None,
                  listening: socket.socket | None = None) -> tuple[service.MultiService, str]:  # fmt: skip
    """Return (service tree, host certificate fingerprint). LISTENING: the TLS port's socket,
    bound already (sessiond/early_listen.py); the listener adopts it when it first starts."""
    os.makedirs(config.state_dir, mode=0o700, exist_ok=True)
    os.makedirs(config.runtime_dir, mode=0o755, exist_ok=True)
    key_path, cert_path = ensure_host_certificate_forked(config.state_dir)  # before any thread starts
    catalog = Catalog(
        list(config.apps.directories),
        terminal_argv=list(config.apps.terminal),
    )
    registry = Registry(config.state_dir)
    metrics = Metrics()
    root = service.MultiService()
    fingerprint = certificate_fingerprint(cert_path)
    supervisor = SessionSupervisor(config, reactor, registry)
    supervising = SupervisorService(supervisor)
    supervising.setServiceParent(root)
    directory = build_directory(config.farm, reactor, registry, lambda: len(supervisor.sessions), fingerprint,
                                on_registered=supervisor.adopt_farm_sessions,
                                busy_users=supervisor.busy_users)  # fmt: skip
    supervisor.directory = directory
    # After the supervisor in the tree: stopped first, so the lease is revoked before sessions are released.
    DirectoryService(directory, supervising.adopted, reactor).setServiceParent(root)
    PolicyService(supervisor, registry, config.policy, reactor=reactor).setServiceParent(root)
    factory = GatewayFactory(config, supervisor, catalog, reactor, authenticator, metrics)
    CatalogReloader(catalog, list(config.apps.directories), interval=config.apps.reload_interval, clock=reactor,
                    on_reload=[factory.publisher.icons.clear, factory.app_notices.catalog_reloaded]  # (app_notices.py)
                    ).setServiceParent(root)  # fmt: skip
    ops = AdminOps(supervisor, registry, metrics)
    token = ensure_admin_token(config.admin.token_file)
    web = web_root(ops, token)
    install_web_client(web, factory, cert_path)  # /web/ and the /ws WebSocket (sessiond/web.py)
    site = SiteOnFirstUse(web, token)  # bodies judged from the headers first (sessiond/admin_site.py)
    host, port = config.listen
    mux = MuxFactory(factory, site, PreauthTracker(reactor, limits_from_config(config)))
    context = server_context_factory(key_path, cert_path)
    bound = [listening] if listening is not None else []

    def listen_tls() -> Any:
        if bound:  # the socket bound before the imports; a restarted listener binds anew
            return adopt_tls(reactor, bound.pop(), mux, context)
        return reactor.listenSSL(port, mux, context, backlog=LISTEN_BACKLOG, interface=host)

    listener = ListenService(listen_tls)
    listener.setServiceParent(root)
    control_path = config.admin.socket
    ListenService(lambda: reactor.listenUNIX(control_path, ControlFactory(ops), mode=0o600, wantPID=True)
                  ).setServiceParent(root)  # fmt: skip
    root.supervisor = supervisor  # type: ignore[attr-defined]
    root.listener = listener  # type: ignore[attr-defined]
    root.directory = directory  # type: ignore[attr-defined]
    return root, fingerprint

# Builds sessiond's service tree from a Config in one place, with explicit
# injection points for tests (reactor, authenticator): a MultiService holding
# the session supervisor and the TLS listener.
"""The sessiond service tree."""

from __future__ import annotations

import os
from typing import Any

from twisted.application import internet, service
from twisted.logger import Logger

from apps.catalog import Catalog
from sessiond.auth import PamAuthenticator
from sessiond.config import Config
from sessiond.gateway import GatewayFactory
from sessiond.sessions import SessionSupervisor
from sessiond.tls import certificate_fingerprint, ensure_host_certificate, server_context_factory

log = Logger()


class SupervisorService(service.Service):
    """Ends every session when sessiond stops."""

    def __init__(self, supervisor: SessionSupervisor) -> None:
        self.supervisor = supervisor

    def stopService(self) -> Any:  # noqa: N802 - Twisted name
        super().stopService()
        return self.supervisor.stop_all()


def build_service(config: Config, reactor: Any, authenticator: PamAuthenticator | None = None
                  ) -> tuple[service.MultiService, str]:  # fmt: skip
    """Return (service tree, host certificate fingerprint)."""
    os.makedirs(config.state_dir, mode=0o700, exist_ok=True)
    os.makedirs(config.runtime_dir, mode=0o755, exist_ok=True)
    key_path, cert_path = ensure_host_certificate(config.state_dir)
    catalog = Catalog(
        list(config.get("apps", "directories")),  # type: ignore[call-overload]
        terminal_argv=list(config.get("apps", "terminal")),  # type: ignore[call-overload]
    )
    root = service.MultiService()
    supervisor = SessionSupervisor(config, reactor)
    SupervisorService(supervisor).setServiceParent(root)
    factory = GatewayFactory(config, supervisor, catalog, reactor, authenticator)
    host, port = config.listen
    listener = internet.SSLServer(port, factory, server_context_factory(key_path, cert_path), interface=host)
    listener.setServiceParent(root)
    root.supervisor = supervisor  # type: ignore[attr-defined]
    root.listener = listener  # type: ignore[attr-defined]
    return root, certificate_fingerprint(cert_path)

# An in-memory session for relay tests: a real Session, a real gateway
# ClientHandler and a real AgentLink, each on a StringTransport, with the
# remote ends played by protocol.Connection objects (a "client" and an
# "agent"). pump() moves bytes until nothing is left to move. No processes,
# no sockets, no reactor: time is a task.Clock.
"""Wired: ClientHandler <-> Session/ChannelRelay <-> AgentLink, with Connection peers."""

from __future__ import annotations

import types
from typing import Any, Callable

from twisted.internet import task
from twisted.internet.testing import StringTransport

from apps.catalog import Catalog
from apps.entitlements import Principal
from apps.publisher import AppPublisher
from isolation.accounts import Account
from protocol.connection import Connection, Role
from protocol.events import Event
from protocol.messages import AuthResult, ChannelKind
from sessiond.agent_link import AgentLink
from sessiond.app_notices import AppNotices
from sessiond.config import load_config
from sessiond.gateway import ClientHandler
from sessiond.lifecycle import SessionState
from sessiond.metrics import Metrics
from sessiond.registry import Registry
from sessiond.sessions import Session
from sessiond.usb_rules import UsbPolicy


class Host:
    """The SessionHost a Session needs (config, registry, USB policy)."""

    def __init__(self, state_dir: str) -> None:
        self.config = load_config(None, {"server": {"state_dir": state_dir}})
        self.registry = Registry(state_dir)
        self.ended: list[Session] = []

    def usb_policy(self) -> UsbPolicy:
        return UsbPolicy()

    def usb_watch(self) -> None:
        pass

    def session_ended(self, session: Session) -> None:
        self.ended.append(session)

    def warm_slot(self, screen: object) -> None:
        return None


class Wired:
    """A ready session with an attached client; client/agent are the remote Connections."""

    def __init__(self, state_dir: str, client_relay: Callable[[ChannelKind, int], bool] | None = None,
                 agent_relay: Callable[[ChannelKind, int], bool] | None = None, capabilities: tuple[str, ...] = (),
                 apps: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.clock = task.Clock()
        host = Host(state_dir)
        self.session = Session(host, Account("alice", 1000, 1000, (1000,), "/home/alice", "/bin/sh"))
        host.registry.add_session(id=self.session.id, user="alice", uid=1000, socket="x", session_dir="",
                                  link_token="t", width=64, height=64)  # fmt: skip
        self.session.reactor = self.clock
        self.client_events: list[Event] = []
        self.agent_events: list[Event] = []
        # The agent's end of the link.
        self.agent = Connection(Role.SERVER, relay=agent_relay, channel_errors=True)  # as the real agent link
        self.link = AgentLink(self.session, credentials=lambda _transport: self.session.uid)
        self.link_transport = StringTransport()
        self.link.makeConnection(self.link_transport)
        self._to_agent()
        self.agent.hello(capabilities=(), software="fake agent")
        self.agent.send(0, AuthResult(ok=True))
        self._to_link()
        # The client's end of its TLS connection.
        # The catalog of the .desktop directories APPS, everything entitled to everyone.
        self.catalog = Catalog(list(apps))
        publisher = AppPublisher(self.catalog, principal_of=lambda user: Principal(user, frozenset()))
        self.app_notices = AppNotices(publisher, self.clock)
        factory = types.SimpleNamespace(config=host.config, reactor=self.clock, registry=host.registry,
                                        metrics=Metrics(), publisher=publisher,
                                        app_notices=self.app_notices)  # fmt: skip
        self.handler = ClientHandler(factory)  # type: ignore[arg-type]
        self.client_transport = StringTransport()
        self.handler.makeConnection(self.client_transport)
        self.client = Connection(Role.CLIENT, relay=client_relay)
        self.client.hello(capabilities=capabilities, software="fake client")
        self._to_handler()
        self.handler.conn.send(0, AuthResult(ok=True, user="alice", session=self.session.id))
        self.handler.flush()
        self.handler.user = "alice"
        self.handler.session = self.session
        self.session.attach(self.handler, "127.0.0.1")
        self.pump()

    # -- byte movers ---------------------------------------------------------------
    def _to_agent(self) -> bool:
        data = self.link_transport.value()
        self.link_transport.clear()
        self.agent_events += self.agent.receive_data(data)
        return bool(data)

    def _to_link(self) -> bool:
        data = self.agent.data_to_send()
        if data:
            self.link.dataReceived(data)
        return bool(data)

    def _to_client(self) -> bool:
        data = self.client_transport.value()
        self.client_transport.clear()
        self.client_events += self.client.receive_data(data)
        return bool(data)

    def _to_handler(self) -> bool:
        data = self.client.data_to_send()
        if data:
            self.handler.dataReceived(data)
        return bool(data)

    def pump(self) -> None:
        """Move bytes every way until all four ends are quiet."""
        for _ in range(1000):
            moved = [self._to_agent(), self._to_link(), self._to_client(), self._to_handler()]
            if not any(moved):
                return
        raise AssertionError("the ends never went quiet")

    def open(self, channel: int, kind: ChannelKind) -> None:
        """The client opens CHANNEL; the session opens it on the link; both answer."""
        self.client.open_channel(channel, kind)
        self.pump()

    # -- what a user would observe -----------------------------------------------------
    def session_alive(self) -> bool:
        """The session is up, its link connected, the agent's end not closed."""
        return (self.session.state in (SessionState.ACTIVE, SessionState.DISCONNECTED)
                and self.session.link is self.link and not self.link_transport.disconnecting
                and not self.agent.closed)  # fmt: skip

    def client_alive(self) -> bool:
        return not self.client.closed and not self.client_transport.disconnecting


def events_of(events: list[Any], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]

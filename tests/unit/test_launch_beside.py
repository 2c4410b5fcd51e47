# Issue 17: launching beside the connection that holds a session. A second
# connection of the user (the web page in an xpra session, svclient launch)
# logs in through the real ClientHandler, Session and AgentLink of
# relay_harness: it must not take the session from the attached client, must
# get no channel, may launch (the publisher decides), and is told whether a
# client is attached, when that changes and when its apps exit. Its login is
# not audited as a connect. The number of launchers per session is bounded.
"""Launchers beside a session's connection: decision, messages, audit, bound."""

from __future__ import annotations

import types
from typing import Any

import pytest
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from apps.publisher import NotEntitled
from protocol.connection import Connection, MessageReceived, Role
from protocol.errors import ReasonCode
from protocol.events import ChannelClosed
from protocol.messages import AppExited, AuthResult, ChannelKind, Launch, LaunchResult, SessionAttached, SpawnApp
from protocol.xpra import LAUNCH_BESIDE, LAUNCH_BESIDE_XPRA
from relay_harness import Wired, events_of
from sessiond.gateway import ClientHandler
from sessiond.launching import MAX_LAUNCHERS, Launchers, LaunchersFull, beside_login


class Publisher:
    """Publishes xcalc only."""

    def plan_launch(self, user: str, app: str, args: tuple[str, ...]) -> Any:
        if app != "xcalc":
            raise NotEntitled(user, app)
        return types.SimpleNamespace(argv=("xcalc",), cwd="")


class SecondLogin:
    """Another connection of the session's user, logged in through the real gateway code."""

    def __init__(self, wired: Wired, capabilities: tuple[str, ...]) -> None:
        self.wired = wired
        wired.handler.factory.publisher = Publisher()
        self.handler = ClientHandler(wired.handler.factory)
        self.transport = StringTransport()
        self.handler.makeConnection(self.transport)
        self.client = Connection(Role.CLIENT)
        self.client.hello(capabilities=capabilities, software="second")
        self.events: list[Any] = []
        self.pump()
        self.handler.user = "alice"
        self.handler._session_ready(wired.session)
        self.pump()

    def pump(self) -> None:
        for _ in range(100):
            self.wired.pump()
            data = self.client.data_to_send()
            if data:
                self.handler.dataReceived(data)
            down = self.transport.value()
            self.transport.clear()
            self.events += self.client.receive_data(down)
            self.wired.pump()
            if not data and not down:
                return

    def messages(self, cls: type) -> list[Any]:
        return [e.message for e in events_of(self.events, MessageReceived) if isinstance(e.message, cls)]


def audit_events(wired: Wired) -> list[str]:
    return [row["event"] for row in wired.session.registry.audit_entries()]


@pytest.mark.parametrize(("capabilities", "display", "held", "beside"), [
    ((), "xpra", True, False),  # an ordinary client (svclient xpra) takes the session over
    ((LAUNCH_BESIDE_XPRA,), "xpra", False, True),  # the web page in an xpra session: always beside
    ((LAUNCH_BESIDE_XPRA,), "xpra", True, True),
    ((LAUNCH_BESIDE_XPRA,), "native", True, False),  # the web page in a native session: a viewer
    ((LAUNCH_BESIDE,), "native", True, True),  # svclient launch beside a viewer
    ((LAUNCH_BESIDE,), "native", False, False),  # ... or an ordinary login when nothing is attached
    ((LAUNCH_BESIDE,), "xpra", False, True),  # nothing of an xpra display reaches svclient launch
])  # fmt: skip
def test_who_launches_beside(capabilities: tuple[str, ...], display: str, held: bool, beside: bool) -> None:
    assert beside_login(capabilities, display, held) is beside


def test_the_web_page_beside_an_attached_xpra_client(tmp_path: Any) -> None:
    wired = Wired(str(tmp_path))
    wired.session.display = "xpra"
    holder = wired.handler
    page = SecondLogin(wired, (LAUNCH_BESIDE_XPRA,))
    # Logged in, told the display and that a client is attached; the holder keeps the session.
    result = page.messages(AuthResult)[0]
    assert result.ok and result.display == "xpra"
    assert page.messages(SessionAttached) == [SessionAttached(attached=True)]
    assert wired.session.client is holder and wired.client_alive()
    assert "connect" not in audit_events(wired)[-2:] and audit_events(wired).count("connect") == 0
    # No channel for the launcher.
    page.client.open_channel(5, ChannelKind.CLIPBOARD)
    page.pump()
    refused = events_of(page.events, ChannelClosed)
    assert refused and refused[-1].code == ReasonCode.CHANNEL_KIND_UNAVAILABLE
    # A launch reaches the agent and its result comes back to the page; an unpublished app is refused.
    page.client.send(0, Launch(request=1, app="xcalc"))
    page.pump()
    spawn = [e.message for e in events_of(wired.agent_events, MessageReceived) if isinstance(e.message, SpawnApp)]
    assert [s.app for s in spawn] == ["xcalc"]
    wired.agent.send(0, LaunchResult(request=spawn[0].request, ok=True, pid=4242))
    page.pump()
    page.client.send(0, Launch(request=2, app="not-published"))
    page.pump()
    results = page.messages(LaunchResult)
    assert [(r.request, r.ok, r.pid) for r in results[:1]] == [(1, True, 4242)]
    assert results[1].code == ReasonCode.NOT_ENTITLED
    assert audit_events(wired).count("launch") == 1 and "launch_refused" in audit_events(wired)
    # An app exits (not the last: the session goes on): the page hears it too (svclient launch --wait).
    wired.agent.send(0, AppExited(app="xterm", pid=77, status=0))
    page.pump()
    assert page.messages(AppExited) == [AppExited(app="xterm", pid=77, status=0)]
    # The xpra client detaches: the page is told, and keeps working as a launcher.
    holder.connectionLost(Failure(ConnectionDone()))
    page.pump()
    assert page.messages(SessionAttached)[-1] == SessionAttached(attached=False)
    assert wired.session.client is None and not page.client.closed
    # The page leaves: no "disconnect" audited for it.
    before = audit_events(wired).count("disconnect")
    page.handler.connectionLost(Failure(ConnectionDone()))
    assert audit_events(wired).count("disconnect") == before
    assert len(wired.session.launchers) == 0


def test_the_web_page_in_an_xpra_session_without_a_client_never_holds_it(tmp_path: Any) -> None:
    wired = Wired(str(tmp_path))
    wired.session.display = "xpra"
    wired.handler.connectionLost(Failure(ConnectionDone()))
    page = SecondLogin(wired, (LAUNCH_BESIDE_XPRA,))
    assert page.messages(SessionAttached) == [SessionAttached(attached=False)]
    assert wired.session.client is None
    # An xpra client attaches later: the page is told, not taken over.
    third = SecondLogin(wired, ())
    assert wired.session.client is third.handler
    page.pump()
    assert page.messages(SessionAttached)[-1] == SessionAttached(attached=True) and not page.client.closed


def test_in_a_native_session_the_web_page_is_a_viewer_as_before(tmp_path: Any) -> None:
    wired = Wired(str(tmp_path))
    page = SecondLogin(wired, (LAUNCH_BESIDE_XPRA,))
    assert wired.session.client is page.handler  # took the session over
    assert page.messages(AuthResult)[0].display == "native" and page.messages(SessionAttached) == []
    assert not wired.client_alive()


def test_the_session_ending_closes_its_launchers(tmp_path: Any) -> None:
    wired = Wired(str(tmp_path))
    wired.session.display = "xpra"
    page = SecondLogin(wired, (LAUNCH_BESIDE_XPRA,))
    wired.session._end()
    page.pump()
    assert page.client.closed and page.handler.session is None


class Peer:
    def __init__(self) -> None:
        self.told: list[Any] = []
        self.reasons: list[str] = []

    def notify(self, message: Any) -> None:
        self.told.append(message)

    def take_over(self, reason: str) -> None:
        self.reasons.append(reason)


def test_launchers_are_bounded_and_told() -> None:
    launchers = Launchers()
    peers = [Peer() for _ in range(MAX_LAUNCHERS)]
    for peer in peers:
        launchers.add(peer)  # type: ignore[arg-type]
    launchers.add(peers[0])  # type: ignore[arg-type]  # the same one again: no second place
    with pytest.raises(LaunchersFull):
        launchers.add(Peer())  # type: ignore[arg-type]
    launchers.discard(peers[0])  # type: ignore[arg-type]
    launchers.add(Peer())  # type: ignore[arg-type]  # a place came free
    launchers.holder_changed(False)
    assert peers[1].told == [SessionAttached(attached=False)] and peers[0].told == []
    launchers.end("the session ended")
    assert peers[1].reasons == ["the session ended"] and len(launchers) == 0


def test_a_login_beyond_the_launcher_limit_is_refused(tmp_path: Any) -> None:
    wired = Wired(str(tmp_path))
    wired.session.display = "xpra"
    for _ in range(MAX_LAUNCHERS):
        wired.session.launchers.add(Peer())  # type: ignore[arg-type]
    page = SecondLogin(wired, (LAUNCH_BESIDE_XPRA,))
    result = page.messages(AuthResult)[0]
    assert not result.ok and result.code == ReasonCode.LIMIT_EXCEEDED
    assert wired.client_alive() and wired.session.client is wired.handler

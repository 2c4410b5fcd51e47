"""What a login says in its AUTH (client/session_requests.py): the screen goes to a server
that says `auth.screen`, the launch to one that says `auth.launch`; a launch that comes with a
screen goes nowhere from the login when the server cannot take the screen (the caller launches
once it has fitted the session's screen), and behind AUTH_RESULT when neither is said."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.testing import StringTransport

from client.known_hosts import KnownHosts
from client.session import SessionClient
from protocol.connection import Connection, MessageReceived, Role
from protocol.control_session import AUTH_LAUNCH_CAPABILITY, AUTH_SCREEN_CAPABILITY
from protocol.messages import Auth, AuthResult, ChannelKind, Launch, LaunchResult
from protocol.testing import pump

BOTH = (AUTH_LAUNCH_CAPABILITY, AUTH_SCREEN_CAPABILITY)
XTERM = Launch(request=3, app="xterm")


def pre_auth(tmp_path: Any, said: tuple[str, ...]) -> tuple[SessionClient, Connection, StringTransport]:
    """A client past HELLO with a server whose HELLO says SAID, before its AUTH."""
    client = SessionClient("server:4443", KnownHosts(str(tmp_path / "known_hosts")))
    client.conn = Connection(Role.CLIENT)
    server = Connection(Role.SERVER)
    client.conn.hello(["test"], "test client")
    pump(client.conn, server)
    server.hello(list(said), "sessiond")
    pump(server, client.conn)
    transport = StringTransport()
    client.makeConnection(transport)
    return client, server, transport


def written(server: Connection, transport: StringTransport) -> list[Any]:
    events = server.receive_data(transport.value())
    transport.clear()
    return [e.message for e in events if isinstance(e, MessageReceived)]


def logged_in(client: SessionClient, server: Connection) -> None:
    """The server's AUTH_RESULT (ok) reaches the client."""
    server.send(0, AuthResult(True, user="u", session="s-1"))
    for event in client.conn.receive_data(server.data_to_send()):
        client.event_received(event)


def login(client: SessionClient, screen: tuple[int, int] | None) -> defer.Deferred[AuthResult]:
    return defer.ensureDeferred(client.login("u", "p", XTERM, screen))


def test_a_server_that_takes_both_gets_both_in_the_auth(tmp_path: Any) -> None:
    client, server, transport = pre_auth(tmp_path, BOTH)
    done = login(client, (1920, 1050))
    assert written(server, transport) == [Auth("password", user="u", password="p", launch=XTERM, screen=(1920, 1050))]
    logged_in(client, server)
    assert done.called and written(server, transport) == []  # no LAUNCH behind it
    assert client.login_carries_launch()
    answer = defer.ensureDeferred(client.login_launched())
    client.event_received(MessageReceived(0, ChannelKind.CONTROL, LaunchResult(request=3, ok=True, pid=42)))
    assert answer.result.pid == 42


def test_without_auth_screen_the_launch_waits_for_the_caller(tmp_path: Any) -> None:
    client, server, transport = pre_auth(tmp_path, (AUTH_LAUNCH_CAPABILITY,))
    done = login(client, (1920, 1050))
    assert written(server, transport) == [Auth("password", user="u", password="p")]  # neither screen nor launch
    logged_in(client, server)
    assert done.called and written(server, transport) == []  # and no LAUNCH behind AUTH_RESULT either
    assert not client.login_carries_launch()


@pytest.mark.parametrize("said", [(), (AUTH_SCREEN_CAPABILITY,)])
def test_a_launch_without_a_screen_goes_behind_auth_result_where_the_auth_cannot_carry_it(
        tmp_path: Any, said: tuple[str, ...]) -> None:  # fmt: skip
    client, server, transport = pre_auth(tmp_path, said)
    done = login(client, None)
    assert written(server, transport) == [Auth("password", user="u", password="p")]
    logged_in(client, server)
    assert done.called and written(server, transport) == [XTERM]
    assert client.login_carries_launch()


def test_a_screen_alone_goes_to_a_server_that_takes_it(tmp_path: Any) -> None:
    client, server, transport = pre_auth(tmp_path, (AUTH_SCREEN_CAPABILITY,))
    defer.ensureDeferred(client.login("u", "p", None, (800, 600)))
    assert written(server, transport) == [Auth("password", user="u", password="p", screen=(800, 600))]

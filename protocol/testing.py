# In-memory helpers for tests of protocol users: two Connections wired back to
# back, no sockets, no event loop.
#
# Why in the package (like twisted.internet.testing): the daemon, agent and
# client tests all need a peer that speaks the real protocol; one tested
# helper beats a hand-rolled byte stream in every test module.
"""Pair a CLIENT and a SERVER Connection in memory and move bytes between them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from protocol.base import ChannelKind
from protocol.connection import Connection, Role
from protocol.control_session import Auth, AuthResult
from protocol.events import Event


def pump(sender: Connection, receiver: Connection, max_bytes: int | None = None) -> list[Event]:
    """Move what `sender` has to send into `receiver`; return the receiver's events."""
    return receiver.receive_data(sender.data_to_send(max_bytes))


def handshaken_pair(
    *,
    window_for: Callable[[ChannelKind], int] | None = None,
    user: str = "alice",
    session: str = "s-1",
) -> tuple[Connection, Connection]:
    """Return (client, server) after HELLO both ways and a successful password AUTH."""
    client = Connection(Role.CLIENT, window_for=window_for)
    server = Connection(Role.SERVER, window_for=window_for)
    client.hello(["test"], "test client")
    pump(client, server)
    server.hello(["test"], "test server")
    pump(server, client)
    client.send(0, Auth("password", user=user, password="secret"))
    pump(client, server)
    server.send(0, AuthResult(True, user=user, session=session))
    pump(server, client)
    return client, server


def open_pair_channel(client: Connection, server: Connection, channel: int, kind: ChannelKind) -> None:
    """Open `channel` from the client side and complete the exchange."""
    client.open_channel(channel, kind)
    pump(client, server)
    pump(server, client)


class RecordingTransport:
    """An asyncio-style transport that keeps what is written (for the
    asyncio protocols of the agent and client: USB/IP peers, listers)."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        """Record DATA."""
        self.written += data

    def close(self) -> None:
        """Mark the transport closed."""
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        """No extra information (peer credentials, sockets) in memory."""
        return None

    def pause_reading(self) -> None:
        """Flow control is a no-op in memory."""

    def resume_reading(self) -> None:
        """Flow control is a no-op in memory."""

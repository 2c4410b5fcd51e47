# The agent's end of the link to sessiond: an asyncio Protocol driving a
# protocol.Connection over the session's Unix socket. asyncio, not Twisted,
# because this process exists once per session: the DESIGN memory budget
# (<= 50 MiB per idle session) leaves no room for a second reactor stack.
"""LinkProtocol: asyncio adapter between the socket and the agent."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any, Protocol

from protocol.connection import ConnectionClosed, Connection, Role

# sessiond runs as root: the only peer the agent accepts on its link socket.
SESSIOND_UID = 0
# Bytes written per transport.write while draining: lets priorities act.
WRITE_CHUNK = 256 * 1024


def peer_uid(transport: Any) -> int | None:
    """The connecting process's uid from the kernel (SO_PEERCRED), or None."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    return int(struct.unpack("3i", creds)[1])


class LinkOwner(Protocol):
    """What the link needs of the agent (sessiond.agent.main.Agent); a
    Protocol rather than an import, so link and main do not import each other."""

    def log(self, text: str) -> None:
        """Write one line to the agent's log."""
        ...

    def link_connected(self, link: LinkProtocol) -> None:
        """A sessiond link connected."""
        ...

    def link_lost(self, link: LinkProtocol) -> None:
        """A sessiond link went away."""
        ...

    def link_writable(self, link: LinkProtocol) -> None:
        """The link's socket drained: more may be sent."""
        ...

    def handle_event(self, link: LinkProtocol, event: object) -> None:
        """One protocol event from the link (behind the agent's error boundary)."""
        ...


class LinkProtocol(asyncio.Protocol):
    """One connection from sessiond; the agent accepts one at a time."""

    def __init__(self, agent: LinkOwner) -> None:
        self.agent = agent
        # channel_errors: sessiond relays client frames undecoded, so a
        # malformed one is first seen here; it costs its channel, not the link.
        self.conn = Connection(Role.SERVER, channel_errors=True)
        self.transport: asyncio.Transport | None = None
        self._paused = False
        self.authenticated = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        # Only root (sessiond) may drive the agent: the kernel's word for who connected.
        uid = peer_uid(transport)
        if uid != SESSIOND_UID:
            self.agent.log(f"refused a link connection from uid {uid}: only sessiond (uid 0) may connect")
            transport.close()
            self.transport = None
            return
        self.agent.link_connected(self)

    def data_received(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, ConnectionClosed):
                self.agent.log(f"link closed: code {event.code} {event.message}")
                break
            if not self.conn.closed:
                self.agent.handle_event(self, event)
        self.flush()

    def flush(self) -> None:
        if self.transport is None:
            return
        while not self._paused:
            pieces = self.conn.data_to_send_pieces(WRITE_CHUNK)
            if not pieces:
                break
            self.transport.writelines(pieces)
        if self.conn.closed and self.transport is not None:
            self.transport.close()
            self.transport = None

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self.flush()
        self.agent.link_writable(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.agent.link_lost(self)

    def drop(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

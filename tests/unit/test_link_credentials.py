# The agent link is authenticated by the kernel (issue 12 item 8), at both
# ends: sessiond talks only to an agent socket served by the session's own
# uid (a user who swaps their agent.sock for a link to another user's socket
# gets nothing: no token is sent), and the agent accepts only root (sessiond)
# and lets a new connection replace its working link only once it has
# authenticated with the link token.
"""Unit tests: SO_PEERCRED checks and link replacement only after AUTH (fakes)."""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import StringTransport

from protocol.frames import FrameDecoder
from sessiond.agent.link import LinkProtocol
from sessiond.agent_link import AgentLink


class Owner:
    """The minimum of a Session an AgentLink reports to."""

    id = "s-1"
    link_token = "secret-token"
    uid = 1500

    def __init__(self) -> None:
        self.relay = None
        self.lost: list[Any] = []

    def link_lost(self, link: Any) -> None:
        self.lost.append(link)


def test_sessiond_refuses_an_agent_socket_served_by_another_uid() -> None:
    owner = Owner()
    link = AgentLink(owner, credentials=lambda _t: 1501)  # type: ignore[arg-type]
    transport = StringTransport()
    link.makeConnection(transport)
    sent = transport.value()
    assert b"secret-token" not in sent and not FrameDecoder().feed(sent)  # nothing at all, no token
    assert transport.disconnecting


def test_sessiond_speaks_to_the_sessions_own_agent() -> None:
    owner = Owner()
    link = AgentLink(owner, credentials=lambda _t: 1500)  # type: ignore[arg-type]
    transport = StringTransport()
    link.makeConnection(transport)
    assert b"secret-token" in transport.value() and not transport.disconnecting


class FakeSocket:
    def __init__(self, uid: int) -> None:
        self.uid = uid

    def getsockopt(self, level: int, option: int, size: int) -> bytes:
        import struct

        return struct.pack("3i", 4242, self.uid, self.uid)


class FakeAsyncioTransport:
    def __init__(self, uid: int) -> None:
        self.sock = FakeSocket(uid)
        self.closed = False
        self.written = b""

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else None

    def close(self) -> None:
        self.closed = True

    def write(self, data: bytes) -> None:
        self.written += data

    def writelines(self, pieces: list[bytes]) -> None:
        self.written += b"".join(pieces)


class Agent:
    def __init__(self) -> None:
        self.connected: list[Any] = []
        self.lines: list[str] = []

    def log(self, text: str) -> None:
        self.lines.append(text)

    def link_connected(self, link: Any) -> None:
        self.connected.append(link)


def test_the_agent_accepts_only_root_on_its_link_socket() -> None:
    agent = Agent()
    stranger = FakeAsyncioTransport(uid=1500)
    LinkProtocol(agent).connection_made(stranger)  # type: ignore[arg-type]
    assert stranger.closed and agent.connected == []
    assert "only sessiond (uid 0) may connect" in agent.lines[0]
    root = FakeAsyncioTransport(uid=0)
    link = LinkProtocol(agent)  # type: ignore[arg-type]
    link.connection_made(root)
    assert not root.closed and agent.connected == [link]

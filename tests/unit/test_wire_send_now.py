# A keystroke's echo crosses sessiond as one read on the agent link that makes
# the client's connection send: that must leave as ONE TLS record, and it must
# be on the socket when the read's handling returns -- not a reactor turn
# later (Twisted's TLS transport holds small writes for a callLater(0), and a
# socket transport holds every write until epoll says writable). These tests
# use Twisted's real TLS transport over a real socket pair, with a reactor
# that never runs: whatever reaches the peer socket was sent by the read.
"""transport.twisted_wire: flushes at the end of a read, one record, sent at once."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from OpenSSL import SSL
from twisted.internet import abstract, protocol, tcp
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory

from protocol.connection import Connection, MessageReceived, Role
from protocol.messages import Ping, Pong
from sessiond.tls import ensure_host_certificate, server_context_factory
from transport.twisted_wire import FrameProtocol, send_now

TLS_HEADER = 5  # content type, version, length
TLS_APPLICATION_DATA = 23


class ClientEnd(FrameProtocol):
    """sessiond's end of a client connection: answers each PING itself."""

    role = Role.SERVER

    def event_received(self, event: object) -> None:
        if isinstance(event, MessageReceived) and isinstance(event.message, Ping):
            self.conn.send(0, Pong(token=event.message.token))
            self.flush()


class LinkEnd(FrameProtocol):
    """sessiond's end of an agent link, relaying as sessiond.relay does: each
    PING becomes a PONG to the client, flushed per frame."""

    role = Role.CLIENT

    def __init__(self, client: FrameProtocol) -> None:
        super().__init__()
        self.client = client

    def event_received(self, event: object) -> None:
        if isinstance(event, MessageReceived) and isinstance(event.message, Ping):
            self.client.conn.send(0, Pong(token=event.message.token))
            self.client.flush()


class Peer:
    """The remote client: OpenSSL in memory over the other end of the socket pair."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.tls = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
        self.tls.set_connect_state()
        self.conn = Connection(Role.CLIENT)

    def send_pending(self) -> None:
        with_data = True
        while with_data:
            try:
                self.sock.sendall(self.tls.bio_read(65536))
            except SSL.WantReadError:
                with_data = False

    def recv_raw(self) -> bytes:
        chunks = []
        while True:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                return b"".join(chunks)
            chunks.append(chunk)

    def feed(self, raw: bytes) -> list[object]:
        self.tls.bio_write(raw)
        plain = b""
        while True:
            try:
                plain += self.tls.recv(65536)
            except SSL.WantReadError:
                break
        return self.conn.receive_data(plain) if plain else []


def records(raw: bytes) -> list[int]:
    """The content types of the TLS records in RAW."""
    types, at = [], 0
    while at + TLS_HEADER <= len(raw):
        types.append(raw[at])
        at += TLS_HEADER + int.from_bytes(raw[at + 3 : at + 5], "big")
    return types


def pump(peer: Peer, server_tcp: tcp.Connection, clock: MemoryReactorClock) -> None:
    """One round of the handshake both ways, the reactor's part done by hand."""
    try:
        peer.tls.do_handshake()
    except SSL.WantReadError:
        pass
    peer.send_pending()
    try:
        server_tcp.doRead()
    except BlockingIOError:
        pass
    clock.advance(0)
    server_tcp.doWrite()
    raw = peer.recv_raw()
    if raw:
        peer.feed(raw)


@pytest.fixture
def tls_pair(tmp_path: Any) -> Any:
    key, cert = ensure_host_certificate(str(tmp_path))
    clock = MemoryReactorClock()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    client_end = ClientEnd()
    factory = TLSMemoryBIOFactory(server_context_factory(key, cert), False,
                                  protocol.Factory.forProtocol(lambda: client_end), clock=clock)  # fmt: skip
    tls = factory.buildProtocol(None)
    server_tcp = tcp.Connection(ours, tls, clock)
    server_tcp.connected = True
    tls.makeConnection(server_tcp)
    peer = Peer(theirs)
    for _ in range(10):
        pump(peer, server_tcp, clock)
        if peer.tls.get_state_string() == b"SSL negotiation finished successfully" or peer.tls.is_init_finished():
            break
    peer.conn.hello(capabilities=(), software="test")
    peer.tls.send(peer.conn.data_to_send())
    peer.send_pending()
    server_tcp.doRead()
    client_end.conn.hello(capabilities=(), software="test")
    client_end.flush()
    clock.advance(0)
    server_tcp.doWrite()
    peer.feed(peer.recv_raw())
    yield client_end, peer, clock, server_tcp
    ours.close()
    theirs.close()


def test_frames_relayed_in_one_read_leave_in_one_tls_record_before_the_reactor_turns(tls_pair: Any) -> None:
    client_end, peer, clock, _ = tls_pair
    link = LinkEnd(client_end)
    link.makeConnection(StringTransport())
    agent = Connection(Role.SERVER)
    link.conn.hello(capabilities=(), software="sessiond")
    link.flush()
    agent.receive_data(link.transport.value())
    agent.hello(capabilities=(), software="agent")
    for token in range(3):
        agent.send(0, Ping(token=token))
    link.dataReceived(agent.data_to_send())  # one read on the link: three frames for the client
    raw = peer.recv_raw()  # the reactor has not run: whatever is here was sent by the read itself
    assert records(raw) == [TLS_APPLICATION_DATA]
    pongs = [e.message.token for e in peer.feed(raw) if isinstance(getattr(e, "message", None), Pong)]
    assert pongs == [0, 1, 2]
    clock.advance(0)  # the TLS transport's own flush, when it comes, has nothing left to send
    assert peer.recv_raw() == b""


def test_replies_to_the_records_of_one_reactor_turn_still_share_one_record(tls_pair: Any) -> None:
    client_end, peer, clock, server_tcp = tls_pair
    for token in range(2):  # two TLS records in one socket read: two reads for the protocol
        peer.conn.send(0, Ping(token=token))
        peer.tls.send(peer.conn.data_to_send())
    peer.send_pending()
    server_tcp.doRead()
    clock.advance(0)  # the reactor's turn ends: the TLS transport writes what it gathered
    server_tcp.doWrite()
    raw = peer.recv_raw()
    assert records(raw) == [TLS_APPLICATION_DATA]
    pongs = [e.message.token for e in peer.feed(raw) if isinstance(getattr(e, "message", None), Pong)]
    assert pongs == [0, 1]


class StuckSocket(abstract.FileDescriptor):
    """A socket transport whose earlier bytes have not left (the socket is full)."""

    def __init__(self) -> None:
        super().__init__(reactor=MemoryReactorClock())
        self.connected = True
        self.written: list[bytes] = []

    def writeSomeData(self, data: bytes) -> int:  # noqa: N802 - Twisted name
        self.written.append(bytes(data))
        return len(data)


def test_send_now_leaves_a_full_socket_a_closing_one_and_a_paused_producer_to_the_reactor() -> None:
    full, closing, paused, free = StuckSocket(), StuckSocket(), StuckSocket(), StuckSocket()
    full.dataBuffer, full.offset = b"older", 0
    closing.disconnecting = True
    paused.registerProducer(protocol.Protocol(), True)  # type: ignore[arg-type]
    paused.producerPaused = True
    for fd in (full, closing, paused, free):
        fd.write(b"new")
        send_now(fd)
    assert full.written == [] and closing.written == [] and paused.written == []
    assert free.written == [b"new"]

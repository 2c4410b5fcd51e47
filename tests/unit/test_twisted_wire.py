# The Twisted adapter is the outermost error boundary: an exception while
# handling one event never unwinds out of dataReceived into Twisted (which
# would drop the transport without a word); by default it costs only this
# connection, closed with INTERNAL_ERROR, and a subclass may cost less.
"""transport.twisted_wire.FrameProtocol: the per-event error boundary."""

from __future__ import annotations

import socket

from twisted.internet.testing import StringTransport

from protocol.connection import Connection, ConnectionClosed, Role
from protocol.errors import ReasonCode
from transport.twisted_wire import MAX_TRANSPORT_WRAPPERS, FrameProtocol, _no_delay


class Broken(FrameProtocol):
    role = Role.SERVER

    def __init__(self) -> None:
        super().__init__()
        self.failed: list[str] = []

    def event_received(self, event: object) -> None:
        raise RuntimeError("handler bug")


class Forgiving(Broken):
    def event_failed(self, event: object, exc: Exception) -> None:
        self.failed.append(type(exc).__name__)


def hello_bytes() -> bytes:
    client = Connection(Role.CLIENT)
    client.hello(capabilities=(), software="test")
    return client.data_to_send()


def test_a_failing_handler_closes_only_this_connection_with_internal_error() -> None:
    protocol, transport = Broken(), StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(hello_bytes())  # must not raise
    assert transport.disconnecting
    peer = Connection(Role.CLIENT)
    peer.hello(capabilities=(), software="test")
    closed = [e for e in peer.receive_data(transport.value()) if isinstance(e, ConnectionClosed)]
    assert [c.code for c in closed] == [ReasonCode.INTERNAL_ERROR]


def test_a_subclass_may_cost_less_than_the_connection() -> None:
    protocol, transport = Forgiving(), StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(hello_bytes())
    assert protocol.failed == ["RuntimeError"]
    assert not transport.disconnecting and not protocol.conn.closed


def test_a_failing_failure_handler_still_costs_only_the_connection() -> None:
    class Worse(Broken):
        def event_failed(self, event: object, exc: Exception) -> None:
            raise ValueError("and the handler of the failure fails too")

    protocol, transport = Worse(), StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(hello_bytes())
    assert transport.disconnecting


class Recorder(FrameProtocol):
    role = Role.CLIENT

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []
        self.closed_with: list[int] = []

    def event_received(self, event: object) -> None:
        self.seen.append(type(getattr(event, "message", event)).__name__)

    def on_closed(self, event: ConnectionClosed) -> None:
        self.closed_with.append(event.code)


def test_what_the_peer_said_before_its_close_in_the_same_read_is_heard() -> None:
    from protocol.messages import AuthResult

    client, transport = Recorder(), StringTransport()
    client.makeConnection(transport)
    client.conn.hello(capabilities=(), software="test")
    server = Connection(Role.SERVER)
    server.receive_data(client.conn.data_to_send())
    server.hello(capabilities=(), software="test")
    server.send(0, AuthResult(ok=False, code=ReasonCode.AUTH_FAILED, message="the resume token is used"))
    server.close(ReasonCode.AUTH_FAILED, "the resume token is used")
    client.dataReceived(server.data_to_send())  # refusal and CLOSE arrive in one read
    assert client.seen == ["Hello", "AuthResult"]
    assert client.closed_with == [ReasonCode.AUTH_FAILED]


def test_what_follows_a_violation_in_the_same_read_is_dropped() -> None:
    from protocol.frames import encode_frame
    from protocol.messages import Ping

    server, transport = Recorder(), StringTransport()
    server.role = Role.SERVER
    server.conn = Connection(Role.SERVER)
    server.makeConnection(transport)
    ping = encode_frame(0, Ping.TYPE, Ping(token=1).encode())
    server.dataReceived(ping)  # PING before HELLO: a violation
    assert server.seen == [] and server.conn.closed


class Answering(FrameProtocol):
    """Answers every PING with a PONG and flushes after each, as handlers do."""

    role = Role.SERVER

    def event_received(self, event: object) -> None:
        from protocol.connection import MessageReceived
        from protocol.messages import Ping, Pong

        if isinstance(event, MessageReceived) and isinstance(event.message, Ping):
            self.conn.send(0, Pong(token=event.message.token))
            self.flush()


class CountingTransport(StringTransport):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        super().write(data)

    def writeSequence(self, data: list[bytes]) -> None:  # noqa: N802 - Twisted name
        """One call, one TLS record (TLSMemoryBIOProtocol joins the pieces and writes once)."""
        self.writes += 1
        StringTransport.write(self, b"".join(data))


def test_replies_to_one_read_leave_in_one_write_and_a_flush_outside_a_read_is_immediate() -> None:
    from protocol.messages import Ping, Pong

    server, transport = Answering(), CountingTransport()
    server.makeConnection(transport)
    client = Connection(Role.CLIENT)
    client.hello(capabilities=(), software="test")
    server.dataReceived(client.data_to_send())
    server.conn.hello(capabilities=(), software="test")
    server.flush()
    client.receive_data(transport.value())
    transport.clear()
    transport.writes = 0
    for token in range(5):
        client.send(0, Ping(token=token))
    server.dataReceived(client.data_to_send())  # five PINGs in one read
    assert transport.writes == 1  # one TLS record, not five
    events = client.receive_data(transport.value())
    pongs = [e.message.token for e in events if isinstance(getattr(e, "message", None), Pong)]
    assert pongs == list(range(5))
    server.conn.send(0, Pong(token=9))
    server.flush()
    assert transport.writes == 2


# -- TCP_NODELAY under TLS --------------------------------------------------------------------
class FakeTcpSocket:
    """A socket that records its options."""

    def __init__(self, family: int = socket.AF_INET) -> None:
        self.family = family
        self.options: dict[tuple[int, int], int] = {}

    def setsockopt(self, level: int, name: int, value: int) -> None:
        self.options[(level, name)] = value


class FakeTcp:
    """A TCP transport: its handle is the socket."""

    def __init__(self, sock: FakeTcpSocket) -> None:
        self.sock = sock

    def getHandle(self) -> FakeTcpSocket:  # noqa: N802 - Twisted name
        return self.sock


class FakeTls:
    """Twisted's TLS transport as _no_delay sees it: getHandle() is the
    OpenSSL connection (no socket family), the TCP transport is under it."""

    def __init__(self, under: object) -> None:
        self.transport = under

    def getHandle(self) -> object:  # noqa: N802 - Twisted name
        return object()

    def __getattr__(self, name: str) -> object:  # ProtocolWrapper delegates unknown names down
        return getattr(self.transport, name)


NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_nodelay_is_set_on_the_tcp_socket_under_tls() -> None:
    sock = FakeTcpSocket()
    _no_delay(FakeTls(FakeTcp(sock)))
    assert sock.options == {NODELAY: 1}


def test_nodelay_walks_a_tls_and_a_multiplexer_wrapper_and_plain_tcp_still_works() -> None:
    wrapped, plain = FakeTcpSocket(), FakeTcpSocket(socket.AF_INET6)
    _no_delay(FakeTls(FakeTls(FakeTcp(wrapped))))
    _no_delay(FakeTcp(plain))
    assert wrapped.options == {NODELAY: 1} and plain.options == {NODELAY: 1}


def test_nodelay_gives_up_past_the_wrapper_bound_and_ignores_unix_sockets() -> None:
    deep, unix = FakeTcpSocket(), FakeTcpSocket(socket.AF_UNIX)
    transport: object = FakeTcp(deep)
    for _ in range(MAX_TRANSPORT_WRAPPERS):
        transport = FakeTls(transport)
    _no_delay(transport)
    _no_delay(FakeTls(FakeTcp(unix)))
    _no_delay(StringTransport())  # no handle at all: nothing to do, no error
    assert deep.options == {} and unix.options == {}


class HandledStringTransport(StringTransport):
    """A TCP transport in memory whose handle is a recording socket."""

    def __init__(self, sock: FakeTcpSocket) -> None:
        super().__init__()
        self.sock = sock

    def getHandle(self) -> FakeTcpSocket:  # noqa: N802 - Twisted name
        return self.sock


def test_nodelay_reaches_the_socket_under_twisteds_own_tls_transport() -> None:
    from twisted.internet import protocol, ssl
    from twisted.protocols.tls import TLSMemoryBIOFactory

    sock = FakeTcpSocket()
    factory = TLSMemoryBIOFactory(ssl.optionsForClientTLS("example.invalid"), True,
                                  protocol.Factory.forProtocol(protocol.Protocol))  # fmt: skip
    tls = factory.buildProtocol(None)
    tls.makeConnection(HandledStringTransport(sock))
    _no_delay(tls)  # what FrameProtocol.connectionMade gets as its transport under TLS
    assert sock.options == {NODELAY: 1}

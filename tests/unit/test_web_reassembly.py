# WebSocket message reassembly through the real twisted.web.websocket wire
# protocol and wsproto (issue 12 item 1): a binary message made of endless
# FIN=0 fragments is closed with 1009 once it passes one frame header +
# MAX_FRAME_PAYLOAD, and fragments reach the handler one by one as they arrive
# (never joined by copying), so 8 MiB of them cost one pass over the bytes.
"""sessiond.web_socket: bounded, streaming reassembly of WebSocket messages."""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web._websocket_impl import _WebSocketWireProtocol, serverBootstrap
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, TextMessage
from wsproto.frame_protocol import Opcode

from sessiond import web, web_socket

FRAGMENT = 64 * 1024


class Recorder:
    """Stands in for the gateway ClientHandler: records each dataReceived."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.chunks: list[int] = []

    def makeConnection(self, transport: Any) -> None:  # noqa: N802
        self.transport = transport

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.chunks.append(len(data))

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802
        pass


class Channel:
    def __init__(self, transport: StringTransport) -> None:
        self.transport = transport
        self.dataReceived: Any = None

    def setTimeout(self, value: Any) -> None:  # noqa: N802
        pass


class Request:
    def __init__(self, transport: StringTransport) -> None:
        self.channel = Channel(transport)


def wired() -> tuple[web_socket.WebSocketBridge, Recorder, _WebSocketWireProtocol[Any], StringTransport, Connection]:
    """A bridge behind Twisted's real wire protocol, and a wsproto client to talk to it."""
    transport = StringTransport()
    handler = Recorder()
    bridge = web_socket.WebSocketBridge(handler, Request(transport))  # type: ignore[arg-type]
    wire: _WebSocketWireProtocol[Any] = _WebSocketWireProtocol(Connection(ConnectionType.SERVER), serverBootstrap,
                                                               bridge)  # fmt: skip
    request = bridge.request
    request.channel.dataReceived = wire.dataReceived  # as HTTPChannel._protocolUpgradeForWebsockets does
    wire.makeConnection(transport)
    bridge.negotiationFinished()
    return bridge, handler, wire, transport, Connection(ConnectionType.CLIENT)


def close_code(transport: StringTransport) -> int | None:
    """The close code of a close frame the server wrote (unmasked server frame), if any."""
    data = transport.value()
    at = data.find(bytes([0x80 | Opcode.CLOSE]))
    if at < 0:
        return None
    return int.from_bytes(data[at + 2 : at + 4], "big")


def test_a_message_of_exactly_the_bound_passes_and_the_next_counts_from_zero() -> None:
    bridge, handler, wire, transport, client = wired()
    for _round in range(2):
        left = web.MAX_WS_MESSAGE
        while left:
            size = min(FRAGMENT, left)
            left -= size
            wire.dataReceived(client.send(BytesMessage(b"\0" * size, message_finished=left == 0)))
    assert sum(handler.chunks) == 2 * web.MAX_WS_MESSAGE
    assert close_code(transport) is None and not transport.disconnecting


def test_endless_fragments_are_closed_with_1009_past_the_bound() -> None:
    bridge, handler, wire, transport, client = wired()
    sent = 0
    while sent <= web.MAX_WS_MESSAGE + 4 * FRAGMENT:
        wire.dataReceived(client.send(BytesMessage(b"\1" * FRAGMENT, message_finished=False)))
        sent += FRAGMENT
    assert close_code(transport) == web.WS_MESSAGE_TOO_BIG
    assert transport.disconnecting
    assert sum(handler.chunks) <= web.MAX_WS_MESSAGE, "nothing past the bound reached the decoder"
    assert bridge.closing


def test_eight_mib_of_fragments_stream_through_without_joining() -> None:
    # Linear cost, asserted on bytes: each fragment is handed on as it arrives
    # and Twisted's join buffer never holds anything, so no byte is copied
    # more than once however many fragments a message has.
    bridge, handler, wire, transport, client = wired()
    total, per_message = 8 * 1024 * 1024, 1024 * 1024
    small = 4096
    for index in range(total // small):
        last = (index + 1) * small % per_message == 0
        wire.dataReceived(client.send(BytesMessage(b"\2" * small, message_finished=last)))
        assert bridge.message_bytes <= per_message
    assert handler.chunks == [small] * (total // small)
    assert close_code(transport) is None and not transport.disconnecting
    assert wire._bytesBuffer.done() == b""  # the stand-in, not a growing buffer


def test_text_fragments_close_1003_at_the_first_fragment() -> None:
    bridge, handler, wire, transport, client = wired()
    wire.dataReceived(client.send(TextMessage("x" * 1000, message_finished=False)))
    assert close_code(transport) == web.WS_UNSUPPORTED_DATA
    for _ in range(10):
        wire.dataReceived(client.send(TextMessage("x" * 1000, message_finished=False)))
    assert handler.chunks == []


def test_nothing_is_decoded_after_the_handler_closed() -> None:
    bridge, handler, wire, transport, client = wired()
    wire.dataReceived(client.send(BytesMessage(b"a", message_finished=False)))
    handler.transport.loseConnection()
    wire.dataReceived(client.send(BytesMessage(b"b", message_finished=True)))
    assert handler.chunks == [1]


def test_input_after_a_close_is_dropped_not_raised() -> None:
    # Found by tests/fuzz (websocket target): after our 1003 close, a frame with
    # a reserved opcode made wsproto raise LocalProtocolError out of dataReceived.
    bridge, handler, wire, transport, client = wired()
    channel = bridge.request.channel
    channel.dataReceived(client.send(TextMessage("x")))
    assert close_code(transport) == web.WS_UNSUPPORTED_DATA
    channel.dataReceived(bytes([0x8B, 0x80, 0, 0, 0, 0]))  # FIN + opcode 0xB, masked, empty
    # And after the peer's own close handshake, more input is dropped too.
    bridge2, _h, _w, transport2, client2 = wired()
    bridge2.request.channel.dataReceived(client2.send(CloseConnection(1000)))
    bridge2.request.channel.dataReceived(bytes([0x82, 0x81, 0, 0, 0, 0, 1]))
    assert transport2.disconnecting

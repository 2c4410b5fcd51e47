# The /ws WebSocket endpoint that carries the native protocol for the HTML5
# client (sessiond/web.py serves the static files and mounts this lazily).
#
# Why a module of its own: twisted.web.websocket brings wsproto and h11
# (about 2 MiB of the daemon's memory); web.LazySocketResource imports this
# module with the first /ws request, so a daemon that no browser has used
# never loads them. Each WebSocket gets the very same gateway ClientHandler as
# a native TLS connection, through WebSocketStream, an adapter that looks like
# a byte transport (write = one binary message of whole frames). Login, rate
# limits, entitlements and the channel relay are therefore shared, not
# re-implemented.
#
# Message reassembly: twisted.web.websocket joins a message's fragments by
# copying (quadratic) and without a bound. The native protocol is a byte
# stream, so nothing needs whole messages: the bridge swaps Twisted's buffers
# for ones that hand each fragment straight to the handler's frame decoder
# (linear, and the decoder's own limits apply from the first header), and it
# closes with 1009 a message longer than one frame header plus
# MAX_FRAME_PAYLOAD, the most any well-formed single frame needs.
"""WebSocketStream, WebSocketBridge and SessionSocketResource (/ws)."""

from __future__ import annotations

from typing import Any

from twisted.internet import address, interfaces, protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.websocket import WebSocketResource, WebSocketTransport
from wsproto.utilities import LocalProtocolError
from zope.interface import implementer

from sessiond.web import MAX_WS_MESSAGE, WS_MESSAGE_TOO_BIG, WS_UNSUPPORTED_DATA, same_origin

log = Logger()


@implementer(interfaces.ITransport, interfaces.IConsumer)
class WebSocketStream:
    """What ClientHandler sees as its transport: bytes out become binary messages."""

    def __init__(self, ws: WebSocketTransport, underlying: Any) -> None:
        self.ws = ws
        self.underlying = underlying  # the TLS transport, for addresses and back-pressure
        self.disconnecting = False

    def write(self, data: bytes) -> None:
        # FrameProtocol writes only whole frames: one message per write.
        if data and not self.disconnecting:
            try:
                self.ws.sendBytesMessage(data)
            except LocalProtocolError:
                # The browser's close arrived first; the TCP connection goes next.
                # Raising here would unwind into the session relay (and the agent link).
                self.disconnecting = True

    def writeSequence(self, data: list[bytes]) -> None:  # noqa: N802 - Twisted name
        self.write(b"".join(data))

    def loseConnection(self) -> None:  # noqa: N802
        if not self.disconnecting:
            self.disconnecting = True
            self.ws.loseConnection()

    def abortConnection(self) -> None:  # noqa: N802
        self.disconnecting = True
        self.underlying.abortConnection()

    def getPeer(self) -> address.IAddress:  # noqa: N802
        return self.underlying.getPeer()  # type: ignore[no-any-return]

    def getHost(self) -> address.IAddress:  # noqa: N802
        return self.underlying.getHost()  # type: ignore[no-any-return]

    def registerProducer(self, producer: Any, streaming: bool) -> None:  # noqa: N802
        # The HTTP channel that carried the upgrade is still registered on the
        # TLS transport; it reads nothing more, so the session's handler takes its place.
        self.underlying.unregisterProducer()
        self.ws.attachProducer(producer)

    def unregisterProducer(self) -> None:  # noqa: N802
        self.ws.detachProducer()


class _FragmentSink:
    """Stands in for Twisted's reassembly buffer: each fragment goes to the bridge.

    Twisted calls add() per wsproto data event and done() when the message is
    finished, then delivers done()'s value as the whole message; we return an
    empty value, which the bridge ignores.
    """

    def __init__(self, on_data: Any, on_end: Any, empty: bytes | str) -> None:
        self._on_data = on_data
        self._on_end = on_end
        self._empty = empty

    def add(self, new: bytes | bytearray | str) -> None:
        self._on_data(new)

    def done(self) -> bytes | str:
        self._on_end()
        return self._empty


class WebSocketBridge:
    """One browser WebSocket driving one gateway ClientHandler."""

    def __init__(self, handler: protocol.Protocol, request: Any) -> None:
        self.handler = handler
        self.request = request
        self.ws: WebSocketTransport | None = None
        self.closing = False
        # Bytes of the binary message now arriving (reset when it finishes).
        self.message_bytes = 0

    def negotiationStarted(self, transport: WebSocketTransport) -> None:  # noqa: N802 - Twisted name
        self.ws = transport
        # Twisted's wire protocol keeps one buffer per message kind; replace
        # them so no message is ever joined in memory (see the module header).
        if hasattr(transport, "_bytesBuffer"):
            transport._bytesBuffer = _FragmentSink(self._fragment, self._message_end, b"")  # type: ignore[attr-defined]
        if hasattr(transport, "_textBuffer"):
            transport._textBuffer = _FragmentSink(self._text_fragment, lambda: None, "")  # type: ignore[attr-defined]
        # The upgraded HTTP channel hands every read to the wire protocol's
        # dataReceived; wsproto raises on input after a close (ours or the
        # peer's), which would escape into the reactor. Guard that door.
        channel = getattr(self.request, "channel", None)
        deliver = getattr(channel, "dataReceived", None)
        if deliver is not None and getattr(deliver, "__self__", None) is transport:
            channel.dataReceived = self._guarded(deliver)

    def negotiationFinished(self) -> None:  # noqa: N802
        channel = self.request.channel
        channel.setTimeout(None)  # the HTTP idle timeout must not cut a live session
        if self.ws is not None:
            self.handler.makeConnection(WebSocketStream(self.ws, channel.transport))  # type: ignore[arg-type]

    def _guarded(self, deliver: Any) -> Any:
        def received(data: bytes) -> None:
            if self.closing:
                return  # after our close nothing more is parsed
            try:
                deliver(data)
            except LocalProtocolError as exc:
                log.info("WebSocket input after the close ({why}); dropping the connection", why=exc)
                self.closing = True
                self.request.channel.transport.abortConnection()

        return received

    def _fragment(self, data: bytes | bytearray) -> None:
        """Part of a binary message: counted against MAX_WS_MESSAGE, then decoded."""
        stream = self.handler.transport
        if self.closing or not data or getattr(stream, "disconnecting", False):
            return  # after a close nothing more is decoded
        self.message_bytes += len(data)
        if self.message_bytes > MAX_WS_MESSAGE:
            log.warn("WebSocket message over {limit} bytes; closing", limit=MAX_WS_MESSAGE)
            self._close(WS_MESSAGE_TOO_BIG)
            return
        self.handler.dataReceived(bytes(data))

    def _message_end(self) -> None:
        self.message_bytes = 0

    def _text_fragment(self, data: Any) -> None:
        self.textMessageReceived("")

    def _close(self, code: int) -> None:
        if self.closing:
            return
        self.closing = True
        if self.ws is not None:
            try:
                # TLS defers its shutdown while a producer is registered (sessiond/wire.py).
                self.ws.detachProducer()
            except Exception:  # noqa: BLE001 - none registered yet
                pass
            try:
                self.ws.loseConnection(code)
            except LocalProtocolError:
                pass  # the browser closed first

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:  # noqa: N802
        """A whole message (only when Twisted's own buffer is in place): one fragment."""
        if data:
            self._fragment(data)
            self._message_end()

    def textMessageReceived(self, message: str) -> None:  # noqa: N802
        if not self.closing:
            log.warn("text message on the sessiond WebSocket; closing (the protocol is binary)")
        self._close(WS_UNSUPPORTED_DATA)

    def pongReceived(self, payload: bytes) -> None:  # noqa: N802
        """Pongs are not used."""

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802
        self.closing = True
        if self.handler.transport is not None:
            self.handler.connectionLost(reason)


class BridgeFactory:
    """Builds a WebSocketBridge around a new gateway ClientHandler per WebSocket."""

    def __init__(self, gateway: protocol.Factory) -> None:
        self.gateway = gateway

    def buildProtocol(self, request: Any) -> WebSocketBridge:  # noqa: N802
        peer = request.channel.transport.getPeer()
        handler = self.gateway.buildProtocol(peer)
        if handler is None:
            raise RuntimeError("the gateway refused the connection")
        return WebSocketBridge(handler, request)


class SessionSocketResource(WebSocketResource):
    """/ws: the WebSocket endpoint; refuses cross-origin upgrades."""

    def __init__(self, gateway: protocol.Factory, hsts: bool) -> None:
        super().__init__(BridgeFactory(gateway))  # type: ignore[arg-type]
        self.hsts = hsts

    def render_GET(self, request: Any) -> bytes | int:  # noqa: N802
        if not same_origin(request):
            log.warn("refused a WebSocket from origin {origin}", origin=request.getHeader(b"origin"))
            request.setResponseCode(403)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"cross-origin WebSocket refused\n"
        return super().render_GET(request)

# Twisted adapter for the sans-IO protocol core: bytes from the transport go
# into protocol.Connection, its events go to the subclass, and its outgoing
# frames drain into the transport only while the transport is not pushing
# back (IPushProducer), so the Connection's priority queues decide what goes
# first when the network is the bottleneck. Used by sessiond (client
# connections and agent links) and by the thin client, so it lives outside
# both (transport/ may import protocol/ and Twisted only).
#
# One write per read: every reply to the events of one read (acknowledgements,
# credit returns, input answers) leaves in one transport.write -- one TLS
# record -- because a flush() asked for while those events are handled waits
# for the flush that ends dataReceived.  A keystroke's echo frame and its
# FRAME_ACK + WINDOW_UPDATE no longer cost a record each.  This holds across
# connections too: what one read makes another connection send (sessiond's
# relay: an agent link's read forwards frames to the client) waits for the
# end of that read, then leaves in one write per connection.
#
# Relayed, sent at once, not at the next reactor turn: at the end of a read,
# what it made OTHER connections send is pushed through to their sockets
# (send_now), a hop of a keystroke's echo (agent -> sessiond -> client) or of
# its key; a connection's replies to its own reads are not (several TLS
# records read in one reactor turn still get one record of replies, so
# bytes per keystroke stay as they were). Twisted's TLS transport
# otherwise holds small writes until its callLater(0) in the next reactor
# iteration, and every Twisted socket transport holds a write until epoll
# says writable in the iteration after that; the relayed echo paid both
# before its first byte left sessiond.
#
# Error boundary: a failure while handling ONE event is caught here and handed
# to event_failed(), whose default closes only this connection with
# INTERNAL_ERROR; an exception never unwinds out of dataReceived into Twisted
# (which would drop the transport and, for an agent link, end the session).
"""FrameProtocol: a Twisted Protocol driving a protocol.Connection."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from twisted.internet import abstract, interfaces, protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from protocol.connection import Connection, ConnectionClosed, Role
from protocol.errors import ProtocolStateError, ReasonCode

# Bytes handed to the transport per write while draining the Connection:
# big enough to amortize TLS records, small enough to let priorities act.
WRITE_CHUNK = 256 * 1024
# Transport wrappers (TLS, a port multiplexer) walked down to find the TCP socket.
MAX_TRANSPORT_WRAPPERS = 4


class _ReadScope(threading.local):
    """The reads being handled on this thread (nested when one read feeds
    another in memory) and the protocols whose flush waits for their end."""

    depth = 0

    def __init__(self) -> None:
        self.owed: dict[int, FrameProtocol] = {}


_scope = _ReadScope()


@implementer(interfaces.IPushProducer)
class FrameProtocol(protocol.Protocol):
    """Base class: subclasses implement event_received() and on_lost()."""

    log = Logger()
    role: Role = Role.SERVER

    def __init__(self) -> None:
        self.conn = self.make_connection()
        self._paused = False
        self._lost = False
        self._closing = False
        self._closed_by_us = False
        self._receiving = False  # inside dataReceived: flush() waits for its end

    # -- Twisted plumbing --------------------------------------------------
    def connectionMade(self) -> None:  # noqa: N802 - Twisted name
        _no_delay(self.transport)
        self.transport.registerProducer(self, True)
        self.on_connected()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted name
        if self._lost:
            return
        events = self.conn.receive_data(data)
        # A peer that says something and then CLOSE in one read (a refusal
        # and its reason, a LOGOFF and goodbye) is heard out. Events decoded
        # before a violation, or after we closed, are dropped: no reply can
        # go out.
        heard_out = any(isinstance(e, ConnectionClosed) and e.by_peer for e in events)
        self._receiving = True
        _scope.depth += 1
        try:
            for event in events:
                if self._lost:
                    break
                if isinstance(event, ConnectionClosed):
                    self._handle_closed(event)
                    break
                if not self.conn.closed or (heard_out and not self._closed_by_us):
                    try:
                        self.event_received(event)
                    except Exception as exc:  # noqa: BLE001 - the error boundary of one event
                        self._event_failed(event, exc)
        finally:
            self._receiving = False
            _scope.depth -= 1
        if _scope.depth:  # a read handled inside another (in memory): flushed when that one ends
            _scope.owed.setdefault(id(self), self)
            return
        _flush_owed()
        # Our own replies leave as before: the TLS transport gathers what the
        # reads of one reactor turn answer (a client's TLS records each come
        # as a read of their own) into one record at the turn's end.
        self._flush_now()

    def _event_failed(self, event: object, exc: Exception) -> None:
        if self.conn.closed and isinstance(exc, ProtocolStateError):
            return  # a reply to a peer that has already closed: nothing to answer
        try:
            self.event_failed(event, exc)
        except Exception:  # noqa: BLE001 - a failing handler of a failure costs this connection only
            self.log.failure("handling a failed event failed; closing the connection")
            self.close(ReasonCode.INTERNAL_ERROR, "internal error")

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:  # noqa: N802
        if self._lost:
            return
        self._lost = True
        try:
            self.transport.unregisterProducer()
        except Exception:  # noqa: BLE001 - transport may already be gone
            pass
        self.on_lost(reason)

    def pauseProducing(self) -> None:  # noqa: N802
        self._paused = True

    def resumeProducing(self) -> None:  # noqa: N802
        self._paused = False
        self.flush()

    def stopProducing(self) -> None:  # noqa: N802
        self._paused = True

    # -- API for subclasses ------------------------------------------------
    def flush(self) -> None:
        """Move queued frames to the transport while it accepts them (while
        the events of a read are handled, this connection's or another's:
        once they all are, in one write; pushed to the socket at once when
        it was another connection's read)."""
        if self._receiving:
            return
        if _scope.depth:
            _scope.owed[id(self)] = self
            return
        self._flush_now()

    def _flush_now(self, push: bool = False) -> None:
        if self._lost or self.transport is None:
            return
        wrote = False
        while not self._paused:
            # Pieces, not one joined buffer: a relayed payload goes to the
            # transport as the object it arrived in (TLS joins once to encrypt).
            pieces = self.conn.data_to_send_pieces(WRITE_CHUNK)
            if not pieces:
                break
            self.transport.writeSequence(pieces)
            wrote = True
        if wrote and push:
            send_now(self.transport)
        if self.conn.closed and not self._closing:
            self.drop()

    def drop(self) -> None:
        """Close the transport (after writing what is queued in it)."""
        if self._lost or self.transport is None:
            return
        # Unregister first: TLS defers its shutdown while a producer is
        # registered, which would leave the connection half-open forever.
        self._closing = True
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    def close(self, code: int, message: str) -> None:
        """Send CLOSE with CODE and drop the connection once it is written."""
        if not self.conn.closed:
            self.log.info("closing connection: {code} {message}", code=ReasonCode(code).name, message=message)
            self._closed_by_us = True
            self.conn.close(code, message)
        self.flush()

    def _handle_closed(self, event: ConnectionClosed) -> None:
        if event.by_peer:
            self.log.info("peer closed: {code} {message}", code=_code_name(event.code), message=event.message)
        else:
            self.log.warn(
                "protocol violation from {peer}: {code} {message}",
                peer=self.peer_description(),
                code=_code_name(event.code),
                message=event.message,
            )
        self.on_closed(event)
        self._flush_now()  # before drop(): a closing transport takes no more writes
        if event.by_peer and not self._closing:
            self.drop()

    # -- hooks -------------------------------------------------------------
    def peer_description(self) -> str:
        peer: Any = self.transport.getPeer() if self.transport else None
        host = getattr(peer, "host", None)
        return f"{host}:{getattr(peer, 'port', '')}" if host else str(peer)

    def make_connection(self) -> Connection:
        """The sans-IO Connection this protocol drives (subclasses add relay predicates)."""
        return Connection(self.role)

    def event_failed(self, event: object, exc: Exception) -> None:
        """Handling EVENT raised EXC: log it and close this connection (override to cost less)."""
        self.log.failure("failed to handle {event}; closing the connection", event=type(event).__name__)
        self.close(ReasonCode.INTERNAL_ERROR, "internal error handling a message")

    def on_connected(self) -> None:
        """The transport is up (for TLS: possibly before the handshake)."""

    def event_received(self, event: object) -> None:
        """One protocol event (MessageReceived, ChannelOpened, ...)."""

    def on_closed(self, event: ConnectionClosed) -> None:
        """The protocol connection ended (by the peer or a violation)."""

    def on_lost(self, reason: Failure) -> None:
        """The transport is gone."""


def _flush_owed() -> None:
    """The outermost read is handled: each connection it made send writes once and sends now."""
    while _scope.owed:
        owed = list(_scope.owed.values())
        _scope.owed.clear()
        for proto in owed:
            try:
                proto._flush_now(push=True)
            except Exception:  # noqa: BLE001 - one connection's failed write costs that connection only
                proto.log.failure("writing to the transport failed; dropping the connection")
                with contextlib.suppress(Exception):
                    proto.drop()


def send_now(transport: Any) -> None:
    """What was just written to TRANSPORT goes to its socket now, not in a
    later reactor iteration: Twisted's TLS transport (BufferingTLSTransport)
    holds small writes for a callLater(0), so that buffer is flushed into
    one TLS record; the socket transport under it holds every write until
    epoll says writable, so it writes now, as the reactor would then.

    Only when that is exactly what the reactor would do: the socket's buffer
    had nothing older (else the socket is full and the reactor waits for
    it), no close is under way and no producer is paused (whose resume the
    write would call from here). A failed send leaves the bytes buffered, so
    the reactor meets the same error and loses the connection its own way."""
    for _ in range(MAX_TRANSPORT_WRAPPERS):
        if transport is None:
            return
        state = getattr(transport, "__dict__", {})
        aggregator = state.get("_aggregator")  # Twisted's BufferingTLSTransport (twisted.protocols.tls)
        if aggregator is not None:
            aggregator.flush()
        if isinstance(transport, abstract.FileDescriptor):
            if (transport.connected and not transport.disconnecting and transport.offset == len(transport.dataBuffer)
                    and (transport.producer is None or not transport.producerPaused)):  # fmt: skip
                transport.doWrite()
            return
        transport = state.get("transport")  # the wrapped one, never a delegated lookup


def _code_name(code: int) -> str:
    try:
        return ReasonCode(code).name
    except ValueError:
        return str(code)


def _no_delay(transport: Any) -> None:
    """TCP_NODELAY on the socket under TLS: our frames are already batched
    per write, and Nagle would hold a keystroke or an acknowledgement back
    behind an unacknowledged segment (tens of ms).

    A TLS transport's getHandle() is its OpenSSL connection, not the socket
    (Twisted's TLSMemoryBIOProtocol), so the wrappers are walked down through
    their `transport` to the TCP one. Until this walk, NODELAY was never set
    under TLS: the second frame of every pair waited ~20-40 ms for the
    client's delayed ACK, which held a 1080p scroll at ~30 frames/s."""
    for _ in range(MAX_TRANSPORT_WRAPPERS):
        if transport is None:
            return
        try:
            sock = transport.getHandle()
        except Exception:  # noqa: BLE001 - transports without a handle (tests, pipes)
            sock = None
        if getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return
        transport = getattr(transport, "__dict__", {}).get("transport")  # the wrapped one, never a delegated lookup

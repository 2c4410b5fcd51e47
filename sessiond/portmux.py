# One TLS port, two protocols: the native frame protocol for clients that
# negotiate ALPN "sessiond/1", HTTP/1.1 (admin API, metrics, later the web
# client) for everything else. The choice is made from the negotiated ALPN
# once the handshake is done (when the first bytes arrive), never by sniffing
# the bytes themselves.
#
# It is also where every connection is accepted, so the pre-auth tracker
# (sessiond/preauth.py) gets its ticket here: the grace timer runs from accept,
# through the TLS handshake and HTTP, until the gateway reports a login.
"""ALPN-based protocol selection on the shared TLS port."""

from __future__ import annotations

from typing import Any

from twisted.internet import interfaces, protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from protocol.limits import ALPN
from sessiond.preauth import SPOKE, TLS_DONE, PreauthTracker, Ticket

NATIVE = ALPN.encode("ascii")
HTTP = b"http/1.1"
# Offered in this order; a client without ALPN gets HTTP.
OFFERED = (NATIVE, HTTP)


@implementer(interfaces.IHandshakeListener)
class MuxProtocol(protocol.Protocol):
    """Hands the connection to the native or the HTTP protocol on first data."""

    def __init__(self, factory: MuxFactory, addr: Any) -> None:
        self.factory = factory
        self.addr = addr
        self.inner: protocol.Protocol | None = None
        self.preauth: Ticket | None = None

    def connectionMade(self) -> None:  # noqa: N802 - Twisted name
        tracker = self.factory.preauth
        if tracker is not None:
            source = str(getattr(self.addr, "host", self.addr))
            self.preauth = tracker.admit(source, self.transport.abortConnection)

    def handshakeCompleted(self) -> None:  # noqa: N802 - Twisted name
        if self.preauth is not None:
            self.preauth.progress(TLS_DONE)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted name
        if self.preauth is not None:
            self.preauth.progress(SPOKE)
        if self.inner is None:
            negotiated = getattr(self.transport, "negotiatedProtocol", None)
            chosen = self.factory.native if negotiated == NATIVE else self.factory.http
            inner = chosen.buildProtocol(self.addr)
            if inner is None:
                self.transport.loseConnection()
                return
            self.inner = inner
            inner.makeConnection(self.transport)
        self.inner.dataReceived(data)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:  # noqa: N802
        if self.preauth is not None:
            self.preauth.closed()
        if self.inner is not None:
            self.inner.connectionLost(reason)


class MuxFactory(protocol.Factory):
    """Factory for MuxProtocol over a native and an HTTP factory."""

    def __init__(self, native: protocol.Factory, http: protocol.Factory,
                 preauth: PreauthTracker | None = None) -> None:  # fmt: skip
        self.native = native
        self.http = http
        self.preauth = preauth

    def buildProtocol(self, addr: Any) -> MuxProtocol:  # noqa: N802
        return MuxProtocol(self, addr)

# A counting TCP proxy on loopback, between the bench client and sessiond.
#
# Why: "bytes per echoed keystroke, TLS included" must be what really
# crosses the network, not what the protocol layer thinks it sent (TLS
# records, handshakes, acknowledgements and flow-control updates all count).
# The proxy forwards bytes unchanged and adds them up per direction. It runs
# in the bench's own reactor and sets TCP_NODELAY on both legs, so it adds a
# loopback hop but never a Nagle delay of its own. Counts are TCP payload
# bytes (no IP/TCP headers), as the budget table's peer figures are. It also
# counts TLS records per direction (from their 5-byte headers; the proxy
# sees only ciphertext), which is what the 22-byte per-record cost follows.
"""CountingProxy: forwards one or more TCP connections and counts bytes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet import protocol
from twisted.python.failure import Failure

# Bytes held from the client while the connection to sessiond is being made
# (the TLS ClientHello is a few hundred bytes; more means something is wrong).
MAX_EARLY_BYTES = 1024 * 1024


# TLS record header: content type, legacy version (2), length (2).
TLS_RECORD_HEADER = 5


class RecordScanner:
    """Counts TLS records in one direction of a stream, across chunk boundaries."""

    def __init__(self) -> None:
        self.records = 0
        self._skip = 0  # bytes of the current record's body still to pass
        self._head = b""  # part of a record header seen so far

    def feed(self, data: bytes) -> None:
        """Scan the next chunk of the stream."""
        pos = 0
        while pos < len(data):
            if self._skip:
                step = min(self._skip, len(data) - pos)
                self._skip -= step
                pos += step
                continue
            need = TLS_RECORD_HEADER - len(self._head)
            self._head += data[pos : pos + need]
            pos += need
            if len(self._head) == TLS_RECORD_HEADER:
                self.records += 1
                self._skip = int.from_bytes(self._head[3:5], "big")
                self._head = b""


@dataclass(frozen=True)
class ByteCount:
    """Bytes forwarded so far: up = client to server, down = server to client;
    and the TLS records they made."""

    up: int
    down: int
    up_records: int = 0
    down_records: int = 0

    @property
    def total(self) -> int:
        """Both directions."""
        return self.up + self.down

    def __sub__(self, other: ByteCount) -> ByteCount:
        return ByteCount(self.up - other.up, self.down - other.down, self.up_records - other.up_records,
                         self.down_records - other.down_records)  # fmt: skip


class _Backend(protocol.Protocol):
    """The proxy's connection to sessiond."""

    def __init__(self, front: _Front) -> None:
        self.front = front

    def connectionMade(self) -> None:  # noqa: N802 - Twisted name
        self.transport.setTcpNoDelay(True)
        self.front.backend_ready(self)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted name
        self.front.proxy.down += len(data)
        self.front.down_records.feed(data)
        self.front.transport.write(data)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:  # noqa: N802
        self.front.transport.loseConnection()


class _Front(protocol.Protocol):
    """A client's connection to the proxy."""

    def __init__(self, proxy: CountingProxy) -> None:
        self.proxy = proxy
        self.backend: _Backend | None = None
        self.up_records = RecordScanner()
        self.down_records = RecordScanner()
        proxy.fronts.append(self)
        self._early: list[bytes] = []
        self._early_size = 0

    def connectionMade(self) -> None:  # noqa: N802 - Twisted name
        self.transport.setTcpNoDelay(True)
        self.transport.pauseProducing()
        factory = protocol.ClientFactory.forProtocol(lambda: _Backend(self))
        factory.clientConnectionFailed = lambda _c, _r: self.transport.loseConnection()  # type: ignore[method-assign]
        self.proxy.reactor.connectTCP(self.proxy.target_host, self.proxy.target_port, factory)

    def backend_ready(self, backend: _Backend) -> None:
        self.backend = backend
        for chunk in self._early:
            backend.transport.write(chunk)
        self._early = []
        self.transport.resumeProducing()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted name
        self.proxy.up += len(data)
        self.up_records.feed(data)
        if self.backend is None:
            self._early_size += len(data)
            if self._early_size > MAX_EARLY_BYTES:
                self.transport.abortConnection()
                return
            self._early.append(data)
        else:
            self.backend.transport.write(data)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:  # noqa: N802
        if self.backend is not None:
            self.backend.transport.loseConnection()


class CountingProxy(protocol.ServerFactory):
    """Listens on 127.0.0.1 (free port) and forwards to TARGET."""

    def __init__(self, reactor: Any, target_host: str, target_port: int) -> None:
        self.reactor = reactor
        self.target_host = target_host
        self.target_port = target_port
        self.up = 0
        self.down = 0
        self.fronts: list[_Front] = []
        self._port: Any = None

    def listen(self) -> int:
        """Start listening; returns the proxy's port."""
        self._port = self.reactor.listenTCP(0, self, interface="127.0.0.1")
        return int(self._port.getHost().port)

    def buildProtocol(self, addr: Any) -> _Front:  # noqa: N802 - Twisted name
        return _Front(self)

    def count(self) -> ByteCount:
        """Bytes forwarded so far, both directions."""
        return ByteCount(self.up, self.down, sum(f.up_records.records for f in self.fronts),
                         sum(f.down_records.records for f in self.fronts))  # fmt: skip

    async def close(self) -> None:
        """Stop listening (open connections end with their peers)."""
        if self._port is not None:
            await self._port.stopListening()
            self._port = None

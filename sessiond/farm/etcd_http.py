# The HTTP half of the etcd client, on twisted.web.client.Agent: Twisted is
# already the daemon's reactor and TLS stack, so talking to etcd's JSON
# gateway needs no new dependency and no thread. A plain request reads a
# bounded body; a stream (watch, keepalive) hands each newline-terminated
# JSON line to a callback as it arrives, on the reactor thread. TLS to etcd
# uses its own CA and an optional client certificate, never the system
# trust store, since an etcd cluster normally has a private CA.
"""HTTP transport for the etcd gateway: bounded requests, line streams, TLS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import Any, Protocol

from twisted.internet import defer, protocol, ssl
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS, IResponse
from zope.interface import implementer  # type: ignore[import-untyped]

from sessiond.farm.etcd_codec import MAX_RESPONSE_BYTES, EtcdProtocolError, LineSplitter

# Seconds to open a TCP (and TLS) connection to one endpoint before trying the next.
CONNECT_TIMEOUT = 2.0
# Idle persistent connections kept per endpoint (requests are short and few).
MAX_PERSISTENT_PER_HOST = 4
_HEADERS = {b"content-type": [b"application/json"]}


@dataclass(frozen=True)
class EtcdTLS:
    """TLS settings for etcd: the cluster's CA and an optional client cert and key (PEM files)."""

    ca_file: str
    cert_file: str = ""
    key_file: str = ""


@implementer(IPolicyForHTTPS)
class EtcdTLSPolicy:
    """Verifies etcd against its own CA (hostname or IP checked) and presents a client certificate."""

    def __init__(self, settings: EtcdTLS) -> None:
        with open(settings.ca_file, "rb") as f:
            self.trust = ssl.Certificate.loadPEM(f.read())
        self.client: ssl.PrivateCertificate | None = None
        if settings.cert_file:
            if not settings.key_file:
                raise ValueError("an etcd client certificate needs its key file too")
            with open(settings.cert_file, "rb") as f, open(settings.key_file, "rb") as k:
                self.client = ssl.PrivateCertificate.loadPEM(f.read() + b"\n" + k.read())

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:  # noqa: N802 - Twisted's IPolicyForHTTPS
        """Client TLS options for one etcd endpoint."""
        return ssl.optionsForClientTLS(hostname.decode("ascii"), trustRoot=self.trust,
                                       clientCertificate=self.client)  # fmt: skip


class Stream(Protocol):
    """A running streamed request: DONE fires when it ends; cancel() ends it."""

    done: defer.Deferred[None]

    def cancel(self) -> None: ...


class HttpTransport(Protocol):
    """What the etcd client needs from HTTP (a fake in unit tests)."""

    def post(self, url: str, body: bytes, timeout: float) -> defer.Deferred[tuple[int, bytes]]:
        """POST BODY; fires with (status, body) or fails (connect error, timeout)."""
        ...

    def stream(self, url: str, body: bytes, on_line: Callable[[bytes], None]) -> Stream:
        """POST BODY and call ON_LINE for each line of the response as it arrives."""
        ...


class _BoundedBody(protocol.Protocol):
    def __init__(self, finished: defer.Deferred[bytes], limit: int) -> None:
        self.finished = finished
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.failed = False

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted's IProtocol
        self.size += len(data)
        if self.failed:
            return
        if self.size > self.limit:
            self.failed = True
            self.transport.stopProducing()  # type: ignore[union-attr]
            self.finished.errback(EtcdProtocolError(f"etcd response over {self.limit} bytes"))
            return
        self.parts.append(data)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:  # noqa: N802 - Twisted's IProtocol
        if self.failed:
            return
        if reason.check(ResponseDone):
            self.finished.callback(b"".join(self.parts))
        else:
            self.finished.errback(reason)


class _LineBody(protocol.Protocol):
    def __init__(self, stream: _AgentStream) -> None:
        self.stream = stream
        self.splitter = LineSplitter()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted's IProtocol
        try:
            for line in self.splitter.feed(data):
                if self.stream.cancelled:
                    return
                self.stream.on_line(line)
        except Exception as exc:  # noqa: BLE001 - a bad line or a callback's error ends this stream only
            self.stream.fail(Failure(exc))
            self.transport.stopProducing()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:  # noqa: N802 - Twisted's IProtocol
        if reason.check(ResponseDone) or self.stream.cancelled:
            self.stream.finish()
        else:
            self.stream.fail(reason)


class _AgentStream:
    def __init__(self, on_line: Callable[[bytes], None]) -> None:
        self.on_line = on_line
        self.done: defer.Deferred[None] = defer.Deferred()
        self.cancelled = False
        self.request: defer.Deferred[Any] | None = None
        self.body: _LineBody | None = None

    def finish(self) -> None:
        if not self.done.called:
            self.done.callback(None)

    def fail(self, reason: Failure) -> None:
        if not self.done.called:
            self.done.errback(reason)

    def cancel(self) -> None:
        self.cancelled = True
        if self.request is not None and not self.request.called:
            self.request.cancel()
        if self.body is not None and self.body.transport is not None:
            self.body.transport.stopProducing()  # type: ignore[attr-defined]
        self.finish()


class AgentTransport:
    """HttpTransport on twisted.web.client.Agent (persistent connections; TLS by EtcdTLSPolicy)."""

    def __init__(self, reactor: Any, tls: EtcdTLS | None = None) -> None:
        self.reactor: IReactorTime = reactor
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = MAX_PERSISTENT_PER_HOST
        policy = EtcdTLSPolicy(tls) if tls is not None else None
        kwargs: dict[str, Any] = {"pool": self.pool, "connectTimeout": CONNECT_TIMEOUT}
        if policy is not None:
            kwargs["contextFactory"] = policy
        self.agent = Agent(reactor, **kwargs)
        # Streams get their own non-persistent agent: a watch holds its connection for hours.
        self.stream_agent = Agent(reactor, connectTimeout=CONNECT_TIMEOUT,
                                  **({"contextFactory": policy} if policy is not None else {}))  # fmt: skip

    def _request(self, agent: Agent, url: str, body: bytes) -> defer.Deferred[IResponse]:
        producer = FileBodyProducer(BytesIO(body))
        return agent.request(b"POST", url.encode("ascii"), Headers(_HEADERS), producer)  # type: ignore[arg-type]

    def post(self, url: str, body: bytes, timeout: float) -> defer.Deferred[tuple[int, bytes]]:
        """POST with an overall TIMEOUT (connect, send and read)."""

        def read(response: IResponse) -> defer.Deferred[tuple[int, bytes]]:
            finished: defer.Deferred[bytes] = defer.Deferred()
            response.deliverBody(_BoundedBody(finished, MAX_RESPONSE_BYTES))  # type: ignore[call-arg,misc]
            return finished.addCallback(lambda raw: (response.code, raw))

        d = self._request(self.agent, url, body).addCallback(read)
        return d.addTimeout(timeout, self.reactor)

    def stream(self, url: str, body: bytes, on_line: Callable[[bytes], None]) -> Stream:
        """A streamed POST; its lines go to ON_LINE until cancel() or the server ends it."""
        stream = _AgentStream(on_line)

        def deliver(response: IResponse) -> None:
            if stream.cancelled:
                return
            stream.body = _LineBody(stream)
            response.deliverBody(stream.body)  # type: ignore[call-arg,misc]

        stream.request = self._request(self.stream_agent, url, body)
        stream.request.addTimeout(CONNECT_TIMEOUT * 2, self.reactor)
        stream.request.addCallbacks(deliver, lambda f: None if stream.cancelled else stream.fail(f))
        return stream

    def close(self) -> defer.Deferred[None]:
        """Close idle persistent connections."""
        return self.pool.closeCachedConnections()

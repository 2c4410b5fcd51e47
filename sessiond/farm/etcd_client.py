# An etcd v3 client for Twisted through etcd's own JSON gateway (docs/farm.md
# says why not gRPC). It knows several endpoints (the members of a cluster)
# and sends each request to the one that answered last; when that one is
# refused, times out or has no leader, the same request goes to the next, so
# losing one member of three changes nothing for callers. When none answers,
# callers get EtcdUnavailable naming every endpoint and why it failed.
"""EtcdClient: KV, txn, leases and watches over etcd's /v3 JSON gateway."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from OpenSSL import SSL
from twisted.internet import defer
from twisted.internet.error import ConnectError, ConnectingCancelledError
from twisted.internet.error import TimeoutError as TxTimeoutError
from twisted.logger import Logger
from twisted.web.client import RequestTransmissionFailed, ResponseFailed, ResponseNeverReceived

from sessiond.farm import etcd_codec as codec
from sessiond.farm.etcd_codec import (
    Compare,
    EtcdProtocolError,
    EtcdRequestError,
    EtcdUnavailable,
    RangeResult,
    TxnResult,  # fmt: skip
    WatchEvent,
)
from sessiond.farm.etcd_http import AgentTransport, EtcdTLS, HttpTransport, Stream

# Seconds one endpoint gets to answer one request before the next is tried.
REQUEST_TIMEOUT = 3.0
# Endpoints a client may be given (a cluster has 3, 5 or 7 members).
MAX_ENDPOINTS = 16
# Failures that mean "this endpoint did not answer"; the request moves on.
_TRANSPORT_FAILURES = (ConnectError, ConnectingCancelledError, TxTimeoutError, ResponseFailed, ResponseNeverReceived,
                       RequestTransmissionFailed, SSL.Error,
                       defer.CancelledError, defer.TimeoutError, ConnectionError)  # fmt: skip

log = Logger()


@dataclass(frozen=True)
class EtcdSettings:
    """Where etcd is and how to talk to it ([farm] etcd = URL[,URL...] and its TLS keys)."""

    endpoints: tuple[str, ...]
    tls: EtcdTLS | None = None
    timeout: float = REQUEST_TIMEOUT


def parse_endpoints(text: str) -> tuple[str, ...]:
    """`http(s)://HOST:PORT[,...]` as a tuple of base URLs; ValueError names the bad one."""
    urls = tuple(part.strip().rstrip("/") for part in text.split(",") if part.strip())
    if not urls:
        raise ValueError("no etcd endpoint given")
    if len(urls) > MAX_ENDPOINTS:
        raise ValueError(f"{len(urls)} etcd endpoints given, at most {MAX_ENDPOINTS}")
    for url in urls:
        scheme, _, rest = url.partition("://")
        if scheme not in ("http", "https") or not rest or "/" in rest:
            raise ValueError(f"etcd endpoint {url!r} is not http(s)://HOST:PORT")
    if len({u.partition("://")[0] for u in urls}) > 1:
        raise ValueError("etcd endpoints mix http and https")
    return urls


class Watch:
    """A running watch: DONE fires when it ends (cancelled, or its stream broke); cancel() ends it."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self.done: defer.Deferred[None] = stream.done

    def cancel(self) -> None:
        """Stop watching (closes the stream)."""
        self._stream.cancel()


class EtcdClient:
    """Requests to an etcd cluster through its JSON gateway, with failover between endpoints."""

    def __init__(self, endpoints: Sequence[str], transport: HttpTransport, timeout: float = REQUEST_TIMEOUT) -> None:
        self.endpoints = parse_endpoints(",".join(endpoints))
        self.transport = transport
        self.timeout = timeout
        self.current = 0  # index of the endpoint that answered last

    @classmethod
    def connect(cls, reactor: Any, settings: EtcdSettings) -> EtcdClient:
        """A client on a real Agent transport (TLS settings required for https endpoints)."""
        if settings.endpoints and settings.endpoints[0].startswith("https://") and settings.tls is None:
            raise ValueError("https etcd endpoints need [farm] etcd_ca")
        return cls(settings.endpoints, AgentTransport(reactor, settings.tls), settings.timeout)

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST BODY to PATH (e.g. /v3/kv/range) on the first endpoint that answers."""
        raw = codec.encode(body)
        reasons: list[str] = []
        # Each endpoint once, from the one that answered last when this call began: concurrent
        # calls move `current` while this one waits, and must not make it retry one endpoint.
        count, first = len(self.endpoints), self.current
        for step in range(count):
            index = (first + step) % count
            url = self.endpoints[index]
            try:
                status, answer = await self.transport.post(url + path, raw, self.timeout)
            except _TRANSPORT_FAILURES as exc:
                reasons.append(f"{url}: {_describe(exc)}")
                continue
            try:
                decoded = codec.decode(answer)
            except EtcdRequestError as exc:
                if exc.code in codec.RETRY_ON_NEXT_ENDPOINT:
                    reasons.append(f"{url}: {exc.message}")
                    continue
                self.current = index
                raise
            except EtcdProtocolError as exc:
                reasons.append(f"{url}: HTTP {status}: {exc}")
                continue
            if index != self.current:
                log.info("etcd: now using {url} ({failed})", url=url, failed="; ".join(reasons))
            self.current = index
            return decoded
        raise EtcdUnavailable("etcd is unreachable: " + "; ".join(reasons))

    # -- key-value -------------------------------------------------------------------
    async def range(self, key: bytes, range_end: bytes | None = None, *, limit: int = 0) -> RangeResult:
        """Keys from KEY up to RANGE_END (just KEY without it)."""
        return codec.parse_range(await self.call("/v3/kv/range", codec.range_request(key, range_end, limit=limit)))

    async def get(self, key: bytes) -> codec.KeyValue | None:
        """One key, or None."""
        result = await self.range(key)
        return result.kvs[0] if result.kvs else None

    async def range_prefix(self, prefix: bytes) -> RangeResult:
        """Every key starting with PREFIX."""
        return await self.range(prefix, codec.prefix_end(prefix))

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> int:
        """Store VALUE at KEY (attached to LEASE if given); returns the new revision."""
        return codec.revision_of(await self.call("/v3/kv/put", codec.put_request(key, value, lease)))

    async def delete(self, key: bytes, range_end: bytes | None = None) -> int:
        """Delete KEY (or the range); returns how many keys went."""
        body = await self.call("/v3/kv/deleterange", codec.delete_request(key, range_end))
        return int(body.get("deleted", 0))

    async def txn(self, compares: list[Compare], success: list[dict[str, Any]],
                  failure: list[dict[str, Any]] | None = None) -> TxnResult:  # fmt: skip
        """If every compare holds, run SUCCESS, else FAILURE; atomically."""
        return codec.parse_txn(await self.call("/v3/kv/txn", codec.txn_request(compares, success, failure or [])))

    # -- leases ----------------------------------------------------------------------
    async def grant(self, ttl: int) -> tuple[int, int]:
        """A new lease of TTL seconds: (lease id, granted ttl)."""
        body = await self.call("/v3/lease/grant", {"TTL": str(ttl)})
        return int(body["ID"]), int(body.get("TTL", 0))

    async def keepalive(self, lease: int) -> int:
        """Renew LEASE; returns its fresh TTL. EtcdLeaseNotFound if it already expired."""
        body = await self.call("/v3/lease/keepalive", {"ID": str(lease)})
        ttl = int(body.get("result", body).get("TTL", 0))
        if ttl <= 0:
            raise codec.EtcdLeaseNotFound(codec.GRPC_NOT_FOUND, f"lease {lease:x} expired or was revoked")
        return ttl

    async def revoke(self, lease: int) -> None:
        """Revoke LEASE now, deleting every key attached to it."""
        await self.call("/v3/lease/revoke", {"ID": str(lease)})

    # -- watches ---------------------------------------------------------------------
    def watch(self, key: bytes, range_end: bytes | None, on_events: Callable[[int, list[WatchEvent]], None],
              start_revision: int = 0) -> Watch:  # fmt: skip
        """Watch KEY (or the range) from START_REVISION on; ON_EVENTS(revision, events) for each batch.

        One streamed HTTP response per watch, read on the reactor (no thread).
        It is opened on the endpoint that answered last; if that stream breaks,
        DONE fails and the caller re-watches from the last revision it saw.
        """
        create: dict[str, Any] = codec.range_request(key, range_end)
        if start_revision:
            create["start_revision"] = str(start_revision)

        def on_line(line: bytes) -> None:
            revision, events, canceled = codec.parse_watch_line(line)
            if canceled:
                raise EtcdRequestError(codec.GRPC_FAILED_PRECONDITION, "etcd cancelled the watch (compacted?)")
            if events:
                on_events(revision, events)

        url = self.endpoints[self.current] + "/v3/watch"
        return Watch(self.transport.stream(url, codec.encode({"create_request": create}), on_line))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (defer.CancelledError, defer.TimeoutError, TxTimeoutError)):
        return "timed out"
    if isinstance(exc, (ResponseFailed, ResponseNeverReceived, RequestTransmissionFailed)):
        inner = [r.getErrorMessage() for r in exc.reasons]
        tls = any("SSL" in text or "certificate" in text for text in inner)
        return ("TLS failed: " if tls else "connection broke: ") + ", ".join(inner)
    return str(exc) or type(exc).__name__

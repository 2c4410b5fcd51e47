# Sans-IO half of the etcd client: what the JSON gateway (/v3/...) wants
# and gives back. Keys and values travel base64-encoded, int64 fields as
# decimal strings, and fields at their default value (false, 0, empty) are
# left out of responses, so every reader here supplies the default. Errors
# arrive as {"error", "code", "message"} with a gRPC status code; they map
# to typed exceptions here so callers never match on message text.
"""etcd v3 JSON gateway codec: request bodies, typed results, error mapping."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Literal

# A response body larger than this is refused before it is parsed: a range
# over 1000 sessions is ~0.4 MB; 16 MiB leaves room for a big farm while a
# misbehaving endpoint cannot make sessiond buffer without bound.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# One line of a streamed response (a watch event batch, a keepalive reply).
MAX_STREAM_LINE_BYTES = 4 * 1024 * 1024

# gRPC status codes the gateway reports (google.golang.org/grpc/codes).
GRPC_NOT_FOUND = 5
GRPC_FAILED_PRECONDITION = 9
GRPC_UNAVAILABLE = 14
GRPC_DEADLINE_EXCEEDED = 4
# Codes after which the same request may be sent to the next endpoint: the
# member could not serve it (no leader, stopping, overloaded). Every write
# this package makes is either idempotent or guarded by a compare, so a
# replay after an ambiguous failure cannot apply twice.
RETRY_ON_NEXT_ENDPOINT = frozenset({GRPC_UNAVAILABLE, GRPC_DEADLINE_EXCEEDED})

CompareTarget = Literal["VERSION", "CREATE", "MOD", "VALUE", "LEASE"]
CompareResult = Literal["EQUAL", "GREATER", "LESS", "NOT_EQUAL"]
_TARGET_FIELD = {"VERSION": "version", "CREATE": "create_revision", "MOD": "mod_revision", "VALUE": "value",
                 "LEASE": "lease"}  # fmt: skip


class EtcdError(Exception):
    """Base of every error the etcd client raises."""


class EtcdUnavailable(EtcdError):
    """No configured endpoint answered (refused, timed out, or had no leader)."""


class EtcdProtocolError(EtcdError):
    """An endpoint answered with something that is not the gateway's JSON."""


class EtcdRequestError(EtcdError):
    """etcd refused the request; CODE is the gRPC status code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"etcd error {code}: {message}")
        self.code = code
        self.message = message


class EtcdLeaseNotFound(EtcdRequestError):
    """The lease does not exist (it expired or was revoked)."""


def b64(data: bytes) -> str:
    """Base64 text, as the gateway wants for bytes fields."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    """Bytes from a gateway base64 field."""
    return base64.b64decode(text.encode("ascii"), validate=True)


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that selects every key starting with PREFIX."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"  # every key


@dataclass(frozen=True)
class KeyValue:
    """One key as etcd stores it."""

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


@dataclass(frozen=True)
class RangeResult:
    """The answer to a range: the keys and the store revision it was read at."""

    revision: int
    kvs: tuple[KeyValue, ...]
    count: int
    more: bool


@dataclass(frozen=True)
class TxnResult:
    """The answer to a transaction: which branch ran and what each op returned
    (a RangeResult for a range, the deleted count for a delete, None for a put)."""

    revision: int
    succeeded: bool
    responses: tuple[RangeResult | int | None, ...]


@dataclass(frozen=True)
class Compare:
    """One guard of a transaction: TARGET of KEY compared (RESULT) with VALUE."""

    key: bytes
    target: CompareTarget
    result: CompareResult
    value: int | bytes

    def to_json(self) -> dict[str, Any]:
        field = _TARGET_FIELD[self.target]
        value: Any = b64(self.value) if isinstance(self.value, bytes) else str(self.value)
        return {"key": b64(self.key), "target": self.target, "result": self.result, field: value}


def range_request(key: bytes, range_end: bytes | None = None, *, limit: int = 0, revision: int = 0) -> dict[str, Any]:
    """The body of a range (also the request_range of a txn op)."""
    body: dict[str, Any] = {"key": b64(key)}
    if range_end is not None:
        body["range_end"] = b64(range_end)
    if limit:
        body["limit"] = str(limit)
    if revision:
        body["revision"] = str(revision)
    return body


def put_request(key: bytes, value: bytes, lease: int = 0) -> dict[str, Any]:
    """The body of a put."""
    body: dict[str, Any] = {"key": b64(key), "value": b64(value)}
    if lease:
        body["lease"] = str(lease)
    return body


def delete_request(key: bytes, range_end: bytes | None = None) -> dict[str, Any]:
    """The body of a deleterange."""
    body: dict[str, Any] = {"key": b64(key)}
    if range_end is not None:
        body["range_end"] = b64(range_end)
    return body


def op_range(key: bytes, range_end: bytes | None = None) -> dict[str, Any]:
    """A range as a txn op."""
    return {"request_range": range_request(key, range_end)}


def op_put(key: bytes, value: bytes, lease: int = 0) -> dict[str, Any]:
    """A put as a txn op."""
    return {"request_put": put_request(key, value, lease)}


def op_delete(key: bytes, range_end: bytes | None = None) -> dict[str, Any]:
    """A delete as a txn op."""
    return {"request_delete_range": delete_request(key, range_end)}


def txn_request(compares: list[Compare], success: list[dict[str, Any]],
                failure: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """The body of a txn."""
    return {"compare": [c.to_json() for c in compares], "success": success, "failure": failure}


def encode(body: dict[str, Any]) -> bytes:
    """A request body as JSON bytes."""
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def decode(raw: bytes) -> dict[str, Any]:
    """A gateway response as a dict; raises the typed error it carries."""
    if len(raw) > MAX_RESPONSE_BYTES:
        raise EtcdProtocolError(f"etcd response of {len(raw)} bytes is over {MAX_RESPONSE_BYTES}")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EtcdProtocolError(f"etcd answered with something that is not JSON: {raw[:80]!r}") from exc
    if not isinstance(body, dict):
        raise EtcdProtocolError("etcd answered with JSON that is not an object")
    if "code" in body or "error" in body:
        raise request_error(body)
    return body


def request_error(body: dict[str, Any]) -> EtcdRequestError:
    """The typed exception for a gateway error object."""
    code = _int(body.get("code", 2))
    message = str(body.get("message") or body.get("error") or "unknown error")
    if code == GRPC_NOT_FOUND and "lease not found" in message:
        return EtcdLeaseNotFound(code, message)
    return EtcdRequestError(code, message)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise EtcdProtocolError(f"etcd sent {value!r} where an integer belongs") from exc


def revision_of(body: dict[str, Any]) -> int:
    """The store revision in a response header."""
    return _int(body.get("header", {}).get("revision", 0))


def parse_kv(item: dict[str, Any]) -> KeyValue:
    """One kv object of a response."""
    try:
        return KeyValue(key=unb64(item["key"]), value=unb64(item.get("value", "")),
                        create_revision=_int(item.get("create_revision", 0)),
                        mod_revision=_int(item.get("mod_revision", 0)), version=_int(item.get("version", 0)),
                        lease=_int(item.get("lease", 0)))  # fmt: skip
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise EtcdProtocolError(f"etcd sent a malformed key-value: {exc}") from exc


def parse_range(body: dict[str, Any], revision: int | None = None) -> RangeResult:
    """A range response (alone or inside a txn)."""
    kvs = tuple(parse_kv(item) for item in body.get("kvs", []))
    return RangeResult(revision=revision_of(body) if revision is None else revision, kvs=kvs,
                       count=_int(body.get("count", 0)), more=bool(body.get("more", False)))  # fmt: skip


def parse_txn(body: dict[str, Any]) -> TxnResult:
    """A txn response."""
    revision = revision_of(body)
    responses: list[RangeResult | int | None] = []
    for item in body.get("responses", []):
        if "response_range" in item:
            responses.append(parse_range(item["response_range"], revision))
        elif "response_delete_range" in item:
            responses.append(_int(item["response_delete_range"].get("deleted", 0)))
        else:
            responses.append(None)
    return TxnResult(revision=revision, succeeded=bool(body.get("succeeded", False)), responses=tuple(responses))


@dataclass(frozen=True)
class WatchEvent:
    """One change seen by a watch: a put (with the new value) or a delete."""

    kind: Literal["PUT", "DELETE"]
    kv: KeyValue


def parse_watch_line(line: bytes) -> tuple[int, list[WatchEvent], bool]:
    """One streamed watch response: (revision, events, canceled)."""
    body = decode(line)
    result = body.get("result", body)
    if not isinstance(result, dict):
        raise EtcdProtocolError("etcd watch line without a result object")
    events = [WatchEvent(kind="DELETE" if e.get("type") == "DELETE" else "PUT", kv=parse_kv(e.get("kv", {})))
              for e in result.get("events", [])]  # fmt: skip
    return revision_of(result), events, bool(result.get("canceled", False))


class LineSplitter:
    """Splits a streamed response into newline-terminated JSON lines, bounded."""

    def __init__(self, limit: int = MAX_STREAM_LINE_BYTES) -> None:
        self.limit = limit
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Complete lines in DATA (plus what was buffered); raises past the limit."""
        self._buffer += data
        lines: list[bytes] = []
        while True:
            cut = self._buffer.find(b"\n")
            if cut < 0:
                break
            line = bytes(self._buffer[:cut]).strip()
            del self._buffer[: cut + 1]
            if line:
                lines.append(line)
        if len(self._buffer) > self.limit:
            raise EtcdProtocolError(f"etcd stream line over {self.limit} bytes")
        return lines

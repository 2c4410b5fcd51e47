# Unit tests of sessiond/web.py with fakes: which files are served and with
# which headers, the cross-origin check on the WebSocket, HSTS only for a
# CA-issued certificate, and the adapter that runs a ClientHandler over a
# WebSocket (bytes out as binary messages, bytes in to dataReceived).
"""sessiond.web: static files, security headers, origin check, WebSocket adapter."""

from __future__ import annotations

import datetime
import os
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.python.failure import Failure
from twisted.web.test.requesthelper import DummyRequest
from wsproto.utilities import LocalProtocolError

from sessiond import web, web_socket
from sessiond.tls import ensure_host_certificate


def make_tree(root: Any) -> str:
    base = str(root)
    os.makedirs(os.path.join(base, "js"))
    os.makedirs(os.path.join(base, "test"))
    files = {"index.html": b"<html>", "js/app.js": b"export {}", "test/x.test.js": b"secret",
             "package.json": b"{}", "notes.txt": b"no"}  # fmt: skip
    for name, body in files.items():
        with open(os.path.join(base, name), "wb") as handle:
            handle.write(body)
    return base


def get(resource: web.WebClientResource, *path: bytes) -> tuple[DummyRequest, bytes]:
    request = DummyRequest(list(path))
    body = resource.render_GET(request)
    return request, body


def header(request: DummyRequest, name: bytes) -> bytes | None:
    return request.responseHeaders.getRawHeaders(name, [None])[0]


def test_only_client_files_are_loaded(tmp_path: Any) -> None:
    files = web.load_static(make_tree(tmp_path))
    assert sorted(files) == ["index.html", "js/app.js"]
    assert files["index.html"].no_store and not files["js/app.js"].no_store
    assert files["js/app.js"].content_type.startswith(b"text/javascript")


def test_installed_client_is_complete() -> None:
    files = web.load_static()
    for name in ("index.html", "css/app.css", "js/app.js", "js/protocol.js", "js/lz4.js", "js/palette.js",
                 "js/keysyms.js"):
        assert name in files, name
    assert not any(name.startswith("test/") for name in files)
    # No inline script: the CSP forbids it, so the page must not need it.
    assert b"<script>" not in files["index.html"].body and b"onclick=" not in files["index.html"].body


def test_index_has_security_headers_and_no_store(tmp_path: Any) -> None:
    resource = web.WebClientResource(web.load_static(make_tree(tmp_path)), hsts=False)
    request, body = get(resource)
    assert body == b"<html>"
    assert header(request, b"cache-control") == b"no-store"
    csp = header(request, b"content-security-policy") or b""
    assert b"script-src 'self'" in csp and b"frame-ancestors 'none'" in csp and b"unsafe-inline" not in csp
    assert header(request, b"x-frame-options") == b"DENY"
    assert header(request, b"x-content-type-options") == b"nosniff"
    assert header(request, b"strict-transport-security") is None


def test_hsts_when_configured(tmp_path: Any) -> None:
    resource = web.WebClientResource(web.load_static(make_tree(tmp_path)), hsts=True)
    request, _ = get(resource, b"js", b"app.js")
    assert header(request, b"strict-transport-security") == web.HSTS
    assert header(request, b"cache-control") == b"no-cache"


def test_unknown_and_private_paths_are_404(tmp_path: Any) -> None:
    resource = web.WebClientResource(web.load_static(make_tree(tmp_path)), hsts=False)
    for path in ([b"test", b"x.test.js"], [b"package.json"], [b"..", b"index.html"], [b"notes.txt"]):
        request, body = get(resource, *path)
        assert request.responseCode == 404, path
        assert body == b"not found\n"


def test_files_are_read_with_the_first_request(tmp_path: Any) -> None:
    # An idle daemon does not hold the client's files (issue 15); the first GET reads them, once.
    reads: list[str] = []
    tree = make_tree(tmp_path)

    def load() -> dict[str, web.StaticFile]:
        reads.append(tree)
        return web.load_static(tree)

    resource = web.WebClientResource(load, hsts=False)
    assert reads == []
    assert get(resource)[1] == b"<html>"
    assert get(resource, b"js", b"app.js")[1] == b"export {}"
    assert reads == [tree]


def origin_request(origin: bytes | None, host: bytes = b"example.org:4443") -> DummyRequest:
    request = DummyRequest([])
    request.requestHeaders.setRawHeaders(b"host", [host])
    if origin is not None:
        request.requestHeaders.setRawHeaders(b"origin", [origin])
    return request


def test_same_origin_check() -> None:
    assert web.same_origin(origin_request(b"https://example.org:4443"))
    assert web.same_origin(origin_request(b"https://EXAMPLE.org:4443"))
    assert web.same_origin(origin_request(None))  # not a browser
    assert not web.same_origin(origin_request(b"https://evil.example"))
    assert not web.same_origin(origin_request(b"http://example.org:4443"))
    assert not web.same_origin(origin_request(b"https://example.org:4444"))
    assert not web.same_origin(origin_request(b"null"))


def test_cross_origin_upgrade_is_refused() -> None:
    resource = web_socket.SessionSocketResource(gateway=None, hsts=False)  # type: ignore[arg-type]
    request = origin_request(b"https://evil.example")
    assert resource.render_GET(request) == b"cross-origin WebSocket refused\n"
    assert request.responseCode == 403


def test_generated_certificate_is_self_signed_and_a_ca_issued_one_is_not(tmp_path: Any) -> None:
    _key, cert_path = ensure_host_certificate(str(tmp_path))
    assert web.is_self_signed(cert_path)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sessiond.example")]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Example CA")]))
            .public_key(key.public_key()).serial_number(2)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(ca_key, hashes.SHA256()))  # fmt: skip
    path = os.path.join(str(tmp_path), "issued.pem")
    with open(path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    assert not web.is_self_signed(path)


class FakeWebSocket:
    """Records what the adapter does to the WebSocket transport."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed: list[int] = []
        self.producer: Any = None

    def sendBytesMessage(self, data: bytes) -> None:  # noqa: N802
        self.sent.append(data)

    def loseConnection(self, code: int = 1000) -> None:  # noqa: N802
        self.closed.append(code)

    def attachProducer(self, producer: Any) -> None:  # noqa: N802
        self.producer = producer

    def detachProducer(self) -> None:  # noqa: N802
        self.producer = None


class FakeTransport:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.timeout: Any = "unset"

    def getPeer(self) -> str:  # noqa: N802
        return "peer"

    def unregisterProducer(self) -> None:  # noqa: N802
        self.calls.append("unregister")


class FakeChannel:
    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.timeout: Any = "default"

    def setTimeout(self, value: Any) -> None:  # noqa: N802
        self.timeout = value


class FakeHandler:
    """Stands in for the gateway ClientHandler."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.received: list[bytes] = []
        self.lost: list[Failure] = []

    def makeConnection(self, transport: Any) -> None:  # noqa: N802
        self.transport = transport
        transport.registerProducer(self, True)
        transport.write(b"\x00" * 8 + b"hello")

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.received.append(data)

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802
        self.lost.append(reason)


def test_bridge_runs_a_handler_over_the_websocket() -> None:
    handler, ws, request = FakeHandler(), FakeWebSocket(), DummyRequest([])
    request.channel = FakeChannel()
    bridge = web_socket.WebSocketBridge(handler, request)  # type: ignore[arg-type]
    bridge.negotiationStarted(ws)  # type: ignore[arg-type]
    bridge.negotiationFinished()
    assert request.channel.timeout is None, "the HTTP idle timeout must be off"
    assert ws.sent == [b"\x00" * 8 + b"hello"], "one write = one binary message"
    assert ws.producer is handler and request.channel.transport.calls == ["unregister"]
    assert handler.transport.getPeer() == "peer"
    bridge.bytesMessageReceived(bytearray(b"frames"))
    assert handler.received == [b"frames"]
    handler.transport.write(b"")
    assert len(ws.sent) == 1, "empty writes send no message"
    handler.transport.loseConnection()
    handler.transport.loseConnection()
    assert ws.closed == [1000]
    handler.transport.write(b"late")
    assert len(ws.sent) == 1, "nothing is sent after loseConnection"
    bridge.connectionLost(Failure(ConnectionError("gone")))
    assert len(handler.lost) == 1


def test_text_messages_close_the_websocket() -> None:
    handler, ws, request = FakeHandler(), FakeWebSocket(), DummyRequest([])
    request.channel = FakeChannel()
    bridge = web_socket.WebSocketBridge(handler, request)  # type: ignore[arg-type]
    bridge.negotiationStarted(ws)  # type: ignore[arg-type]
    bridge.negotiationFinished()
    bridge.textMessageReceived("hello")
    assert ws.closed == [1003]
    assert handler.received == []


class ClosedWebSocket(FakeWebSocket):
    """wsproto after the browser's close frame: sending raises."""

    def sendBytesMessage(self, data: bytes) -> None:  # noqa: N802
        raise LocalProtocolError("cannot be sent in state ConnectionState.CLOSED")


def test_writes_after_the_browser_closed_are_dropped_not_raised() -> None:
    # Regression: the relay writes to the client from the agent link's event
    # handler; an exception here ended the user's session on a page reload.
    ws = ClosedWebSocket()
    stream = web_socket.WebSocketStream(ws, FakeTransport())  # type: ignore[arg-type]
    stream.write(b"frame")
    assert stream.disconnecting
    stream.write(b"frame")

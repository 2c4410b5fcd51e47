# The HTTPS side for the HTML5 client: its static files with security
# headers, and the WebSocket endpoint that carries the native protocol.
#
# Why this shape: browsers cannot choose the ALPN id "sessiond/1", so they land
# on the HTTP/1.1 side of the shared TLS port (sessiond/portmux.py). There the
# WebSocket at /ws carries exactly the frames of docs/protocol.md in binary
# messages, each WebSocket driving the very same gateway ClientHandler as a
# native TLS connection (sessiond/web_socket.py, imported with the first /ws
# request so that an idle daemon does not carry wsproto and h11). The static
# files are read once, with the first request for /web/ (a closed set of
# names, so no path from a URL ever reaches the file system; ~0.2 MiB a
# daemon no browser has used does not hold). Whether to send HSTS (only with
# a CA-issued certificate) is decided with the first request too: it parses
# the certificate with cryptography's x509, whose Rust code would otherwise
# stay resident in every idle daemon (~0.7 MiB, sessiond/tls.py).
"""Web client resources: static files, security headers, the /ws bridge."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from cryptography import x509
from twisted.internet import protocol
from twisted.web import resource

from protocol.limits import HEADER_SIZE, MAX_FRAME_PAYLOAD

# Directory of the installed web client (client/web, next to client/__init__.py).
WEB_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "client", "web")
# What we serve, by extension; anything else in client/web (tests, package.json) is not served.
CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
    ".ico": b"image/x-icon",
}
# Subdirectories of client/web that are never served.
PRIVATE_DIRS = frozenset({"test", "node_modules"})
# Largest static file we load; the client is a few small modules.
MAX_STATIC_FILE = 1024 * 1024
# Scripts and styles only from our origin (no inline script); icons arrive as data: URLs;
# the WebSocket goes to our own origin; nobody may frame us.
CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# HSTS lifetime when a CA-issued certificate is configured (one year).
HSTS = b"max-age=31536000"
INDEX = "index.html"
# Longest WebSocket message (all its fragments): one frame header + the largest payload.
MAX_WS_MESSAGE = HEADER_SIZE + MAX_FRAME_PAYLOAD
# RFC 6455 close codes we send.
WS_UNSUPPORTED_DATA = 1003
WS_MESSAGE_TOO_BIG = 1009


@dataclass(frozen=True)
class StaticFile:
    """One file of the web client, read at start."""

    body: bytes
    content_type: bytes
    no_store: bool


def load_static(directory: str = WEB_DIR) -> dict[str, StaticFile]:
    """Read the servable files under DIRECTORY into {url path: StaticFile}."""
    files: dict[str, StaticFile] = {}
    for base, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in PRIVATE_DIRS and not d.startswith("."))
        for name in sorted(names):
            content_type = CONTENT_TYPES.get(os.path.splitext(name)[1])
            path = os.path.join(base, name)
            if content_type is None or os.path.getsize(path) > MAX_STATIC_FILE:
                continue
            with open(path, "rb") as handle:
                body = handle.read()
            rel = os.path.relpath(path, directory).replace(os.sep, "/")
            files[rel] = StaticFile(body, content_type, no_store=rel == INDEX)
    return files


def is_self_signed(cert_path: str) -> bool:
    """True if the certificate at CERT_PATH is its own issuer (sessiond's generated one)."""
    with open(cert_path, "rb") as handle:
        cert = x509.load_pem_x509_certificate(handle.read())
    return cert.issuer == cert.subject


def set_security_headers(request: Any, hsts: bool) -> None:
    """Headers on every web client response."""
    request.setHeader(b"content-security-policy", CSP)
    request.setHeader(b"x-frame-options", b"DENY")
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"no-referrer")
    request.setHeader(b"cross-origin-opener-policy", b"same-origin")
    if hsts:
        request.setHeader(b"strict-transport-security", HSTS)


class WebClientResource(resource.Resource):
    """/web/...: the client's files from memory; /web/ is the single-page app.

    FILES is the files, or a function returning them, called with the first request;
    HSTS whether to send Strict-Transport-Security, or a function deciding it (likewise).
    """

    isLeaf = True  # noqa: N815 - Twisted's Resource attribute

    def __init__(self, files: dict[str, StaticFile] | Callable[[], dict[str, StaticFile]],
                 hsts: bool | Callable[[], bool]) -> None:  # fmt: skip
        super().__init__()
        self._files = files
        self._hsts = hsts

    @property
    def hsts(self) -> bool:
        """Whether responses carry HSTS, decided on first use."""
        if callable(self._hsts):
            self._hsts = self._hsts()
        return self._hsts

    @property
    def files(self) -> dict[str, StaticFile]:
        """The servable files, read on first use."""
        if callable(self._files):
            self._files = self._files()
        return self._files

    def render_GET(self, request: Any) -> bytes:  # noqa: N802 - twisted.web name
        set_security_headers(request, self.hsts)
        rel = "/".join(p.decode("utf-8", "replace") for p in request.postpath) or INDEX
        found = self.files.get(rel)
        if found is None:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"not found\n"
        request.setHeader(b"content-type", found.content_type)
        # The login page is never stored; the modules are revalidated so an upgrade shows at once.
        request.setHeader(b"cache-control", b"no-store" if found.no_store else b"no-cache")
        return found.body

    render_HEAD = render_GET  # noqa: N815 - Twisted's method name


class RedirectToClient(resource.Resource):
    """/ sends browsers to the web client."""

    isLeaf = True  # noqa: N815 - Twisted's Resource attribute

    def render_GET(self, request: Any) -> bytes:  # noqa: N802
        request.setResponseCode(302)
        request.setHeader(b"location", b"/web/")
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"see /web/\n"


def same_origin(request: Any) -> bool:
    """True unless the request carries an Origin that is not this server (cross-site WebSocket hijacking)."""
    origin = request.getHeader(b"origin")
    if origin is None:
        return True  # not a browser; it authenticates like any native client
    host = (request.getHeader(b"host") or b"").decode("latin-1").lower()
    parts = urlsplit(origin.decode("latin-1"))
    return parts.scheme == "https" and parts.netloc.lower() == host


class LazySocketResource(resource.Resource):
    """/ws until its first request: the WebSocket stack (twisted.web.websocket,
    wsproto, h11; ~2 MiB in the daemon) is imported then, not at start, so a
    daemon no browser has used does not carry it (sessiond/web_socket.py)."""

    isLeaf = True  # noqa: N815 - twisted.web name

    def __init__(self, gateway: protocol.Factory, hsts: Callable[[], bool]) -> None:
        super().__init__()
        self.gateway = gateway
        self.hsts = hsts
        self._real: resource.Resource | None = None

    def render(self, request: Any) -> Any:
        """Every method goes to the real SessionSocketResource, built on first use."""
        if self._real is None:
            from sessiond.web_socket import SessionSocketResource

            self._real = SessionSocketResource(self.gateway, self.hsts())
        return self._real.render(request)


def install_web_client(root: resource.Resource, gateway: protocol.Factory, cert_path: str,
                       directory: str = WEB_DIR) -> None:  # fmt: skip
    """Mount /, /web/ and /ws on ROOT (the Site root that also serves /admin and /metrics)."""
    hsts = functools.cache(lambda: not is_self_signed(cert_path))  # with the first request (see the header)
    root.putChild(b"", RedirectToClient())
    root.putChild(b"web", WebClientResource(lambda: load_static(directory), hsts))
    root.putChild(b"ws", LazySocketResource(gateway, hsts))

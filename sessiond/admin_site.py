# The TLS port's HTTP site, with its request bodies judged before they are read.
#
# Request bodies: Twisted reads a whole body (into a temporary file when it is
# chunked or large) before any resource sees the request, so an anonymous
# peer could make the root daemon store 64 MiB before its token was checked.
# GuardedRequest decides from the headers alone, before the body: /admin and
# /metrics without the token get 401, and any body over MAX_REQUEST_BODY
# (declared or counted as chunks arrive) gets 413; then the connection closes.
#
# Why a module of its own: twisted.web.server (with twisted.spread, hyperlink
# and the template machinery it imports, ~2 MiB of the daemon) is needed only
# once someone speaks HTTP on the port (the web client, the admin API,
# metrics). sessiond/daemon.py builds the site through SiteOnFirstUse, so a
# daemon that only native clients use never imports it.
"""GuardedRequest, GuardedChannel and GuardedSite."""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import unquote_to_bytes

from twisted.logger import Logger
from twisted.web import http, resource, server

from sessiond.admin import token_matches

log = Logger()

# Largest HTTP request body on the TLS port: the admin API takes no body and
# nothing else there accepts uploads.
MAX_REQUEST_BODY = 4 * 1024
# Seconds a refused connection may take to read our answer before it is cut.
REFUSE_LINGER = 2.0
# First path segments (as twisted.web routes them) that need the admin token.
TOKEN_ROOTS = frozenset({b"admin", b"metrics"})


def first_segment(raw_path: bytes) -> bytes:
    """The first segment of a request target, unquoted the way twisted.web routes it
    (an absolute-form target "https://host/admin/..." counts by its path)."""
    path = raw_path.split(b"?", 1)[0]
    if b"://" in path:
        path = b"/" + path.split(b"://", 1)[1].partition(b"/")[2]
    return unquote_to_bytes(path.split(b"/")[1]) if path.count(b"/") else b""


class GuardedRequest(server.Request):
    """A request whose body is judged from the headers before it is read."""

    refused = False
    _body_bytes = 0

    def gotLength(self, length: int | None) -> None:  # noqa: N802 - Twisted name
        raw_path = getattr(self.channel, "_path", b"") or b""  # known once the headers are in
        token = getattr(self.channel.site, "admin_token", None)
        has_body = length is None or length > 0
        if has_body and token is not None and first_segment(raw_path) in TOKEN_ROOTS and not token_matches(
                self.requestHeaders.getRawHeaders(b"authorization", [None])[0], token):  # fmt: skip
            self._refuse(401, b"Unauthorized", b"www-authenticate: Bearer realm=\"sessiond admin\"\r\n")
        elif length is not None and length > MAX_REQUEST_BODY:
            self._refuse(413, b"Content Too Large")
        # Never a temporary file: the refused read nothing, the rest at most MAX_REQUEST_BODY.
        self.content = io.BytesIO()

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802
        if self.refused:
            return
        self._body_bytes += len(data)
        if self._body_bytes > MAX_REQUEST_BODY:
            self._refuse(413, b"Content Too Large")
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:  # noqa: N802
        if not self.refused:
            super().requestReceived(command, path, version)

    def _refuse(self, code: int, phrase: bytes, extra: bytes = b"") -> None:
        self.refused = True
        log.info("HTTP request refused before its body: {code}", code=code)
        channel = self.channel
        channel.transport.write(b"HTTP/1.1 %d %s\r\n%scontent-length: 0\r\nconnection: close\r\n\r\n"
                                % (code, phrase, extra))  # fmt: skip
        transport = channel.transport
        channel.loseConnection()
        # TLS waits for the peer's close_notify; a peer that keeps sending is cut.
        channel.callLater(REFUSE_LINGER, _abort, transport)


def _abort(transport: Any) -> None:
    try:
        transport.abortConnection()
    except Exception:  # noqa: BLE001 - already gone
        pass


class GuardedChannel(http.HTTPChannel):
    """HTTPChannel that parses nothing once it is closing.

    Found by tests/fuzz (admin_http): after a malformed request line Twisted
    answers 400 and closes, but over TLS more reads still arrive, and an
    empty line then ended "the headers" of no request (AttributeError in
    allHeadersReceived, logged as an unhandled error).
    """

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted name
        if self.transport is not None and self.transport.disconnecting:
            return
        super().dataReceived(data)


class GuardedSite(server.Site):
    """The TLS port's HTTP side: GuardedChannels and GuardedRequests, no tracebacks."""

    protocol = GuardedChannel
    requestFactory = GuardedRequest  # noqa: N815 - Twisted name
    displayTracebacks = False  # noqa: N815 - Twisted name

    def __init__(self, root: resource.Resource, admin_token: str) -> None:
        super().__init__(root)
        self.admin_token = admin_token

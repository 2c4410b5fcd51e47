# HTTP request bodies on the TLS port are judged from the headers before they
# are read (issue 12 item 3), through Twisted's real HTTPChannel and the
# GuardedSite: an anonymous POST to /admin/ gets 401 at once and its chunked
# body is never stored; bodies over MAX_REQUEST_BODY get 413, declared or
# counted as chunks arrive; an authorized small request still works.
"""sessiond.admin_site.GuardedSite: 401/413 before the body."""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import StringTransport
from twisted.web import resource

from sessiond.admin_site import MAX_REQUEST_BODY, GuardedRequest, GuardedSite, first_segment

TOKEN = "s3cret-token"


class Recorder(resource.Resource):
    isLeaf = True  # noqa: N815 - twisted.web name

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    def render_POST(self, request: Any) -> bytes:  # noqa: N802
        self.bodies.append(request.content.read())
        return b"done"

    render_GET = render_POST  # noqa: N815 - twisted.web name


def connect() -> tuple[Any, StringTransport, Recorder]:
    root = Recorder()
    site = GuardedSite(root, TOKEN)
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport, root


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def test_anonymous_chunked_post_to_admin_is_refused_before_its_body() -> None:
    channel, transport, root = connect()
    channel.dataReceived(b"POST /admin/sessions/x/logoff HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 401 "), "answered from the headers alone"
    assert transport.disconnecting
    request = getattr(channel, "_channel", channel).requests[-1]
    for _ in range(1024):  # 64 MiB of chunks
        channel.dataReceived(chunk(b"\0" * 65536))
    assert request.content.getvalue() == b"", "nothing of the body was kept"
    assert root.bodies == []


def test_metrics_is_guarded_too_and_a_wrong_token_is_no_token() -> None:
    channel, transport, _ = connect()
    channel.dataReceived(b"POST /metrics HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer nope\r\n"
                         b"Content-Length: 10\r\n\r\n")  # fmt: skip
    assert transport.value().startswith(b"HTTP/1.1 401 ")


def test_declared_oversize_body_is_413_even_with_the_token() -> None:
    channel, transport, root = connect()
    channel.dataReceived(b"POST /admin/x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\n"
                         b"Content-Length: %d\r\n\r\n" % (TOKEN.encode(), MAX_REQUEST_BODY + 1))  # fmt: skip
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    channel.dataReceived(b"x" * (MAX_REQUEST_BODY + 1))
    assert root.bodies == []


def test_chunked_body_crossing_the_bound_is_413() -> None:
    channel, transport, root = connect()
    channel.dataReceived(b"POST /web/ HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert transport.value() == b"", "not refused while within the bound"
    channel.dataReceived(chunk(b"a" * MAX_REQUEST_BODY))
    assert transport.value() == b""
    channel.dataReceived(chunk(b"a"))
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    channel.dataReceived(chunk(b"a" * 1000) + b"0\r\n\r\n")
    assert root.bodies == []


def test_authorized_small_body_and_plain_gets_still_work() -> None:
    channel, transport, root = connect()
    channel.dataReceived(b"POST /admin/x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\n"
                         b"Content-Length: 5\r\n\r\nhello" % TOKEN.encode())  # fmt: skip
    assert root.bodies == [b"hello"] and b" 200 " in transport.value()
    channel2, transport2, root2 = connect()
    channel2.dataReceived(b"GET /web/ HTTP/1.1\r\nHost: h\r\n\r\n")
    assert root2.bodies == [b""] and b" 200 " in transport2.value()


def test_the_site_makes_guarded_requests() -> None:
    assert GuardedSite(Recorder(), TOKEN).requestFactory is GuardedRequest


def test_the_token_check_sees_paths_as_twisted_routes_them() -> None:
    assert first_segment(b"/admin/sessions?x=1") == b"admin"
    assert first_segment(b"/%61dmin/sessions") == b"admin"
    assert first_segment(b"https://host:1/metrics") == b"metrics"
    assert first_segment(b"/web/") == b"web" and first_segment(b"*") == b""
    # Found by tests/fuzz (admin_http): non-ASCII bytes in the target raised
    # UnicodeDecodeError out of gotLength.
    assert first_segment(b"/admin/\x8d\x9a") == b"admin"
    channel, transport, _ = connect()
    channel.dataReceived(b"POST /%61dmin/\x8d HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 401 ")


def test_nothing_is_parsed_after_a_bad_request_line() -> None:
    # Found by tests/fuzz (admin_http): a bad request line got 400 and a close,
    # but a later read with an empty line raised AttributeError in Twisted.
    channel, transport, _ = connect()
    channel.dataReceived(b"GET\x01 /admin/x Authorization: Bearer t\r\n")
    assert transport.value().startswith(b"HTTP/1.1 400 ")
    channel.dataReceived(b"\r\n")

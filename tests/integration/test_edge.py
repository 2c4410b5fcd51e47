# The edge before login, against the installed sessiond over real TLS
# (issue 12): a flood of idle and half-handshaken connections from one address
# or from all over 127.0.0.0/8 does not stop a real user's svclient login, and
# the pre-auth timer, which runs from accept, closes the flood; a WebSocket
# message of endless fragments is closed with 1009; an unauthenticated
# chunked POST to /admin/ is refused before its body is read.
"""Integration: pre-auth flood, WebSocket reassembly bound, admin body refusal."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flood import close_all, closed_by_server, open_flood, rss_kib, still_open
from protocol.frames import FrameDecoder
from protocol.messages import Auth, Ping
from svtest import (HELLO, Server, TestUser, create_user, frame, remove_user, start_sessiond, stop_sessiond, svclient,
                    tls_connect)  # fmt: skip
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Request

pytestmark = pytest.mark.integration

GRACE = 4.0
IDLE, SLOW_TLS = 500, 50


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestUser]:
    made = create_user("edgeu", str(tmp_path_factory.mktemp("users")))
    yield made
    remove_user(made.name)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Caps above the flood, so it is the grace timer that has to end it.
    started = start_sessiond(str(tmp_path_factory.mktemp("edge")), server=(
        f"login_grace = {GRACE}\nmax_unauthenticated = 2000\nmax_unauthenticated_per_source = 1000\n"))
    yield started
    stop_sessiond(started)


def login_seconds(server: Server, user: TestUser) -> float:
    started = time.monotonic()
    done = svclient(server, user, "login", password_file=user.password_file, timeout=60)
    assert done.returncode == 0, done.stderr
    return time.monotonic() - started


@pytest.mark.parametrize("spread", [False, True], ids=["one-address", "many-addresses"])
def test_a_flood_of_idle_connections_does_not_stop_a_login(server: Server, user: TestUser, spread: bool) -> None:
    login_seconds(server, user)  # the session exists from here on
    normal = login_seconds(server, user)
    rss_before = rss_kib(server.process.pid)
    socks = open_flood(server.host, server.port, IDLE, SLOW_TLS, spread)
    try:
        time.sleep(0.5)
        assert still_open(socks) == len(socks), "the flood is in place while the user logs in"
        flooded = login_seconds(server, user)
        rss_flood = rss_kib(server.process.pid)
        print(f"login {normal:.2f}s normal, {flooded:.2f}s under flood; RSS {rss_before} -> {rss_flood} KiB")
        assert flooded < normal + 2.0
        assert closed_by_server(socks, GRACE + 10) == len(socks), "the pre-auth timer ends every idle connection"
        assert rss_flood - rss_before < 64 * 1024
    finally:
        close_all(socks)
    assert server.alive()


def pong_after_grace(send: Any, recv: Any, user: TestUser) -> bool:
    """Log in over SEND/RECV, outlive the grace, and check the connection still answers PING."""
    decoder = FrameDecoder()
    send(HELLO + frame(0, Auth("password", user=user.name, password=user.password)))
    deadline = time.monotonic() + 30
    authed = False
    while not authed and time.monotonic() < deadline:
        for f in decoder.feed(recv()):
            if f.channel == 0 and f.type == 0x03:
                assert json.loads(f.payload)["ok"], f.payload
                authed = True
    time.sleep(GRACE + 1.5)
    send(frame(0, Ping(token=42)))
    while time.monotonic() < deadline:
        data = recv()
        if not data:
            return False
        for f in decoder.feed(data):
            if f.channel == 0 and f.type == 0x0E:
                return True
    return False


def test_a_logged_in_connection_outlives_the_grace(server: Server, user: TestUser) -> None:
    sock = tls_connect(server)
    try:
        assert pong_after_grace(sock.sendall, lambda: sock.recv(65536), user), "native: cut by the pre-auth timer"
    finally:
        sock.close()


def test_a_logged_in_websocket_outlives_the_grace(server: Server, user: TestUser) -> None:
    sock, ws = websocket(server)

    def recv() -> bytes:
        data = sock.recv(65536)
        ws.receive_data(data or None)
        return b"".join(bytes(e.data) for e in ws.events() if isinstance(e, BytesMessage)) if data else b""

    try:
        assert pong_after_grace(lambda b: sock.sendall(ws.send(BytesMessage(b))), recv, user), "WebSocket: cut"
    finally:
        sock.close()


def test_the_per_source_cap_holds_and_the_newest_gets_in(tmp_path: object, user: TestUser) -> None:
    started = start_sessiond(str(tmp_path), server="max_unauthenticated_per_source = 8\n")
    try:
        socks = open_flood(started.host, started.port, 40, 0, spread=False)
        try:
            time.sleep(0.5)
            assert still_open(socks) <= 8
            assert login_seconds(started, user) < 30
        finally:
            close_all(socks)
    finally:
        stop_sessiond(started)


def websocket(server: Server) -> tuple[ssl.SSLSocket, WSConnection]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sock = context.wrap_socket(socket.create_connection((server.host, server.port), timeout=10))
    ws = WSConnection(ConnectionType.CLIENT)
    sock.sendall(ws.send(Request(host=server.address, target="/ws")))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ws.receive_data(sock.recv(65536))
        if any(isinstance(e, AcceptConnection) for e in ws.events()):
            return sock, ws
    raise AssertionError("no WebSocket upgrade")


def test_endless_websocket_fragments_are_closed_with_1009(server: Server) -> None:
    from sessiond.web import MAX_WS_MESSAGE, WS_MESSAGE_TOO_BIG

    sock, ws = websocket(server)
    rss_before = rss_kib(server.process.pid)
    # HELLO, then valid PINGs as FIN=0 fragments of one message: every frame
    # is fine for the decoder (a big frame is refused from its header before
    # login), so only the message bound can end this.
    pings = b"".join(frame(0, Ping(token=n)) for n in range(3000))
    sent = 0
    code = None

    def drain() -> None:
        nonlocal code
        while code is None:
            try:
                data = sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                return
            ws.receive_data(data or None)
            for event in ws.events():
                if isinstance(event, CloseConnection):
                    code = event.code
            if not data:
                return

    try:
        sock.sendall(ws.send(BytesMessage(HELLO, message_finished=False)))
        while sent < MAX_WS_MESSAGE + 8 * len(pings) and code is None:
            sock.sendall(ws.send(BytesMessage(pings, message_finished=False)))
            sent += len(pings)
            sock.setblocking(False)
            try:
                drain()
            finally:
                sock.setblocking(True)
        sock.settimeout(10)
        drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        sock.close()
    assert code == WS_MESSAGE_TOO_BIG, f"closed with {code} after {sent} bytes"
    assert server.alive()
    assert rss_kib(server.process.pid) - rss_before < 32 * 1024


def test_anonymous_chunked_admin_post_is_refused_before_the_body(server: Server) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sock = context.wrap_socket(socket.create_connection((server.host, server.port), timeout=10))
    rss_before = rss_kib(server.process.pid)
    sock.sendall(b"POST /admin/sessions/x/logoff HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 401 "), "refused from the headers, before any body byte"
    chunk = b"%x\r\n%s\r\n" % (65536, b"\0" * 65536)
    sent = 0
    try:
        for _ in range(1024):  # 64 MiB
            sock.sendall(chunk)
            sent += len(chunk)
    except (OSError, ssl.SSLError):
        pass  # cut by the server
    finally:
        sock.close()
    grown = rss_kib(server.process.pid) - rss_before
    print(f"sent {sent >> 20} MiB of body after the 401; sessiond RSS grew {grown} KiB")
    assert grown < 8 * 1024
    assert server.alive()

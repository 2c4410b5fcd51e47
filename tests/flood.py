# Pre-login floods against a running sessiond, for the integration test and
# bench/bench_preauth.py (issue 12 item 2): idle TCP connections that never
# speak, and connections stuck in the middle of the TLS handshake (half a
# ClientHello), from one address or spread over 127.0.0.0/8. All traffic goes
# to the loopback server the caller started; the helpers only open sockets.
"""Idle and slow-TLS connection floods, and sessiond's RSS."""

from __future__ import annotations

import select
import socket
import ssl
import time

from protocol.limits import ALPN


def source_address(index: int, spread: bool) -> str:
    """127.0.0.1, or one of many 127.x.y.z addresses when SPREAD."""
    if not spread:
        return "127.0.0.1"
    return f"127.{1 + index // 250 % 250}.{1 + index % 250}.{1 + index // 62500}"


def client_hello() -> bytes:
    """The first flight of a real TLS 1.3 client, made in memory."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols([ALPN])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def open_flood(host: str, port: int, idle: int, slow_tls: int, spread: bool) -> list[socket.socket]:
    """IDLE silent connections and SLOW_TLS ones that sent half a ClientHello."""
    hello = client_hello()
    socks: list[socket.socket] = []
    for index in range(idle + slow_tls):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((source_address(index, spread), 0))
        sock.settimeout(10)
        sock.connect((host, port))
        if index >= idle:
            sock.sendall(hello[: len(hello) // 2])
        sock.setblocking(False)
        socks.append(sock)
    return socks


def closed_by_server(socks: list[socket.socket], timeout: float) -> int:
    """Wait up to TIMEOUT for the server to end the connections; return how many it ended."""
    poller = select.poll()
    by_fd = {s.fileno(): s for s in socks}
    for fd in by_fd:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    ended: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(ended) < len(by_fd) and time.monotonic() < deadline:
        for fd, _events in poller.poll(200):
            try:
                data = by_fd[fd].recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                ended.add(fd)
                poller.unregister(fd)
    return len(ended)


def still_open(socks: list[socket.socket]) -> int:
    """Connections the server has not ended (checked without waiting)."""
    count = 0
    for sock in socks:
        try:
            count += sock.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            count += 1
        except OSError:
            pass
    return count


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def rss_kib(pid: int) -> int:
    """Resident set size of PID in KiB (from /proc)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

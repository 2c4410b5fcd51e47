# The daemon's TLS port, bound and listening before the daemon imports its
# code (issue 15: start -> first client pixels).
#
# Why: most of the daemon's start is imports (Twisted, pyOpenSSL and
# cryptography, our modules: about 0.2 s). Once a socket listens, the kernel
# completes TCP handshakes and queues the connections (up to the backlog)
# until the process accepts them. So `sessiond run` binds its port right
# after reading its configuration, with the socket module alone, and the
# reactor adopts that socket (adopt_tls below) once the service tree is
# built. A client started together with the daemon, or one reconnecting
# while sessiond restarts, waits in the queue instead of being refused
# (ECONNREFUSED, then its retry back-off), and its TLS handshake runs as
# soon as the reactor does; its start overlaps the daemon's instead of
# following it. This is what socket activation (systemd, inetd) does.
# "sessiond listening on ..." is still printed once the daemon serves.
#
# Nothing here imports Twisted at module level: that is the point.
"""bind_listener(): the TLS port's socket before the imports; adopt_tls(): the reactor takes it."""

from __future__ import annotations

import socket
from typing import Any

# Listen backlog of the TLS port: a burst of connects (a flood, or many users
# at 9 am) waits in the kernel instead of being dropped while the reactor is
# busy; Twisted's default of 50 made a real user's SYN wait behind a flood.
# It also holds the clients that connect while the daemon is still starting.
LISTEN_BACKLOG = 1024


class ListenError(Exception):
    """The port cannot be bound: WHERE (host, or the port if no host) and the OSError."""

    def __init__(self, where: str | int, error: OSError) -> None:
        super().__init__(f"{where}: {error}")
        self.where = where
        self.error = error


def address_family(host: str) -> socket.AddressFamily:
    """AF_INET6 for an IPv6 literal, else AF_INET (as Twisted's listenTCP chooses)."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_listener(host: str, port: int, backlog: int) -> socket.socket:
    """A non-blocking, close-on-exec TCP socket listening on HOST:PORT with BACKLOG
    (SO_REUSEADDR, as Twisted sets it); ListenError if it cannot be bound."""
    sock = socket.socket(address_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ListenError(host if host else port, exc) from None
    return sock


def adopt_tls(reactor: Any, sock: socket.socket, factory: Any, context: Any) -> Any:
    """The reactor's listening port on SOCK speaking TLS (CONTEXT) to FACTORY, as
    reactor.listenSSL would make it; SOCK itself is closed (the port holds a duplicate)."""
    from twisted.protocols.tls import TLSMemoryBIOFactory

    try:
        port = reactor.adoptStreamPort(sock.fileno(), sock.family, TLSMemoryBIOFactory(context, False, factory))
    finally:
        sock.close()
    port._type = "TLS"  # its log lines read "(TLS)", as listenSSL's do
    return port

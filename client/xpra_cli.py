# `svclient xpra`: attach the user's own xpra client to an xpra session
# (docs/xpra.md). svclient logs in as for every command, launches the app
# if asked, opens the xpra channel and bridges it to a private local Unix
# socket (a fresh 0700 directory, a 0600 socket) on which it runs
# `xpra attach socket://PATH`. The bridge never looks at the bytes.
#
# Why a local socket and not xpra's stdin/stdout: every xpra client since
# 1.0 attaches to a socket:// URL, and the socket is private to the user
# (directory mode), so no other local user can ride on the login.
#
# Ends: the local client exiting (Ctrl+C detaches it; the session keeps
# running) closes the channel; the channel closing (logoff, the server's
# xpra ending) closes the local socket, and the local client exits. The
# connection ending (the server went away, the network broke) does the
# same at once, and svclient fails with "connection ended" (the local
# client would otherwise sit on a frozen window until its own ping timeout,
# about a minute).
"""run_xpra(): the xpra channel bridged to a local xpra client; display_unless_beside() for svclient launch."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Any

from twisted.internet import defer, protocol

from client.session import ConnectionEnded, RemoteError, SessionClient, with_timeout
from protocol.connection import frame_cost
from protocol.errors import ReasonCode
from protocol.messages import ChannelKind, Message
from protocol.xpra import MAX_XPRA_CHUNK, XpraData, XpraVersion

XPRA = int(ChannelKind.XPRA)
# Oldest xpra client major version that can attach to a 6.x server: 3.x is
# refused by it (no zlib, no rencode: docs/xpra.md); 4.0 changed the wire
# to what 6.x still speaks.
MIN_CLIENT_MAJOR = 4
# Seconds `xpra --version` may take.
VERSION_TIMEOUT = 30.0
INSTALL_HINT = ("install xpra 4.0 or later (e.g. `pip install xpra`, or your system's xpra package), "
                "or name it with --xpra-command PATH")  # fmt: skip
LOCAL_GONE = "the local xpra client disconnected"
_VERSION_RE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


class XpraUsageError(Exception):
    """What the user must fix before an xpra client can attach (message says what)."""


def add_xpra_parser(sub: Any) -> None:
    """`svclient xpra [--launch APP] [--xpra-command PATH] [-- XPRA-ARGS]`."""
    xp = sub.add_parser("xpra", help="attach your local xpra client to the session (display = xpra)")
    xp.add_argument("--launch", metavar="APP_ID", default="", help="launch this published app first")
    xp.add_argument("--xpra-command", default="", help="the local xpra client (default: xpra on PATH)")
    xp.add_argument("xpra_args", nargs=argparse.REMAINDER, help="more arguments for `xpra attach` (after --)")


def local_xpra(args: argparse.Namespace) -> tuple[str, str]:
    """(path, version) of the local xpra client; XpraUsageError if it is missing or too old to try."""
    command = args.xpra_command or "xpra"
    path = shutil.which(command)
    if path is None:
        raise XpraUsageError(f"no local xpra client ({command!r} not found): {INSTALL_HINT}")
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT,
                             check=False).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise XpraUsageError(f"cannot run {path} --version: {exc}") from exc
    match = _VERSION_RE.search(out)
    if match is None:
        raise XpraUsageError(f"{path} --version printed no version ({out.strip()[:80]!r}): {INSTALL_HINT}")
    return path, match.group(0)


def compatible(client_version: str, server_version: str) -> bool:
    """Whether a client of `client_version` can attach to a server of `server_version`."""
    client = _VERSION_RE.search(client_version)
    server = _VERSION_RE.search(server_version)
    if client is None or server is None:
        return True  # unknown: let xpra's own handshake decide
    return int(client.group(1)) >= MIN_CLIENT_MAJOR or int(server.group(1)) < MIN_CLIENT_MAJOR


def check_compatible(path: str, client_version: str, server_version: str) -> None:
    """XpraUsageError naming both versions if the local client cannot attach to the session's server."""
    if not compatible(client_version, server_version):
        raise XpraUsageError(f"your xpra client {client_version} ({path}) cannot attach to the session's xpra "
                             f"server {server_version}: install xpra {MIN_CLIENT_MAJOR}.0 or later")  # fmt: skip


def exit_note(code: int, client_version: str, server_version: str) -> str:
    """What svclient says when the local client ended with `code` (its handshake may have refused the server)."""
    if code == 0:
        return ""
    return (f"svclient: your xpra client {client_version} exited with status {code}; the session's xpra server "
            f"is {server_version} (if xpra said the versions cannot talk, {INSTALL_HINT})")


class _LocalSide(protocol.Protocol):
    """The local xpra client's connection to our socket."""

    def __init__(self, bridge: XpraBridge) -> None:
        self.bridge = bridge

    def connectionMade(self) -> None:  # noqa: N802 - Twisted name
        self.bridge.local_connected(self)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted name
        self.bridge.from_local(data)

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802 - Twisted name
        self.bridge.local_lost(self)


class XpraBridge:
    """The xpra channel <-> the one local connection, with the channel's credit respected."""

    def __init__(self, client: SessionClient) -> None:
        self.client = client
        self.local: _LocalSide | None = None
        self.server_version: defer.Deferred[str] = defer.Deferred()
        self.done: defer.Deferred[str] = defer.Deferred()  # fires with why the bridge ended
        self._early: list[bytes] = []  # server bytes before the local client connected
        self._paused = False

    # -- channel side ---------------------------------------------------------------
    def from_channel(self, message: Message | None) -> None:
        """A message on the xpra channel; None: the channel closed."""
        if message is None:
            if not self.server_version.called:  # refused or failed before it started: say so, don't wait
                self.server_version.errback(XpraUsageError(
                    "the session closed the xpra channel: its display is not xpra or its xpra server is not "
                    "running (the server's log says why)"))
            self.end("the session closed the xpra channel")
        elif isinstance(message, XpraVersion):
            if not self.server_version.called:
                self.server_version.callback(message.version)
        elif isinstance(message, XpraData):
            if self.local is None:
                self._early.append(message.data)
            else:
                self.local.transport.write(message.data)

    def credit(self) -> None:
        """Credit came back: resume reading the local client if it was paused."""
        if self._paused and self.local is not None and self._room():
            self._paused = False
            self.local.transport.resumeProducing()

    def _room(self) -> bool:
        return self.client.conn.send_window(XPRA) >= frame_cost(XpraData(b"x" * MAX_XPRA_CHUNK))

    # -- local side -----------------------------------------------------------------
    def local_connected(self, side: _LocalSide) -> None:
        if self.local is not None or self.done.called:
            side.transport.loseConnection()  # one client per bridge
            return
        self.local = side
        for data in self._early:
            side.transport.write(data)
        self._early.clear()

    def from_local(self, data: bytes) -> None:
        for start in range(0, len(data), MAX_XPRA_CHUNK):
            self.client.conn.send(XPRA, XpraData(data[start:start + MAX_XPRA_CHUNK]))
        self.client.flush()
        if not self._room() and self.local is not None:
            self._paused = True
            self.local.transport.pauseProducing()

    def local_lost(self, side: _LocalSide) -> None:
        if side is self.local:
            self.end(LOCAL_GONE)

    def end(self, why: str) -> None:
        """End both sides (idempotent)."""
        if self.done.called:
            return
        if self.local is not None:
            self.local.transport.loseConnection()
        if XPRA in self.client.conn.open_channels():
            self.client.conn.close_channel(XPRA, 0, why)
            self.client.flush()
        self.done.callback(why)


class _ClientProcess(protocol.ProcessProtocol):
    def __init__(self) -> None:
        self.ended: defer.Deferred[int] = defer.Deferred()

    def processEnded(self, reason: Any) -> None:  # noqa: N802 - Twisted name
        code = getattr(reason.value, "exitCode", None)
        self.ended.callback(code if isinstance(code, int) else 1)


async def run_xpra(reactor: Any, client: SessionClient, args: argparse.Namespace,
                   xpra: tuple[str, str]) -> int:  # fmt: skip
    """Launch (if asked), open the xpra channel, run the local client on a private socket until either ends."""
    path, local_version = xpra
    if args.launch:
        result = await with_timeout(reactor, client.launch(args.launch), args.timeout, "the launch")
        print(f"launched {args.launch} (pid {result.pid})", flush=True)
    bridge = XpraBridge(client)
    client.channel_handlers[XPRA] = bridge.from_channel
    client.credit_handlers[XPRA] = bridge.credit
    await with_timeout(reactor, client.open_channel(ChannelKind.XPRA), args.timeout, "the xpra channel")
    server_version = await with_timeout(reactor, bridge.server_version, args.timeout, "the xpra server")
    try:
        check_compatible(path, local_version, server_version)
    except XpraUsageError:
        bridge.end("incompatible xpra client")
        raise
    private = tempfile.mkdtemp(prefix="svclient-xpra-")  # mode 0700
    sock = os.path.join(private, "xpra.sock")
    port = reactor.listenUNIX(sock, protocol.Factory.forProtocol(lambda: _LocalSide(bridge)), mode=0o600)
    # Ctrl+C stops the reactor: the socket and the private directory go with it.
    reactor.addSystemEventTrigger("before", "shutdown", lambda: defer.maybeDeferred(port.stopListening).addBoth(
        lambda _: shutil.rmtree(private, ignore_errors=True)))
    process = _ClientProcess()
    extra = [a for a in args.xpra_args if a != "--"]
    argv = [path, "attach", f"socket://{sock}", "--reconnect=no", *extra]
    child = reactor.spawnProcess(process, path, argv, env=dict(os.environ), childFDs={0: 0, 1: 1, 2: 2})
    print(f"svclient: xpra {local_version} attached to the session's xpra {server_version}; "
          "Ctrl+C detaches (the session keeps running)", flush=True)
    lost: list[ConnectionEnded] = []

    def connection_ended(end: Any) -> Any:
        if not bridge.done.called:
            lost.append(end if isinstance(end, ConnectionEnded) else ConnectionEnded(ReasonCode.NORMAL, str(end)))
            bridge.end(f"connection ended: {lost[0]}")
        return end  # (others may wait on `ended` too)

    client.ended.addBoth(connection_ended)
    try:
        ended = defer.DeferredList([process.ended, bridge.done], fireOnOneCallback=True, consumeErrors=True)
        await ended
        # The client ended on its own (not because the session closed the channel): its status is its verdict.
        by_itself = not lost and (process.ended.called or bridge.done.result == LOCAL_GONE)
        bridge.end("detached")
        if not process.ended.called:
            child.signalProcess(signal.SIGTERM)
        code = await process.ended
    finally:
        await defer.maybeDeferred(port.stopListening)
        shutil.rmtree(private, ignore_errors=True)
    if lost:  # the local client is gone too: fail as any command whose connection ends
        raise lost[0]
    print(f"svclient: detached ({bridge.done.result if bridge.done.called else 'ended'}; xpra exited with "
          f"status {code}); the session keeps running", flush=True)
    if by_itself and (note := exit_note(code, local_version, server_version)):
        print(note, file=sys.stderr, flush=True)
    return 0


async def display_unless_beside(reactor: Any, client: SessionClient, timeout: float) -> bool:
    """Open the display; False if the session is open on another connection (an attached xpra
    client): this one then only launches, beside it (protocol.xpra.LAUNCH_BESIDE)."""
    try:
        await with_timeout(reactor, client.open_channel(ChannelKind.DISPLAY), timeout, "the display")
    except RemoteError as exc:
        if exc.code != ReasonCode.CHANNEL_KIND_UNAVAILABLE:
            raise
        return False
    return True

# The agent's end of the xpra channel: it connects the channel a client
# opens to the session's xpra server socket and pumps bytes both ways,
# without looking at them (they are the user's xpra stream).
#
# Flow control, both directions bounded:
# - socket -> channel: the socket is read only while the channel's send
#   window holds a whole chunk; otherwise reading pauses until the client's
#   WINDOW_UPDATE arrives (xpra then feels back-pressure on its socket, as
#   it would on a slow network).
# - channel -> socket: credit for a chunk goes back to the client only once
#   the socket transport has taken it and is not over its high-water mark;
#   while it is, credit is held (a client never makes the agent buffer more
#   than one window).
# Closing either side closes the other; one xpra channel per link.
"""XpraChannels: the xpra channel <-> the session's xpra server socket."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from protocol.connection import ChannelClosed, ChannelOpened, MessageReceived, WindowUpdated
from protocol.errors import ReasonCode
from protocol.limits import HEADER_SIZE
from protocol.messages import ChannelKind
from protocol.xpra import MAX_XPRA_CHUNK, XpraData, XpraVersion

# Seconds a refused connection to a starting xpra server is retried, and how often.
CONNECT_PATIENCE = 60.0
CONNECT_RETRY = 0.2


class Link(Protocol):
    """What the bridge needs of the agent's link (sessiond.agent.link.LinkProtocol)."""

    conn: Any

    def flush(self) -> None: ...


class _SocketSide(asyncio.Protocol):
    """The connection to the xpra server's socket."""

    def __init__(self, bridge: XpraBridge) -> None:
        self.bridge = bridge
        self.transport: asyncio.Transport | None = None
        self.write_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.bridge.from_server(data)

    def eof_received(self) -> bool:
        return False  # close the transport: the server ended the stream

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.bridge.server_closed(exc)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.bridge.release_credit()


class XpraBridge:
    """One open xpra channel and its socket connection."""

    def __init__(self, link: Link, channel: int, log: Callable[[str], None]) -> None:
        self.link = link
        self.channel = channel
        self.log = log
        self.side: _SocketSide | None = None
        self.closed = False
        self._held_credit = 0  # received bytes written to a socket over its high-water mark
        self._reading_paused = False

    async def connect(self, path: str, version: str, patience: float = CONNECT_PATIENCE) -> None:
        """Connect to the server socket, then announce the version; close the channel on failure.

        xpra creates its socket before it accepts on it (it sets up the display
        first): a refused connection is retried for `patience` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while True:
            try:
                _transport, side = await loop.create_unix_connection(lambda: _SocketSide(self), path)
                break
            except (ConnectionRefusedError, FileNotFoundError) as exc:
                if loop.time() >= deadline or self.closed:
                    self.close(ReasonCode.INTERNAL_ERROR, f"the session's xpra server is not reachable: {exc.strerror}")
                    return
                await asyncio.sleep(CONNECT_RETRY)
            except OSError as exc:
                self.close(ReasonCode.INTERNAL_ERROR, f"the session's xpra server is not reachable: {exc.strerror}")
                return
        if self.closed:
            side.transport.close()  # type: ignore[union-attr]
            return
        self.side = side
        self.link.conn.send(self.channel, XpraVersion(version[:64]))
        self.link.flush()

    def from_server(self, data: bytes) -> None:
        """Bytes the xpra server wrote: one XPRA_DATA per chunk."""
        for start in range(0, len(data), MAX_XPRA_CHUNK):
            self.link.conn.send(self.channel, XpraData(data[start:start + MAX_XPRA_CHUNK]))
        self.link.flush()
        self.pump()

    def pump(self) -> None:
        """Pause reading the socket while the channel lacks credit for a whole chunk; resume once it has."""
        side = self.side
        if side is None or side.transport is None or self.closed:
            return
        room = self.link.conn.send_window(self.channel) >= HEADER_SIZE + MAX_XPRA_CHUNK
        if room and self._reading_paused:
            side.transport.resume_reading()
            self._reading_paused = False
        elif not room and not self._reading_paused:
            side.transport.pause_reading()
            self._reading_paused = True

    def from_client(self, data: bytes, wire_size: int) -> None:
        """A chunk from the client: to the socket; its credit now or once the socket drains."""
        side = self.side
        if side is None or side.transport is None:
            self.link.conn.consumed(self.channel, wire_size)  # not connected yet or gone: dropped
            return
        side.transport.write(data)
        self._held_credit += wire_size
        self.release_credit()

    def release_credit(self) -> None:
        """Return held credit unless the socket is over its high-water mark."""
        if self._held_credit and (self.side is None or not self.side.write_paused) and not self.closed:
            self.link.conn.consumed(self.channel, self._held_credit)
            self._held_credit = 0
            self.link.flush()

    def server_closed(self, exc: Exception | None) -> None:
        """The xpra server closed its end: the channel closes too."""
        why = f"the xpra server closed the connection{f': {exc}' if exc else ''}"
        self.close(ReasonCode.NORMAL, why)

    def close(self, code: int, why: str) -> None:
        """Close both sides (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.log(f"xpra: channel {self.channel} closed: {why}")
        if self.channel in self.link.conn.open_channels():
            self.link.conn.close_channel(self.channel, code, why)
            self.link.flush()
        self.channel_gone()

    def channel_gone(self) -> None:
        """The channel is closed (by either side): close the socket."""
        self.closed = True
        if self.side is not None and self.side.transport is not None:
            self.side.transport.close()


class XpraChannels:
    """The agent's xpra channels: accepts them when the session's display is xpra."""

    def __init__(self, socket_path: str | None, version: Callable[[], str], log: Callable[[str], None],
                 ready: Callable[[], Any] | None = None) -> None:  # fmt: skip
        """socket_path None: the session's display is not xpra (opens are refused)."""
        self.socket_path = socket_path
        self.version = version
        self.log = log
        self.ready = ready  # awaitable factory: the server's socket exists
        self.bridge: XpraBridge | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def handles(self, link: Link, event: object) -> bool:
        """Take the events of the xpra channel; False for everything else."""
        if isinstance(event, ChannelOpened):
            if event.kind is not ChannelKind.XPRA or not event.by_peer:
                return False
            self._opened(link, event.channel)
            return True
        bridge = self.bridge
        channel = getattr(event, "channel", None)
        if bridge is None or channel != bridge.channel or link is not bridge.link:
            return False
        if isinstance(event, MessageReceived):
            message = event.message
            if isinstance(message, XpraData):
                bridge.from_client(message.data, event.wire_size)
            else:
                link.conn.consumed(channel, event.wire_size)
        elif isinstance(event, WindowUpdated):
            bridge.pump()
        elif isinstance(event, ChannelClosed):
            bridge.channel_gone()
            self.bridge = None
        return True

    def _opened(self, link: Link, channel: int) -> None:
        self.log(f"xpra: channel {channel} opened by the client")
        if self.socket_path is None:
            link.conn.close_channel(channel, ReasonCode.CHANNEL_KIND_UNAVAILABLE,
                                    "this session's display is not xpra ([session] display)")  # fmt: skip
            link.flush()
            return
        if self.bridge is not None and not self.bridge.closed:
            link.conn.close_channel(channel, ReasonCode.CHANNEL_IN_USE, "one xpra channel per session")
            link.flush()
            return
        bridge = XpraBridge(link, channel, self.log)
        self.bridge = bridge
        task = asyncio.get_running_loop().create_task(self._connect(bridge))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, bridge: XpraBridge) -> None:
        try:
            if self.ready is not None and not await self.ready():
                bridge.close(ReasonCode.INTERNAL_ERROR, "the session's xpra server is not running (see the agent log)")
                return
            await bridge.connect(str(self.socket_path), self.version())
        except Exception as exc:  # noqa: BLE001 - the boundary of this channel: a task's error is otherwise lost
            self.log(f"xpra: cannot connect channel {bridge.channel}: {type(exc).__name__}: {exc}")
            bridge.close(ReasonCode.INTERNAL_ERROR, f"cannot reach the session's xpra server: {exc}")
            return
        if not bridge.closed:
            self.log(f"xpra: channel {bridge.channel} connected to {self.socket_path}")

    def link_lost(self) -> None:
        """The sessiond link went away: the xpra connection ends with it (xpra keeps the session)."""
        if self.bridge is not None:
            self.bridge.channel_gone()
            self.bridge = None

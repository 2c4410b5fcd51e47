# Paced sending on one channel of the agent's link: bulk (clipboard content,
# files) is handed over as a queue of frames to produce, and the next frame
# is produced only while the channel's queue in the Connection is short.
#
# Why: Connection.send() queues whatever it is given until credit arrives
# (up to MAX_QUEUED_PER_CHANNEL, 16 MiB). A 100 MiB file handed over at once
# would fill that and then fail; read lazily, a file costs at most
# HIGH_WATER bytes of memory, and the priority scheduler in the Connection
# keeps input and display ahead of it. Pumped on every WINDOW_UPDATE of the
# channel and every time the link's socket drains.
"""ChannelSender: produce frames for one channel only while its queue is short."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Final, Protocol

from protocol.connection import Connection
from protocol.errors import ProtocolStateError
from protocol.messages import Message

# Bytes queued in the Connection for this channel before we stop producing:
# two 64 KiB chunks, enough to keep the window busy between WINDOW_UPDATEs.
HIGH_WATER: Final = 128 * 1024


class Link(Protocol):
    """The agent's link as seen here (sessiond.agent.link.LinkProtocol)."""

    conn: Connection

    def flush(self) -> None: ...


class ChannelSender:
    """Queues of lazily produced messages for one channel, drained under HIGH_WATER."""

    def __init__(self, link: Link, channel: int, on_error: Callable[[str], None]) -> None:
        self.link = link
        self.channel = channel
        self._on_error = on_error
        self._streams: deque[Iterator[Message]] = deque()

    def send(self, message: Message) -> None:
        """Queue one small message now (metadata)."""
        try:
            self.link.conn.send(self.channel, message)
        except ProtocolStateError as exc:
            self._on_error(f"cannot send {type(message).__name__}: {exc}")
            return
        self.link.flush()

    def stream(self, messages: Iterator[Message]) -> None:
        """Send the messages of an iterator, producing each only when there is room."""
        self._streams.append(messages)
        self.pump()

    def pump(self) -> None:
        """Produce frames while the channel's queue is under HIGH_WATER."""
        conn = self.link.conn
        sent = False
        while self._streams and not conn.closed and self.channel in conn.open_channels():
            if conn.queued_bytes(self.channel) >= HIGH_WATER:
                break
            stream = self._streams[0]
            try:
                message = next(stream)
            except StopIteration:
                self._streams.popleft()
                continue
            except Exception as exc:  # noqa: BLE001 - one stream's failure (a read error) costs that stream
                self._streams.popleft()
                self._on_error(f"a transfer failed: {type(exc).__name__}: {exc}")
                continue
            try:
                conn.send(self.channel, message)
            except ProtocolStateError as exc:
                self._streams.clear()
                self._on_error(f"cannot send: {exc}")
                break
            sent = True
        if sent:
            self.link.flush()

    def clear(self) -> None:
        """Forget every stream (the channel is gone); closing their iterators runs their cleanups."""
        while self._streams:
            stream = self._streams.popleft()
            close = getattr(stream, "close", None)
            if close is not None:
                close()

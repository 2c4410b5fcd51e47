# The agent's end of the files channel (kind 8).
#
# Into the session: FILE_OFFER is checked (policy, size) and the file created
# in ~/Downloads by IncomingTransfers before FILE_ACCEPT; FILE_DATA must come
# in order; FILE_END finishes it and FILE_DONE tells the client the name it
# got. Out of the session: files from ~/Outbox and sessiond-send wait in a
# bounded queue (with their open descriptors) and are offered while a client
# has the channel open; after FILE_ACCEPT they are read lazily, a chunk at a
# time, only while the channel's queue is short (ChannelSender), so a large
# file never sits in memory or ahead of input and display.
#
# When the channel or the link goes: partial incoming files are removed,
# outgoing files not finished go back to the queue for the next client.
"""FilesChannel: FILE_* messages <-> IncomingTransfers and outgoing files."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Final

from protocol.messages import Message
from protocol.transfer import (
    FILE_CHUNK_BYTES,
    FileAccept,
    FileCancel,
    FileData,
    FileDone,
    FileEnd,
    FileOffer,
    TransferError,
)
from sessiond.agent.channel_sender import ChannelSender, Link
from sessiond.agent.files import IncomingTransfers, TransferRefused
from sessiond.agent.outbox import OutgoingFile

# Outgoing files held (each with an open descriptor) until a client takes them.
MAX_PENDING_OUTGOING: Final = 32
_U32 = 0xFFFF_FFFF


class _Outgoing:
    """A file offered to the client: waiting, then sending."""

    def __init__(self, transfer_id: int, file: OutgoingFile) -> None:
        self.id = transfer_id
        self.file = file
        self.offered = False
        self.sending = False


class FilesChannel:
    """One files channel at a time: incoming transfers and the queue of outgoing files."""

    def __init__(self, incoming: IncomingTransfers, log: Callable[[str], None],
                 forget: Callable[[OutgoingFile], None]) -> None:  # fmt: skip
        self.incoming = incoming
        self.log = log
        self._forget = forget  # an outbox file not delivered: the watcher may offer it again
        self.sender: ChannelSender | None = None
        self._received: dict[int, tuple[int, int]] = {}  # id -> (bytes so far, size)
        self._outgoing: dict[int, _Outgoing] = {}
        self._next_id = 0

    @property
    def channel(self) -> int:
        """The open files channel, 0 if none."""
        return self.sender.channel if self.sender is not None else 0

    # -- outgoing -----------------------------------------------------------------
    def offer(self, file: OutgoingFile) -> str | None:
        """OfferFile for OutboxWatcher / SendSocketServer: None when taken (we own the fd)."""
        if len(self._outgoing) >= MAX_PENDING_OUTGOING:
            return f"{MAX_PENDING_OUTGOING} files are already waiting for the client"
        self._next_id = self._next_id % _U32 + 1
        out = _Outgoing(self._next_id, file)
        self._outgoing[out.id] = out
        self._offer(out)
        return None

    def _offer(self, out: _Outgoing) -> None:
        if self.sender is not None and not out.offered:
            out.offered = True
            self.sender.send(FileOffer(out.id, out.file.size, out.file.name))

    def _finish_outgoing(self, transfer_id: int) -> None:
        out = self._outgoing.pop(transfer_id, None)
        if out is not None:
            os.close(out.file.fd)

    # -- link events ------------------------------------------------------------
    def opened(self, link: Link, channel: int) -> None:
        """The client opened the channel: offer what is waiting."""
        self.sender = ChannelSender(link, channel, self.log)
        for out in list(self._outgoing.values()):
            self._offer(out)

    def closed(self) -> None:
        """The channel or link is gone: remove partial files, keep unsent files for the next client."""
        self.incoming.abort_all()
        self._received.clear()
        if self.sender is not None:
            self.sender.clear()
        self.sender = None
        for out in list(self._outgoing.values()):
            out.offered = out.sending = False
            if out.file.source == "outbox":  # the watcher offers it again (and reopens it)
                self._finish_outgoing(out.id)
                self._forget(out.file)

    def pump(self) -> None:
        """Credit arrived or the socket drained."""
        if self.sender is not None:
            self.sender.pump()

    def close(self) -> None:
        """Agent shutdown: abort everything, close every descriptor."""
        self.closed()
        for transfer_id in list(self._outgoing):
            self._finish_outgoing(transfer_id)

    # -- messages from the client -------------------------------------------------
    def message(self, message: Message) -> None:
        """One FILE_* message from the client."""
        if isinstance(message, FileOffer):
            self._offered(message)
        elif isinstance(message, FileData):
            self._data(message)
        elif isinstance(message, FileEnd):
            self._end(message)
        elif isinstance(message, FileAccept):
            self._accepted(message)
        elif isinstance(message, FileDone):
            out = self._outgoing.get(message.id)
            if out is not None:
                self.log(f"files: {out.file.name} ({out.file.size} bytes) delivered to the client")
            self._finish_outgoing(message.id)
        elif isinstance(message, FileCancel):
            self.incoming.abort(message.id)
            self._received.pop(message.id, None)
            if message.id in self._outgoing:
                self.log(f"files: the client declined {self._outgoing[message.id].file.name}: {message.text}")
                self._finish_outgoing(message.id)

    def _offered(self, offer: FileOffer) -> None:
        try:
            self.incoming.start(offer.id, offer.name, offer.size)
        except TransferRefused as exc:
            code = TransferError.TOO_LARGE if "limit" in str(exc) else TransferError.REFUSED
            self._cancel(offer.id, code, str(exc))
            return
        except (OSError, ValueError) as exc:
            self._cancel(offer.id, TransferError.DISK, f"cannot create the file: {exc}")
            return
        self._received[offer.id] = (0, offer.size)
        if self.sender is not None:
            self.sender.send(FileAccept(offer.id, 0))

    def _data(self, data: FileData) -> None:
        progress = self._received.get(data.id)
        if progress is None:
            return  # cancelled meanwhile: discarded
        if data.offset != progress[0]:
            self._abort(data.id, TransferError.CANCELLED, f"offset {data.offset}, expected {progress[0]}")
            return
        try:
            self.incoming.data(data.id, data.data)
        except TransferRefused as exc:
            self._abort(data.id, TransferError.TOO_LARGE, str(exc))
            return
        except OSError as exc:
            self._abort(data.id, TransferError.DISK, f"cannot write: {exc.strerror}")
            return
        self._received[data.id] = (progress[0] + len(data.data), progress[1])

    def _end(self, end: FileEnd) -> None:
        progress = self._received.pop(end.id, None)
        if progress is None:
            return
        try:
            name = self.incoming.end(end.id)
        except (TransferRefused, OSError) as exc:
            self._cancel(end.id, TransferError.CANCELLED, str(exc))
            return
        if self.sender is not None:
            self.sender.send(FileDone(end.id, progress[1], name))

    def _accepted(self, accept: FileAccept) -> None:
        out = self._outgoing.get(accept.id)
        if out is None or out.sending or not out.offered or self.sender is None:
            return
        out.sending = True
        self.sender.stream(_chunks(out))

    def _abort(self, transfer_id: int, code: TransferError, text: str) -> None:
        self.incoming.abort(transfer_id)
        self._received.pop(transfer_id, None)
        self._cancel(transfer_id, code, text)

    def _cancel(self, transfer_id: int, code: TransferError, text: str) -> None:
        if self.sender is not None:
            self.sender.send(FileCancel(transfer_id, code, text[:200]))


def _chunks(out: _Outgoing) -> Iterator[Message]:
    """FILE_DATA read a chunk at a time with pread (the fd is ours), then FILE_END.

    A file that shrank is cut short and cancelled; one that grew is sent at its offered size."""
    offset, size = 0, out.file.size
    while offset < size:
        chunk = os.pread(out.file.fd, min(FILE_CHUNK_BYTES, size - offset), offset)
        if not chunk:
            yield FileCancel(out.id, TransferError.CANCELLED, "the file shrank while it was being sent")
            return
        yield FileData(out.id, offset, chunk)
        offset += len(chunk)
    yield FileEnd(out.id)

# svclient's end of the clipboard (kind 6) and files (kind 8) channels.
#
# Sending is paced: the next chunk is produced only while the channel's
# queue in the Connection is short (credit from the server wakes the
# sender), so a 100 MiB upload never sits in memory, and the Connection's
# priorities keep it behind input and display. Receiving checks every
# announced size before allocating, counts bytes against it, and saves
# files under sanitised names that never overwrite (media.transfer_names).
"""Clipboard get/set and file put/get over a SessionClient."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any, Final

from twisted.internet import defer

from client.session import RemoteError, SessionClient
from media.transfer_names import UnusableName, candidate_names, sanitise_name
from protocol.messages import ChannelKind, Message
from protocol.transfer import (
    CLIP_CHUNK_BYTES,
    FILE_CHUNK_BYTES,
    MAX_CLIP_BYTES,
    ClipBegin,
    ClipData,
    ClipDone,
    ClipEnd,
    ClipError,
    ClipOffer,
    ClipRequest,
    FileAccept,
    FileCancel,
    FileData,
    FileDone,
    FileEnd,
    FileOffer,
    Mime,
    Selection,
    TransferError,
    mime_mask,
)

CLIPBOARD: Final = int(ChannelKind.CLIPBOARD)
FILES: Final = int(ChannelKind.FILES)
# Bytes queued per channel before the sender waits for credit.
HIGH_WATER: Final = 128 * 1024
# The serial svclient uses to learn that the session sent every offer it has (never a real offer).
SYNC_SERIAL: Final = 0


class TransferFailed(Exception):
    """A transfer was refused or failed; the message says why, for people."""


class Inbox:
    """Messages of one channel, awaited one at a time (None: the channel closed)."""

    def __init__(self, client: SessionClient, channel: int) -> None:
        self.client = client
        self.channel = channel
        self._queue: list[Message | None] = []
        self._waiter: defer.Deferred[Message | None] | None = None
        client.channel_handlers[channel] = self._put
        self._credit: defer.Deferred[None] | None = None
        client.credit_handlers[channel] = self._credited
        client.ended.addBoth(lambda _: self._put(None))

    def _put(self, message: Message | None) -> None:
        if self._waiter is not None and not self._waiter.called:
            waiter, self._waiter = self._waiter, None
            waiter.callback(message)
        else:
            self._queue.append(message)
        if message is None:
            self._credited()

    def _credited(self) -> None:
        if self._credit is not None and not self._credit.called:
            credit, self._credit = self._credit, None
            credit.callback(None)

    async def next(self, reactor: Any, timeout: float) -> Message | None:
        """The next message, None if the channel closed; TransferFailed after `timeout` seconds."""
        if self._queue:
            return self._queue.pop(0)
        waiter: defer.Deferred[Message | None] = defer.Deferred()
        self._waiter = waiter
        waiter.addTimeout(timeout, reactor)
        try:
            return await waiter
        except defer.TimeoutError:
            raise TransferFailed(f"the session did not answer within {timeout:g} s") from None

    async def send_paced(self, reactor: Any, messages: Iterator[Message], progress: Callable[[int], None] | None = None
                         ) -> None:  # fmt: skip
        """Send each message once the channel's queue is under HIGH_WATER."""
        conn = self.client.conn
        for message in messages:
            while conn.queued_bytes(self.channel) >= HIGH_WATER:
                if self.channel not in conn.open_channels():
                    raise TransferFailed("the channel closed during the transfer")
                self._credit = defer.Deferred()
                self._credit.addTimeout(60, reactor)
                await self._credit
            if self.channel not in conn.open_channels():
                raise TransferFailed("the channel closed during the transfer")
            conn.send(self.channel, message)
            self.client.flush()
            if progress is not None and isinstance(message, FileData):
                progress(message.offset + len(message.data))


async def open_inbox(client: SessionClient, kind: ChannelKind, what: str) -> Inbox:
    """Open the channel of `kind` with its inbox in place before any message arrives."""
    inbox = Inbox(client, int(kind))
    try:
        await client.open_channel(kind)
    except RemoteError as exc:
        raise TransferFailed(f"the server offers no {what}: {exc}") from exc
    return inbox


def _error_text(message: ClipError | FileCancel) -> str:
    return f"{message.code.name.lower().replace('_', ' ')}: {message.text}"


# -- clipboard ------------------------------------------------------------------------
async def clipboard_get(reactor: Any, client: SessionClient, selection: Selection, mime: Mime,
                        timeout: float) -> bytes:  # fmt: skip
    """The session's `selection` as `mime`; TransferFailed if there is none or it is refused."""
    inbox = await open_inbox(client, ChannelKind.CLIPBOARD, "clipboard")
    # The agent sends its current offers as the channel opens, before it reads our
    # first message: the answer to a request for serial 0 comes after all of them.
    client.conn.send(CLIPBOARD, ClipRequest(selection, SYNC_SERIAL, mime))
    client.flush()
    offer: ClipOffer | None = None
    while True:
        message = await inbox.next(reactor, timeout)
        if message is None:
            raise TransferFailed("the clipboard channel closed")
        if isinstance(message, ClipOffer) and message.selection == selection:
            offer = message
        elif isinstance(message, ClipError) and message.serial == SYNC_SERIAL:
            if message.code == TransferError.REFUSED:
                raise TransferFailed(f"the clipboard was withheld: {message.text}")
            break
    if offer is None or mime not in offer.mime_list:
        kind = "text" if mime == Mime.TEXT else "an image"
        raise TransferFailed(f"the session's {selection.name} holds no {kind}")
    client.conn.send(CLIPBOARD, ClipRequest(selection, offer.serial, mime))
    client.flush()
    data: bytearray | None = None
    size = 0
    while True:
        message = await inbox.next(reactor, timeout)
        if message is None:
            raise TransferFailed("the clipboard channel closed")
        if isinstance(message, ClipError) and message.serial == offer.serial:
            raise TransferFailed(f"the session's clipboard could not be read: {_error_text(message)}")
        if isinstance(message, ClipBegin) and message.serial == offer.serial:
            if message.size > MAX_CLIP_BYTES:  # also bounded by the protocol; checked before allocating
                raise TransferFailed(f"{message.size} bytes is more than {MAX_CLIP_BYTES}")
            size, data = message.size, bytearray()
        elif isinstance(message, ClipData) and data is not None and message.serial == offer.serial:
            if len(data) + len(message.data) > size:
                raise TransferFailed("the session sent more than it announced")
            data += message.data
        elif isinstance(message, ClipEnd) and data is not None and message.serial == offer.serial:
            if len(data) != size:
                raise TransferFailed(f"only {len(data)} of {size} bytes arrived")
            return bytes(data)


def _clip_messages(selection: Selection, serial: int, content: dict[Mime, bytes]) -> Iterator[Message]:
    yield ClipOffer(selection, serial, mime_mask(list(content)))
    for mime, data in content.items():
        yield ClipBegin(selection, serial, mime, len(data))
        for start in range(0, len(data), CLIP_CHUNK_BYTES):
            yield ClipData(serial, data[start : start + CLIP_CHUNK_BYTES])
        yield ClipEnd(serial)


async def clipboard_set(reactor: Any, client: SessionClient, selection: Selection, content: dict[Mime, bytes],
                        timeout: float) -> None:  # fmt: skip
    """Make `content` the session's `selection`; returns once the session owns it."""
    for data in content.values():
        if len(data) > MAX_CLIP_BYTES:
            raise TransferFailed(f"{len(data)} bytes is more than the clipboard carries ({MAX_CLIP_BYTES})")
    inbox = await open_inbox(client, ChannelKind.CLIPBOARD, "clipboard")
    serial = secrets.randbelow(0xFFFF_FFFE) + 1
    await inbox.send_paced(reactor, _clip_messages(selection, serial, content))
    while True:
        message = await inbox.next(reactor, timeout)
        if message is None:
            raise TransferFailed("the clipboard channel closed")
        if isinstance(message, ClipDone) and message.serial == serial:
            return
        if isinstance(message, ClipError) and message.serial == serial:
            raise TransferFailed(f"the session refused the clipboard: {_error_text(message)}")


# -- files ----------------------------------------------------------------------------
def _file_chunks(transfer_id: int, fd: int, size: int) -> Iterator[Message]:
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(FILE_CHUNK_BYTES, size - offset), offset)
        if not chunk:
            raise TransferFailed("the file shrank while it was being sent")
        yield FileData(transfer_id, offset, chunk)
        offset += len(chunk)
    yield FileEnd(transfer_id)


async def put_file(reactor: Any, inbox: Inbox, transfer_id: int, path: str, timeout: float,
                   progress: Callable[[int, int], None]) -> FileDone:  # fmt: skip
    """Send one file; returns the session's FILE_DONE (the name it saved it as)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise TransferFailed(f"cannot read {path}: {exc.strerror}") from exc
    try:
        size = os.fstat(fd).st_size
        inbox.client.conn.send(FILES, FileOffer(transfer_id, size, os.path.basename(path)))
        inbox.client.flush()
        answer = await inbox.next(reactor, timeout)
        if isinstance(answer, FileCancel):
            raise TransferFailed(f"the session refused {path}: {_error_text(answer)}")
        if not isinstance(answer, FileAccept) or answer.id != transfer_id:
            raise TransferFailed(f"unexpected answer to the offer of {path}: {type(answer).__name__}")
        await inbox.send_paced(reactor, _file_chunks(transfer_id, fd, size), lambda sent: progress(sent, size))
        done = await inbox.next(reactor, timeout)
        if isinstance(done, FileCancel):
            raise TransferFailed(f"the session aborted {path}: {_error_text(done)}")
        if not isinstance(done, FileDone) or done.id != transfer_id:
            raise TransferFailed(f"unexpected answer after {path}: {type(done).__name__}")
        return done
    finally:
        os.close(fd)


def create_exclusive(directory: str, name: str) -> tuple[str, int]:
    """Create a new file for `name` in `directory`, never overwriting: (saved name, fd)."""
    try:
        safe = sanitise_name(name)
    except UnusableName as exc:
        raise TransferFailed(str(exc)) from exc
    for candidate in candidate_names(safe):
        try:
            fd = os.open(os.path.join(directory, candidate),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)  # fmt: skip
        except FileExistsError:
            continue
        return candidate, fd
    raise TransferFailed(f"no free name for {safe} in {directory}")


async def get_files(reactor: Any, client: SessionClient, directory: str, wait: float, timeout: float,
                    report: Callable[[str], None]) -> int:  # fmt: skip
    """Save every file the session offers until none came for `wait` seconds; returns how many."""
    inbox = await open_inbox(client, ChannelKind.FILES, "file transfer")
    saved = 0
    while True:
        try:
            offer = await inbox.next(reactor, wait)
        except TransferFailed:
            return saved  # quiet: the session has nothing more to send
        if offer is None:
            raise TransferFailed("the files channel closed")
        if not isinstance(offer, FileOffer):
            continue
        saved += await _receive(reactor, inbox, offer, directory, timeout, report)


async def _receive(reactor: Any, inbox: Inbox, offer: FileOffer, directory: str, timeout: float,
                   report: Callable[[str], None]) -> int:  # fmt: skip
    conn = inbox.client.conn
    name, fd = create_exclusive(directory, offer.name)
    received = 0
    try:
        conn.send(FILES, FileAccept(offer.id, 0))
        inbox.client.flush()
        while True:
            message = await inbox.next(reactor, timeout)
            if message is None:
                raise TransferFailed("the files channel closed")
            if isinstance(message, FileCancel) and message.id == offer.id:
                raise TransferFailed(f"the session cancelled {offer.name}: {_error_text(message)}")
            if isinstance(message, FileData) and message.id == offer.id:
                if message.offset != received or received + len(message.data) > offer.size:
                    conn.send(FILES, FileCancel(offer.id, TransferError.CANCELLED, "data past the offered size"))
                    inbox.client.flush()
                    raise TransferFailed(f"{offer.name}: the session sent more than it offered")
                os.write(fd, message.data)
                received += len(message.data)
            elif isinstance(message, FileEnd) and message.id == offer.id:
                if received != offer.size:
                    raise TransferFailed(f"{offer.name}: {received} of {offer.size} bytes arrived")
                os.fsync(fd)
                break
    except BaseException:
        os.close(fd)
        os.unlink(os.path.join(directory, name))
        raise
    os.close(fd)
    conn.send(FILES, FileDone(offer.id, received, name))
    inbox.client.flush()
    report(f"saved {os.path.join(directory, name)} ({received} bytes)")
    return 1

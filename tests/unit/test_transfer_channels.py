"""The agent's clipboard and files channels with a recorder link: sizes checked
before allocation, files paced by the channel's queue, partial files removed."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from protocol.messages import Message
from protocol.transfer import (
    FILE_CHUNK_BYTES,
    ClipBegin,
    ClipData,
    ClipDone,
    ClipEnd,
    ClipError,
    ClipOffer,
    FileAccept,
    FileCancel,
    FileData,
    FileDone,
    FileEnd,
    FileOffer,
    Mime,
    Selection,
    TransferError,
)
from sessiond.agent.channel_sender import HIGH_WATER
from sessiond.agent.clipboard_channel import ClipboardChannel
from sessiond.agent.clipboard_policy import ClipboardPolicy, FilePolicy
from sessiond.agent.files import IncomingTransfers
from sessiond.agent.files_channel import MAX_PENDING_OUTGOING, FilesChannel
from sessiond.agent.outbox import OutgoingFile


class Conn:
    """A Connection that records sends and reports a settable queue length."""

    def __init__(self, channel: int) -> None:
        self.sent: list[Message] = []
        self.queued = 0
        self.closed = False
        self.channel = channel
        self.cost_each = 0

    def send(self, channel: int, message: Message) -> None:
        self.sent.append(message)
        self.queued += self.cost_each

    def queued_bytes(self, channel: int) -> int:
        return self.queued

    def is_open(self, channel: int) -> bool:
        return channel in self.open_channels()

    def open_channels(self) -> dict[int, Any]:
        return {self.channel: None}


class Link:
    def __init__(self, channel: int) -> None:
        self.conn = Conn(channel)

    def flush(self) -> None:
        pass


class Selections:
    def __init__(self, policy: ClipboardPolicy) -> None:
        self.policy = policy
        self.owned: list[tuple[str, dict[str, bytes]]] = []

    def set_local(self, selection: str, content: dict[str, bytes]) -> None:
        self.owned.append((selection, dict(content)))

    async def fetch(self, selection: str, mime: str) -> bytes:
        return b"x"


def clipboard(policy: ClipboardPolicy) -> tuple[ClipboardChannel, Link, Selections]:
    selections = Selections(policy)
    channel = ClipboardChannel(asyncio.new_event_loop(), selections, lambda text: None)
    link = Link(6)
    channel.opened(link, 6)  # type: ignore[arg-type]
    return channel, link, selections


def test_client_text_is_owned_as_clipboard_and_primary_and_confirmed() -> None:
    channel, link, selections = clipboard(ClipboardPolicy())
    for message in (ClipOffer(Selection.CLIPBOARD, 3, 1), ClipBegin(Selection.CLIPBOARD, 3, Mime.TEXT, 5),
                    ClipData(3, b"he"), ClipData(3, b"llo"), ClipEnd(3)):  # fmt: skip
        channel.message(message)
    assert [s for s, _ in selections.owned] == ["CLIPBOARD", "PRIMARY"]
    assert selections.owned[0][1] == {"text/plain;charset=utf-8": b"hello"}
    assert link.conn.sent == [ClipDone(3)]


def test_a_begin_over_the_cap_is_refused_before_anything_is_allocated() -> None:
    channel, link, selections = clipboard(ClipboardPolicy(max_text_bytes=4))
    channel.message(ClipOffer(Selection.CLIPBOARD, 3, 1))
    channel.message(ClipBegin(Selection.CLIPBOARD, 3, Mime.TEXT, 5))
    channel.message(ClipData(3, b"hello"))
    channel.message(ClipEnd(3))
    assert [type(m) for m in link.conn.sent] == [ClipError]
    assert link.conn.sent[0].code == TransferError.TOO_LARGE  # type: ignore[attr-defined]
    assert selections.owned == []


def test_more_data_than_announced_discards_the_content() -> None:
    channel, link, selections = clipboard(ClipboardPolicy())
    channel.message(ClipOffer(Selection.CLIPBOARD, 3, 1))
    channel.message(ClipBegin(Selection.CLIPBOARD, 3, Mime.TEXT, 2))
    channel.message(ClipData(3, b"abc"))
    channel.message(ClipEnd(3))
    assert selections.owned == [] and isinstance(link.conn.sent[0], ClipError)


def test_a_request_for_an_old_offer_is_stale() -> None:
    channel, link, _selections = clipboard(ClipboardPolicy())
    from protocol.transfer import ClipRequest
    from sessiond.agent.selections import ClipboardChanged

    channel.changed(ClipboardChanged("CLIPBOARD", ("text/plain;charset=utf-8",)))
    offer = link.conn.sent[-1]
    assert isinstance(offer, ClipOffer) and offer.mime_list == (Mime.TEXT,)
    channel.message(ClipRequest(Selection.CLIPBOARD, offer.serial + 1, Mime.TEXT))
    assert link.conn.sent[-1] == ClipError(offer.serial + 1, TransferError.STALE, link.conn.sent[-1].text)  # type: ignore[attr-defined]


def files_channel(tmp_path: Path, policy: FilePolicy | None = None) -> tuple[FilesChannel, Link, list[str]]:
    forgotten: list[str] = []
    channel = FilesChannel(IncomingTransfers(str(tmp_path), policy or FilePolicy()), lambda text: None,
                           lambda f: forgotten.append(f.name))  # fmt: skip
    link = Link(8)
    channel.opened(link, 8)  # type: ignore[arg-type]
    return channel, link, forgotten


def test_an_incoming_file_is_written_and_named(tmp_path: Path) -> None:
    channel, link, _ = files_channel(tmp_path)
    channel.message(FileOffer(1, 6, "../etc/pass\u202ewd"))
    assert link.conn.sent == [FileAccept(1, 0)]
    channel.message(FileData(1, 0, b"abc"))
    channel.message(FileData(1, 3, b"def"))
    channel.message(FileEnd(1))
    done = link.conn.sent[-1]
    assert isinstance(done, FileDone) and done.size == 6 and "/" not in done.name
    assert (tmp_path / "Downloads" / done.name).read_bytes() == b"abcdef"


def test_a_wrong_offset_cancels_and_removes_the_partial_file(tmp_path: Path) -> None:
    channel, link, _ = files_channel(tmp_path)
    channel.message(FileOffer(1, 6, "a.txt"))
    channel.message(FileData(1, 0, b"abc"))
    channel.message(FileData(1, 4, b"de"))
    assert isinstance(link.conn.sent[-1], FileCancel)
    assert os.listdir(tmp_path / "Downloads") == []


def test_a_file_over_the_policy_is_refused_without_a_file(tmp_path: Path) -> None:
    channel, link, _ = files_channel(tmp_path, FilePolicy(max_file_bytes=5))
    channel.message(FileOffer(1, 6, "a.txt"))
    assert isinstance(link.conn.sent[-1], FileCancel) and link.conn.sent[-1].code == TransferError.TOO_LARGE
    assert not (tmp_path / "Downloads").exists() or os.listdir(tmp_path / "Downloads") == []


def test_disconnect_removes_partial_files_and_keeps_unsent_files_for_the_next_client(tmp_path: Path) -> None:
    channel, link, forgotten = files_channel(tmp_path)
    channel.message(FileOffer(1, 6, "a.txt"))
    channel.message(FileData(1, 0, b"abc"))
    source = tmp_path / "out.bin"
    source.write_bytes(b"z" * 10)
    assert channel.offer(OutgoingFile("out.bin", 10, os.open(source, os.O_RDONLY), "send")) is None
    channel.closed()
    assert os.listdir(tmp_path / "Downloads") == []
    again = Link(8)
    channel.opened(again, 8)  # type: ignore[arg-type]
    assert [type(m) for m in again.conn.sent] == [FileOffer]
    assert forgotten == []


def test_outgoing_files_are_read_only_while_the_queue_is_short(tmp_path: Path) -> None:
    channel, link, _ = files_channel(tmp_path)
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(FILE_CHUNK_BYTES * 10))
    channel.offer(OutgoingFile("big.bin", FILE_CHUNK_BYTES * 10, os.open(source, os.O_RDONLY), "outbox"))
    offer = link.conn.sent[-1]
    assert isinstance(offer, FileOffer)
    link.conn.cost_each = FILE_CHUNK_BYTES
    channel.message(FileAccept(offer.id, 0))
    chunks = [m for m in link.conn.sent if isinstance(m, FileData)]
    assert len(chunks) == HIGH_WATER // FILE_CHUNK_BYTES  # the rest waits for credit
    link.conn.queued = 0
    channel.pump()
    assert len([m for m in link.conn.sent if isinstance(m, FileData)]) == 2 * HIGH_WATER // FILE_CHUNK_BYTES
    link.conn.cost_each = 0
    link.conn.queued = 0
    channel.pump()
    data = b"".join(m.data for m in link.conn.sent if isinstance(m, FileData))
    assert data == source.read_bytes() and isinstance(link.conn.sent[-1], FileEnd)


def test_the_outgoing_queue_is_bounded(tmp_path: Path) -> None:
    channel, _link, _ = files_channel(tmp_path)
    fds = []
    for _ in range(MAX_PENDING_OUTGOING):
        fds.append(os.open(tmp_path, os.O_RDONLY))
        assert channel.offer(OutgoingFile("f", 0, fds[-1], "send")) is None
    spare = os.open(tmp_path, os.O_RDONLY)
    assert channel.offer(OutgoingFile("f", 0, spare, "send")) is not None
    os.close(spare)
    channel.close()
    with pytest.raises(OSError):
        os.fstat(fds[0])

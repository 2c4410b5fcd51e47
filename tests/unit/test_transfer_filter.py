"""sessiond's clipboard and files RelayFilters: policy decided from metadata only,
data counted against what was announced, one audit entry per transfer, never content."""

from __future__ import annotations

from typing import Any

from protocol.messages import Message
from protocol.transfer import (
    ClipBegin,
    ClipData,
    ClipEnd,
    ClipError,
    ClipOffer,
    ClipRequest,
    FileCancel,
    FileData,
    FileDone,
    FileEnd,
    FileOffer,
    Mime,
    Selection,
    TransferError,
)
from sessiond.agent.clipboard_policy import ClipboardPolicy, FilePolicy
from sessiond.transfer_filter import MAX_TRACKED, ClipboardFilter, FilesFilter

CH = 6


class Relay:
    """Records what the filter injects."""

    def __init__(self) -> None:
        self.to_client: list[Message] = []
        self.to_agent: list[Message] = []

    def inject_to_client(self, channel: int, message: Message) -> None:
        self.to_client.append(message)

    def inject_to_agent(self, channel: int, message: Message) -> None:
        self.to_agent.append(message)


def clip(policy: ClipboardPolicy) -> tuple[ClipboardFilter, Relay, list[tuple[str, str]]]:
    relay, audit = Relay(), []  # type: ignore[var-annotated]
    return ClipboardFilter(relay, lambda: policy, "alice", lambda e, d: audit.append((e, d))), relay, audit


def files(policy: FilePolicy) -> tuple[FilesFilter, Relay, list[tuple[str, str]]]:
    relay, audit = Relay(), []  # type: ignore[var-annotated]
    return FilesFilter(relay, lambda: policy, "alice", lambda e, d: audit.append((e, d))), relay, audit


def raw(message: Any) -> tuple[int, bytes]:
    return message.TYPE, message.encode()


def test_text_from_the_client_passes_and_is_audited_without_content() -> None:
    f, relay, audit = clip(ClipboardPolicy())
    secret = "pässwörd".encode()
    assert f.from_client(CH, 1, b"", ClipOffer(Selection.CLIPBOARD, 5, 1))
    assert f.from_client(CH, 3, b"", ClipBegin(Selection.CLIPBOARD, 5, Mime.TEXT, len(secret)))
    assert f.from_client(CH, *raw(ClipData(5, secret)), None)
    assert f.from_client(CH, 5, b"", ClipEnd(5))
    detail = f"selection=CLIPBOARD type=text/plain;charset=utf-8 bytes={len(secret)}"
    assert audit == [("clipboard_from_client", detail)]
    assert not relay.to_client and not relay.to_agent


def test_a_begin_over_the_cap_is_refused_and_its_data_dropped() -> None:
    f, relay, audit = clip(ClipboardPolicy(max_text_bytes=10))
    assert not f.from_client(CH, 3, b"", ClipBegin(Selection.CLIPBOARD, 5, Mime.TEXT, 11))
    assert isinstance(relay.to_client[0], ClipError) and relay.to_client[0].code == TransferError.REFUSED
    assert not f.from_client(CH, *raw(ClipData(5, b"x" * 11)), None)
    assert not f.from_client(CH, 5, b"", ClipEnd(5))
    assert audit[0][0] == "clipboard_refused" and "size 11 > 10" in audit[0][1]


def test_data_past_the_announced_size_is_dropped() -> None:
    f, _relay, audit = clip(ClipboardPolicy())
    assert f.from_client(CH, 3, b"", ClipBegin(Selection.CLIPBOARD, 5, Mime.TEXT, 4))
    assert f.from_client(CH, *raw(ClipData(5, b"abcd")), None)
    assert not f.from_client(CH, *raw(ClipData(5, b"e")), None)
    assert audit[-1][0] == "clipboard_refused"


def test_to_client_off_stops_offers_requests_and_content_but_not_the_other_way() -> None:
    f, relay, _audit = clip(ClipboardPolicy(to_client=False))
    assert not f.from_agent(CH, 1, b"", ClipOffer(Selection.CLIPBOARD, 1, 1))
    assert not f.from_agent(CH, 1, b"", ClipOffer(Selection.PRIMARY, 2, 1))
    assert not f.from_client(CH, 2, b"", ClipRequest(Selection.CLIPBOARD, 1, Mime.TEXT))
    assert not f.from_agent(CH, 3, b"", ClipBegin(Selection.CLIPBOARD, 1, Mime.TEXT, 3))
    assert not f.from_agent(CH, *raw(ClipData(1, b"abc")), None)
    assert f.from_client(CH, 3, b"", ClipBegin(Selection.CLIPBOARD, 9, Mime.TEXT, 3))


def test_primary_stays_in_the_session_by_default_and_disallowed_types_are_cut_from_offers() -> None:
    f, relay, _audit = clip(ClipboardPolicy(allowed_mimes=frozenset({"text/plain;charset=utf-8"})))
    assert not f.from_agent(CH, 1, b"", ClipOffer(Selection.PRIMARY, 1, 1))
    assert not f.from_agent(CH, 1, b"", ClipOffer(Selection.CLIPBOARD, 2, 3))
    assert relay.to_client == [ClipOffer(Selection.CLIPBOARD, 2, 1)]  # text only
    assert not f.from_agent(CH, 1, b"", ClipOffer(Selection.CLIPBOARD, 3, 2))  # png only: nothing


def test_tracked_transfers_are_bounded() -> None:
    f, _relay, _audit = clip(ClipboardPolicy())
    for serial in range(MAX_TRACKED):
        assert f.from_client(CH, 3, b"", ClipBegin(Selection.CLIPBOARD, serial, Mime.TEXT, 1))
    assert not f.from_client(CH, 3, b"", ClipBegin(Selection.CLIPBOARD, MAX_TRACKED, Mime.TEXT, 1))


def test_a_file_over_the_cap_is_refused_before_it_reaches_the_session() -> None:
    f, relay, audit = files(FilePolicy(max_file_bytes=100))
    assert not f.from_client(8, 1, b"", FileOffer(1, 101, "big.iso"))
    assert relay.to_client == [FileCancel(1, TransferError.TOO_LARGE, relay.to_client[0].text)]  # type: ignore[attr-defined]
    assert not f.from_client(8, *raw(FileData(1, 0, b"x")), None)
    assert audit[0][0] == "file_refused"


def test_files_out_of_the_session_are_stopped_at_the_offer_and_the_agent_told() -> None:
    f, relay, audit = files(FilePolicy(to_client=False))
    assert not f.from_agent(8, 1, b"", FileOffer(4, 10, "secret.txt"))
    assert isinstance(relay.to_agent[0], FileCancel) and relay.to_agent[0].id == 4
    assert not f.from_agent(8, *raw(FileData(4, 0, b"0123456789")), None)
    assert audit[0][0] == "file_refused"
    assert f.from_client(8, 1, b"", FileOffer(1, 3, "in.txt"))  # the other direction is open


def test_a_file_transfer_is_audited_once_with_its_size() -> None:
    f, _relay, audit = files(FilePolicy())
    assert f.from_client(8, 1, b"", FileOffer(2, 5, "a.txt"))
    assert f.from_client(8, *raw(FileData(2, 0, b"hello")), None)
    assert not f.from_client(8, *raw(FileData(2, 5, b"!")), None)  # past the offer
    assert not f.from_client(8, 4, b"", FileEnd(2))  # the transfer was dropped with it
    assert f.from_client(8, 1, b"", FileOffer(3, 5, "b.txt"))
    assert f.from_client(8, *raw(FileData(3, 0, b"hello")), None)
    assert f.from_client(8, 4, b"", FileEnd(3))
    assert f.from_agent(8, 5, b"", FileDone(3, 5, "b (1).txt"))
    assert audit[-1] == ("file_from_client", "name='b.txt' saved_as='b (1).txt' bytes=5")


def test_a_closed_channel_audits_the_partial_transfer() -> None:
    f, _relay, audit = files(FilePolicy())
    assert f.from_client(8, 1, b"", FileOffer(2, 10, "a.txt"))
    assert f.from_client(8, *raw(FileData(2, 0, b"hello")), None)
    f.channel_closed(8)
    assert audit[-1][0] == "file_aborted" and "bytes=5" in audit[-1][1]

# Messages of the clipboard channel (kind 6) and the files channel (kind 8).
#
# Why two kinds: a paste is small and interactive, a file may be 100 MiB of
# bulk. On separate channels each has its own credit window and send
# priority (FILES is the lowest of all), so a running upload never delays a
# paste, let alone a keystroke, and sessiond can refuse one kind by policy
# without reading the other.
#
# Why these shapes: sessiond decodes the metadata messages (offers, begins,
# ends, errors) for policy and audit, and relays CLIP_DATA/FILE_DATA raw; so
# every fact policy needs (direction, selection, type, declared size, name)
# is in a small fixed-layout message, and a data frame starts with the id it
# belongs to (4 bytes the relay may read to count bytes against a transfer).
# Every size a receiver allocates for is bounded here, before allocation:
# CLIP_BEGIN's size by MAX_CLIP_BYTES, FILE_OFFER's by MAX_FILE_BYTES, each
# chunk by CLIP_CHUNK_BYTES / FILE_CHUNK_BYTES.
"""CLIPBOARD and FILES messages, their enums and bounds."""

from __future__ import annotations

import dataclasses
import struct
from enum import IntEnum
from typing import ClassVar, Final

from protocol.base import ChannelKind, Message, Sender
from protocol.limits import MAX_REASON_TEXT
from protocol.schema import BYTES, TEXT, U8, U32, U64, Declared, message, shared, wire

CLIPBOARD: Final = ChannelKind.CLIPBOARD
FILES: Final = ChannelKind.FILES

# A chunk may cost at most half the initial window (DEFAULT_WINDOW 256 KiB):
# two chunks in flight per window, and a 1 MiB paste is 16 frames.
CLIP_CHUNK_BYTES: Final = 64 * 1024
# Same reasoning for files; a 100 MiB upload is 1600 frames at the lowest priority.
FILE_CHUNK_BYTES: Final = 64 * 1024
# The largest clipboard content any side may announce (the agent's hard cap for images).
MAX_CLIP_BYTES: Final = 64 * 1024 * 1024
# The largest file any side may announce (1 TiB); config caps it lower (max_file_bytes).
MAX_FILE_BYTES: Final = 2**40
# A file name on the wire, before sanitising (names are sanitised on receipt).
MAX_FILE_NAME_BYTES: Final = 1024

_ID: Final = struct.Struct(">I")


class Selection(IntEnum):
    """Which X selection a clipboard message is about."""

    CLIPBOARD = 0
    PRIMARY = 1


class Mime(IntEnum):
    """The content types carried (others are reserved)."""

    TEXT = 1  # text/plain;charset=utf-8
    PNG = 2  # image/png




def mime_bit(mime: Mime) -> int:
    """The bit of `mime` in CLIP_OFFER's mask (TEXT 1, PNG 2)."""
    return 1 << (int(mime) - 1)


def mime_mask(mimes: tuple[Mime, ...] | list[Mime]) -> int:
    """CLIP_OFFER's mask of these types."""
    mask = 0
    for mime in mimes:
        mask |= mime_bit(mime)
    return mask


ALL_MIMES: Final = 3  # every bit a known Mime has
MIME_NAMES: Final = {Mime.TEXT: "text/plain;charset=utf-8", Mime.PNG: "image/png"}


class TransferError(IntEnum):
    """Why a clipboard or file transfer did not happen (CLIP_ERROR, FILE_CANCEL)."""

    REFUSED = 1  # policy
    TOO_LARGE = 2
    TIMEOUT = 3
    UNAVAILABLE = 4  # nothing of that type to give
    STALE = 5  # the serial is not the current offer
    CANCELLED = 6
    DECLINED = 7  # the receiver does not want the file
    DISK = 8  # the file could not be written


def data_id(payload: bytes) -> int | None:
    """The serial / transfer id a raw CLIP_DATA or FILE_DATA payload starts with."""
    return _ID.unpack_from(payload)[0] if len(payload) >= _ID.size else None


_SELECTION = dataclasses.replace(U8, enum=Selection, choices=frozenset(Selection))
_MIME = dataclasses.replace(U8, enum=Mime, choices=frozenset(Mime))
_CODE = dataclasses.replace(U8, enum=TransferError, choices=frozenset(TransferError))


@shared
class ClipMessage(Declared):
    """Every message of the clipboard channel carries the offer's serial."""

    KIND: ClassVar[ChannelKind | None] = CLIPBOARD


@message(0x01, "CLIP_OFFER")
class ClipOffer(ClipMessage):
    """The sender's `selection` now holds content of the types in the `mimes` bit mask."""

    selection: Selection = wire(_SELECTION)
    serial: int = wire(U32)
    mimes: int = wire(U8.within(1, ALL_MIMES))

    @property
    def mime_list(self) -> tuple[Mime, ...]:
        """The offered types."""
        return tuple(mime for mime in Mime if self.mimes & mime_bit(mime))


@message(0x02, "CLIP_REQUEST")
class ClipRequest(ClipMessage):
    """Send the content of offer `serial` as `mime`."""

    selection: Selection = wire(_SELECTION)
    serial: int = wire(U32)
    mime: Mime = wire(_MIME)


@message(0x03, "CLIP_BEGIN")
class ClipBegin(ClipMessage):
    """`size` bytes of `mime` for offer `serial` follow in CLIP_DATA, then CLIP_END."""

    selection: Selection = wire(_SELECTION)
    serial: int = wire(U32)
    mime: Mime = wire(_MIME)
    size: int = wire(U32.within(0, MAX_CLIP_BYTES))


@message(0x04, "CLIP_DATA")
class ClipData(ClipMessage):
    """One chunk of the content begun by CLIP_BEGIN (relayed raw by sessiond)."""

    serial: int = wire(U32)
    data: bytes = wire(BYTES(CLIP_CHUNK_BYTES, min_len=1))


@message(0x05, "CLIP_END")
class ClipEnd(ClipMessage):
    """The content of offer `serial` is complete."""

    serial: int = wire(U32)


@message(0x06, "CLIP_ERROR")
class ClipError(ClipMessage):
    """A request or transfer of offer `serial` failed; the channel stays open."""

    serial: int = wire(U32)
    code: TransferError = wire(_CODE)
    text: str = wire(TEXT(MAX_REASON_TEXT))


@message(0x07, "CLIP_DONE")
class ClipDone(ClipMessage):
    """The receiver took the content of offer `serial` (the session owns the selection now)."""

    serial: int = wire(U32)


@shared
class FileMessage(Declared):
    """Every message of the files channel names its transfer by a u32 id the offering side chose."""

    KIND: ClassVar[ChannelKind | None] = FILES


@message(0x01, "FILE_OFFER")
class FileOffer(FileMessage):
    """A file of `size` bytes named `name` (sanitised by the receiver) is offered."""

    id: int = wire(U32)
    size: int = wire(U64.within(0, MAX_FILE_BYTES))
    name: str = wire(TEXT(MAX_FILE_NAME_BYTES))


@message(0x02, "FILE_ACCEPT")
class FileAccept(FileMessage):
    """Send file `id` from `offset` (0 in version 1: resume is reserved)."""

    id: int = wire(U32)
    offset: int = wire(U64.within(0, 0))


@message(0x03, "FILE_DATA")
class FileData(FileMessage):
    """One chunk of file `id` at `offset` (the bytes sent so far; relayed raw by sessiond)."""

    id: int = wire(U32)
    offset: int = wire(U64.within(0, MAX_FILE_BYTES))
    data: bytes = wire(BYTES(FILE_CHUNK_BYTES, min_len=1))


@message(0x04, "FILE_END")
class FileEnd(FileMessage):
    """File `id` is complete."""

    id: int = wire(U32)


@message(0x05, "FILE_DONE", sender=Sender.ANY)
class FileDone(FileMessage):
    """The receiver saved file `id`, `size` bytes, as `name`."""

    id: int = wire(U32)
    size: int = wire(U64.within(0, MAX_FILE_BYTES))
    name: str = wire(TEXT(MAX_FILE_NAME_BYTES))


@message(0x06, "FILE_CANCEL")
class FileCancel(FileMessage):
    """Either side stops transfer `id`; a partial file is removed."""

    id: int = wire(U32)
    code: TransferError = wire(_CODE)
    text: str = wire(TEXT(MAX_REASON_TEXT))


CLIPBOARD_MESSAGES: tuple[type[Message], ...] = (
    ClipOffer, ClipRequest, ClipBegin, ClipData, ClipEnd, ClipError, ClipDone,
)  # fmt: skip
FILES_MESSAGES: tuple[type[Message], ...] = (FileOffer, FileAccept, FileData, FileEnd, FileDone, FileCancel)
# Sent raw by sessiond (counted, never decoded).
RAW_TYPES: Final = {CLIPBOARD: frozenset({ClipData.TYPE}), FILES: frozenset({FileData.TYPE})}

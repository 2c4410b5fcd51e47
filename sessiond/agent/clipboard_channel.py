# The agent's end of the clipboard channel (kind 6): CLIP_* messages to and
# from SelectionService.
#
# Session -> client is lazy: an app taking CLIPBOARD (or PRIMARY, if policy
# lets it out) becomes a CLIP_OFFER; the bytes are read from the app only
# when the client sends CLIP_REQUEST, and go out paced (ChannelSender).
# Client -> session is eager: CLIP_OFFER, then CLIP_BEGIN/DATA/END per type;
# the declared size is checked against the policy before anything is
# allocated, and the selection is owned once the content is complete.
#
# Nothing flows while no client is attached: offers are sent only while the
# channel is open, and the latest one is replayed when a client opens it.
# Every failure costs one transfer (CLIP_ERROR); the channel stays.
"""ClipboardChannel: CLIP_* messages <-> SelectionService."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from protocol.messages import Message
from protocol.transfer import (
    CLIP_CHUNK_BYTES,
    MIME_NAMES,
    ClipBegin,
    ClipData,
    ClipDone,
    ClipEnd,
    ClipError,
    ClipOffer,
    ClipRequest,
    Mime,
    Selection,
    TransferError,
    mime_mask,
)
from sessiond.agent.channel_sender import ChannelSender, Link
from sessiond.agent.clipboard_policy import ClipboardPolicy
from sessiond.agent.selections import ClipboardChanged, ClipboardRefused
from sessiond.agent.x_selection_fetch import SelectionTimeout, SelectionTooLarge

MIME_CODES = {name: code for code, name in MIME_NAMES.items()}
_U32 = 0xFFFF_FFFF


class Selections(Protocol):
    """What the channel needs of SelectionService."""

    policy: ClipboardPolicy

    def set_local(self, selection: str, content: dict[str, bytes]) -> None: ...

    async def fetch(self, selection: str, mime: str) -> bytes: ...


def error_code(exc: BaseException) -> TransferError:
    """The CLIP_ERROR code for a failed fetch or set."""
    if isinstance(exc, ClipboardRefused):
        return TransferError.REFUSED
    if isinstance(exc, SelectionTooLarge):
        return TransferError.TOO_LARGE
    if isinstance(exc, SelectionTimeout):
        return TransferError.TIMEOUT
    return TransferError.UNAVAILABLE


class _Incoming:
    """Content the client is sending for one offer."""

    def __init__(self, selection: Selection, serial: int) -> None:
        self.selection = selection
        self.serial = serial
        self.content: dict[str, bytes] = {}
        self.mime: Mime | None = None
        self.size = 0
        self.buffer = bytearray()


class ClipboardChannel:
    """One clipboard channel at a time; offers, requests and content both ways."""

    def __init__(self, loop: asyncio.AbstractEventLoop, selections: Selections | None,
                 log: Callable[[str], None]) -> None:  # fmt: skip
        self.loop = loop
        self.selections = selections
        self.log = log
        self.sender: ChannelSender | None = None
        self._serial = 0
        self._offers: dict[Selection, tuple[int, tuple[str, ...]]] = {}  # latest offer of ours per selection
        self._incoming: _Incoming | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def channel(self) -> int:
        """The open clipboard channel, 0 if none."""
        return self.sender.channel if self.sender is not None else 0

    # -- link events ------------------------------------------------------------
    def opened(self, link: Link, channel: int) -> None:
        """The client opened the channel: replay the current offers."""
        self.sender = ChannelSender(link, channel, self.log)
        for selection, (serial, mimes) in sorted(self._offers.items()):
            self._send_offer(selection, serial, mimes)

    def closed(self) -> None:
        """The channel or the link is gone: forget transfers in progress."""
        if self.sender is not None:
            self.sender.clear()
        self.sender = None
        self._incoming = None
        for task in list(self._tasks):
            task.cancel()

    def pump(self) -> None:
        """Credit arrived or the socket drained."""
        if self.sender is not None:
            self.sender.pump()

    def changed(self, event: ClipboardChanged) -> None:
        """SelectionService: an app took a selection (mimes already filtered by policy)."""
        selection = Selection.PRIMARY if event.selection == "PRIMARY" else Selection.CLIPBOARD
        mimes = tuple(m for m in event.mimes if m in MIME_CODES)
        if not mimes:
            self._offers.pop(selection, None)
            return
        self._serial = self._serial % _U32 + 1
        self._offers[selection] = (self._serial, mimes)
        self._send_offer(selection, self._serial, mimes)

    # -- messages from the client -------------------------------------------------
    def message(self, message: Message) -> None:
        """One CLIP_* message from the client."""
        if isinstance(message, ClipRequest):
            self._requested(message)
        elif isinstance(message, ClipOffer):
            self._incoming = _Incoming(message.selection, message.serial)
        elif isinstance(message, ClipBegin):
            self._begin(message)
        elif isinstance(message, ClipData):
            self._data(message)
        elif isinstance(message, ClipEnd):
            self._end(message)
        elif isinstance(message, ClipError):
            self.log(f"clipboard: the client reports {message.code.name} for {message.serial}: {message.text}")

    def _requested(self, request: ClipRequest) -> None:
        offer = self._offers.get(request.selection)
        if offer is None or offer[0] != request.serial:
            self._error(request.serial, TransferError.STALE, "that clipboard content is no longer offered")
            return
        if self.selections is None:
            self._error(request.serial, TransferError.UNAVAILABLE, "the session has no clipboard")
            return
        task = self.loop.create_task(self._answer(request, self.selections))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, request: ClipRequest, selections: Selections) -> None:
        try:
            data = await selections.fetch(request.selection.name, MIME_NAMES[request.mime])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every fetch failure becomes one CLIP_ERROR
            self._error(request.serial, error_code(exc), str(exc)[:200] or type(exc).__name__)
            return
        if self.sender is not None:
            self.sender.stream(_content(request.selection, request.serial, request.mime, data))

    def _begin(self, begin: ClipBegin) -> None:
        incoming = self._incoming
        if incoming is None or incoming.serial != begin.serial or incoming.selection != begin.selection:
            self._error(begin.serial, TransferError.STALE, "CLIP_BEGIN without its CLIP_OFFER")
            return
        policy = self.selections.policy if self.selections is not None else ClipboardPolicy(from_client=False)
        cap = policy.max_bytes(MIME_NAMES[begin.mime])
        if not policy.selection_from_client(begin.selection.name) or cap == 0:
            why = f"{MIME_NAMES[begin.mime]} to {begin.selection.name} is not allowed"
            self._refuse(begin.serial, TransferError.REFUSED, why)
            return
        if begin.size > cap:
            self._refuse(begin.serial, TransferError.TOO_LARGE, f"{begin.size} bytes is more than the limit of {cap}")
            return
        incoming.mime, incoming.size, incoming.buffer = begin.mime, begin.size, bytearray()

    def _data(self, data: ClipData) -> None:
        incoming = self._incoming
        if incoming is None or incoming.serial != data.serial or incoming.mime is None:
            return  # refused or stale: discarded
        if len(incoming.buffer) + len(data.data) > incoming.size:
            self._refuse(data.serial, TransferError.TOO_LARGE, "more bytes than CLIP_BEGIN announced")
            return
        incoming.buffer += data.data

    def _end(self, end: ClipEnd) -> None:
        incoming = self._incoming
        if incoming is None or incoming.serial != end.serial or incoming.mime is None:
            return
        if len(incoming.buffer) != incoming.size:
            why = f"{len(incoming.buffer)} of {incoming.size} bytes arrived"
            self._refuse(end.serial, TransferError.CANCELLED, why)
            return
        incoming.content[MIME_NAMES[incoming.mime]] = bytes(incoming.buffer)
        incoming.mime, incoming.buffer = None, bytearray()
        if self.selections is None:
            return
        try:
            self.selections.set_local(incoming.selection.name, incoming.content)
            if incoming.selection is Selection.CLIPBOARD and self.selections.policy.primary_from_client:
                self.selections.set_local("PRIMARY", incoming.content)  # middle-click pastes it too
        except ClipboardRefused as exc:
            self._error(end.serial, TransferError.REFUSED, str(exc))
            return
        if self.sender is not None:
            self.sender.send(ClipDone(end.serial))

    # -- helpers --------------------------------------------------------------------
    def _refuse(self, serial: int, code: TransferError, text: str) -> None:
        if self._incoming is not None:
            self._incoming.mime, self._incoming.buffer = None, bytearray()
        self._error(serial, code, text)

    def _error(self, serial: int, code: TransferError, text: str) -> None:
        if self.sender is not None:
            self.sender.send(ClipError(serial, code, text[:200]))

    def _send_offer(self, selection: Selection, serial: int, mimes: tuple[str, ...]) -> None:
        if self.sender is not None:
            self.sender.send(ClipOffer(selection, serial, mime_mask([MIME_CODES[m] for m in mimes])))


def _content(selection: Selection, serial: int, mime: Mime, data: bytes) -> Iterator[Any]:
    """CLIP_BEGIN, the CLIP_DATA chunks, CLIP_END: produced one at a time."""
    yield ClipBegin(selection, serial, mime, len(data))
    view = memoryview(data)
    for start in range(0, len(data), CLIP_CHUNK_BYTES):
        yield ClipData(serial, bytes(view[start : start + CLIP_CHUNK_BYTES]))
    yield ClipEnd(serial)

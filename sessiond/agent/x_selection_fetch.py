# Reading a selection that an app in the session owns.
#
# Why: "copy in the session, paste on the device" means asking the owning app
# for its TARGETS, then for the data, and the app answers when it likes --
# or never.  Every conversation here is a state machine driven by the
# agent's event loop (SelectionNotify, then PropertyNotify for each INCR
# step), never a blocking wait: an app that does not answer costs one timer
# and a failed future.  Sizes are checked before the bytes are read from the
# server (GetProperty with length 0 tells the size), so a cap is enforced
# before allocation, and an INCR transfer is dropped as soon as its announced
# or accumulated size crosses the cap.
"""The X selection requestor: fetches targets and data from the owning app."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import field
from typing import Any

from Xlib import X
from Xlib import error as xerror

from protocol.frozen import frozen_dataclass, plain_dataclass
from sessiond.agent.x_selection import AtomCache

# An app silent for this long (no SelectionNotify, no INCR step) is given up on.
SELECTION_TIMEOUT_SECONDS = 3.0
# A whole transfer, however steadily it trickles (bounds a slow INCR sender).
MAX_FETCH_SECONDS = 60.0
# Fetches waiting per selection behind the one in progress; more fail at once.
MAX_QUEUED_FETCHES = 8
# Properties on our window used for conversations, in rotation, so a late
# answer to a timed-out request can never be taken for a newer one's.
PROPERTY_POOL = 32


class SelectionError(Exception):
    """A fetch failed; the message says why."""


class SelectionTimeout(SelectionError):
    """The owner did not answer (or stopped sending) within the timeout."""


class SelectionTooLarge(SelectionError):
    """The owner's data is larger than the cap for its type."""


class SelectionUnavailable(SelectionError):
    """No owner, or the owner refused the conversion."""


@frozen_dataclass
class Fetched:
    """What an owner gave: the property type's atom, the format (8/16/32) and the value."""

    type_atom: int
    format: int
    data: bytes
    items: tuple[int, ...] = ()  # format 32 values (atoms, integers)


@plain_dataclass
class _Conversation:
    selection: int
    target: int
    cap: int
    future: asyncio.Future[Fetched]
    property: int = X.NONE
    incr: bytearray | None = None
    incr_type: int = X.NONE
    started: float = field(default_factory=time.monotonic)
    timer: Any = None


class SelectionFetcher:
    """Runs selection conversations on our window, one per selection at a time."""

    def __init__(self, display: Any, atoms: AtomCache, window: Any, loop: asyncio.AbstractEventLoop,
                 log: Callable[[str], None]) -> None:  # fmt: skip
        self._display = display
        self._atoms = atoms
        self._window = window
        self._loop = loop
        self._log = log
        self._queues: dict[int, deque[_Conversation]] = {}
        self._next_property = 0
        self.incr_received = 0  # completed INCR receives, for tests and metrics

    def fetch(self, selection: int, target: int, cap: int) -> asyncio.Future[Fetched]:
        """Ask the owner of selection for target; the future fails with a SelectionError."""
        future: asyncio.Future[Fetched] = self._loop.create_future()
        queue = self._queues.setdefault(selection, deque())
        if len(queue) > MAX_QUEUED_FETCHES:
            future.set_exception(SelectionUnavailable("too many clipboard requests waiting"))
            return future
        queue.append(_Conversation(selection, target, cap, future))
        if len(queue) == 1:
            self._start(queue[0])
        return future

    def _start(self, conv: _Conversation) -> None:
        conv.property = self._atoms.atom(f"_SESSIOND_SEL_{self._next_property % PROPERTY_POOL}")
        self._next_property += 1
        conv.started = time.monotonic()
        self._window.delete_property(conv.property)
        self._window.convert_selection(conv.selection, conv.target, conv.property, X.CurrentTime)
        self._display.flush()
        self._arm(conv)

    def _arm(self, conv: _Conversation) -> None:
        if conv.timer is not None:
            conv.timer.cancel()
        conv.timer = self._loop.call_later(SELECTION_TIMEOUT_SECONDS, self._timed_out, conv)

    def _active(self, selection: int) -> _Conversation | None:
        queue = self._queues.get(selection)
        return queue[0] if queue else None

    def handle_selection_notify(self, ev: Any) -> bool:
        """The owner answered a ConvertSelection of ours (or refused it)."""
        if ev.type != X.SelectionNotify or ev.requestor.id != self._window.id:
            return False
        conv = self._active(ev.selection)
        if conv is None or conv.incr is not None or ev.target != conv.target:
            return True  # a late answer to a conversation already over
        if ev.property == X.NONE:
            self._fail(conv, SelectionUnavailable("the owner refused the conversion"))
            return True
        if ev.property != conv.property:
            return True
        try:
            self._read_answer(conv)
        except xerror.XError as exc:
            self._fail(conv, SelectionUnavailable(f"cannot read the answer: {exc}"))
        return True

    def _read_answer(self, conv: _Conversation) -> None:
        head = self._window.get_property(conv.property, X.AnyPropertyType, 0, 0)
        if head is None:
            self._fail(conv, SelectionUnavailable("the owner answered with no data"))
            return
        if head.property_type == self._atoms.atom("INCR"):
            announced = self._window.get_property(conv.property, X.AnyPropertyType, 0, 1, delete=True)
            size = int(announced.value[0]) if announced is not None and len(announced.value) else 0
            if size > conv.cap:  # a lower bound by ICCCM: already too big
                self._fail(conv, SelectionTooLarge(f"{size} bytes announced, more than {conv.cap}"))
                return
            conv.incr = bytearray()
            self._arm(conv)  # deleting the property started the transfer
            return
        if head.bytes_after > conv.cap:
            self._window.delete_property(conv.property)
            self._fail(conv, SelectionTooLarge(f"{head.bytes_after} bytes, more than {conv.cap}"))
            return
        reply = self._window.get_property(conv.property, X.AnyPropertyType, 0, (head.bytes_after + 3) // 4,
                                          delete=True)  # fmt: skip
        self._complete(conv, reply.property_type, reply.format, reply.value)

    def handle_property_notify(self, ev: Any) -> bool:
        """One INCR step: the owner wrote the next chunk (zero length ends the transfer)."""
        if ev.type != X.PropertyNotify or ev.window.id != self._window.id or ev.state != X.PropertyNewValue:
            return False
        conv = next((q[0] for q in self._queues.values() if q and q[0].property == ev.atom), None)
        if conv is None or conv.incr is None:
            return conv is not None
        try:
            head = self._window.get_property(conv.property, X.AnyPropertyType, 0, 0)
            if head is None:
                return True
            if len(conv.incr) + head.bytes_after > conv.cap:
                self._window.delete_property(conv.property)
                self._fail(conv, SelectionTooLarge(f"more than {conv.cap} bytes"))
                return True
            if time.monotonic() - conv.started > MAX_FETCH_SECONDS:
                self._window.delete_property(conv.property)
                self._fail(conv, SelectionTimeout(f"transfer took longer than {MAX_FETCH_SECONDS:g} s"))
                return True
            chunk = self._window.get_property(conv.property, X.AnyPropertyType, 0, (head.bytes_after + 3) // 4,
                                              delete=True)  # fmt: skip
        except xerror.XError as exc:
            self._fail(conv, SelectionUnavailable(f"cannot read an INCR chunk: {exc}"))
            return True
        if chunk is None:
            return True
        if not chunk.value:
            self.incr_received += 1
            self._complete(conv, conv.incr_type or chunk.property_type, 8, bytes(conv.incr))
            return True
        conv.incr_type = chunk.property_type
        conv.incr += chunk.value if isinstance(chunk.value, bytes) else bytes(chunk.value)
        self._arm(conv)
        return True

    def _complete(self, conv: _Conversation, type_atom: int, fmt: int, value: Any) -> None:
        if fmt == 8:
            result = Fetched(type_atom, 8, bytes(value))
        else:
            result = Fetched(type_atom, fmt, b"", tuple(int(v) for v in value))
        if not conv.future.done():
            conv.future.set_result(result)
        self._next(conv)

    def _fail(self, conv: _Conversation, exc: SelectionError) -> None:
        if not conv.future.done():
            conv.future.set_exception(exc)
        self._next(conv)

    def _timed_out(self, conv: _Conversation) -> None:
        if self._active(conv.selection) is conv:
            with_incr = " during INCR" if conv.incr is not None else ""
            self._fail(
                conv, SelectionTimeout(f"no answer from the owner within {SELECTION_TIMEOUT_SECONDS:g} s{with_incr}")
            )

    def _next(self, conv: _Conversation) -> None:
        if conv.timer is not None:
            conv.timer.cancel()
        queue = self._queues.get(conv.selection)
        if queue and queue[0] is conv:
            queue.popleft()
            while queue and queue[0].future.done():  # cancelled by its caller meanwhile
                queue.popleft()
            if queue:
                self._start(queue[0])

    def cancel_all(self) -> None:
        """Fail every fetch in progress or waiting (the service is closing)."""
        for queue in self._queues.values():
            for conv in queue:
                if conv.timer is not None:
                    conv.timer.cancel()
                if not conv.future.done():
                    conv.future.set_exception(SelectionUnavailable("the clipboard service stopped"))
            queue.clear()

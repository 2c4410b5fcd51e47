# The session's clipboard, as the rest of the agent sees it.
#
# Why: the client's clipboard and the session's X selections must meet
# without either side waiting on the other.  This service owns its own X
# connection (so a slow selection conversation never sits between the
# display pipeline and its damage events, and the agent's main loop needs
# only one add_reader more), a hidden window that serves as owner and
# requestor, and XFixes selection notifications that tell it when an app
# takes CLIPBOARD or PRIMARY.  It offers three things: set_local (the
# client's content becomes the session's selection), ClipboardChanged
# events (an app copied something; here are the MIME types on offer) and
# fetch (the bytes of one type).  Our own ownership is never reported back
# as a change, so the client never receives its own paste as a "copy".
# Policy (directions, PRIMARY, sizes, types) is applied here, once.
"""The agent's clipboard service: set_local, ClipboardChanged events, fetch."""

from __future__ import annotations

import asyncio
import select
import time
from collections.abc import Callable, Mapping
from typing import Any

from Xlib import X, Xatom
from Xlib import display as xdisplay
from Xlib import error as xerror
from Xlib.ext import xfixes

from protocol.frozen import frozen_dataclass
from sessiond.agent.clipboard_policy import TEXT_MIME, ClipboardPolicy
from sessiond.agent.selection_targets import fetched_to_mime, is_utf8, offered_mimes, target_to_fetch
from sessiond.agent.x_selection import AtomCache, SelectionServer
from sessiond.agent.x_selection_fetch import (
    Fetched,
    SelectionError,
    SelectionFetcher,
    SelectionTooLarge,
    SelectionUnavailable,
)

SELECTIONS = ("CLIPBOARD", "PRIMARY")
# X events handled per drain before the loop serves others (as main.py does).
MAX_X_EVENTS_PER_DRAIN = 256
# Target names read from one app's TARGETS answer (4 bytes each; office suites offer ~40).
MAX_TARGETS = 1024
# Property on our window appended to (zero bytes) to learn the server time.
TIMESTAMP_PROPERTY = "_SESSIOND_TIMESTAMP"
# The X server answers a property change at once; only a wedged server is slower.
SERVER_TIME_TIMEOUT_SECONDS = 1.0
# X errors logged per connection before the log goes quiet (a hostile app can
# provoke one per request).
MAX_LOGGED_X_ERRORS = 20


class ClipboardRefused(Exception):
    """The policy does not allow this transfer; the message says which rule."""


@frozen_dataclass
class ClipboardChanged:
    """An app in the session took a selection; mimes are the types it offers (policy-filtered)."""

    selection: str
    mimes: tuple[str, ...]


class SelectionService:
    """The session's CLIPBOARD/PRIMARY, bridged to the client under a policy."""

    def __init__(self, loop: asyncio.AbstractEventLoop, display_name: str, policy: ClipboardPolicy,
                 on_change: Callable[[ClipboardChanged], None], log: Callable[[str], None]) -> None:  # fmt: skip
        self._loop = loop
        self.policy = policy
        self._on_change = on_change
        self._log = log
        self._x_errors = 0
        self.x = xdisplay.Display(display_name)
        self.x.set_error_handler(self._x_error)
        if not self.x.has_extension(xfixes.extname):
            self.x.close()
            raise SelectionUnavailable("the X server has no XFIXES extension")
        self.x.xfixes_query_version()
        screen = self.x.screen()
        self.window = screen.root.create_window(-10, -10, 1, 1, 0, X.CopyFromParent, X.InputOnly,
                                                X.CopyFromParent, override_redirect=True,
                                                event_mask=X.PropertyChangeMask)  # fmt: skip
        self.atoms = AtomCache(self.x)
        self.server = SelectionServer(self.x, self.atoms, self.window, loop.call_later, log)
        self.fetcher = SelectionFetcher(self.x, self.atoms, self.window, loop, log)
        self._selection_atoms = {name: self.atoms.atom(name) for name in SELECTIONS}
        self._names = {atom: name for name, atom in self._selection_atoms.items()}
        self._targets: dict[str, tuple[str, ...]] = {}  # the current owner's target names
        self._generation: dict[str, int] = dict.fromkeys(SELECTIONS, 0)
        self._deferred: list[Any] = []
        mask = (
            xfixes.XFixesSetSelectionOwnerNotifyMask
            | xfixes.XFixesSelectionWindowDestroyNotifyMask
            | xfixes.XFixesSelectionClientCloseNotifyMask
        )
        for atom in self._selection_atoms.values():
            self.x.xfixes_select_selection_input(self.window, atom, mask)
        self.x.sync()
        self._fd = self.x.fileno()
        loop.add_reader(self._fd, self._readable)
        loop.call_soon(self._readable)

    # -- the API ----------------------------------------------------------------
    def set_local(self, selection: str, content: Mapping[str, bytes]) -> None:
        """Make content (MIME type -> bytes, text as UTF-8) the session's selection.

        Raises ClipboardRefused if the policy does not allow it.
        """
        if selection not in SELECTIONS or not self.policy.selection_from_client(selection):
            raise ClipboardRefused(f"setting {selection} from the client is not allowed")
        allowed = {}
        for mime, data in content.items():
            cap = self.policy.max_bytes(mime)
            if cap == 0:
                raise ClipboardRefused(f"{mime} is not an allowed clipboard type")
            if len(data) > cap:
                raise ClipboardRefused(f"{mime} of {len(data)} bytes is larger than the limit of {cap}")
            if mime == TEXT_MIME and not is_utf8(data):
                raise ClipboardRefused("the text is not valid UTF-8")
            allowed[mime] = bytes(data)
        if not allowed:
            raise ClipboardRefused("no content")
        if not self.server.own(self._selection_atoms[selection], allowed, self._server_time()):
            self._log(f"clipboard: the X server did not give us {selection}")
        self._readable()

    async def fetch(self, selection: str, mime: str) -> bytes:
        """The current owner's content of selection as mime (text as UTF-8).

        Raises ClipboardRefused (policy), or SelectionError: SelectionTimeout,
        SelectionTooLarge, SelectionUnavailable.
        """
        if selection not in SELECTIONS or not self.policy.selection_to_client(selection):
            raise ClipboardRefused(f"{selection} to the client is not allowed")
        cap = self.policy.max_bytes(mime)
        if cap == 0:
            raise ClipboardRefused(f"{mime} is not an allowed clipboard type")
        targets = self._targets.get(selection)
        if targets is None:
            targets = await self._fetch_targets(selection)
        target = target_to_fetch(mime, targets)
        if target is None:
            raise SelectionUnavailable(f"the owner of {selection} offers no {mime}")
        fetched = await self._fetch(selection, self.atoms.atom(target), cap)
        if fetched.format != 8:
            raise SelectionUnavailable(f"the owner of {selection} answered {target} with format {fetched.format}")
        data = fetched_to_mime(target, fetched.data)
        if len(data) > cap:  # STRING grows when made UTF-8
            raise SelectionTooLarge(f"{len(data)} bytes, more than {cap}")
        return data

    def close(self) -> None:
        """Release the selections and the X connection; fetches in progress fail."""
        self._loop.remove_reader(self._fd)
        self.fetcher.cancel_all()
        self.server.close()
        try:
            self.x.close()
        except (xerror.XError, OSError):
            pass

    # -- X events -------------------------------------------------------------
    def _readable(self) -> None:
        try:
            self._drain()
        except xerror.ConnectionClosedError as exc:
            self._log(f"clipboard: the X connection closed ({exc})")
            self._loop.remove_reader(self._fd)
            self.fetcher.cancel_all()

    def _drain(self) -> None:
        # As in main.py: python-xlib reads events into its queue on every
        # request, so drain until the queue is empty after the final flush.
        for _ in range(MAX_X_EVENTS_PER_DRAIN):
            if self._deferred:
                self._dispatch_guarded(self._deferred.pop(0))
                continue
            if not self.x.pending_events():
                self.x.flush()
                if not self.x.pending_events():
                    return
                continue
            self._dispatch_guarded(self.x.next_event())
        self.x.flush()
        self._loop.call_soon(self._readable)

    def _dispatch_guarded(self, ev: Any) -> None:
        # Error boundary: one event's failure costs that conversation, never the loop.
        try:
            self._dispatch(ev)
        except xerror.ConnectionClosedError:
            raise
        except Exception as exc:  # noqa: BLE001 - logged, bounded, and the next event is served
            self._x_errors += 1
            if self._x_errors <= MAX_LOGGED_X_ERRORS:
                self._log(f"clipboard: failed to handle X event {getattr(ev, 'type', '?')}: {exc!r}")

    def _dispatch(self, ev: Any) -> None:
        if isinstance(ev, xfixes.SelectionNotify):  # SetSelectionOwner, WindowDestroy, ClientClose
            self._owner_changed(ev)
        elif ev.type == X.SelectionRequest:
            self.server.handle_selection_request(ev)
        elif ev.type == X.SelectionClear:
            self.server.handle_selection_clear(ev)
        elif ev.type == X.SelectionNotify:
            self.fetcher.handle_selection_notify(ev)
        elif ev.type == X.PropertyNotify and not self.fetcher.handle_property_notify(ev):
            self.server.handle_property_notify(ev)

    def _owner_changed(self, ev: Any) -> None:
        name = self._names.get(ev.selection)
        if name is None:
            return
        self._generation[name] += 1
        self._targets.pop(name, None)
        owner = getattr(ev.owner, "id", ev.owner)
        if owner == self.window.id or owner == X.NONE:
            return  # our own ownership (never echoed), or the owner went away
        if not self.policy.selection_to_client(name):
            return
        generation = self._generation[name]
        task = self._loop.create_task(self._announce(name, generation))
        task.add_done_callback(_ignore_result)

    async def _announce(self, name: str, generation: int) -> None:
        try:
            targets = await self._fetch_targets(name)
        except SelectionError as exc:
            self._log(f"clipboard: cannot read the targets of {name}: {exc}")
            return
        if generation != self._generation[name]:
            return  # a newer owner already
        mimes = tuple(m for m in offered_mimes(targets) if self.policy.max_bytes(m) > 0)
        if mimes:
            self._on_change(ClipboardChanged(name, mimes))

    async def _fetch_targets(self, name: str) -> tuple[str, ...]:
        generation = self._generation[name]
        fetched = await self._fetch(name, self.atoms.atom("TARGETS"), MAX_TARGETS * 4)
        if fetched.format != 32:
            raise SelectionUnavailable("TARGETS answered in the wrong format")
        names = tuple(n for n in (self.atoms.name(a) for a in fetched.items[:MAX_TARGETS]) if n)
        if generation == self._generation[name]:  # still the same owner: worth remembering
            self._targets[name] = names
        return names

    def _fetch(self, name: str, target: int, cap: int) -> asyncio.Future[Fetched]:
        return self.fetcher.fetch(self._selection_atoms[name], target, cap)

    def _server_time(self) -> int:
        """The server's current time, from the PropertyNotify of a zero-length append (ICCCM 2.1).

        A round trip to the X server only (no app involved), bounded by
        SERVER_TIME_TIMEOUT_SECONDS; after that, CurrentTime (what many
        apps use anyway).  Other events read meanwhile are kept for the
        next drain, in order.
        """
        prop = self.atoms.atom(TIMESTAMP_PROPERTY)
        self.window.change_property(prop, Xatom.INTEGER, 32, [], mode=X.PropModeAppend)
        self.x.flush()
        deadline = time.monotonic() + SERVER_TIME_TIMEOUT_SECONDS
        try:
            while True:
                while self.x.pending_events():
                    ev = self.x.next_event()
                    if ev.type == X.PropertyNotify and ev.window.id == self.window.id and ev.atom == prop:
                        return int(ev.time)
                    self._deferred.append(ev)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._log("clipboard: no timestamp from the X server; taking the selection at CurrentTime")
                    return int(X.CurrentTime)
                select.select([self._fd], [], [], remaining)
        except xerror.ConnectionClosedError as exc:
            raise SelectionUnavailable(f"the X connection closed ({exc})") from exc

    def _x_error(self, error: Any, request: Any = None) -> None:
        # Requestor windows vanish mid-transfer; such errors cost that transfer only.
        self._x_errors += 1
        if self._x_errors <= MAX_LOGGED_X_ERRORS:
            self._log(f"clipboard: X error {error.__class__.__name__} (ignored)")


def _ignore_result(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()

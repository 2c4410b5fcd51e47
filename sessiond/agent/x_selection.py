# Serving the session's selections (CLIPBOARD, PRIMARY) with the client's content.
#
# Why: when the user copies on their device, the agent becomes the X owner of
# CLIPBOARD (and PRIMARY, so middle-click pastes too) and answers every app's
# SelectionRequest from memory: TARGETS, TIMESTAMP, MULTIPLE, the text
# targets and image/png (selection_targets decides which bytes for which
# target).  Content larger than one X request goes out with the INCR
# protocol (ICCCM 2.7.2): python-xlib speaks no BIG-REQUESTS, so one
# ChangeProperty is at most the server's max request (256 KiB on Xvfb).
# Nothing here waits for an app: an INCR transfer advances only when the
# requestor deletes the property (a PropertyNotify in the agent's event
# loop), and one that stops doing so is dropped after a timeout.
"""The X selection owner: answers SelectionRequest from the client's content."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from Xlib import X, Xatom
from Xlib import error as xerror
from Xlib.protocol import event as xevent

from protocol.frozen import plain_dataclass
from sessiond.agent.selection_targets import convert_for_target, served_targets

# Bytes of a ChangeProperty request before its data.
CHANGE_PROPERTY_HEADER_BYTES = 24
# Largest INCR chunk, below any server's max request: smaller chunks keep one
# transfer from holding the X connection long while input waits behind it.
MAX_INCR_CHUNK_BYTES = 256 * 1024
# INCR sends in progress at once; a request beyond this is refused (the app
# may retry), so a flood of paste requests cannot pin many copies of a chunk.
MAX_OUTGOING_INCR = 16
# A requestor that has not deleted the property for this long is abandoned.
INCR_SEND_TIMEOUT_SECONDS = 5.0
# (target, property) pairs read from one MULTIPLE request.
MAX_MULTIPLE_PAIRS = 64

TimerHandle = Any
CallLater = Callable[[float, Callable[[], None]], TimerHandle]


class AtomCache:
    """Atoms by name and names by atom, each asked of the server once."""

    def __init__(self, display: Any) -> None:
        self._display = display
        self._by_name: dict[str, int] = {}
        self._by_atom: dict[int, str] = {}

    def atom(self, name: str) -> int:
        """The atom for name (interned on first use)."""
        atom = self._by_name.get(name)
        if atom is None:
            atom = self._display.intern_atom(name)
            self._by_name[name] = atom
            self._by_atom[atom] = name
        return atom

    def name(self, atom: int) -> str | None:
        """The atom's name, or None for an atom the server does not know."""
        if atom == X.NONE:
            return None
        name = self._by_atom.get(atom)
        if name is None:
            try:
                name = self._display.get_atom_name(atom)
            except xerror.XError:
                return None
            if len(self._by_atom) < 4096:  # apps may name many atoms; keep the cache bounded
                self._by_atom[atom] = name
                self._by_name[name] = atom
        return name


@plain_dataclass
class _IncrSend:
    requestor: Any
    property: int
    type_atom: int
    data: bytes
    offset: int
    timer: TimerHandle


def incr_chunk_bytes(max_request_units: int) -> int:
    """The INCR chunk for a server whose max request is max_request_units (4-byte units)."""
    return max(4096, min(MAX_INCR_CHUNK_BYTES, max_request_units * 4 - CHANGE_PROPERTY_HEADER_BYTES - 1024))


class SelectionServer:
    """Holds the client's content per selection and answers requests for it."""

    def __init__(self, display: Any, atoms: AtomCache, window: Any, call_later: CallLater,
                 log: Callable[[str], None]) -> None:  # fmt: skip
        self._display = display
        self._atoms = atoms
        self._window = window
        self._call_later = call_later
        self._log = log
        self._content: dict[int, Mapping[str, bytes]] = {}
        self._owned_at: dict[int, int] = {}
        self._incr: dict[tuple[int, int], _IncrSend] = {}
        self.chunk_bytes = incr_chunk_bytes(display.display.info.max_request_length)
        self.incr_sent = 0  # completed INCR sends, for tests and metrics

    def sends_in_progress(self) -> int:
        """INCR sends waiting for their requestor."""
        return len(self._incr)

    def own(self, selection: int, content: Mapping[str, bytes], timestamp: int) -> bool:
        """Become the owner of selection with content; False if the server gave it to someone else."""
        self._window.set_selection_owner(selection, timestamp)
        owner = self._display.get_selection_owner(selection)
        if getattr(owner, "id", owner) != self._window.id:
            self._content.pop(selection, None)
            return False
        self._content[selection] = dict(content)
        self._owned_at[selection] = timestamp
        return True

    def owns(self, selection: int) -> bool:
        """True while we hold content for selection."""
        return selection in self._content

    def handle_selection_clear(self, ev: Any) -> bool:
        """Another client took a selection we owned: forget our content."""
        if ev.type != X.SelectionClear or ev.window.id != self._window.id:
            return False
        self._content.pop(ev.atom, None)
        return True

    def handle_selection_request(self, ev: Any) -> bool:
        """Answer one SelectionRequest (converting, or refusing with property None)."""
        if ev.type != X.SelectionRequest:
            return False
        prop = ev.property if ev.property != X.NONE else ev.target  # obsolete clients (ICCCM 2.2)
        content = self._content.get(ev.selection)
        ok = False
        if ev.owner.id == self._window.id and content is not None:
            owned_at = self._owned_at.get(ev.selection, 0)
            if ev.time == X.CurrentTime or ev.time >= owned_at:
                if ev.target == self._atoms.atom("MULTIPLE"):
                    ok = self._answer_multiple(ev.requestor, prop, content, owned_at)
                else:
                    ok = self._answer(ev.requestor, ev.target, prop, content, owned_at)
        reply = xevent.SelectionNotify(time=ev.time, requestor=ev.requestor.id, selection=ev.selection,
                                       target=ev.target, property=prop if ok else X.NONE)  # fmt: skip
        ev.requestor.send_event(reply, event_mask=0)
        return True

    def _answer(self, requestor: Any, target: int, prop: int, content: Mapping[str, bytes], owned_at: int) -> bool:
        name = self._atoms.name(target)
        if name == "TARGETS":
            atoms = [self._atoms.atom(n) for n in served_targets(content)]
            requestor.change_property(prop, Xatom.ATOM, 32, atoms)
            return True
        if name == "TIMESTAMP":
            requestor.change_property(prop, Xatom.INTEGER, 32, [owned_at])
            return True
        converted = convert_for_target(name or "", content)
        if converted is None:
            return False
        type_name, data = converted
        type_atom = self._atoms.atom(type_name)
        if len(data) <= self.chunk_bytes:
            requestor.change_property(prop, type_atom, 8, data)
            return True
        return self._start_incr(requestor, prop, type_atom, data)

    def _answer_multiple(self, requestor: Any, prop: int, content: Mapping[str, bytes], owned_at: int) -> bool:
        try:
            pairs = requestor.get_property(prop, X.AnyPropertyType, 0, MAX_MULTIPLE_PAIRS * 2)
        except xerror.XError:
            return False
        if pairs is None or pairs.format != 32:
            return False
        values = list(pairs.value)
        for i in range(0, len(values) - 1, 2):
            target, target_prop = values[i], values[i + 1]
            if target == self._atoms.atom("MULTIPLE") or not self._answer(requestor, target, target_prop,
                                                                          content, owned_at):  # fmt: skip
                values[i + 1] = X.NONE  # this pair failed (ICCCM 2.6.2)
        requestor.change_property(prop, pairs.property_type, 32, values)
        return True

    def _start_incr(self, requestor: Any, prop: int, type_atom: int, data: bytes) -> bool:
        key = (requestor.id, prop)
        if len(self._incr) >= MAX_OUTGOING_INCR and key not in self._incr:
            self._log(f"selection: {MAX_OUTGOING_INCR} INCR transfers in progress; refusing another")
            return False
        old = self._incr.pop(key, None)
        if old is not None:
            old.timer.cancel()
        # Our event mask on the requestor's window: we see it delete the property.
        if requestor.id != self._window.id:
            requestor.change_attributes(event_mask=X.PropertyChangeMask)
        requestor.change_property(prop, self._atoms.atom("INCR"), 32, [len(data)])
        send = _IncrSend(requestor, prop, type_atom, data, 0, None)
        send.timer = self._call_later(INCR_SEND_TIMEOUT_SECONDS, lambda: self._abandon(key, send))
        self._incr[key] = send
        return True

    def handle_property_notify(self, ev: Any) -> bool:
        """Advance an INCR send when its requestor deleted the property."""
        if ev.type != X.PropertyNotify or ev.state != X.PropertyDelete:
            return False
        send = self._incr.get((ev.window.id, ev.atom))
        if send is None:
            return False
        send.timer.cancel()
        chunk = send.data[send.offset : send.offset + self.chunk_bytes]
        send.requestor.change_property(send.property, send.type_atom, 8, chunk)
        if not chunk:  # the zero-length property that ends the transfer is written
            self._finish((ev.window.id, ev.atom))
            self.incr_sent += 1
            return True
        send.offset += len(chunk)
        key = (ev.window.id, ev.atom)
        send.timer = self._call_later(INCR_SEND_TIMEOUT_SECONDS, lambda: self._abandon(key, send))
        return True

    def _abandon(self, key: tuple[int, int], send: _IncrSend) -> None:
        if self._incr.get(key) is send:
            self._log(f"selection: requestor 0x{key[0]:x} stopped reading an INCR transfer; dropped")
            self._finish(key)
            self._display.flush()

    def _finish(self, key: tuple[int, int]) -> None:
        send = self._incr.pop(key)
        send.timer.cancel()
        # Stop watching the requestor's properties -- never on our own window,
        # whose PropertyChangeMask the requestor side and the timestamp need.
        if key[0] != self._window.id and not any(k[0] == key[0] for k in self._incr):
            send.requestor.change_attributes(event_mask=0)

    def close(self) -> None:
        """Stop every INCR send (the selections are released with the connection)."""
        for send in self._incr.values():
            send.timer.cancel()
        self._incr.clear()
        self._content.clear()

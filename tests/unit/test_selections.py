# The clipboard's pure parts and its requestor state machine, with fakes.
#
# The requestor (x_selection_fetch) is driven here by a recorder fake of
# the X window (properties in a dict, every GetProperty logged) and a fake
# loop whose timers the test fires by hand: so the size cap can be shown to
# hold *before* any data is read, and a silent owner to cost one timer.
"""Unit tests for selection_targets, clipboard_policy and SelectionFetcher."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessiond.agent import x_selection_fetch
from sessiond.agent.clipboard_policy import (
    HARD_MAX_TEXT_BYTES,
    PNG_MIME,
    TEXT_MIME,
    ClipboardPolicy,
)
from sessiond.agent.selection_targets import (
    convert_for_target,
    fetched_to_mime,
    is_utf8,
    offered_mimes,
    served_targets,
    target_to_fetch,
    utf8_to_latin1,
)
from sessiond.agent.x_selection import (
    MAX_MULTIPLE_PAIRS,
    MAX_OUTGOING_INCR,
    AtomCache,
    SelectionServer,
    incr_chunk_bytes,
)
from sessiond.agent.x_selection_fetch import (
    MAX_QUEUED_FETCHES,
    SelectionFetcher,
    SelectionTimeout,
    SelectionTooLarge,
    SelectionUnavailable,
)

NONE = 0
PROPERTY_NEW_VALUE = 0
SELECTION_NOTIFY = 31
PROPERTY_NOTIFY = 28


# -- pure mapping ---------------------------------------------------------------
def test_served_targets_follow_the_content() -> None:
    assert served_targets([TEXT_MIME]) == ["TARGETS", "TIMESTAMP", "MULTIPLE", "UTF8_STRING", TEXT_MIME, "STRING",
                                           "TEXT"]  # fmt: skip
    assert served_targets([PNG_MIME])[-1] == PNG_MIME and "UTF8_STRING" not in served_targets([PNG_MIME])


def test_text_is_served_as_utf8_and_latin1_is_lossy_only_outside_latin1() -> None:
    content = {TEXT_MIME: "Grüße 日本 🎉".encode()}
    assert convert_for_target("UTF8_STRING", content) == ("UTF8_STRING", content[TEXT_MIME])
    assert convert_for_target("TEXT", content) == ("UTF8_STRING", content[TEXT_MIME])
    assert convert_for_target("STRING", content) == ("STRING", "Grüße ?? ?".encode("latin-1"))
    assert convert_for_target(PNG_MIME, content) is None
    assert convert_for_target("COMPOUND_TEXT", content) is None


@given(st.text(alphabet=st.characters(max_codepoint=255, exclude_categories=("Cs",))))
def test_latin1_text_survives_string_both_ways(text: str) -> None:
    data = text.encode()
    assert fetched_to_mime("STRING", utf8_to_latin1(data)) == data


def test_fetched_text_is_always_valid_utf8() -> None:
    assert fetched_to_mime("UTF8_STRING", b"ok \xff\xfe end") == "ok \ufffd\ufffd end".encode()
    assert fetched_to_mime("UTF8_STRING", "🎉".encode()) == "🎉".encode()
    assert fetched_to_mime("STRING", b"\xe9") == "é".encode()
    assert fetched_to_mime(PNG_MIME, b"\xff") == b"\xff"
    assert is_utf8("日本".encode()) and not is_utf8(b"\xc3")


def test_the_best_fetch_target_is_chosen() -> None:
    assert target_to_fetch(TEXT_MIME, ["STRING", "UTF8_STRING", "TARGETS"]) == "UTF8_STRING"
    assert target_to_fetch(TEXT_MIME, ["STRING", TEXT_MIME]) == TEXT_MIME
    assert target_to_fetch(TEXT_MIME, ["STRING"]) == "STRING"
    assert target_to_fetch(PNG_MIME, ["STRING"]) is None
    assert offered_mimes(["TARGETS", "image/png", "STRING"]) == (TEXT_MIME, PNG_MIME)
    assert offered_mimes(["TARGETS", "image/jpeg"]) == ()


def test_policy_clamps_sizes_and_filters_types() -> None:
    policy = ClipboardPolicy(max_text_bytes=10 * HARD_MAX_TEXT_BYTES, allowed_mimes=frozenset({TEXT_MIME}))
    assert policy.max_bytes(TEXT_MIME) == HARD_MAX_TEXT_BYTES
    assert policy.max_bytes(PNG_MIME) == 0
    assert policy.max_bytes("text/html") == 0
    assert not ClipboardPolicy().selection_to_client("PRIMARY")
    assert ClipboardPolicy(primary_to_client=True).selection_to_client("PRIMARY")
    assert not ClipboardPolicy(to_client=False, primary_to_client=True).selection_to_client("PRIMARY")
    assert not ClipboardPolicy(from_client=False).selection_from_client("CLIPBOARD")
    assert not ClipboardPolicy().selection_to_client("SECONDARY")


def test_incr_chunks_fit_any_server() -> None:
    assert incr_chunk_bytes(65535) <= 65535 * 4 - 24
    assert incr_chunk_bytes(4096) < 4096 * 4
    assert incr_chunk_bytes(2**22) == 256 * 1024


# -- the requestor, with fakes ----------------------------------------------------
@dataclass
class Prop:
    property_type: int
    format: int
    value: Any
    bytes_after: int = 0


class FakeDisplay:
    def __init__(self) -> None:
        self.atoms: dict[str, int] = {}

    def intern_atom(self, name: str) -> int:
        return self.atoms.setdefault(name, 100 + len(self.atoms))

    def get_atom_name(self, atom: int) -> str:
        return next(n for n, a in self.atoms.items() if a == atom)

    def flush(self) -> None:
        pass


@dataclass
class FakeWindow:
    id: int = 7
    props: dict[int, Prop] = field(default_factory=dict)
    reads: list[tuple[int, int, bool]] = field(default_factory=list)  # (offset, length, delete)
    conversions: list[tuple[int, int, int]] = field(default_factory=list)

    def delete_property(self, prop: int) -> None:
        self.props.pop(prop, None)

    def convert_selection(self, selection: int, target: int, prop: int, time: int) -> None:
        self.conversions.append((selection, target, prop))

    def get_property(self, prop: int, type_: int, offset: int, length: int, delete: bool = False) -> Any:
        self.reads.append((offset, length, delete))
        held = self.props.get(prop)
        if held is None:
            return None
        size = len(held.value) * (held.format // 8)
        give = held.value[: length * 4 // (held.format // 8)]
        if delete:
            del self.props[prop]
        return Prop(held.property_type, held.format, give, max(0, size - len(give) * (held.format // 8)))


class FakeLoop:
    """create_future from a real loop; call_later recorded, fired by the test."""

    def __init__(self) -> None:
        self.real = asyncio.new_event_loop()
        self.timers: list[tuple[float, Callable[..., None], tuple[Any, ...], FakeHandle]] = []

    def create_future(self) -> asyncio.Future[Any]:
        return self.real.create_future()

    def call_later(self, delay: float, fn: Callable[..., None], *args: Any) -> FakeHandle:
        handle = FakeHandle()
        self.timers.append((delay, fn, args, handle))
        return handle

    def fire_timers(self) -> None:
        for _, fn, args, handle in list(self.timers):
            if not handle.cancelled:
                handle.cancelled = True
                fn(*args)


@dataclass
class FakeHandle:
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Event:
    type: int
    requestor: Any = None
    window: Any = None
    selection: int = 0
    target: int = 0
    property: int = 0
    atom: int = 0
    state: int = PROPERTY_NEW_VALUE


@pytest.fixture
def rig() -> Iterator[tuple[SelectionFetcher, FakeWindow, FakeLoop, AtomCache]]:
    display, window, loop = FakeDisplay(), FakeWindow(), FakeLoop()
    atoms = AtomCache(display)
    fetcher = SelectionFetcher(display, atoms, window, loop, lambda text: None)  # type: ignore[arg-type]
    yield fetcher, window, loop, atoms
    loop.real.close()


def answer(window: FakeWindow, prop: Prop) -> Event:
    """The owner wrote prop on the conversation's property and notified."""
    selection, target, property_atom = window.conversions[-1]
    window.props[property_atom] = prop
    return Event(SELECTION_NOTIFY, requestor=window, selection=selection, target=target, property=property_atom)


def test_a_plain_answer_is_read_whole(rig: Any) -> None:
    fetcher, window, _, atoms = rig
    future = fetcher.fetch(1, atoms.atom("UTF8_STRING"), 1000)
    assert fetcher.handle_selection_notify(answer(window, Prop(atoms.atom("UTF8_STRING"), 8, b"hello")))
    assert future.result().data == b"hello"


def test_an_answer_over_the_cap_is_never_read(rig: Any) -> None:
    fetcher, window, _, atoms = rig
    future = fetcher.fetch(1, atoms.atom("UTF8_STRING"), 100)
    fetcher.handle_selection_notify(answer(window, Prop(atoms.atom("UTF8_STRING"), 8, b"x" * 101)))
    with pytest.raises(SelectionTooLarge):
        future.result()
    assert window.reads == [(0, 0, False)]  # only the size was asked for
    assert not window.props  # and the owner's data deleted


def test_incr_over_the_cap_stops_at_the_announcement_or_the_chunk_that_crosses_it(rig: Any) -> None:
    fetcher, window, _, atoms = rig
    incr, utf8 = atoms.atom("INCR"), atoms.atom("UTF8_STRING")
    future = fetcher.fetch(1, utf8, 100)
    fetcher.handle_selection_notify(answer(window, Prop(incr, 32, [101])))
    with pytest.raises(SelectionTooLarge):
        future.result()
    # Announced small (a lower bound), then too many bytes arrive.
    future = fetcher.fetch(1, utf8, 100)
    notify = answer(window, Prop(incr, 32, [10]))
    fetcher.handle_selection_notify(notify)
    window.props[notify.property] = Prop(utf8, 8, b"a" * 60)
    fetcher.handle_property_notify(Event(PROPERTY_NOTIFY, window=window, atom=notify.property))
    window.props[notify.property] = Prop(utf8, 8, b"b" * 41)
    reads_before = len(window.reads)
    fetcher.handle_property_notify(Event(PROPERTY_NOTIFY, window=window, atom=notify.property))
    with pytest.raises(SelectionTooLarge):
        future.result()
    assert window.reads[reads_before:] == [(0, 0, False)]


def test_incr_chunks_are_joined(rig: Any) -> None:
    fetcher, window, _, atoms = rig
    incr, utf8 = atoms.atom("INCR"), atoms.atom("UTF8_STRING")
    future = fetcher.fetch(1, utf8, 1000)
    notify = answer(window, Prop(incr, 32, [6]))
    fetcher.handle_selection_notify(notify)
    for chunk in (b"abc", b"def", b""):
        window.props[notify.property] = Prop(utf8, 8, chunk)
        fetcher.handle_property_notify(Event(PROPERTY_NOTIFY, window=window, atom=notify.property))
    assert future.result().data == b"abcdef"
    assert fetcher.incr_received == 1


def test_a_silent_owner_costs_one_timer_and_the_next_fetch_goes_ahead(rig: Any) -> None:
    fetcher, window, loop, atoms = rig
    first = fetcher.fetch(1, atoms.atom("TARGETS"), 100)
    second = fetcher.fetch(1, atoms.atom("UTF8_STRING"), 100)
    assert len(window.conversions) == 1  # one conversation per selection at a time
    loop.fire_timers()
    with pytest.raises(SelectionTimeout):
        first.result()
    assert len(window.conversions) == 2 and not second.done()
    # A late answer for the first conversation (other property) is not taken for the second.
    late = Event(SELECTION_NOTIFY, requestor=window, selection=1, target=atoms.atom("UTF8_STRING"),
                 property=window.conversions[0][2])  # fmt: skip
    fetcher.handle_selection_notify(late)
    assert not second.done()


def test_a_refusal_and_a_queue_overflow_fail_cleanly(rig: Any) -> None:
    fetcher, window, _, atoms = rig
    first = fetcher.fetch(1, atoms.atom("TARGETS"), 100)
    queued = [fetcher.fetch(1, atoms.atom("TARGETS"), 100) for _ in range(MAX_QUEUED_FETCHES)]
    overflow = fetcher.fetch(1, atoms.atom("TARGETS"), 100)
    with pytest.raises(SelectionUnavailable):
        overflow.result()
    selection, target, _ = window.conversions[-1]
    fetcher.handle_selection_notify(Event(SELECTION_NOTIFY, requestor=window, selection=selection, target=target,
                                          property=NONE))  # fmt: skip
    with pytest.raises(SelectionUnavailable):
        first.result()
    fetcher.cancel_all()
    assert all(isinstance(f.exception(), SelectionUnavailable) for f in queued)


def test_a_transfer_that_trickles_past_the_whole_transfer_limit_fails(
    rig: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetcher, window, _, atoms = rig
    incr, utf8 = atoms.atom("INCR"), atoms.atom("UTF8_STRING")
    now = [1000.0]
    monkeypatch.setattr(x_selection_fetch.time, "monotonic", lambda: now[0])
    future = fetcher.fetch(1, utf8, 1000)
    notify = answer(window, Prop(incr, 32, [6]))
    fetcher.handle_selection_notify(notify)
    now[0] += x_selection_fetch.MAX_FETCH_SECONDS + 1  # each step in time, the whole too slow
    window.props[notify.property] = Prop(utf8, 8, b"abc")
    fetcher.handle_property_notify(Event(PROPERTY_NOTIFY, window=window, atom=notify.property))
    with pytest.raises(SelectionTimeout):
        future.result()


# -- the owner, with fakes ------------------------------------------------------------
class FakeRequestor:
    def __init__(self, wid: int) -> None:
        self.id = wid
        self.props: dict[int, tuple[int, int, Any]] = {}
        self.sent: list[Any] = []

    def change_property(self, prop: int, type_: int, fmt: int, data: Any) -> None:
        self.props[prop] = (type_, fmt, data)

    def change_attributes(self, event_mask: int) -> None:
        pass

    def send_event(self, ev: Any, event_mask: int = 0) -> None:
        self.sent.append(ev)

    def get_property(self, prop: int, type_: int, offset: int, length: int) -> Any:
        type_atom, fmt, data = self.props[prop]
        return Prop(type_atom, fmt, list(data)[:length])


class OwnerDisplay(FakeDisplay):
    def __init__(self, owner_id: int) -> None:
        super().__init__()
        self.owner_id = owner_id
        self.display = type("D", (), {"info": type("I", (), {"max_request_length": 4096})()})()

    def get_selection_owner(self, selection: int) -> int:
        return self.owner_id


class OwnerWindow:
    id = 7

    def set_selection_owner(self, selection: int, time: int) -> None:
        pass


def owner_rig() -> tuple[SelectionServer, AtomCache, FakeLoop]:
    display = OwnerDisplay(OwnerWindow.id)
    atoms = AtomCache(display)
    loop = FakeLoop()
    server = SelectionServer(display, atoms, OwnerWindow(), loop.call_later, lambda text: None)
    return server, atoms, loop


def request(atoms: AtomCache, requestor: FakeRequestor, target: str, prop: str, time: int = 0) -> Event:
    ev = Event(30, requestor=requestor, selection=1, target=atoms.atom(target), property=atoms.atom(prop))
    ev.owner = OwnerWindow()  # type: ignore[attr-defined]
    ev.time = time  # type: ignore[attr-defined]
    return ev


def test_requests_older_than_our_ownership_are_refused() -> None:
    server, atoms, loop = owner_rig()
    server.own(1, {TEXT_MIME: b"hi"}, timestamp=500)
    requestor = FakeRequestor(50)
    server.handle_selection_request(request(atoms, requestor, "UTF8_STRING", "P", time=499))
    server.handle_selection_request(request(atoms, requestor, "UTF8_STRING", "Q", time=501))
    assert [ev.property for ev in requestor.sent] == [0, atoms.atom("Q")]
    assert requestor.props[atoms.atom("Q")] == (atoms.atom("UTF8_STRING"), 8, b"hi")
    loop.real.close()


def test_incr_sends_are_bounded_and_step_on_each_delete() -> None:
    server, atoms, loop = owner_rig()
    data = bytes(range(256)) * (3 * server.chunk_bytes // 256 + 1)
    server.own(1, {TEXT_MIME: data}, timestamp=1)
    requestors = [FakeRequestor(100 + i) for i in range(MAX_OUTGOING_INCR + 1)]
    for requestor in requestors:
        server.handle_selection_request(request(atoms, requestor, "UTF8_STRING", "P"))
    assert server.sends_in_progress() == MAX_OUTGOING_INCR
    assert requestors[-1].sent[0].property == 0  # one too many: refused, the app may retry
    first = requestors[0]
    assert first.props[atoms.atom("P")][0] == atoms.atom("INCR")
    received = b""
    while True:
        server.handle_property_notify(Event(PROPERTY_NOTIFY, window=first, atom=atoms.atom("P"), state=1))
        chunk = first.props[atoms.atom("P")][2]
        if not chunk:
            break
        assert len(chunk) <= server.chunk_bytes
        received += chunk
    assert received == data and server.incr_sent == 1
    loop.real.close()


def test_multiple_reads_at_most_max_multiple_pairs() -> None:
    server, atoms, loop = owner_rig()
    server.own(1, {TEXT_MIME: b"hi"}, timestamp=1)
    requestor = FakeRequestor(60)
    pairs = []
    for i in range(MAX_MULTIPLE_PAIRS + 5):
        pairs += [atoms.atom("UTF8_STRING"), atoms.atom(f"P{i}")]
    requestor.change_property(atoms.atom("PAIRS"), atoms.atom("ATOM_PAIR"), 32, pairs)
    server.handle_selection_request(request(atoms, requestor, "MULTIPLE", "PAIRS"))
    assert atoms.atom(f"P{MAX_MULTIPLE_PAIRS - 1}") in requestor.props
    assert atoms.atom(f"P{MAX_MULTIPLE_PAIRS}") not in requestor.props
    loop.real.close()

# A recorder fake of WmBackend: an in-memory X server that logs every request.
#
# Why: the window manager's decisions (placement, hints, stacking, focus,
# close) are checked by the exact requests it makes, with no X server, no
# sockets and no sleeps; the fake answers property reads only up to the limit
# asked, as GetProperty's long-length does.
"""FakeX (WmBackend recorder) and FakeClock (call_later without waiting)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sessiond.agent.window_model import Rect
from sessiond.agent.wm_backend import TopLevel, WmSelectionError


@dataclass
class FakeWindow:
    """One root child of the fake server and its properties."""

    geometry: Rect
    override_redirect: bool = False
    mapped: bool = False
    border_width: int = 0
    text: dict[str, bytes] = field(default_factory=dict)
    cards: dict[str, list[int]] = field(default_factory=dict)
    atoms: dict[str, list[str]] = field(default_factory=dict)


class FakeX:
    """WmBackend over dicts; `calls` logs (method, args...) in order."""

    def __init__(self, wm_running: bool = False) -> None:
        self.windows: dict[int, FakeWindow] = {}
        self.order: list[int] = []
        self.calls: list[tuple[Any, ...]] = []
        self.root: dict[str, list[int | str]] = {}
        self.props: dict[tuple[int, str], list[int | str]] = {}
        self.focus = 0
        self.wm_running = wm_running
        self.killed: list[int] = []
        self.read_limits: dict[str, int] = {}

    def add(self, wid: int, w: int = 200, h: int = 100, x: int = 0, y: int = 0, **props: Any) -> FakeWindow:
        win = FakeWindow(Rect(x, y, w, h), **props)
        self.windows[wid] = win
        self.order.append(wid)
        return win

    def acquire_wm_selection(self) -> None:
        if self.wm_running:
            raise WmSelectionError("another window manager holds WM_S0")
        self.calls.append(("acquire",))

    def top_levels(self) -> list[TopLevel]:
        return [t for t in (self.top_level(w) for w in self.order) if t is not None]

    def top_level(self, window: int) -> TopLevel | None:
        win = self.windows.get(window)
        if win is None:
            return None
        return TopLevel(window, win.geometry, win.border_width, win.override_redirect, win.mapped)

    def get_text(self, window: int, name: str, max_bytes: int) -> bytes | None:
        self.read_limits[name] = max_bytes
        win = self.windows.get(window)
        value = win.text.get(name) if win else None
        return None if value is None else value[:max_bytes]

    def get_cardinals(self, window: int, name: str, max_items: int) -> list[int] | None:
        self.read_limits[name] = max_items
        win = self.windows.get(window)
        value = win.cards.get(name) if win else None
        return None if value is None else value[:max_items]

    def get_atoms(self, window: int, name: str, max_items: int) -> list[str]:
        win = self.windows.get(window)
        return list(win.atoms.get(name, []))[:max_items] if win else []

    def atom_name(self, atom: int) -> str:
        return {1: "_NET_WM_STATE_MAXIMIZED_VERT", 2: "_NET_WM_STATE_MAXIMIZED_HORZ",
                3: "_NET_WM_STATE_HIDDEN", 4: "_NET_WM_STATE_MODAL"}.get(atom, "")  # fmt: skip

    def watch(self, window: int) -> None:
        self.calls.append(("watch", window))

    def configure(self, window: int, geometry: Rect, border_width: int | None = None) -> None:
        self.calls.append(("configure", window, geometry))
        if window in self.windows:
            self.windows[window].geometry = geometry

    def send_configure_notify(self, window: int, geometry: Rect) -> None:
        self.calls.append(("synthetic_configure", window, geometry))

    def restack(self, bottom_to_top: Sequence[int]) -> None:
        self.calls.append(("restack", tuple(bottom_to_top)))

    def map(self, window: int) -> None:
        self.calls.append(("map", window))
        if window in self.windows:
            self.windows[window].mapped = True

    def unmap(self, window: int) -> None:
        self.calls.append(("unmap", window))
        if window in self.windows:
            self.windows[window].mapped = False

    def set_property(self, window: int, name: str, type_name: str, values: Sequence[int | str]) -> None:
        self.props[(window, name)] = list(values)

    def set_root_property(self, name: str, type_name: str, values: Sequence[int | str]) -> None:
        self.root[name] = list(values)

    def set_focus(self, window: int) -> None:
        self.calls.append(("focus", window))
        self.focus = window

    def send_protocol(self, window: int, protocol: str) -> None:
        self.calls.append(("protocol", window, protocol))

    def kill_client(self, window: int) -> None:
        self.calls.append(("kill", window))
        self.killed.append(window)

    def flush(self) -> None:
        pass

    def requests(self, name: str) -> list[tuple[Any, ...]]:
        """The logged calls of one method."""
        return [c for c in self.calls if c[0] == name]


class FakeTimer:
    def __init__(self, clock: FakeClock, when: float, fn: Callable[[], None]) -> None:
        self.when, self.fn, self.cancelled = when, fn, False
        clock.timers.append(self)

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """call_later that runs callbacks when advance() passes their time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[FakeTimer] = []

    def call_later(self, delay: float, fn: Callable[[], None]) -> FakeTimer:
        return FakeTimer(self, self.now + delay, fn)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [t for t in self.timers if t.when <= self.now and not t.cancelled]
        self.timers = [t for t in self.timers if t not in due]
        for timer in due:
            timer.fn()

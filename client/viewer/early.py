# Why the viewer connects before Qt exists: loading PySide6 and building the
# QApplication take a few hundred milliseconds, and so do the TLS handshake,
# the login (PAM's password hash) and the start of a new session on the
# server. Done one after the other, the user waits for both; so `svclient
# view` starts the link first (its reactor thread connects and logs in) and
# loads Qt meanwhile. Until the Qt bridge exists, what the link has to tell
# the GUI waits here, in order, and is handed over when the bridge attaches;
# from then on every call goes straight through. The link calls from its
# reactor thread and the GUI attaches from the main thread: one lock orders
# the two, so no event is lost or reordered at the hand-over.
"""EarlyEvents: the link's events, held until the GUI's bridge attaches."""

from __future__ import annotations

import threading
from typing import Any

# Events held before the GUI attaches: a session sends a handful (status lines,
# window snapshots, "pixels ready"); more means the GUI never came up, and the
# oldest window snapshots and wake-ups are the ones that can go.
MAX_HELD_EVENTS = 1024
# Events that only repeat a state the latest one of the same name supersedes.
_SUPERSEDED = ("windows_changed", "pixels_ready")


class EarlyEvents:
    """A LinkEvents (client/viewer/link.py) that holds calls until attach(target)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: Any = None
        self._held: list[tuple[str, tuple[Any, ...]]] = []

    def attach(self, target: Any) -> None:
        """From now on call TARGET; the held events are passed to it first, in order."""
        with self._lock:
            held, self._held = self._held, []
            for name, args in held:
                getattr(target, name)(*args)
            self._target = target

    def held(self) -> int:
        """How many events wait for the GUI."""
        with self._lock:
            return len(self._held)

    def _call(self, name: str, args: tuple[Any, ...]) -> None:
        with self._lock:
            if self._target is None:
                if name in _SUPERSEDED:
                    self._held = [event for event in self._held if event[0] != name]
                if len(self._held) < MAX_HELD_EVENTS:
                    self._held.append((name, args))
                return
            target = self._target
        getattr(target, name)(*args)

    def windows_changed(self, snapshot: Any) -> None:
        """The session's windows changed (only the latest snapshot is held)."""
        self._call("windows_changed", (snapshot,))

    def pixels_ready(self) -> None:
        """Patches wait in link.take_patches() (held once)."""
        self._call("pixels_ready", ())

    def status(self, text: str, stale: bool) -> None:
        """A line for the user."""
        self._call("status", (text, stale))

    def finished(self, message: str, code: int) -> None:
        """The viewer must end."""
        self._call("finished", (message, code))

    def apps_listed(self, apps: list[tuple[str, str, str, bytes]]) -> None:
        """The published apps, for the launcher."""
        self._call("apps_listed", (apps,))

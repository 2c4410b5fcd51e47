# Local key events -> X keysyms for the session. On X11 Qt reports the
# keysym the local keyboard produced as the event's native virtual key, so
# the plain translation sends that keysym down and up and remembers what is
# held, so that focus-out can release it (a key held while the window lost
# focus must not stay down in the session). Keys without a native keysym
# (other platforms) fall back to the typed character.
"""KeyTranslator: Qt key events to (keysym, down) pairs."""

from __future__ import annotations

from client.keysyms import keysym_for_char

# X keysyms of the modifier keys (Shift_L .. Hyper_R).
MODIFIERS = (0xFFE1, 0xFFEE)


class KeyTranslator:
    """Translates one window's key events; remembers the keys held down."""

    def __init__(self) -> None:
        # qt key code (or keysym when Qt has none) -> the keysym sent down
        self._held: dict[int, int] = {}

    @staticmethod
    def _keysym(native_keysym: int, text: str) -> int:
        if native_keysym:
            return native_keysym
        if len(text) == 1:
            try:
                return keysym_for_char(text)
            except ValueError:
                return 0
        return 0

    def press(self, qt_key: int, native_keysym: int, text: str, modifiers: int,
              auto_repeat: bool) -> list[tuple[int, bool]]:  # fmt: skip
        """The events for a key press (an auto-repeat repeats the press only)."""
        keysym = self._keysym(native_keysym, text)
        if not keysym:
            return []
        self._held[qt_key or keysym] = keysym
        return [(keysym, True)]

    def release(self, qt_key: int, native_keysym: int, text: str, modifiers: int,
                auto_repeat: bool) -> list[tuple[int, bool]]:  # fmt: skip
        """The events for a key release (none for an auto-repeat's synthetic release)."""
        if auto_repeat:
            return []
        keysym = self._held.pop(qt_key or self._keysym(native_keysym, text), 0)
        if not keysym:
            # Shift released first: ">" comes back up as "." (another Qt key). Release the
            # latest held non-modifier key instead of leaving ">" down in the session.
            plain = [k for k, sym in self._held.items() if not MODIFIERS[0] <= sym <= MODIFIERS[1]]
            keysym = self._held.pop(plain[-1]) if plain else self._keysym(native_keysym, text)
        return [(keysym, False)] if keysym else []

    def release_all(self) -> list[tuple[int, bool]]:
        """Release every key still held (the window lost focus)."""
        held, self._held = self._held, {}
        return [(keysym, False) for keysym in held.values()]

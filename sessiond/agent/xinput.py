# Keyboard and pointer injection through XTEST.
#
# Why: clients send keysyms (what the user meant), not keycodes (where the
# key sits on their keyboard), so the session types the right characters
# whatever the client's layout.  Here a keysym becomes a keycode of the
# session's keyboard plus the Shift / ISO_Level3_Shift state that selects it,
# starting from the modifiers the client itself holds down.  Keysyms the
# keyboard lacks (e.g. 'ä', '€' on the default US map) are bound on the fly
# to spare keycodes, rotating through several so that a client still
# processing the previous remap does not see the new symbol.
#
# Why nothing here raises for client input: every value comes from the
# network, and one bad key must never end the session.  An event that
# cannot be injected (keysym outside the X range, every spare keycode held,
# an out-of-range button) is logged and dropped; coordinates are clamped to
# what X can carry.  Methods return False for a dropped event, for tests.

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import Xlib.display
from Xlib import X, XK
from Xlib.ext import xtest

# Spare keycodes used for keysyms missing from the map; several, because a
# client looks the mapping up when it processes the event, which may be
# after we have remapped the keycode again.
MAX_SPARE_KEYCODES = 8
# Core keymap columns: 0/1 = group 1 plain/shifted, 4/5 = level 3 plain/shifted.
SHIFT_COLUMN_BIT = 1
LEVEL3_COLUMNS = (4, 5)
USED_COLUMNS = (0, 1, 4, 5)
# Keysyms of function keys (0xfe00-0xffff) keep whatever Shift the client
# holds, so Shift+Tab, Shift+Left etc. reach the application unchanged.
FUNCTION_KEYSYM_MIN = 0xFE00
FUNCTION_KEYSYM_MAX = 0xFFFF
# Latin-1 keysyms equal their code point; Unicode ones are 0x01000000 + cp.
LATIN1_MAX = 0xFF
UNICODE_KEYSYM_MIN = 0x01000000
UNICODE_KEYSYM_MAX = 0x0110FFFF
# Keysyms are 29-bit values (X11 protocol).
KEYSYM_MAX = 0x1FFFFFFF
# Wheel buttons per X convention: up, down, left, right.
WHEEL_UP, WHEEL_DOWN, WHEEL_LEFT, WHEEL_RIGHT = 4, 5, 6, 7
# Most wheel steps injected per call (a hostile client could send 2**31).
MAX_WHEEL_STEPS = 64
# Highest pointer button number XTEST accepts in the core protocol.
MAX_BUTTON = 255
# X coordinates are INT16 on the wire: larger values are clamped to this.
MAX_COORD = 32767

SHIFT_KEYSYMS = frozenset({XK.XK_Shift_L, XK.XK_Shift_R})
# ISO_Level3_Shift (AltGr); python-xlib's XK only loads it with the xkb group.
ISO_LEVEL3_SHIFT = 0xFE03
LEVEL3_KEYSYMS = frozenset({ISO_LEVEL3_SHIFT})


class InputError(ValueError):
    """The X server cannot take injected input at all (no XTEST)."""


def _ignore(_text: str) -> None:
    """Default log of an injector: discard."""


def _clamp(value: int) -> int:
    return min(max(int(value), 0), MAX_COORD)


def _is_function_keysym(keysym: int) -> bool:
    return FUNCTION_KEYSYM_MIN <= keysym <= FUNCTION_KEYSYM_MAX


def _has_case(keysym: int) -> bool:
    """True if keysym is a letter with a distinct other case.

    Latin-1 and Unicode keysyms are checked exactly; legacy keysym blocks
    (Greek, Cyrillic...) are assumed to have case, which only means Shift is
    lifted for them rather than left to chance.
    """
    if keysym <= LATIN1_MAX:
        char = chr(keysym)
    elif UNICODE_KEYSYM_MIN <= keysym <= UNICODE_KEYSYM_MAX:
        char = chr(keysym - UNICODE_KEYSYM_MIN)
    else:
        return True
    return char.lower() != char.upper()


class InputInjector:
    """Injects client keyboard and pointer events into one X display."""

    def __init__(self, display: Xlib.display.Display, log: Callable[[str], None] = _ignore) -> None:
        if not display.has_extension("XTEST"):
            raise InputError("the X server has no XTEST extension")
        self._display = display
        self._log = log
        self._min_keycode = display.display.info.min_keycode
        self._max_keycode = display.display.info.max_keycode
        self._keymap: list[list[int]] = []
        self._spares: list[int] = []
        # spare keycode -> when it was last bound (a counter): reuse the oldest.
        self._spare_used: dict[int, int] = {}
        self._binds = 0
        # keysym -> keycode for keys the client holds down (press used it).
        self._pressed: dict[int, int] = {}
        self.refresh_mapping()

    # -- keyboard mapping -------------------------------------------------

    def refresh_mapping(self) -> None:
        """Re-read the server's keyboard mapping (call on MappingNotify)."""
        count = self._max_keycode - self._min_keycode + 1
        rows = self._display.get_keyboard_mapping(self._min_keycode, count)
        self._keymap = [list(row) for row in rows]
        if not self._spares:
            self._spares = [
                self._min_keycode + i
                for i, row in enumerate(self._keymap)
                if not any(row)
            ][-MAX_SPARE_KEYCODES:]

    def handle_event(self, ev: Any) -> bool:
        """Refresh the mapping on a keyboard MappingNotify; True if handled."""
        if getattr(ev, "type", None) == X.MappingNotify and ev.request == X.MappingKeyboard:
            self.refresh_mapping()
            return True
        return False

    def _row(self, keycode: int) -> list[int]:
        return self._keymap[keycode - self._min_keycode]

    def _keycode_of(self, keysym: int) -> int | None:
        """Any keycode carrying keysym in column 0 (for modifiers)."""
        for i, row in enumerate(self._keymap):
            if row and row[0] == keysym:
                return self._min_keycode + i
        for i, row in enumerate(self._keymap):
            if keysym in row:
                return self._min_keycode + i
        return None

    def _candidates(self, keysym: int) -> list[tuple[int, bool | None, bool | None]]:
        """(keycode, needs_shift, needs_level3) choices; None means "either".

        Function keys (Tab, arrows, modifiers themselves) never change the
        modifiers the client holds.
        """
        found: list[tuple[int, bool | None, bool | None]] = []
        function_key = _is_function_keysym(keysym)
        for i, row in enumerate(self._keymap):
            keycode = self._min_keycode + i
            for column in USED_COLUMNS:
                if column >= len(row) or row[column] != keysym:
                    continue
                if function_key:
                    found.append((keycode, None, None))
                    continue
                level3: bool | None = column in LEVEL3_COLUMNS
                shift: bool | None = bool(column & SHIFT_COLUMN_BIT)
                partner = column ^ SHIFT_COLUMN_BIT
                partner_sym = row[partner] if partner < len(row) else X.NoSymbol
                if partner_sym == keysym or (
                    partner_sym == X.NoSymbol and not _has_case(keysym)
                ):
                    shift = None
                found.append((keycode, shift, level3))
        return found

    def _bind_spare(self, keysym: int) -> int | None:
        """Bind keysym to the least recently bound spare keycode not held
        down; None (and the key is refused) when every spare is held."""
        held = set(self._pressed.values())
        free = [kc for kc in self._spares if kc not in held]
        if not free:
            self._log(f"input: dropped keysym {keysym:#x}: all {len(self._spares)} spare keycodes are held down")
            return None
        keycode = min(free, key=lambda kc: self._spare_used.get(kc, -1))
        self._binds += 1
        self._spare_used[keycode] = self._binds
        width = len(self._row(keycode))
        row = [keysym, keysym] + [X.NoSymbol] * max(0, width - 2)
        self._display.change_keyboard_mapping(keycode, [row[:width]])
        self._keymap[keycode - self._min_keycode] = row[:width]
        return keycode

    # -- keyboard ---------------------------------------------------------

    def _held(self, keysyms: frozenset[int]) -> list[int]:
        return [kc for ks, kc in self._pressed.items() if ks in keysyms]

    def key(self, keysym: int, down: bool) -> bool:
        """Press or release the key that types `keysym`; False if dropped."""
        if not 0 < keysym <= KEYSYM_MAX:
            self._log(f"input: dropped keysym {keysym:#x}: outside the X keysym range 1..{KEYSYM_MAX:#x}")
            return False
        if not down:
            keycode = self._pressed.pop(keysym, None)
            if keycode is None:
                return False
            xtest.fake_input(self._display, X.KeyRelease, keycode)
            self._display.flush()
            return True
        if keysym in self._pressed:
            # Auto-repeat: release, then press as new (with its Shift/AltGr
            # again); Xvfb runs without server-side repeat (-r) and drops a
            # press of a key that is already down.
            xtest.fake_input(self._display, X.KeyRelease, self._pressed.pop(keysym))
        held_shift = self._held(SHIFT_KEYSYMS)
        held_level3 = self._held(LEVEL3_KEYSYMS)
        choices = self._candidates(keysym)
        if not choices:
            spare = self._bind_spare(keysym)
            if spare is None:
                return False
            choices = [(spare, None, None)]

        def cost(choice: tuple[int, bool | None, bool | None]) -> int:
            _, shift, level3 = choice
            shift_cost = 0 if shift is None or shift == bool(held_shift) else 1
            return shift_cost + (0 if level3 is None or level3 == bool(held_level3) else 1)

        keycode, shift, level3 = min(choices, key=cost)
        before: list[tuple[int, bool]] = []  # (keycode, down) adjustments
        before += self._adjust(shift, held_shift, XK.XK_Shift_L)
        before += self._adjust(level3, held_level3, ISO_LEVEL3_SHIFT)
        for kc, press in before:
            xtest.fake_input(self._display, X.KeyPress if press else X.KeyRelease, kc)
        xtest.fake_input(self._display, X.KeyPress, keycode)
        for kc, press in reversed(before):
            xtest.fake_input(self._display, X.KeyRelease if press else X.KeyPress, kc)
        self._pressed[keysym] = keycode
        self._display.flush()
        return True

    def _adjust(self, want: bool | None, held: list[int], modifier: int) -> list[tuple[int, bool]]:
        """Modifier presses/releases that make the state match `want`."""
        if want is None or want == bool(held):
            return []
        if want:
            keycode = self._keycode_of(modifier)
            if keycode is None:  # the key goes out at the level the client holds
                self._log(f"input: the keyboard has no key for modifier keysym {modifier:#x}")
                return []
            return [(keycode, True)]
        return [(kc, False) for kc in held]

    def release_all(self) -> None:
        """Release every key the client holds (on disconnect or focus loss)."""
        for keysym in list(self._pressed):
            self.key(keysym, False)

    # -- pointer ----------------------------------------------------------

    def pointer(self, x: int, y: int) -> bool:
        """Move the pointer to root coordinates (x, y), clamped to 0..MAX_COORD."""
        xtest.fake_input(self._display, X.MotionNotify, 0, x=_clamp(x), y=_clamp(y))
        self._display.flush()
        return True

    def button(self, x: int, y: int, button: int, down: bool) -> bool:
        """Move to (x, y), then press or release pointer button `button`; False if dropped."""
        if not 1 <= button <= MAX_BUTTON:
            self._log(f"input: dropped pointer button {button}: outside 1..{MAX_BUTTON}")
            return False
        xtest.fake_input(self._display, X.MotionNotify, 0, x=_clamp(x), y=_clamp(y))
        xtest.fake_input(self._display, X.ButtonPress if down else X.ButtonRelease, button)
        self._display.flush()
        return True

    def wheel(self, x: int, y: int, dx: int, dy: int) -> bool:
        """Scroll at (x, y): dy > 0 scrolls down, dx > 0 scrolls right; one
        press+release of button 4/5/6/7 per step (at most MAX_WHEEL_STEPS)."""
        xtest.fake_input(self._display, X.MotionNotify, 0, x=_clamp(x), y=_clamp(y))
        for steps, negative, positive in ((int(dy), WHEEL_UP, WHEEL_DOWN), (int(dx), WHEEL_LEFT, WHEEL_RIGHT)):
            button = positive if steps > 0 else negative
            for _ in range(min(abs(steps), MAX_WHEEL_STEPS)):
                xtest.fake_input(self._display, X.ButtonPress, button)
                xtest.fake_input(self._display, X.ButtonRelease, button)
        self._display.flush()
        return True

    def sync(self) -> None:
        """Wait until the X server has processed everything sent so far."""
        self._display.sync()

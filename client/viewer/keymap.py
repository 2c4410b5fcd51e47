# The native viewer's keyboard: local Qt key events -> X keysym presses and
# releases for the session's input channel.
#
# Why keysyms, and which ones: the agent's injector (sessiond/agent/xinput.py)
# takes a keysym, finds a key of the session's own (US) keyboard that types
# it, and itself adds or lifts Shift and ISO_Level3_Shift around that one
# press so that the keysym comes out, starting from the Shift it knows the
# client holds.  So the viewer must send what the user TYPED on the local
# layout (the keysym of the local key at its current level: 'A', 'at',
# 'EuroSign'), never the key's position, and must not forward the local
# level-choosing keys (AltGr, Mode_switch, Caps Lock, Num Lock): the local
# layout has already applied them and the session would apply them twice.
# Real modifiers (Shift, Control, Alt, Super) are forwarded, so shortcuts
# (Ctrl+C in xterm, Shift+Tab, Alt+F) reach the session's app.
#
# Dead keys and compose are local too: the dead key itself is never sent.
# When Qt hands over the composed text on the following key ('é' on 'e')
# that character is sent; when it hands over the plain key ('e' after a
# dead_acute event) this module composes the pair itself (Unicode NFC).
#
# Why it tracks every held key: X key releases must balance presses, and a
# release can come with other data than its press (Shift+1 pressed as
# 'exclam', released after Shift as '1'), so each release sends the keysym
# its press sent.  A focus-out calls release_all() so nothing stays stuck.
# A repeated press (auto-repeat) is sent as another press of the same keysym
# without a release: the injector repeats the same keycode.
"""KeyTranslator: Qt key events -> (X keysym, down) events for the session."""

from __future__ import annotations

import unicodedata

from client.keysyms import FIRST_PRINTABLE, char_for_keysym, keysym_for_char
from protocol.frozen import plain_dataclass

# Qt::KeyboardModifier bits (QKeyEvent.modifiers() as int).
QT_SHIFT = 0x02000000
QT_CONTROL = 0x04000000
QT_ALT = 0x08000000
QT_META = 0x10000000
# Keysyms 0xfe00-0xffff are function keys: sent as they are, never as text.
FUNCTION_KEYSYM_MIN = 0xFE00
FUNCTION_KEYSYM_MAX = 0xFFFF
# Dead keysyms (dead_grave 0xfe50 .. dead_greek 0xfe8c and later additions).
DEAD_KEYSYM_MIN = 0xFE50
DEAD_KEYSYM_MAX = 0xFE93
# Qt::Key_Dead_Grave; Qt's dead keys follow X's order from there.
QT_DEAD_MIN = 0x01001250
# Keys the local layout consumes to choose a level or a lock state; the
# session's injector chooses its own level, so these are never sent.
# ISO_Lock, ISO_Level2/3/5 Shift/Latch/Lock, ISO_Group_*, Mode_switch, Multi_key,
# Caps_Lock, Shift_Lock, Num_Lock.
LOCAL_ONLY_KEYSYMS = frozenset({
    0xFE01, 0xFE02, 0xFE03, 0xFE04, 0xFE05, 0xFE11, 0xFE12, 0xFE13,  # ISO_Lock, ISO_Level{2,3,5}_*
    0xFE06, 0xFE07, 0xFE08, 0xFE09, 0xFE0A, 0xFE0B, 0xFE0C, 0xFE0D, 0xFE0E, 0xFE0F,  # groups
    0xFF7E, 0xFF20, 0xFFE5, 0xFFE6, 0xFF7F,  # Mode_switch, Multi_key, Caps/Shift/Num_Lock
})
# Qt::Key_AltGr, Key_Multi_key, Key_Mode_switch, Key_CapsLock, Key_NumLock.
LOCAL_ONLY_QT_KEYS = frozenset({0x01001103, 0x01001120, 0x0100117E, 0x01000024, 0x01000025})
# Modifier keysyms: Shift_L .. Hyper_R.
MODIFIER_KEYSYMS = frozenset(range(0xFFE1, 0xFFEF)) - {0xFFE5, 0xFFE6}
# Keypad keys whose meaning depends on the session's Num Lock (KP_0..KP_9,
# KP_Decimal, KP_Separator): sent as the character they typed locally.
KEYPAD_NUMLOCK_KEYSYMS = frozenset(range(0xFFB0, 0xFFBA)) | {0xFFAC, 0xFFAE}
# Qt modifier bit -> (keysyms that hold it, keysym pressed to recreate it).
MODIFIER_BITS = (
    (QT_SHIFT, frozenset({0xFFE1, 0xFFE2}), 0xFFE1),     # Shift_L/R
    (QT_CONTROL, frozenset({0xFFE3, 0xFFE4}), 0xFFE3),   # Control_L/R
    (QT_ALT, frozenset({0xFFE9, 0xFFEA}), 0xFFE9),       # Alt_L/R
    (QT_META, frozenset({0xFFEB, 0xFFEC}), 0xFFEB),      # Super_L/R
)
# Dead keysym -> (combining character it adds, the accent typed on its own).
DEAD_ACCENTS = {
    0xFE50: ("\u0300", "`"), 0xFE51: ("\u0301", "\u00b4"), 0xFE52: ("\u0302", "^"),  # grave acute circumflex
    0xFE53: ("\u0303", "~"), 0xFE54: ("\u0304", "\u00af"), 0xFE55: ("\u0306", "\u02d8"),  # tilde macron breve
    0xFE56: ("\u0307", "\u02d9"), 0xFE57: ("\u0308", "\u00a8"), 0xFE58: ("\u030a", "\u02da"),  # abovedot diaeresis ring
    0xFE59: ("\u030b", "\u02dd"), 0xFE5A: ("\u030c", "\u02c7"), 0xFE5B: ("\u0327", "\u00b8"),  # dblacute caron cedilla
    0xFE5C: ("\u0328", "\u02db"),                                                            # ogonek
}
# Qt::Key_Dead_* -> dead keysym, for platforms without X keysyms.
QT_DEAD_KEYSYMS = {QT_DEAD_MIN + i: DEAD_KEYSYM_MIN + i for i in range(0x13)}
# Qt::Key -> keysym for keys without text, used when the platform gives no
# X keysym (Windows, macOS, Wayland-less fallbacks).
QT_FUNCTION_KEYSYMS = {
    0x01000000: 0xFF1B, 0x01000001: 0xFF09, 0x01000002: 0xFE20, 0x01000003: 0xFF08,  # Esc Tab Backtab BS
    0x01000004: 0xFF0D, 0x01000005: 0xFF8D, 0x01000006: 0xFF63, 0x01000007: 0xFFFF,  # Return Enter Ins Del
    0x01000008: 0xFF13, 0x01000009: 0xFF61, 0x0100000A: 0xFF15, 0x0100000B: 0xFF0B,  # Pause Print SysReq Clear
    0x01000010: 0xFF50, 0x01000011: 0xFF57, 0x01000012: 0xFF51, 0x01000013: 0xFF52,  # Home End Left Up
    0x01000014: 0xFF53, 0x01000015: 0xFF54, 0x01000016: 0xFF55, 0x01000017: 0xFF56,  # Right Down PgUp PgDn
    0x01000020: 0xFFE1, 0x01000021: 0xFFE3, 0x01000022: 0xFFEB, 0x01000023: 0xFFE9,  # Shift Ctrl Meta Alt
    0x01000026: 0xFF14, 0x01000053: 0xFFEB, 0x01000054: 0xFFEC, 0x01000055: 0xFF67,  # ScrollLock Super Menu
    0x01000058: 0xFF6A,                                                              # Help
    **{0x01000030 + i: 0xFFBE + i for i in range(35)},                                # F1..F35
}
# Most keys held at once (a keyboard has ~110): a bound on the table, so a
# confused platform that never sends releases cannot grow it without end.
MAX_HELD_KEYS = 64

KeyEvent = tuple[int, bool]


@plain_dataclass
class _Held:
    """One local key held down, and the keysym its press sent."""

    scan_code: int
    qt_key: int
    native: int
    keysym: int


class KeyTranslator:
    """Turns the viewer's key events into the session's (keysym, down) events.

    native_is_keysym: the platform's nativeVirtualKey() is an X keysym (Qt's
    xcb platform); elsewhere the keysym comes from the text and Qt key.
    Pass scan_code (QKeyEvent.nativeScanCode()) when available: it pairs a
    release with its press exactly; without it Qt key, native keysym and
    keysym are tried in turn.
    """

    def __init__(self, native_is_keysym: bool = True) -> None:
        self.native_is_keysym = native_is_keysym
        self._held: list[_Held] = []
        self._dead: int = 0  # a pending dead keysym, 0 if none

    # -- public ------------------------------------------------------------

    def press(self, qt_key: int, native_keysym: int, text: str, modifiers: int, auto_repeat: bool,
              scan_code: int = 0) -> list[KeyEvent]:  # fmt: skip
        """A local key went down: the events to send (maybe none)."""
        native = native_keysym if self.native_is_keysym else 0
        held = self._find(scan_code, qt_key, native, loose=False)
        if held is not None:  # auto-repeat (or a lost release): press again
            return [(held.keysym, True)]
        if self._local_only(qt_key, native):
            return []
        dead = self._dead_keysym(qt_key, native)
        if dead:
            self._dead = dead
            return []
        keysym = self._keysym(qt_key, native, text)
        events: list[KeyEvent] = []
        if self._dead and keysym not in MODIFIER_KEYSYMS:
            if native and keysym != native:
                self._dead = 0  # the platform composed it already
            else:
                keysym, events = self._compose(keysym)
        if not keysym or len(self._held) >= MAX_HELD_KEYS:
            return events
        if keysym not in MODIFIER_KEYSYMS:
            events = self._sync_modifiers(modifiers) + events
        already = any(h.keysym == keysym for h in self._held)
        self._held.append(_Held(scan_code, qt_key, native, keysym))
        if already and keysym in MODIFIER_KEYSYMS:
            return events  # e.g. a second Shift_L: it is down in the session already
        # Another key holding the same keysym: down once more (the injector
        # repeats it); the session sees it up only with its last holder.
        return events + [(keysym, True)]

    def release(self, qt_key: int, native_keysym: int, text: str, modifiers: int, auto_repeat: bool,
                scan_code: int = 0) -> list[KeyEvent]:  # fmt: skip
        """A local key went up: the release its press owes (maybe none)."""
        if auto_repeat:
            return []  # X reports a repeat as release+press: only the press is passed on
        native = native_keysym if self.native_is_keysym else 0
        if self._local_only(qt_key, native) or self._dead_keysym(qt_key, native):
            return []  # never sent, never held
        held = self._find(scan_code, qt_key, native, loose=True)
        if held is None:
            held = self._find_by_keysym(self._keysym(qt_key, native, text))
        if held is None:
            held = self._sole_non_modifier(scan_code, native)
        if held is None:
            return []
        self._held.remove(held)
        if any(h.keysym == held.keysym for h in self._held):
            return []
        return [(held.keysym, False)]

    def release_all(self) -> list[KeyEvent]:
        """Release every key held in the session (on focus-out): other keys
        first, then the modifiers, so no shortcut fires on the way."""
        keysyms: list[int] = []
        for held in self._held:
            if held.keysym not in keysyms:
                keysyms.append(held.keysym)
        self._held.clear()
        self._dead = 0
        ordered = [k for k in keysyms if k not in MODIFIER_KEYSYMS] + [k for k in keysyms if k in MODIFIER_KEYSYMS]
        return [(keysym, False) for keysym in ordered]

    @property
    def held_keysyms(self) -> list[int]:
        """The keysyms held down in the session, in press order."""
        return [held.keysym for held in self._held]

    # -- translation -------------------------------------------------------

    @staticmethod
    def _local_only(qt_key: int, native: int) -> bool:
        if native:
            return native in LOCAL_ONLY_KEYSYMS
        return qt_key in LOCAL_ONLY_QT_KEYS

    @staticmethod
    def _dead_keysym(qt_key: int, native: int) -> int:
        if native:
            return native if DEAD_KEYSYM_MIN <= native <= DEAD_KEYSYM_MAX else 0
        return QT_DEAD_KEYSYMS.get(qt_key, 0)

    @staticmethod
    def _keysym(qt_key: int, native: int, text: str) -> int:
        """The keysym the user typed; 0 if there is none."""
        typed = _typed_char(text)
        if native:
            if FUNCTION_KEYSYM_MIN <= native <= FUNCTION_KEYSYM_MAX:
                if native in KEYPAD_NUMLOCK_KEYSYMS and typed is not None:
                    return keysym_for_char(typed)
                return native
            shown = char_for_keysym(native)
            if typed is not None and shown is not None and shown != typed:
                return keysym_for_char(typed)  # composed locally ('é' on the 'e' key)
            return native
        if qt_key in QT_FUNCTION_KEYSYMS:
            return QT_FUNCTION_KEYSYMS[qt_key]
        if typed is not None:
            return keysym_for_char(typed)
        if FIRST_PRINTABLE <= qt_key <= 0x7E:  # Ctrl+letter: Qt key is the letter, text a control code
            return ord(chr(qt_key).lower())
        return 0

    def _compose(self, keysym: int) -> tuple[int, list[KeyEvent]]:
        """Apply the pending dead key to `keysym`: (keysym to press, taps before it)."""
        dead, self._dead = self._dead, 0
        base = char_for_keysym(keysym)
        if base is None:
            return keysym, []  # a function key cancels the dead key
        if dead not in DEAD_ACCENTS:
            return keysym, []  # an exotic dead key: the key goes out as it is
        combining, spacing = DEAD_ACCENTS[dead]
        if base == " ":
            return keysym_for_char(spacing), []  # dead key then space: the accent itself
        composed = unicodedata.normalize("NFC", base + combining)
        if len(composed) == 1:
            return keysym_for_char(composed), []
        if not base.isascii():
            return keysym, []  # the platform composed it already ('é' after dead_acute)
        # Nothing composes: type the accent, then the key (X compose drops
        # such pairs; showing both loses less of what was typed).
        accent = keysym_for_char(spacing)
        if any(h.keysym == accent for h in self._held):
            # Another key holds the accent down in the session (dead key, then
            # a held space): press it again and leave its release to that key.
            return keysym, [(accent, True)]
        taps: list[KeyEvent] = [(accent, True), (accent, False)]
        return keysym, taps

    def _sync_modifiers(self, modifiers: int) -> list[KeyEvent]:
        """Before a key: release modifiers held here that the event says are
        up (their release was lost, e.g. to a grab), press those it says are
        down that were pressed before the window had focus."""
        events: list[KeyEvent] = []
        for bit, keysyms, default in MODIFIER_BITS:
            held = [h for h in self._held if h.keysym in keysyms]
            if held and not modifiers & bit:
                for h in held:
                    self._held.remove(h)
                events += [(k, False) for k in dict.fromkeys(h.keysym for h in held)]
            elif not held and modifiers & bit:
                self._held.append(_Held(0, 0, 0, default))
                events.append((default, True))
        return events

    # -- pairing releases with presses ---------------------------------------

    def _find(self, scan_code: int, qt_key: int, native: int, loose: bool) -> _Held | None:
        """The held entry of this physical key.  By scan code when there is
        one; else by native keysym, else (or, for a release, also) by Qt key:
        Shift_L and Shift_R share a Qt key, but 'A' pressed with Shift is
        released as 'a' after it."""
        if scan_code:
            return next((h for h in self._held if h.scan_code == scan_code), None)
        if native:
            found = next((h for h in self._held if h.native == native), None)
            if found is not None or not loose:
                return found
        return next((h for h in self._held if qt_key and h.qt_key == qt_key), None)

    def _find_by_keysym(self, keysym: int) -> _Held | None:
        return next((h for h in self._held if keysym and h.keysym == keysym and not h.scan_code), None)

    def _sole_non_modifier(self, scan_code: int, native: int) -> _Held | None:
        """Without scan codes a release may match nothing (Shift+1 pressed as
        'exclam', released as '1' after Shift): if exactly one non-modifier
        key is held, it is the one."""
        if scan_code or native in MODIFIER_KEYSYMS:
            return None
        candidates = [h for h in self._held if h.keysym not in MODIFIER_KEYSYMS and not h.scan_code and h.qt_key]
        return candidates[0] if len(candidates) == 1 else None


def _typed_char(text: str) -> str | None:
    """The one printable character `text` holds, else None (control codes of
    Ctrl+key, empty text of function keys, multi-character text)."""
    if len(text) != 1:
        return None
    try:
        keysym_for_char(text)
    except ValueError:
        return None
    return text if ord(text) >= FIRST_PRINTABLE and text != "\x7f" else None


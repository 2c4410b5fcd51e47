# The viewer's key translation, fed synthetic Qt key events: each sequence is
# what Qt's xcb platform reported for real keys (the values were taken from
# tests/integration/keymap_harness.py under a German layout), and the
# expectation is what the session's injector must receive.
"""KeyTranslator with synthetic Qt key events."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.viewer.keymap import MAX_HELD_KEYS, QT_CONTROL, QT_SHIFT, KeyTranslator

# Qt key codes and keysyms used below.
KEY_SHIFT, KEY_CONTROL, KEY_ALTGR, KEY_DEAD_ACUTE = 0x01000020, 0x01000021, 0x01001103, 0x01001251
KEY_CAPSLOCK, KEY_F5, KEY_TAB = 0x01000024, 0x01000034, 0x01000001
SHIFT_L, CONTROL_L, ISO_LEVEL3_SHIFT, DEAD_ACUTE = 0xFFE1, 0xFFE3, 0xFE03, 0xFE51
QT_GROUP_SWITCH = 0x40000000

# (press?, qt_key, native keysym, text, modifiers, auto_repeat)
Event = tuple[bool, int, int, str, int, bool]


def run(translator: KeyTranslator, events: list[Event]) -> list[tuple[int, bool]]:
    sent: list[tuple[int, bool]] = []
    for down, key, native, text, mods, repeat in events:
        call = translator.press if down else translator.release
        sent += call(key, native, text, mods, repeat)
    return sent


CASES: dict[str, tuple[list[Event], list[tuple[int, bool]]]] = {
    "plain letter": (
        [(True, 0x41, ord("a"), "a", 0, False), (False, 0x41, ord("a"), "a", 0, False)],
        [(ord("a"), True), (ord("a"), False)],
    ),
    "shift letter, shift released first": (
        [(True, KEY_SHIFT, SHIFT_L, "", QT_SHIFT, False), (True, 0x41, ord("A"), "A", QT_SHIFT, False),
         (False, KEY_SHIFT, SHIFT_L, "", 0, False), (False, 0x41, ord("a"), "a", 0, False)],
        [(SHIFT_L, True), (ord("A"), True), (SHIFT_L, False), (ord("A"), False)],
    ),
    "shift 1 is exclam, released as 1": (
        [(True, KEY_SHIFT, SHIFT_L, "", QT_SHIFT, False), (True, 0x21, ord("!"), "!", QT_SHIFT, False),
         (False, KEY_SHIFT, SHIFT_L, "", 0, False), (False, 0x31, ord("1"), "1", 0, False)],
        [(SHIFT_L, True), (ord("!"), True), (SHIFT_L, False), (ord("!"), False)],
    ),
    "ctrl+c": (
        [(True, KEY_CONTROL, CONTROL_L, "", QT_CONTROL, False), (True, 0x43, ord("c"), "\x03", QT_CONTROL, False),
         (False, 0x43, ord("c"), "\x03", QT_CONTROL, False), (False, KEY_CONTROL, CONTROL_L, "", 0, False)],
        [(CONTROL_L, True), (ord("c"), True), (ord("c"), False), (CONTROL_L, False)],
    ),
    "altgr+q in de is at; AltGr itself stays local": (
        [(True, KEY_ALTGR, ISO_LEVEL3_SHIFT, "", QT_GROUP_SWITCH, False),
         (True, 0x40, ord("@"), "@", QT_GROUP_SWITCH, False),
         (False, KEY_ALTGR, ISO_LEVEL3_SHIFT, "", 0, False), (False, 0x51, ord("q"), "q", 0, False)],
        [(ord("@"), True), (ord("@"), False)],
    ),
    "altgr+e in de is EuroSign": (
        [(True, KEY_ALTGR, ISO_LEVEL3_SHIFT, "", QT_GROUP_SWITCH, False),
         (True, 0x20AC, 0x20AC, "\u20ac", QT_GROUP_SWITCH, False),
         (False, 0x20AC, 0x20AC, "\u20ac", QT_GROUP_SWITCH, False),
         (False, KEY_ALTGR, ISO_LEVEL3_SHIFT, "", 0, False)],
        [(0x20AC, True), (0x20AC, False)],
    ),
    "dead acute then e composes eacute": (
        [(True, KEY_DEAD_ACUTE, DEAD_ACUTE, "", 0, False), (False, KEY_DEAD_ACUTE, DEAD_ACUTE, "", 0, False),
         (True, 0x45, ord("e"), "e", 0, False), (False, 0x45, ord("e"), "e", 0, False)],
        [(0xE9, True), (0xE9, False)],
    ),
    "dead acute then e composed by the platform": (
        [(True, KEY_DEAD_ACUTE, DEAD_ACUTE, "", 0, False), (True, 0x45, ord("e"), "\u00e9", 0, False),
         (False, 0x45, ord("e"), "e", 0, False)],
        [(0xE9, True), (0xE9, False)],
    ),
    "dead acute then space is the accent": (
        [(True, KEY_DEAD_ACUTE, DEAD_ACUTE, "", 0, False), (True, 0x20, 0x20, " ", 0, False),
         (False, 0x20, 0x20, " ", 0, False)],
        [(0xB4, True), (0xB4, False)],
    ),
    "dead acute then q types both": (
        [(True, KEY_DEAD_ACUTE, DEAD_ACUTE, "", 0, False), (True, 0x51, ord("q"), "q", 0, False),
         (False, 0x51, ord("q"), "q", 0, False)],
        [(0xB4, True), (0xB4, False), (ord("q"), True), (ord("q"), False)],
    ),
    "dead caron then c is a Unicode keysym": (
        [(True, 0x0100125A, 0xFE5A, "", 0, False), (True, 0x43, ord("c"), "c", 0, False),
         (False, 0x43, ord("c"), "c", 0, False)],
        [(0x0100010D, True), (0x0100010D, False)],
    ),
    "auto-repeat: presses without releases": (
        [(True, 0x58, ord("x"), "x", 0, False), (False, 0x58, ord("x"), "x", 0, True),
         (True, 0x58, ord("x"), "x", 0, True), (False, 0x58, ord("x"), "x", 0, True),
         (True, 0x58, ord("x"), "x", 0, True), (False, 0x58, ord("x"), "x", 0, False)],
        [(ord("x"), True), (ord("x"), True), (ord("x"), True), (ord("x"), False)],
    ),
    "unknown key dropped, release too": (
        [(True, 0, 0, "", 0, False), (False, 0, 0, "", 0, False)],
        [],
    ),
    "caps lock stays local, its capital goes out": (
        [(True, KEY_CAPSLOCK, 0xFFE5, "", 0, False), (False, KEY_CAPSLOCK, 0xFFE5, "", 0, False),
         (True, 0x41, ord("A"), "A", 0, False), (False, 0x41, ord("A"), "A", 0, False)],
        [(ord("A"), True), (ord("A"), False)],
    ),
    "function key": (
        [(True, KEY_F5, 0xFFC2, "", 0, False), (False, KEY_F5, 0xFFC2, "", 0, False)],
        [(0xFFC2, True), (0xFFC2, False)],
    ),
    "keypad digit goes as the digit it typed": (
        [(True, 0x31, 0xFFB1, "1", 0x20000000, False), (False, 0x31, 0xFFB1, "1", 0x20000000, False)],
        [(ord("1"), True), (ord("1"), False)],
    ),
    "cyrillic text uses the Unicode keysym": (
        [(True, 0x0416, 0x6F6, "\u0436", 0, False), (False, 0x0416, 0x6F6, "\u0436", 0, False)],
        [(0x6F6, True), (0x6F6, False)],
    ),
    "ctrl held before focus: pressed for the shortcut": (
        [(True, 0x43, ord("c"), "\x03", QT_CONTROL, False), (False, 0x43, ord("c"), "\x03", QT_CONTROL, False),
         (False, KEY_CONTROL, CONTROL_L, "", 0, False)],
        [(CONTROL_L, True), (ord("c"), True), (ord("c"), False), (CONTROL_L, False)],
    ),
    "ctrl release lost (a grab): released before the next key": (
        [(True, KEY_CONTROL, CONTROL_L, "", QT_CONTROL, False), (True, 0x41, ord("a"), "a", 0, False)],
        [(CONTROL_L, True), (CONTROL_L, False), (ord("a"), True)],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_translation(name: str) -> None:
    events, expected = CASES[name]
    assert run(KeyTranslator(), events) == expected


def test_release_all_after_holding_shift_and_ctrl() -> None:
    translator = KeyTranslator()
    sent = run(translator, [(True, KEY_SHIFT, SHIFT_L, "", QT_SHIFT, False),
                            (True, KEY_CONTROL, CONTROL_L, "", QT_SHIFT | QT_CONTROL, False),
                            (True, 0x58, ord("X"), "\x18", QT_SHIFT | QT_CONTROL, False)])  # fmt: skip
    assert sent == [(SHIFT_L, True), (CONTROL_L, True), (ord("X"), True)]
    # Focus moves away: the key first, then the modifiers; nothing stays held.
    assert translator.release_all() == [(ord("X"), False), (SHIFT_L, False), (CONTROL_L, False)]
    assert translator.held_keysyms == []
    assert translator.release_all() == []
    # The real releases arrive elsewhere or late: nothing is sent twice.
    assert run(translator, [(False, KEY_SHIFT, SHIFT_L, "", 0, False)]) == []


def test_release_all_forgets_a_pending_dead_key() -> None:
    translator = KeyTranslator()
    run(translator, [(True, KEY_DEAD_ACUTE, DEAD_ACUTE, "", 0, False)])
    translator.release_all()
    assert run(translator, [(True, 0x45, ord("e"), "e", 0, False)]) == [(ord("e"), True)]


def test_presses_and_releases_balance_when_both_shifts_are_held() -> None:
    translator = KeyTranslator()
    sent = run(translator, [(True, KEY_SHIFT, SHIFT_L, "", QT_SHIFT, False),
                            (True, KEY_SHIFT, 0xFFE2, "", QT_SHIFT, False),
                            (False, KEY_SHIFT, SHIFT_L, "", QT_SHIFT, False),
                            (False, KEY_SHIFT, 0xFFE2, "", 0, False)])  # fmt: skip
    assert sent == [(SHIFT_L, True), (0xFFE2, True), (SHIFT_L, False), (0xFFE2, False)]


def test_scan_codes_pair_releases_exactly() -> None:
    translator = KeyTranslator()
    assert translator.press(0x40, ord("@"), "@", QT_GROUP_SWITCH, False, scan_code=24) == [(ord("@"), True)]
    assert translator.press(0x45, ord("e"), "e", 0, False, scan_code=26) == [(ord("e"), True)]
    assert translator.release(0x51, ord("q"), "q", 0, False, scan_code=24) == [(ord("@"), False)]
    assert translator.release(0x45, ord("e"), "e", 0, False, scan_code=26) == [(ord("e"), False)]


def test_without_x_keysyms_the_text_and_qt_key_decide() -> None:
    translator = KeyTranslator(native_is_keysym=False)
    windows_vk_a = 0x41  # Windows passes virtual-key codes: never read as keysyms
    assert translator.press(0x40, windows_vk_a, "@", 0, False) == [(ord("@"), True)]
    assert translator.press(KEY_TAB, 0x09, "\t", 0, False) == [(0xFF09, True)]
    assert translator.press(0x43, 0x43, "\x03", QT_CONTROL, False) == [(CONTROL_L, True), (ord("c"), True)]
    assert translator.press(KEY_DEAD_ACUTE, 0, "", QT_CONTROL, False) == []
    assert translator.release_all() == [(ord("@"), False), (0xFF09, False), (ord("c"), False), (CONTROL_L, False)]


def test_held_keys_are_bounded() -> None:
    translator = KeyTranslator()
    for n in range(MAX_HELD_KEYS):
        assert translator.press(0, 0x01000100 + n, chr(0x100 + n), 0, False, scan_code=n + 1)
    assert translator.press(0, 0x01000100 + MAX_HELD_KEYS, chr(0x100 + MAX_HELD_KEYS), 0, False,
                            scan_code=MAX_HELD_KEYS + 1) == []  # fmt: skip
    assert len(translator.release_all()) == MAX_HELD_KEYS


# Keys a random sequence is drawn from: (qt_key, native keysym, text, modifier bit it holds).
KEYS = [
    (KEY_SHIFT, SHIFT_L, "", QT_SHIFT), (KEY_CONTROL, CONTROL_L, "", QT_CONTROL),
    (KEY_ALTGR, ISO_LEVEL3_SHIFT, "", 0), (KEY_DEAD_ACUTE, DEAD_ACUTE, "", 0),
    (0x41, ord("a"), "a", 0), (0x45, ord("e"), "e", 0), (0x31, ord("1"), "1", 0), (0x20, 0x20, " ", 0),
    (KEY_F5, 0xFFC2, "", 0), (KEY_CAPSLOCK, 0xFFE5, "", 0), (0, 0, "", 0),
]


@given(st.lists(st.tuples(st.booleans(), st.integers(0, len(KEYS) - 1), st.booleans(), st.booleans()),
                max_size=60))  # fmt: skip
def test_every_key_sent_down_is_released_exactly_once(steps: list[tuple[bool, int, bool, bool]]) -> None:
    # Whatever order keys go down and up in (repeats, lost releases, scan
    # codes or not), the session never gets a release for a key that is not
    # down, and after release_all nothing is down.
    translator = KeyTranslator()
    down: set[int] = set()
    mods = 0
    for press, index, repeat, with_scan in steps:
        key, native, text, bit = KEYS[index]
        mods = mods | bit if press else mods & ~bit
        call = translator.press if press else translator.release
        for keysym, is_down in call(key, native, text, mods, repeat, scan_code=index + 8 if with_scan else 0):
            if is_down:
                down.add(keysym)
            else:
                assert keysym in down, f"release of {keysym:#x} that is not down"
                down.discard(keysym)
    for keysym, is_down in translator.release_all():
        assert not is_down and keysym in down
        down.discard(keysym)
    assert down == set()


def test_a_dead_keys_accent_held_by_another_key_is_not_released_by_the_tap() -> None:
    # Found by Hypothesis: dead_acute, space (held: the accent itself, down),
    # dead_acute, "1" (nothing composes: the accent is typed before the 1).
    # The tap used to release the accent the space still held, so the
    # space's release later came for a key that was not down.
    translator = KeyTranslator()
    assert translator.press(KEY_DEAD_ACUTE, DEAD_ACUTE, "", 0, False) == []
    assert translator.press(0x20, 0x20, " ", 0, False) == [(0xB4, True)]
    assert translator.press(KEY_DEAD_ACUTE, DEAD_ACUTE, "", 0, False) == []
    assert translator.press(0x31, ord("1"), "1", 0, False) == [(0xB4, True), (0x31, True)]
    assert translator.release(0x20, 0x20, " ", 0, False) == [(0xB4, False)]
    assert translator.release(0x31, ord("1"), "1", 0, False) == [(0x31, False)]
    assert translator.held_keysyms == []


@given(st.lists(st.integers(0, len(KEYS) - 1), max_size=30), st.randoms(use_true_random=False))
def test_with_scan_codes_releasing_every_key_leaves_nothing_down(order: list[int], rnd: object) -> None:
    # A real keyboard: each key goes down at most once, then all come up in
    # some other order; with scan codes every release pairs with its press.
    translator = KeyTranslator()
    pressed = list(dict.fromkeys(order))
    down: set[int] = set()
    mods = 0
    for index in pressed:
        key, native, text, bit = KEYS[index]
        mods |= bit
        for keysym, is_down in translator.press(key, native, text, mods, False, scan_code=index + 8):
            (down.add if is_down else down.discard)(keysym)  # a dead key's accent is a tap
    releases = list(pressed)
    rnd.shuffle(releases)  # type: ignore[attr-defined]
    for index in releases:
        key, native, text, bit = KEYS[index]
        mods &= ~bit
        for keysym, is_down in translator.release(key, native, text, mods, False, scan_code=index + 8):
            assert not is_down and keysym in down
            down.discard(keysym)
    assert down == set() and translator.held_keysyms == []

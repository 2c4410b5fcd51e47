"""Unit tests for client.keysyms (no X server needed)."""

from __future__ import annotations

import pytest

from client.keysyms import char_for_keysym, keysym_for_char, keysym_from_name


def test_keysym_for_char() -> None:
    assert keysym_for_char("a") == 0x61
    assert keysym_for_char("A") == 0x41
    assert keysym_for_char("ä") == 0xE4
    assert keysym_for_char("€") == 0x010020AC
    assert keysym_for_char("\n") == 0xFF0D
    assert keysym_for_char("\t") == 0xFF09
    for bad in ("", "ab", "\x01", "\x85"):
        with pytest.raises(ValueError):
            keysym_for_char(bad)


def test_keysym_from_name() -> None:
    assert keysym_from_name("Return") == 0xFF0D
    assert keysym_from_name("F5") == 0xFFC2
    assert keysym_from_name("adiaeresis") == 0xE4
    assert keysym_from_name("U20AC") == 0x010020AC
    for bad in ("NoSuchKey", "", "UZZ", "U110000"):
        with pytest.raises(ValueError):
            keysym_from_name(bad)


def test_char_for_keysym_inverts_keysym_for_char() -> None:
    for ch in "aZ~ äÿ€Ω😀":
        assert char_for_keysym(keysym_for_char(ch)) == ch
    assert char_for_keysym(0xFF0D) is None

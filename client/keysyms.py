# Keysyms for the thin client, without an X connection.
#
# Why: the input channel carries X keysyms (layout-independent: the server
# maps them onto its own keyboard).  The client turns typed characters and
# key names ("Return", "ctrl"-less names like "F5") into keysyms here; it
# needs no X server, only python-xlib's keysym tables.

from __future__ import annotations

from Xlib import XK

# X11 maps Unicode code points outside Latin-1 to 0x01000000 + code point.
UNICODE_KEYSYM_OFFSET = 0x01000000
# Latin-1 code points are their own keysyms (X11 protocol, appendix A).
LATIN1_MAX = 0xFF
# Control characters that have a dedicated function-key keysym.
_CONTROL_KEYSYMS = {
    "\n": XK.XK_Return,
    "\r": XK.XK_Return,
    "\t": XK.XK_Tab,
    "\b": XK.XK_BackSpace,
    "\x1b": XK.XK_Escape,
    "\x7f": XK.XK_Delete,
}
# Lowest printable code point; below it only the keys above have keysyms.
FIRST_PRINTABLE = 0x20
# Unicode's last code point; larger values have no keysym.
MAX_CODE_POINT = 0x10FFFF


def keysym_for_char(ch: str) -> int:
    """The keysym that types the single character `ch`.

    Latin-1 characters map to the same code, other characters to
    0x01000000 + code point; newline, tab, backspace and escape map to their
    function keys.  Raises ValueError for other control characters.
    """
    if len(ch) != 1:
        raise ValueError(f"expected one character, got {len(ch)}: {ch!r}")
    if ch in _CONTROL_KEYSYMS:
        return _CONTROL_KEYSYMS[ch]
    code = ord(ch)
    if code < FIRST_PRINTABLE or 0x80 <= code < 0xA0:
        raise ValueError(f"control character {ch!r} has no keysym")
    if code <= LATIN1_MAX:
        return code
    return UNICODE_KEYSYM_OFFSET + code


def keysym_from_name(name: str) -> int:
    """The keysym for an X key name such as "Return", "F5", "a", "adiaeresis"
    or "U20AC"; raises ValueError for unknown names."""
    keysym = XK.string_to_keysym(name)
    if keysym == XK.NoSymbol and len(name) > 1 and name[0] in "Uu":
        try:
            code = int(name[1:], 16)
        except ValueError:
            code = -1
        if 0 < code <= MAX_CODE_POINT:
            return code if code <= LATIN1_MAX else UNICODE_KEYSYM_OFFSET + code
    if keysym == XK.NoSymbol:
        raise ValueError(f"unknown key name {name!r} (use X keysym names like Return, F5, a)")
    return int(keysym)


def char_for_keysym(keysym: int) -> str | None:
    """The character a keysym types, or None for function keys."""
    if FIRST_PRINTABLE <= keysym <= LATIN1_MAX and not 0x7F <= keysym < 0xA0:
        return chr(keysym)
    if UNICODE_KEYSYM_OFFSET <= keysym <= UNICODE_KEYSYM_OFFSET + MAX_CODE_POINT:
        return chr(keysym - UNICODE_KEYSYM_OFFSET)
    return None

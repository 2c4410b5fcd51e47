# Why this module exists: the Desktop Entry Specification escapes values at
# two levels, and pyxdg (0.28) implements neither of them.  pyxdg's IniFile
# hands back the raw text after '=' (stripped), so "\s", "\n", "\t", "\r"
# and "\\" are still escaped, and its list splitting only cuts at ";" without
# turning "\;" into ";" (and it mis-splits "a\\;b").  This module is the
# key-file (string-level) layer that sits between pyxdg and the typed
# AppEntry; the second, Exec-specific quoting layer is in apps/exec_line.py.
"""Decode Desktop Entry key-file values: string escapes, lists, booleans."""

from __future__ import annotations

# The escape sequences that the specification defines for values of type
# string (section "Possible value types").
STRING_ESCAPES: dict[str, str] = {
    "s": " ",
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "\\": "\\",
}

LIST_SEPARATOR = ";"

TRUE_VALUES = frozenset({"true", "1"})  # "1" is the pre-1.0 spelling GLib still accepts
FALSE_VALUES = frozenset({"false", "0", ""})  # a missing key is false


def unescape_string(raw: str) -> str:
    """Apply the string-level escapes (``\\s \\n \\t \\r \\\\``) to a raw value.

    An unknown escape such as ``\\"`` or ``\\$`` is kept as it is, backslash
    included.  That is what makes ``Exec=sh -c "echo \\"hi\\""`` mean what its
    author wanted: the backslash survives this level and is consumed by the
    Exec quoting level (apps/exec_line.py), exactly as if the file had been
    written with the strictly correct ``\\\\"``.  A trailing lone backslash is
    kept too; the Exec parser rejects it where it matters.
    """
    out: list[str] = []
    index = 0
    length = len(raw)
    while index < length:
        char = raw[index]
        if char == "\\" and index + 1 < length:
            replacement = STRING_ESCAPES.get(raw[index + 1])
            if replacement is not None:
                out.append(replacement)
                index += 2
                continue
        out.append(char)
        index += 1
    return "".join(out)


def split_list(raw: str) -> list[str]:
    """Split a raw ``;``-separated list value and unescape each element.

    ``\\;`` is a literal semicolon inside an element; ``\\\\`` is an escaped
    backslash, so in ``a\\\\;b`` the semicolon still separates.  The trailing
    separator that the specification recommends does not produce an empty
    last element; empty elements in the middle are dropped as meaningless.
    """
    elements: list[str] = []
    current: list[str] = []
    index = 0
    length = len(raw)
    while index < length:
        char = raw[index]
        if char == "\\" and index + 1 < length:
            following = raw[index + 1]
            if following == LIST_SEPARATOR:
                current.append(LIST_SEPARATOR)
            else:
                # Keep the pair intact for unescape_string below, and never
                # let the second character act as a separator.
                current.append(char + following)
            index += 2
            continue
        if char == LIST_SEPARATOR:
            elements.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    elements.append("".join(current))
    return [unescape_string(element) for element in elements if element]


def parse_boolean(raw: str) -> bool:
    """Decode a boolean value; raise ValueError for anything else.

    Refusing "yes" or "True" (instead of treating them as false) matters for
    Hidden and NoDisplay: a typo must not publish an app its admin hid.
    """
    value = raw.strip()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise ValueError(f"{raw!r} is not a boolean (use true or false)")

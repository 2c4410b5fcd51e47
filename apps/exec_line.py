# Why this module exists: sessiond runs as root and turns a user's "launch
# app X with these files" into an argv list that the session agent executes
# as the user.  The Exec key is the only place where admin-written text and
# user-supplied values (file names, URLs) meet, so it is parsed strictly, per
# the Desktop Entry Specification ("The Exec key"), and never handed to a
# shell.  Two escaping levels apply, in this order:
#   1. string level (\s \n \t \r \\): the key-file reader.  pyxdg does not do
#      it; apps/keyfile_values.unescape_string does, in apps/catalog.py.
#   2. Exec quoting (double quotes; inside them \" \` \$ \\): parse_exec here.
# Field codes (%f, %U, ...) are expanded last, by expand_exec, on the
# unquoted arguments, and the replacement text is never re-scanned.
"""Parse and expand Desktop Entry ``Exec`` values into argv lists."""

from __future__ import annotations

from collections.abc import Sequence

MAX_EXEC_LENGTH = 4096  # a command line longer than a page is a broken or hostile entry
MAX_EXEC_ARGUMENTS = 256  # no real launcher line comes close; bounds the parse loop's output
MAX_LAUNCH_VALUES = 256  # files/URLs per launch; they arrive from clients over the network
MAX_VALUE_LENGTH = 4096  # PATH_MAX on Linux: a longer file name could not be opened anyway

# Characters that must be quoted to appear in an argument (the specification's list).
RESERVED_CHARACTERS = frozenset(" \t\n\"'\\><~|&;$*?#()`")
# Characters that must be backslash-escaped inside a quoted argument.
QUOTE_ESCAPED_CHARACTERS = frozenset('"`$\\')

SINGLE_VALUE_CODES = frozenset("fu")  # one file / URL
MULTI_VALUE_CODES = frozenset("FU")  # all files / URLs, each its own argument
FILE_CODES = SINGLE_VALUE_CODES | MULTI_VALUE_CODES
DEPRECATED_CODES = frozenset("dDnNvm")  # removed from the command line, per the spec
STANDALONE_CODES = MULTI_VALUE_CODES | {"i"}  # expand to several arguments
KNOWN_CODES = FILE_CODES | DEPRECATED_CODES | frozenset("ick%")


class ExecError(ValueError):
    """An Exec value that must not be run, or a launch value that is refused."""


def parse_exec(value: str) -> list[str]:
    """Split an Exec value into unquoted arguments, field codes left in place.

    ``value`` has already been through the string-level unescaping.  Arguments
    are separated by spaces (runs of spaces count as one); an argument is
    either quoted as a whole or contains no reserved character.  The result
    is validated: the program is present and holds no field code, every field
    code is known, at most one of %f %F %u %U appears, %F %U and %i stand
    alone as an argument, and only ``%%`` appears inside quotes.

    Raises ExecError saying what is wrong and where.
    """
    if len(value) > MAX_EXEC_LENGTH:
        raise ExecError(f"Exec is {len(value)} characters long; the limit is {MAX_EXEC_LENGTH}")
    if "\0" in value:
        raise ExecError("Exec contains a NUL character")
    arguments: list[str] = []
    index = 0
    length = len(value)
    while index < length:
        if value[index] == " ":
            index += 1
            continue
        if value[index] == '"':
            argument, index = _read_quoted(value, index)
        else:
            argument, index = _read_plain(value, index)
        arguments.append(argument)
        if len(arguments) > MAX_EXEC_ARGUMENTS:
            raise ExecError(f"Exec has more than {MAX_EXEC_ARGUMENTS} arguments")
    if not arguments:
        raise ExecError("Exec is empty; it must name a program")
    _check_field_codes(arguments)
    return arguments


def file_field_code(value: str) -> str | None:
    """Return which of ``f F u U`` the Exec value uses, or None if none.

    Launchers use it to know whether an entry accepts files, URLs, one or
    many.  Raises ExecError when the value does not parse.
    """
    for argument in parse_exec(value):
        for is_code, text in _segments(argument):
            if is_code and text in FILE_CODES:
                return text
    return None


def expand_exec(
    value: str,
    *,
    files: Sequence[str] = (),
    urls: Sequence[str] = (),
    icon: str = "",
    name: str = "",
    desktop_file: str = "",
) -> list[str]:
    """Expand the field codes of an Exec value into an argv list.

    %f / %u: the first file / URL (the others are not used); %F / %U: every
    file / URL, each its own argument; %i: ``--icon ICON`` when ``icon`` is
    set, else nothing; %c: ``name``; %k: ``desktop_file``; %%: ``%``;
    %d %D %n %N %v %m: removed.  A code that stands alone as an argument and
    expands to nothing removes that argument; inside a longer argument it
    expands to the empty string.  URLs are not downloaded for %f: %f and %F
    only ever see ``files``.

    Every file and URL is refused (ExecError) when it is empty, holds a NUL,
    is longer than MAX_VALUE_LENGTH or starts with "-" (it would be read as
    an option); so are more than MAX_LAUNCH_VALUES of them.  The result
    always starts with the program.
    """
    _check_launch_values(files, "file name")
    _check_launch_values(urls, "URL")
    expansions: dict[str, list[str]] = {
        "f": list(files[:1]),
        "F": list(files),
        "u": list(urls[:1]),
        "U": list(urls),
        "i": ["--icon", icon] if icon else [],
        "c": [name] if name else [],
        "k": [desktop_file] if desktop_file else [],
        "%": ["%"],
    }
    argv: list[str] = []
    for argument in parse_exec(value):
        segments = _segments(argument)
        if len(segments) == 1 and segments[0][0]:
            argv.extend(expansions.get(segments[0][1], []))
            continue
        pieces: list[str] = []
        for is_code, text in segments:
            if is_code:
                # Only single-value codes get here (parse_exec keeps %F %U %i alone).
                pieces.extend(expansions.get(text, [])[:1])
            else:
                pieces.append(text)
        argv.append("".join(pieces))
    return argv


def _read_quoted(value: str, start: int) -> tuple[str, int]:
    """Read the quoted argument opening at ``start``; return it and the next index."""
    out: list[str] = []
    index = start + 1
    length = len(value)
    while index < length:
        char = value[index]
        if char == '"':
            index += 1
            if index < length and value[index] != " ":
                raise ExecError(
                    f"quoted argument at column {start + 1} must be followed by a space: "
                    "quote arguments as a whole"
                )
            return "".join(out), index
        if char == "\\":
            following = value[index + 1] if index + 1 < length else ""
            if following not in QUOTE_ESCAPED_CHARACTERS:
                raise ExecError(f'backslash at column {index + 1} inside quotes may only escape " ` $ or \\')
            out.append(following)
            index += 2
            continue
        if char in "`$":
            raise ExecError(f"{char!r} at column {index + 1} must be escaped inside quotes")
        if char == "%":
            following = value[index + 1] if index + 1 < length else ""
            if following != "%":
                raise ExecError(
                    f"field code %{following} at column {index + 1} is inside quotes; "
                    "field codes must stand outside quotes"
                )
            out.append("%%")
            index += 2
            continue
        out.append(char)
        index += 1
    raise ExecError(f"quote opened at column {start + 1} is never closed")


def _read_plain(value: str, start: int) -> tuple[str, int]:
    """Read the unquoted argument at ``start``; return it and the next index."""
    index = start
    length = len(value)
    while index < length and value[index] != " ":
        char = value[index]
        if char in RESERVED_CHARACTERS:
            raise ExecError(
                f"reserved character {char!r} at column {index + 1} outside quotes; "
                "quote the whole argument"
            )
        index += 1
    return value[start:index], index


def _segments(argument: str) -> list[tuple[bool, str]]:
    """Split an unquoted argument into (is_code, text) pieces.

    A code piece's text is the code letter; ``%`` at the very end yields an
    empty code, which _check_field_codes rejects.
    """
    segments: list[tuple[bool, str]] = []
    literal: list[str] = []
    index = 0
    while index < len(argument):
        char = argument[index]
        if char == "%":
            if literal:
                segments.append((False, "".join(literal)))
                literal = []
            segments.append((True, argument[index + 1 : index + 2]))
            index += 2
            continue
        literal.append(char)
        index += 1
    if literal:
        segments.append((False, "".join(literal)))
    return segments


def _check_field_codes(arguments: list[str]) -> None:
    """Validate the field codes of parsed arguments (see parse_exec)."""
    if not arguments[0] or any(is_code and code != "%" for is_code, code in _segments(arguments[0])):
        raise ExecError("the program (first word of Exec) must be a non-empty name without field codes")
    file_codes = 0
    for position, argument in enumerate(arguments, start=1):
        segments = _segments(argument)
        for is_code, code in segments:
            if not is_code:
                continue
            if not code:
                raise ExecError(f"argument {position} ends with a lone '%'; write %% for a percent sign")
            if code not in KNOWN_CODES:
                raise ExecError(f"unknown field code %{code} in argument {position}")
            if code in STANDALONE_CODES and len(segments) != 1:
                raise ExecError(f"field code %{code} must be an argument on its own")
            if code in FILE_CODES:
                file_codes += 1
    if file_codes > 1:
        raise ExecError("Exec may contain at most one of %f %F %u %U")


def _check_launch_values(values: Sequence[str], what: str) -> None:
    """Refuse launch values that could inject options or break execve."""
    if isinstance(values, str):
        raise ExecError(f"{what}s must be given as a list, not a single string")
    if len(values) > MAX_LAUNCH_VALUES:
        raise ExecError(f"{len(values)} {what}s given; at most {MAX_LAUNCH_VALUES} per launch")
    for item in values:
        if not item:
            raise ExecError(f"empty {what}")
        if "\0" in item:
            raise ExecError(f"{what} contains a NUL character")
        if len(item) > MAX_VALUE_LENGTH:
            raise ExecError(f"{what} is longer than {MAX_VALUE_LENGTH} characters")
        if item.startswith("-"):
            raise ExecError(
                f"{what} {item!r} starts with '-' and would be read as an option; "
                f"pass it as './{item}' or as an absolute path"
            )

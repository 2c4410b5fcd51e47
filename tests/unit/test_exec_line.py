# Why these tests: the Exec line is where admin-written text and
# user-supplied file names meet on their way to an execve as the user.  The
# tables walk every quoting rule and field code of the Desktop Entry
# Specification ("The Exec key"), and the property tests check the two
# promises that matter for safety: quoting round-trips exactly, and no file
# or URL value can ever become an option.
"""Tests for apps.exec_line: parse_exec, expand_exec, file_field_code."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.exec_line import (
    MAX_EXEC_ARGUMENTS,
    MAX_EXEC_LENGTH,
    MAX_LAUNCH_VALUES,
    MAX_VALUE_LENGTH,
    ExecError,
    expand_exec,
    file_field_code,
    parse_exec,
)
from apps.keyfile_values import parse_boolean, split_list, unescape_string

# (Exec value after string-level unescaping, expected arguments)
PARSE_OK = [
    ("xterm", ["xterm"]),
    ("xterm -e top", ["xterm", "-e", "top"]),
    ("  prog   a  b  ", ["prog", "a", "b"]),
    ('"/opt/My App/bin/app" --flag', ["/opt/My App/bin/app", "--flag"]),
    ('prog ""', ["prog", ""]),
    ('prog "a b"', ["prog", "a b"]),
    ('prog "say \\"hi\\""', ["prog", 'say "hi"']),
    ('prog "\\`date\\`"', ["prog", "`date`"]),
    ('prog "\\$HOME"', ["prog", "$HOME"]),
    ('prog "a\\\\b"', ["prog", "a\\b"]),
    ('prog "; | & < > ~ * ? # ( ) \' \t \n"', ["prog", "; | & < > ~ * ? # ( ) ' \t \n"]),
    ('prog "100%%"', ["prog", "100%%"]),  # %% is kept for expand_exec
    ("prog %f", ["prog", "%f"]),
    ("prog --name=%c", ["prog", "--name=%c"]),
    ("prog a=b,c:d/e.f+g@h[i]{j}!", ["prog", "a=b,c:d/e.f+g@h[i]{j}!"]),
    ("prog é ü", ["prog", "é", "ü"]),
    ('"prog"', ["prog"]),
]

PARSE_REJECTED = [
    ("", "empty"),
    ("    ", "empty"),
    ('prog "unclosed', "never closed"),
    ('prog "a"b', "followed by a space"),
    ('prog a"b"', "reserved character"),
    ('prog "\\x"', "may only escape"),
    ('prog "trailing\\', "may only escape"),
    ('prog "$HOME"', "must be escaped"),
    ('prog "`date`"', "must be escaped"),
    ('prog "%f"', "inside quotes"),
    ('prog "50%"', "inside quotes"),
    ("prog %x", "unknown field code %x"),
    ("prog %", "lone '%'"),
    ("prog a%", "lone '%'"),
    ("prog %f %u", "at most one"),
    ("prog %F %F", "at most one"),
    ("prog %f --also=%U", "on its own"),
    ("prog --files=%F", "on its own"),
    ("prog x%U", "on its own"),
    ("prog a%i", "on its own"),
    ("%f", "program"),
    ("%c --x", "program"),
    ('"" arg', "program"),
    ("prog a\0b", "NUL"),
]


@pytest.mark.parametrize(("value", "expected"), PARSE_OK)
def test_parse_exec_accepts(value: str, expected: list[str]) -> None:
    assert parse_exec(value) == expected


@pytest.mark.parametrize(("value", "message"), PARSE_REJECTED)
def test_parse_exec_rejects(value: str, message: str) -> None:
    with pytest.raises(ExecError, match=re.escape(message)):
        parse_exec(value)


@pytest.mark.parametrize("char", list("'\\><~|&;$*?#()`\t\n"))
def test_every_reserved_character_outside_quotes_is_rejected(char: str) -> None:
    with pytest.raises(ExecError, match="reserved character"):
        parse_exec(f"prog a{char}b")
    # The same character is fine once the argument is quoted (escaped if required).
    escaped = "\\" + char if char in '\\`$"' else char
    assert parse_exec(f'prog "a{escaped}b"') == ["prog", f"a{char}b"]


def test_exec_length_limit() -> None:
    at_limit = "prog " + "a" * (MAX_EXEC_LENGTH - 5)
    assert parse_exec(at_limit)[1] == "a" * (MAX_EXEC_LENGTH - 5)
    with pytest.raises(ExecError, match="limit"):
        parse_exec(at_limit + "a")


def test_exec_argument_limit() -> None:
    assert len(parse_exec("prog" + " a" * (MAX_EXEC_ARGUMENTS - 1))) == MAX_EXEC_ARGUMENTS
    with pytest.raises(ExecError, match="arguments"):
        parse_exec("prog" + " a" * MAX_EXEC_ARGUMENTS)


FILES = ["/home/u/a b.txt", "/home/u/c.txt"]
URLS = ["https://example.org/x?y=1", "file:///home/u/c.txt"]

# (Exec value, keyword arguments, expected argv)
EXPAND = [
    ("prog %f", {"files": FILES}, ["prog", FILES[0]]),
    ("prog %f", {}, ["prog"]),
    ("prog %f", {"urls": URLS}, ["prog"]),  # URLs are never downloaded for %f
    ("prog %F", {"files": FILES}, ["prog", *FILES]),
    ("prog %F end", {}, ["prog", "end"]),
    ("prog %u", {"urls": URLS}, ["prog", URLS[0]]),
    ("prog %u", {"files": FILES}, ["prog"]),
    ("prog %U", {"urls": URLS}, ["prog", *URLS]),
    ("prog %U", {}, ["prog"]),
    ("prog --file=%f", {"files": FILES}, ["prog", "--file=" + FILES[0]]),
    ("prog --file=%f", {}, ["prog", "--file="]),
    ("prog --url=%u", {"urls": URLS}, ["prog", "--url=" + URLS[0]]),
    ("prog %i", {"icon": "utilities-terminal"}, ["prog", "--icon", "utilities-terminal"]),
    ("prog %i x", {}, ["prog", "x"]),
    ("prog %c", {"name": "My App"}, ["prog", "My App"]),
    ("prog --title=%c", {"name": "My App"}, ["prog", "--title=My App"]),
    ("prog %c", {}, ["prog"]),
    (
        "prog %k",
        {"desktop_file": "/usr/share/applications/p.desktop"},
        ["prog", "/usr/share/applications/p.desktop"],
    ),
    ("prog %k", {}, ["prog"]),
    ("prog 100%%", {}, ["prog", "100%"]),
    ('prog "100%% sure"', {}, ["prog", "100% sure"]),
    ("prog %%f", {"files": FILES}, ["prog", "%f"]),
    ("prog %%", {}, ["prog", "%"]),
    ("prog %d %D %n %N %v %m", {"files": FILES}, ["prog"]),
    ("prog a%db%mc", {}, ["prog", "abc"]),
    ("prog %F", {"files": ["%u", "%%"]}, ["prog", "%u", "%%"]),  # expanded once only
    ("prog %c", {"name": "50%f"}, ["prog", "50%f"]),
    ("prog %f", {"files": ["./-rf"]}, ["prog", "./-rf"]),
    ("100%%prog", {}, ["100%prog"]),
    (
        'sh -c "exec \\"\\$0\\" \\"\\$@\\"" %U',
        {"urls": URLS},
        ["sh", "-c", 'exec "$0" "$@"', *URLS],
    ),
]


@pytest.mark.parametrize(("value", "kwargs", "expected"), EXPAND)
def test_expand_exec(value: str, kwargs: dict[str, object], expected: list[str]) -> None:
    assert expand_exec(value, **kwargs) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"files": ["-rf"]}, "starts with '-'"),
        ({"files": ["--help"]}, "starts with '-'"),
        ({"files": ["-"]}, "starts with '-'"),
        ({"urls": ["--version"]}, "starts with '-'"),
        ({"files": [""]}, "empty"),
        ({"files": ["a\0b"]}, "NUL"),
        ({"files": ["/" + "a" * MAX_VALUE_LENGTH]}, "longer than"),
        ({"files": ["/a"] * (MAX_LAUNCH_VALUES + 1)}, "at most"),
        ({"files": "/etc/passwd"}, "list"),
    ],
)
def test_expand_exec_refuses_launch_values(kwargs: dict[str, object], message: str) -> None:
    for value in ("prog %F", "prog %f", "prog"):  # refused even where unused
        with pytest.raises(ExecError, match=message):
            expand_exec(value, **kwargs)  # type: ignore[arg-type]


def test_launch_value_limits_are_inclusive() -> None:
    longest = "/" + "a" * (MAX_VALUE_LENGTH - 1)
    assert (
        expand_exec("prog %F", files=[longest] * MAX_LAUNCH_VALUES)
        == ["prog"] + [longest] * MAX_LAUNCH_VALUES
    )


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("prog", None),
        ("prog %f", "f"),
        ("prog %F", "F"),
        ("prog --u=%u", "u"),
        ("prog %U %i", "U"),
        ("prog %%f", None),
    ],
)
def test_file_field_code(value: str, code: str | None) -> None:
    assert file_field_code(value) == code


# --- string level (key-file reader), which pyxdg leaves undone ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a\\sb", "a b"),
        ("a\\nb\\tc\\rd", "a\nb\tc\rd"),
        ("a\\\\b", "a\\b"),
        ("a\\\\\\\\b", "a\\\\b"),
        ('say \\"hi\\"', 'say \\"hi\\"'),  # unknown escapes survive for the Exec level
        ("cost \\$5", "cost \\$5"),
        ("end\\", "end\\"),
        ("\\\\s", "\\s"),  # escapes are not re-scanned
    ],
)
def test_unescape_string(raw: str, expected: str) -> None:
    assert unescape_string(raw) == expected


def test_string_level_then_exec_level() -> None:
    # The spec's own examples: "\\\\" in the file is one literal backslash in a
    # quoted argument, "\\$" is a literal dollar sign.
    assert parse_exec(unescape_string('prog "a\\\\\\\\b" "\\\\$HOME"')) == ["prog", "a\\b", "$HOME"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("System;TerminalEmulator;", ["System", "TerminalEmulator"]),
        ("a;b", ["a", "b"]),
        ("a\\;b;c", ["a;b", "c"]),
        ("a\\\\;b", ["a\\", "b"]),
        ("a\\sb;;c", ["a b", "c"]),
        ("", []),
    ],
)
def test_split_list(raw: str, expected: list[str]) -> None:
    assert split_list(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("1", True), ("false", False), ("0", False), ("", False)]
)
def test_parse_boolean(raw: str, expected: bool) -> None:
    assert parse_boolean(raw) is expected


@pytest.mark.parametrize("raw", ["True", "yes", "on", "tru"])
def test_parse_boolean_rejects(raw: str) -> None:
    with pytest.raises(ValueError, match="not a boolean"):
        parse_boolean(raw)


# --- properties ---

launch_values = st.lists(st.text(max_size=40), max_size=8)


@given(files=launch_values, template=st.sampled_from(["prog %f", "prog %F", "prog %u", "prog %U"]))
def test_no_file_or_url_value_becomes_an_option(files: list[str], template: str) -> None:
    try:
        argv = expand_exec(template, files=files, urls=files)
    except ExecError:
        assert any(not f or f.startswith("-") or "\0" in f for f in files)
        return
    assert argv[0] == "prog"
    assert not any(argument.startswith("-") for argument in argv[1:])
    assert argv[1:] == (files[:1] if template[-1] in "fu" else files)


def _quote(argument: str) -> str:
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in argument)
    return '"' + escaped.replace("%", "%%") + '"'


arguments = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=20)


@given(program=arguments.filter(bool), rest=st.lists(arguments, max_size=6))
def test_quoting_round_trips(program: str, rest: list[str]) -> None:
    line = " ".join(_quote(argument) for argument in [program, *rest])
    assert expand_exec(line) == [program, *rest]


@given(st.text(max_size=60))
def test_parse_never_fails_except_with_exec_error(value: str) -> None:
    try:
        argv = parse_exec(value)
    except ExecError:
        return
    assert argv and argv[0]

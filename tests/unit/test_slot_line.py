"""The slot line (isolation/slot.py): every field's bound crossed, unknown fields refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from isolation.slot import (
    MAX_SIDE,
    MAX_SLOT_LINE_BYTES,
    MAX_X_UID,
    MIN_SIDE,
    SlotLineError,
    SlotParams,
    parse_slot_line,
    screen_text,
    slot_line,
)

GOOD: dict[str, Any] = {"x_uid": 1900000000, "namespaces": ["mount", "ipc", "uts", "pid"], "width": 2560,
                        "height": 1440, "depth": 24, "root_shown": False, "cgroup": ""}  # fmt: skip


def line(**changes: Any) -> bytes:
    return json.dumps({**GOOD, **changes}).encode() + b"\n"


def test_a_line_round_trips_and_names_its_screen() -> None:
    params = parse_slot_line(line())
    assert params == SlotParams(1900000000, ("mount", "ipc", "uts", "pid"), 2560, 1440, 24, False)
    assert parse_slot_line(slot_line(params)) == params
    assert params.screen == screen_text(2560, 1440, 24, False) == "2560x1440x24-root"
    assert parse_slot_line(line(namespaces=["mount", "ipc", "uts", "pid", "net"], root_shown=True)).screen.endswith(
        "+root")


def test_the_slot_cgroup_is_none_or_a_slot_cgroups_name() -> None:
    params = parse_slot_line(line(cgroup="slot-0123456789abcdef"))
    assert params.cgroup == "slot-0123456789abcdef" and parse_slot_line(slot_line(params)) == params
    for bad in ("s1", "slot-0123456789ABCDEF", "slot-0123456789abcde", "slot-0123456789abcdef0", "../slot",
                "slot-0123456789abcde/", 7, None, True):  # a session's id, a path, not a name at all
        with pytest.raises(SlotLineError, match="cgroup"):
            parse_slot_line(line(cgroup=bad))


@pytest.mark.parametrize(("field", "good", "bad"), [
    ("x_uid", 1, 0),
    ("x_uid", MAX_X_UID, MAX_X_UID + 1),
    ("width", MIN_SIDE, MIN_SIDE - 1),
    ("width", MAX_SIDE, MAX_SIDE + 1),
    ("height", MIN_SIDE, MIN_SIDE - 1),
    ("height", MAX_SIDE, MAX_SIDE + 1),
    ("depth", 16, 15),
    ("depth", 32, 8),
])  # fmt: skip
def test_each_bound_is_checked(field: str, good: int, bad: int) -> None:
    assert getattr(parse_slot_line(line(**{field: good})), field) == good
    with pytest.raises(SlotLineError, match=field):
        parse_slot_line(line(**{field: bad}))


@pytest.mark.parametrize("changes", [
    {"x_uid": "1900000000"}, {"x_uid": True}, {"x_uid": 1.5}, {"width": None}, {"depth": "24"},
    {"root_shown": 1}, {"root_shown": "false"}, {"namespaces": "mount"}, {"namespaces": [1]},
    {"namespaces": ["mount", "ipc", "uts"]},  # no pid namespace: the X server would be the host's
    {"namespaces": ["mount", "ipc", "uts", "pid", "user"]}, {"namespaces": ["mount", "ipc", "uts", "pid", "pid"]},
])  # fmt: skip
def test_wrong_types_and_namespaces_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(SlotLineError):
        parse_slot_line(line(**changes))


def test_unknown_missing_and_duplicate_fields_are_refused() -> None:
    with pytest.raises(SlotLineError, match="unknown"):
        parse_slot_line(line(argv=["/bin/sh"]))
    with pytest.raises(SlotLineError, match="unknown"):
        parse_slot_line(line(path="/tmp"))
    doc = dict(GOOD)
    del doc["depth"]
    with pytest.raises(SlotLineError, match="missing"):
        parse_slot_line(json.dumps(doc).encode())
    with pytest.raises(SlotLineError, match="duplicate"):
        parse_slot_line(b'{"depth":24,' + line()[1:])


@pytest.mark.parametrize("data", [b"", b"[]", b"null", b"{", b"\xff\n", b'{"x_uid": NaN}', line() + line(),
                                  line().replace(b"1900000000", b"1900000000.0")])  # fmt: skip
def test_not_a_slot_line(data: bytes) -> None:
    with pytest.raises(SlotLineError):
        parse_slot_line(data)


def test_the_size_bound() -> None:
    padded = line()[:-2] + b" " * (MAX_SLOT_LINE_BYTES - len(line())) + b"}\n"
    assert len(padded) == MAX_SLOT_LINE_BYTES
    assert parse_slot_line(padded).x_uid == GOOD["x_uid"]
    with pytest.raises(SlotLineError, match="more than"):
        parse_slot_line(b" " + padded)

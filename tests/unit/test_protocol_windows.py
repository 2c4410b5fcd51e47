"""Windows channel messages: round trips, and every bound crossed (titles,
classes, icon side and PNG size, ids per WINDOW_RESTACK, kinds and states)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.base import ChannelKind
from protocol.errors import ProtocolError, ReasonCode
from protocol.messages import decode_message, max_payload
from protocol.windows import (
    MAX_CLASS_BYTES,
    MAX_ICON_PNG_BYTES,
    MAX_ICON_SIDE,
    MAX_TITLE_BYTES,
    MAX_WINDOWS,
    WINDOW_KINDS,
    WINDOW_STATES,
    WindowIcon,
    WindowMetadata,
    WindowNew,
    WindowRestack,
    WindowTarget,
)

PNG = b"\x89PNG\r\n\x1a\n"


def info(**changes: Any) -> dict[str, Any]:
    """A valid WINDOW_NEW field set with `changes` applied."""
    fields: dict[str, Any] = dict(
        id=7, x=0, y=0, width=100, height=50, kind="normal", managed=True, transient_for=0, title="t",
        app_id="xterm", wm_class=("xterm", "XTerm"), modal=False, decorated=True, state="normal",
        polite_close=True, min_width=1, min_height=1, max_width=0, max_height=0, base_width=0,
        base_height=0, width_inc=1, height_inc=1,
    )  # fmt: skip
    fields.update(changes)
    return fields


@settings(max_examples=60)
@given(
    kind=st.sampled_from(sorted(WINDOW_KINDS)),
    state=st.sampled_from(sorted(WINDOW_STATES)),
    title=st.text(max_size=40),
    x=st.integers(-32768, 32767),
    width=st.integers(1, 65535),
    transient=st.integers(0, 2**32 - 1),
)
def test_window_new_and_metadata_round_trip(
    kind: str, state: str, title: str, x: int, width: int, transient: int
) -> None:
    for cls in (WindowNew, WindowMetadata):
        try:
            title.encode("utf-8")
        except UnicodeEncodeError:
            return
        msg = cls(**info(kind=kind, state=state, title=title, x=x, width=width, transient_for=transient))
        assert decode_message(ChannelKind.WINDOWS, cls.TYPE, msg.encode()) == msg


def test_title_and_class_bounds_are_crossed() -> None:
    WindowNew(**info(title="é" * (MAX_TITLE_BYTES // 2)))
    with pytest.raises(ValueError, match="title"):
        WindowNew(**info(title="x" * (MAX_TITLE_BYTES + 1)))
    WindowNew(**info(app_id="a" * MAX_CLASS_BYTES))
    with pytest.raises(ValueError, match="app_id"):
        WindowNew(**info(app_id="a" * (MAX_CLASS_BYTES + 1)))
    with pytest.raises(ValueError, match="wm_class"):
        WindowNew(**info(wm_class=("x" * (MAX_CLASS_BYTES + 1), "X")))
    with pytest.raises(ValueError, match="wm_class"):
        WindowNew(**info(wm_class=("only one",)))


def test_a_title_too_long_on_the_wire_is_malformed() -> None:
    payload = WindowNew(**info()).encode().replace(b'"title":"t"', b'"title":"' + b"y" * (MAX_TITLE_BYTES + 1) + b'"')
    with pytest.raises(ProtocolError) as err:
        decode_message(ChannelKind.WINDOWS, WindowNew.TYPE, payload)
    assert err.value.code is ReasonCode.MALFORMED_MESSAGE


@pytest.mark.parametrize(("field", "value"), [("kind", "desktop"), ("state", "shaded"), ("id", 0), ("width", 0)])
def test_unknown_kind_state_and_zero_ids_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        WindowNew(**info(**{field: value}))


def test_restack_bound_is_crossed_before_unpacking() -> None:
    full = WindowRestack(tuple(range(1, MAX_WINDOWS + 1)))
    assert WindowRestack.decode(full.encode()) == full
    with pytest.raises(ValueError, match="more than"):
        WindowRestack(tuple(range(1, MAX_WINDOWS + 2)))
    with pytest.raises(ValueError, match="payload"):
        WindowRestack.decode(full.encode() + b"\0\0\0\1")
    with pytest.raises(ValueError, match="payload"):
        WindowRestack.decode(b"\0\0\1")
    with pytest.raises(ValueError, match="twice"):
        WindowRestack((1, 2, 1))
    with pytest.raises(ValueError, match="u32"):
        WindowRestack.decode(b"\0\0\0\0")


def test_icon_bounds_are_crossed() -> None:
    WindowIcon(1, MAX_ICON_SIDE, MAX_ICON_SIDE, PNG + b"\0" * (MAX_ICON_PNG_BYTES - len(PNG)))
    with pytest.raises(ValueError, match="png"):
        WindowIcon(1, 1, 1, PNG + b"\0" * (MAX_ICON_PNG_BYTES - len(PNG) + 1))
    with pytest.raises(ValueError, match="width"):
        WindowIcon(1, MAX_ICON_SIDE + 1, 1, PNG)
    with pytest.raises(ValueError, match="not a PNG"):
        WindowIcon(1, 1, 1, b"GIF89a")
    with pytest.raises(ValueError, match="0 x 0"):
        WindowIcon(1, 2, 2, b"")
    assert WindowIcon.decode(WindowIcon(1, 0, 0, b"").encode()) == WindowIcon(1, 0, 0, b"")
    # The largest icon frame is what the kind's header bound allows, no more.
    assert max_payload(ChannelKind.WINDOWS) == 8 + MAX_ICON_PNG_BYTES


def test_window_target_zero_is_the_desktop() -> None:
    assert WindowTarget.decode(WindowTarget(0, 1920, 1080).encode()) == WindowTarget(0, 1920, 1080)
    with pytest.raises(ValueError, match="width"):
        WindowTarget(5, 0, 10)


def test_window_list_round_trips_and_is_bounded() -> None:
    from protocol.windows_admin import MAX_LISTED_TITLE, MAX_LISTED_WINDOWS, WindowList, WindowSummary

    row = WindowSummary(id=1, app="xterm", title="t" * MAX_LISTED_TITLE, x=-1, y=2, width=3, height=4,
                        state="minimized", kind="normal")  # fmt: skip
    full = WindowList(request=1, mode="seamless", windows=(row,) * MAX_LISTED_WINDOWS, total=300)
    assert WindowList.decode(full.encode()) == full
    with pytest.raises(ValueError, match="more than"):
        WindowList(request=1, mode="seamless", windows=(row,) * (MAX_LISTED_WINDOWS + 1), total=300)
    with pytest.raises(ValueError, match="at most"):
        WindowSummary(id=1, app="", title="t" * (MAX_LISTED_TITLE + 1), x=0, y=0, width=1, height=1,
                      state="normal", kind="normal")  # fmt: skip

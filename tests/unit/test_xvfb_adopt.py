"""The agent's side of a warm slot's X server (xserver.adopt_xvfb): what it accepts from enter."""

from __future__ import annotations

import pytest

from isolation.slot import X_DISPLAY_ENV, X_PID_ENV, X_SCREEN_ENV, X_SHMID_ENV
from sessiond.agent.settings import AgentSettings
from sessiond.agent.xserver import XServerError, adopt_xvfb

SCREEN = (2560, 1440, 24, False)
GOOD = {X_SCREEN_ENV: "2560x1440x24-root", X_DISPLAY_ENV: ":0", X_PID_ENV: "2", X_SHMID_ENV: "0"}


def test_without_a_slot_server_the_agent_starts_its_own() -> None:
    assert adopt_xvfb({}, *SCREEN) is None
    assert adopt_xvfb({X_SCREEN_ENV: GOOD[X_SCREEN_ENV]}, *SCREEN) is None


@pytest.mark.parametrize(("name", "value"), [
    (X_SCREEN_ENV, "2560x1440x24+root"), (X_SCREEN_ENV, "1920x1080x24-root"), (X_SCREEN_ENV, ""),
    (X_DISPLAY_ENV, "0"), (X_DISPLAY_ENV, ":65536"), (X_DISPLAY_ENV, ":-1"), (X_DISPLAY_ENV, ":0.0"),
    (X_DISPLAY_ENV, "host:0"), (X_PID_ENV, "1"), (X_PID_ENV, "4194305"), (X_PID_ENV, "+2"), (X_PID_ENV, ""),
    (X_SHMID_ENV, "2147483648"), (X_SHMID_ENV, "-1"), (X_SHMID_ENV, "0x10"), (X_SHMID_ENV, "１"),
])  # fmt: skip
def test_a_malformed_or_foreign_server_is_refused(name: str, value: str) -> None:
    with pytest.raises(XServerError, match=name.split("_")[-1] if name != X_SCREEN_ENV else "slot's X server"):
        adopt_xvfb({**GOOD, name: value}, *SCREEN)


def test_the_screen_a_session_needs_is_its_settings() -> None:
    seamless = AgentSettings(socket="/s", width=1024, height=768, max_width=2560, max_height=1440)
    assert tuple(seamless.x_screen()) == SCREEN
    assert tuple(AgentSettings(socket="/s", width=3000, height=768, max_width=2560, max_height=1440,
                               mode="desktop").x_screen()) == (3000, 1440, 24, True)  # fmt: skip
    assert AgentSettings(socket="/s", display="xpra").x_screen().root_shown is True


def test_a_slot_reads_bound_abstract_x_names_without_connecting(tmp_path: object) -> None:
    from sessiond.agent.display_number import bound_abstract_displays

    table = f"{tmp_path}/unix"
    with open(table, "w", encoding="ascii") as handle:
        handle.write("Num       RefCount Protocol Flags    Type St Inode Path\n"
                     "0000: 00000002 00000000 00010000 0001 01 101 @/tmp/.X11-unix/X0\n"
                     "0000: 00000002 00000000 00010000 0001 01 102 @/tmp/.X11-unix/X12\n"
                     "0000: 00000002 00000000 00010000 0001 01 103 /tmp/.X11-unix/X3\n"
                     "0000: 00000002 00000000 00010000 0001 01 104 @/tmp/.X11-unix/Xfoo\n"
                     "0000: 00000002 00000000 00010000 0001 01 105 @/tmp/.X11-unix/X1234567\n"
                     "0000: 00000003 00000000 00000000 0001 03 106\n")  # fmt: skip
    assert bound_abstract_displays(table) == {0, 12}

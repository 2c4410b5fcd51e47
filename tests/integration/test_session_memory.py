# A session's memory, process by process, as an administrator sees it in
# /proc (issue 15: <= 45 MiB per session). Each cut has its own check here,
# on a real session with an xterm shown:
#  - the sandbox's supervisor and init are the native waiter (isolation/wait.c),
#    not two Python interpreters;
#  - in seamless mode (windows redirected, the root never shown) Xvfb's
#    framebuffer is released and stays released while windows are drawn; in
#    desktop mode the shown screen stays resident (it is what clients see);
#  - the agent has not loaded PyAV (only video does; test_display_video
#    checks that it does then) and no sound server runs until something plays
#    (test_audio checks that it starts then).
"""An idle session holds only what it uses: native waiters, no root framebuffer in seamless mode, no PyAV."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from PIL import Image

from svtest import Server, TestUser, start_sessiond, stop_sessiond, svclient

# The native waiters are ~0.2 MiB PSS each; a Python interpreter is ~3.9 MiB.
WAITER_PSS_LIMIT_KIB = 1024
# What may stay resident of the framebuffer in seamless mode (the test's
# screen is 1024x768: 3 MiB if it were drawn).
SEAMLESS_FRAMEBUFFER_LIMIT_KIB = 512
SCREEN = (1024, 768)
# An 80x24 xterm is ~480x310 pixels; its white background must reach the client.
XTERM_MIN_PIXELS = 100 * 100
# The session's largest screen, set so the framebuffer's segment is told apart
# by its size (the agent's capture segments are attached to Xvfb too).
MAX_SCREEN = (2048, 1536)
FRAMEBUFFER_KIB = MAX_SCREEN[0] * MAX_SCREEN[1] * 4 // 1024
# Xvfb's segment holds a header (XWD, colormap) before the pixels.
FRAMEBUFFER_HEADER_LIMIT_KIB = 64


@pytest.fixture(scope="module", params=["seamless", "desktop"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    mode = str(request.param)
    keys = f"mode = {mode}\nmax_width = {MAX_SCREEN[0]}\nmax_height = {MAX_SCREEN[1]}\n"
    srv = start_sessiond(str(tmp_path_factory.mktemp(f"mem-{mode}")), session=keys)
    srv.mode = mode  # type: ignore[attr-defined]
    yield srv
    stop_sessiond(srv)


def _pids(user: str, *pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-u", user, *pattern], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def _session_xvfbs(user: str) -> list[int]:
    """The Xvfb of USER's session: in the agent's PID namespace, as the user or (a warm or early
    slot's pre-started server, isolation/xslot.py) as an X uid."""
    agent = _pids(user, "-f", "sessiond.agent")[0]
    out = subprocess.run(["pgrep", "-x", "Xvfb"], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()
            if os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{agent}/ns/pid")]  # fmt: skip


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def _pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("Pss:"))


def _framebuffer_rss_kib(xvfb: int) -> tuple[int, int]:
    """(size, resident) in KiB of Xvfb's -shmem framebuffer (the segment of MAX_SCREEN's size)."""
    segments: list[tuple[int, int]] = []
    with open(f"/proc/{xvfb}/smaps", encoding="ascii", errors="replace") as handle:
        lines = handle.read().splitlines()
    for index, line in enumerate(lines):
        if "/SYSV" in line:
            fields = {item.split(":")[0]: int(item.split()[1]) for item in lines[index + 1:index + 6]
                      if item.split(":")[0] in ("Size", "Rss")}  # fmt: skip
            if FRAMEBUFFER_KIB <= fields["Size"] <= FRAMEBUFFER_KIB + FRAMEBUFFER_HEADER_LIMIT_KIB:
                segments.append((fields["Size"], fields["Rss"]))
    assert len(segments) == 1, f"Xvfb has no one shared framebuffer of {FRAMEBUFFER_KIB} KiB: {segments}"
    return segments[0]


@pytest.fixture(scope="module")
def session(server: Server, user_factory: object) -> TestUser:
    user: TestUser = user_factory("svt-mem")  # type: ignore[operator]
    launched = svclient(server, user, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + server.log()
    return user


def test_the_sandbox_waits_in_two_native_waiters(server: Server, session: TestUser) -> None:
    agents = _pids(session.name, "-f", "sessiond.agent")
    assert len(agents) == 1, agents
    init = _parent(agents[0])
    supervisor = _parent(init)
    for pid, role in ((init, "init"), (supervisor, "supervise")):
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
        assert argv[0].endswith(b"/libexec/sessiond-wait") and argv[1] == role.encode(), argv
        assert _pss_kib(pid) < WAITER_PSS_LIMIT_KIB, f"the {role} waiter holds {_pss_kib(pid)} KiB"


def test_the_root_framebuffer_is_released_in_seamless_mode_only(server: Server, session: TestUser,
                                                                 tmp_path: object) -> None:
    xvfbs = _session_xvfbs(session.name)
    assert len(xvfbs) == 1, xvfbs
    size, resident = _framebuffer_rss_kib(xvfbs[0])
    shown = SCREEN[0] * SCREEN[1] * 4 // 1024
    if server.mode == "seamless":  # type: ignore[attr-defined]
        assert resident < SEAMLESS_FRAMEBUFFER_LIMIT_KIB, f"{resident} of {size} KiB of the root stay resident"
        # The xterm is still drawn: its window is what seamless clients see.
        shot = os.path.join(str(tmp_path), "seamless.png")
        taken = svclient(server, session, "screenshot", shot)
        assert taken.returncode == 0, taken.stderr
        colours = dict((colour, count) for count, colour in Image.open(shot).convert("RGB").getcolors(1 << 24))
        # xterm: black text on white; the composed screen around it is black.
        assert colours.get((255, 255, 255), 0) >= XTERM_MIN_PIXELS and colours.get((0, 0, 0)), \
            f"the client sees no xterm: {sorted(colours.items())[:8]}"
        _size, after = _framebuffer_rss_kib(xvfbs[0])
        assert after < SEAMLESS_FRAMEBUFFER_LIMIT_KIB, f"drawing the xterm made {after} KiB of the root resident"
    else:
        assert resident >= shown, f"desktop mode: only {resident} KiB of the {shown} KiB screen resident"


def test_an_idle_session_loads_no_video_codec_and_runs_no_sound_server(server: Server, session: TestUser) -> None:
    agent = _pids(session.name, "-f", "sessiond.agent")[0]
    with open(f"/proc/{agent}/maps", encoding="utf-8", errors="replace") as handle:
        assert "libavcodec" not in handle.read(), "an idle agent loaded PyAV"
    assert _pids(session.name, "-x", "pulseaudio") == [], "the sound server runs although nothing played"

# Xvfb's command line decides what the X server paints where nobody looks:
# in seamless mode the root is never shown, so it gets no background and no
# cursor sprite, and the framebuffer pages the agent releases stay free
# (docs/admin.md, "Memory per session"). Desktop mode keeps both: its clients
# see the root. Xvfb's environment fixes glibc's mmap threshold, so large
# blocks (fonts, pixmaps) are given back when freed instead of staying in
# the heap (xserver.XVFB_MALLOC_TUNABLES); an administrator's own
# GLIBC_TUNABLES still apply, after ours, so theirs win. A missing Xvfb is
# told by exec's ENOENT (no PATH search beforehand: no shutil in the agent).
"""xvfb_argv: the root's background and cursor only where the root is shown; xvfb_env; a missing Xvfb."""

from __future__ import annotations

import pytest

from sessiond.agent import xserver
from sessiond.agent.xserver import XVFB_MALLOC_TUNABLES, XServerError, start_xvfb, xvfb_argv, xvfb_env


def test_a_shown_root_keeps_its_background_and_cursor() -> None:
    argv = xvfb_argv(1920, 1080, 24, 5, shared_framebuffer=True)
    assert "-background" not in argv and "-nocursor" not in argv
    assert argv[argv.index("-screen") + 2] == "1920x1080x24" and "-shmem" in argv


def test_an_unshown_root_gets_no_background_and_no_cursor() -> None:
    argv = xvfb_argv(2560, 1440, 24, 5, shared_framebuffer=True, root_shown=False)
    assert argv[argv.index("-background") + 1] == "none" and "-nocursor" in argv
    assert argv[argv.index("-displayfd") + 1] == "5"


def test_xvfb_gets_a_fixed_mmap_threshold_and_keeps_the_rest_of_the_environment() -> None:
    env = xvfb_env({"PATH": "/usr/bin", "LANG": "C.UTF-8"})
    assert env == {"PATH": "/usr/bin", "LANG": "C.UTF-8", "GLIBC_TUNABLES": XVFB_MALLOC_TUNABLES}
    assert "glibc.malloc.mmap_threshold=" in XVFB_MALLOC_TUNABLES


def test_an_administrators_tunables_follow_ours_so_they_win() -> None:
    env = xvfb_env({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"})
    assert env["GLIBC_TUNABLES"] == XVFB_MALLOC_TUNABLES + ":glibc.malloc.mmap_threshold=65536"


def test_a_missing_xvfb_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xserver, "XVFB_BINARY", "sessiond-no-such-xvfb")
    with pytest.raises(XServerError, match="sessiond-no-such-xvfb was not found on PATH; install it"):
        start_xvfb(320, 200)

# Xvfb's command line decides what the X server paints where nobody looks:
# in seamless mode the root is never shown, so it gets no background and no
# cursor sprite, and the framebuffer pages the agent releases stay free
# (docs/admin.md, "Memory per session"). Desktop mode keeps both: its clients
# see the root.
"""xvfb_argv: the root's background and cursor only where the root is shown."""

from __future__ import annotations

from sessiond.agent.xserver import xvfb_argv


def test_a_shown_root_keeps_its_background_and_cursor() -> None:
    argv = xvfb_argv(1920, 1080, 24, 5, shared_framebuffer=True)
    assert "-background" not in argv and "-nocursor" not in argv
    assert argv[argv.index("-screen") + 2] == "1920x1080x24" and "-shmem" in argv


def test_an_unshown_root_gets_no_background_and_no_cursor() -> None:
    argv = xvfb_argv(2560, 1440, 24, 5, shared_framebuffer=True, root_shown=False)
    assert argv[argv.index("-background") + 1] == "none" and "-nocursor" in argv
    assert argv[argv.index("-displayfd") + 1] == "5"

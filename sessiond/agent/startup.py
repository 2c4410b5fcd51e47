# The agent's start-up, as sessiond and an admin see it: one line of time
# stamps on stderr just before READY, and the switch of the agent's output
# to its log file after READY.
#
# Why time stamps on stderr: until READY, sessiond logs the agent's stderr
# with its own millisecond time stamps (sessiond/agent_link.py), so a slow
# login can be split into its steps from the server log alone: sessiond
# spawned the sandbox (or claimed a warm slot), the agent's code began to
# run, Xvfb was ready, the agent was set up (bench/startup_breakdown.py reads
# the line). Wall-clock times, because the daemon, the agent and a client on
# the same host share that clock.
#
# The imports below are what the agent would otherwise import lazily while it
# sets up (python-xlib loads its connection code and extension modules at the
# first Display(); Pillow its image plugins at the first encode): here they
# happen when the agent's code is loaded, so in a zygote or a warm slot
# before the fork, not on the login's critical path (isolation/zygote.py).
#
# Only the X extensions the agent calls through python-xlib: its Display()
# imports and initialises a module for every extension the server offers
# (Xlib.ext.__extensions__), XInput, RECORD, X-Resource, SHAPE, XINERAMA,
# SECURITY, python-xlib's Composite and DAMAGE among them, which the agent
# never calls (it captures and tracks damage through C Xlib): ~0.7 MiB of
# request and event classes in every session, and a round trip each per
# connection. The agent's main() cuts the table to XLIB_EXTENSIONS before
# any Display() (keep_agent_extensions; tests/unit/test_agent_imports.py).
"""StartupMarks (the start-up line), log_to_file(), and python-xlib's extensions."""

from __future__ import annotations

import os
import sys
import time

import Xlib.ext
import Xlib.support.unix_connect  # noqa: F401 - see the header
import Xlib.xauth  # noqa: F401
from PIL import BmpImagePlugin, GifImagePlugin, ImageChops, JpegImagePlugin, PngImagePlugin  # noqa: F401
from PIL import PpmImagePlugin  # noqa: F401
from Xlib.ext import ge, randr, screensaver, xfixes, xtest  # noqa: F401

# The X extensions the agent uses through python-xlib (see the header): RandR
# (screen.py: resizes), XTEST (xinput.py: input), XFIXES (selections.py),
# MIT-SCREEN-SAVER (x_activity.py: xpra's idle watch), and the Generic Event
# extension python-xlib dispatches events of the others through.
XLIB_EXTENSIONS = ("Generic Event Extension", "XTEST", "RANDR", "XFIXES", "MIT-SCREEN-SAVER")


def keep_agent_extensions() -> None:
    """Cut python-xlib's extension table to XLIB_EXTENSIONS for this process
    (the agent's main(), before its first Display()): a process-wide change,
    so only the agent's entry makes it, never an import of this module (a
    test process that imports agent code keeps every extension)."""
    Xlib.ext.__extensions__ = [entry for entry in Xlib.ext.__extensions__ if entry[0] in XLIB_EXTENSIONS]

# The agent's log in its session directory; truncated at start-up past this size.
AGENT_LOG = "agent.log"
MAX_AGENT_LOG_BYTES = 16 * 1024 * 1024
# The first words of the start-up line (bench/startup_breakdown.py looks for them).
STARTUP_PREFIX = "start-up (wall clock):"


class StartupMarks:
    """Named wall-clock times of the agent's start-up, in the order they happened."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = [("agent main", time.time())]

    def mark(self, name: str) -> None:
        """NAME happened now."""
        self.marks.append((name, time.time()))

    def line(self) -> str:
        """The start-up line: each mark's absolute time and its milliseconds since the first."""
        first = self.marks[0][1]
        parts = [f"{name} {at:.6f} (+{(at - first) * 1000:.0f} ms)" for name, at in self.marks]
        return f"{STARTUP_PREFIX} " + ", ".join(parts)

    def report(self) -> None:
        """Print the start-up line on stderr (sessiond logs it with the session's id)."""
        print(self.line(), file=sys.stderr, flush=True)


def log_to_file(path: str) -> None:
    """Send stdout/stderr (ours and the apps') to the session's log file.

    After READY, sessiond no longer needs our output, and the agent must
    outlive sessiond (restarts): writing to pipes whose reader is gone would
    fail with EPIPE, so from here on output goes to a file in the session dir.
    """
    if os.path.exists(path) and os.path.getsize(path) > MAX_AGENT_LOG_BYTES:
        os.truncate(path, 0)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)

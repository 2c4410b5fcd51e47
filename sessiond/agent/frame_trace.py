# The agent's half of a keystroke's timeline: when a KEY reached the display
# pipeline, when the damage connection said a window changed, when the frame
# started, when its messages were encoded, when they were handed to the link.
#
# Why: the keystroke -> repaint path crosses five processes (xdotool or the
# client, sessiond, the agent, the X server with xterm, the viewer), and a
# median of the whole says nothing about where the time goes. The viewer
# records its own moments (client/viewer/damage.py LatencyTrace); this is
# the agent's, on the same clock (time.monotonic is one clock for every
# process of the machine), so bench/keystroke_timeline.py can put them on
# one line per keystroke. Off unless sessiond runs with SESSIOND_FRAME_TRACE=1
# (passed to the agent like every SESSIOND_ variable): then each mark is
# a tuple in memory, written to the agent's log (its stderr) in batches of
# at most TRACE_BATCH lines from the loop, never one write per mark.
"""FrameTrace: the display pipeline's per-frame moments, off by default."""

from __future__ import annotations

import os
import sys
import time
from typing import Final, TextIO

# The environment variable that turns the trace on ("1").
TRACE_ENV: Final = "SESSIOND_FRAME_TRACE"
# Each line of the log the trace writes starts with this (then name, seconds).
TRACE_PREFIX: Final = "frame-trace"
# Marks written per flush(); more wait for the next one.
TRACE_BATCH: Final = 512
# Marks kept unwritten at most; past this, new ones are dropped (a stuck log).
MAX_TRACE_PENDING: Final = 100_000


class FrameTrace:
    """Named moments (time.monotonic) of the display pipeline; a no-op when off."""

    def __init__(self, enabled: bool | None = None, out: TextIO | None = None) -> None:
        self.enabled = os.environ.get(TRACE_ENV) == "1" if enabled is None else enabled
        self._out = out
        self.pending: list[tuple[str, float]] = []

    def mark(self, what: str) -> None:
        """Record WHAT now (if on, and fewer than MAX_TRACE_PENDING wait)."""
        if self.enabled and len(self.pending) < MAX_TRACE_PENDING:
            self.pending.append((what, time.monotonic()))

    def flush(self) -> int:
        """Write at most TRACE_BATCH waiting marks, one line each; returns how many."""
        if not self.pending:
            return 0
        batch, self.pending = self.pending[:TRACE_BATCH], self.pending[TRACE_BATCH:]
        out = self._out if self._out is not None else sys.stderr
        out.write("".join(f"{TRACE_PREFIX} {what} {moment:.6f}\n" for what, moment in batch))
        out.flush()
        return len(batch)


def parse_trace_line(line: str) -> tuple[str, float] | None:
    """(name, seconds) of one line flush() wrote, None for any other line."""
    parts = line.split()
    if len(parts) != 3 or parts[0] != TRACE_PREFIX:
        return None
    try:
        return parts[1], float(parts[2])
    except ValueError:
        return None

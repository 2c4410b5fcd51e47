# One line per keystroke across the processes it crosses: the viewer's
# LatencyTrace (client/viewer/damage.py: Qt key event, KEY sent, FRAME_END
# received, GUI woken, painted) and the agent's FrameTrace
# (sessiond/agent/frame_trace.py, in the agent's log with sessiond run under
# SESSIOND_FRAME_TRACE=1: KEY at the pipeline, damage notify read, frame
# started, encoded, handed to the link), on the one monotonic clock of the
# machine.
#
# Why a separate tool: bench_viewer.py splits the viewer's own time from the
# library's ("KEY sent -> FRAME_END received"), but that library part is
# the client's send, sessiond's relay both ways, the X server, xterm and the
# agent; the agent's marks split it into the client -> agent hop, X and
# xterm (key -> notify), the coalescing wait (notify -> frame), capture and
# encode (frame -> encoded), and the way back (out -> FRAME_END).
#
#   python bench/keystroke_timeline.py VIEWER_TRACE AGENT_LOG [AGENT_LOG ...]
"""Per-keystroke timeline from the viewer's and the agent's traces (stage medians)."""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

# A mark later than this after the previous one is not the same keystroke's
# (a key's release, sent right after its press, would otherwise chain to the
# next keystroke's echo).
LIMIT = 0.030
# The chain: (stage label, the mark it ends at, whose trace). "sent" starts it.
CHAIN = (("client -> sessiond -> agent: KEY at the pipeline", "key", "agent"),
         ("X server + xterm: key -> damage notify read", "notify", "agent"),
         ("agent: notify -> frame starts (coalescing wait)", "frame", "agent"),
         ("agent: take + capture + encode", "encoded", "agent"),
         ("agent: TILE fold, link write", "out", "agent"),
         ("agent -> sessiond -> client: FRAME_END received", "frame", "viewer"),
         ("viewer: GUI woken", "woke", "viewer"),
         ("viewer: painted", "painted", "viewer"))  # fmt: skip


def read_marks(path: str, prefix: str | None) -> dict[str, list[float]]:
    """Moments by name: "name seconds" lines (the viewer's), or lines starting
    with `prefix` ("frame-trace name seconds", the agent's log), sorted."""
    marks: dict[str, list[float]] = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            parts = line.split()
            if prefix is not None:
                if len(parts) != 3 or parts[0] != prefix:
                    continue
                parts = parts[1:]
            if len(parts) == 2:
                try:
                    marks.setdefault(parts[0], []).append(float(parts[1]))
                except ValueError:
                    continue
    return {name: sorted(moments) for name, moments in marks.items()}


def _next(moments: list[float], after: float) -> float | None:
    for moment in moments:
        if after <= moment < after + LIMIT:
            return moment
    return None


def timelines(viewer: dict[str, list[float]], agent: dict[str, list[float]],
              first: int | None = None) -> list[dict[str, float]]:  # fmt: skip
    """Per repaint, the moment of each stage of CHAIN from the earliest "sent"
    mark that chains to it (a press, not its release); the first `first` only."""
    rows: list[dict[str, float]] = []
    painted: set[float] = set()
    for sent in viewer.get("sent", []):
        row, last = {"sent": sent}, sent
        for label, mark, whose in CHAIN:
            found = _next((agent if whose == "agent" else viewer).get(mark, []), last)
            if found is None:
                break
            row[label], last = found, found
        else:
            if last not in painted:
                painted.add(last)
                rows.append(row)
    return rows[:first]


def stage_medians(rows: list[dict[str, float]]) -> dict[str, Any]:
    """Median ms of each stage and of the whole chain (sent -> painted)."""
    out: dict[str, Any] = {"n": len(rows)}
    previous = "sent"
    for label, _mark, _whose in CHAIN:
        out[label] = statistics.median(r[label] - r[previous] for r in rows) * 1000 if rows else None
        previous = label
    out["total KEY sent -> painted"] = statistics.median(r[previous] - r["sent"] for r in rows) * 1000 if rows else None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("viewer_trace")
    parser.add_argument("agent_logs", nargs="+")
    parser.add_argument("--first", type=int, default=None, help="only the first N keystrokes")
    args = parser.parse_args()
    agent: dict[str, list[float]] = {}
    for path in args.agent_logs:
        for name, moments in read_marks(path, "frame-trace").items():
            agent[name] = sorted(agent.get(name, []) + moments)
    figures = stage_medians(timelines(read_marks(args.viewer_trace, None), agent, args.first))
    for label, value in figures.items():
        print(f"  {label:52} {value:8.2f}" if isinstance(value, float) else f"  {label:52} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

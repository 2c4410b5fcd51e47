# Where the CPU goes while bench_video.py watches a video: per process of the
# session (Xvfb, the player, the agent, ...), the daemon, the watching client
# (this process) and everything else on the machine, in ms of CPU per frame
# the client received; plus the agent's own per-stage split, read back from
# the "video stream" report lines it writes to its agent.log in the session
# directory (sessiond/agent/video_stats.py).
#
# The player's own rate (frames it showed, not dropped) is read from
# ffplay's -stats status line, which it writes to a file in the session's
# private /tmp (reached as root through /proc/PID/root).
#
# Why: on a 2-core machine shared with the player, Xvfb and other work, the
# frame rate is bounded by whichever share runs out first; ms per frame per
# process says which, where a frame rate alone cannot.
"""CpuSample (per-process CPU), AgentLogs + agent_stages (the agent's ms/frame), PlayerStatus (frames shown)."""

from __future__ import annotations

import glob
import os
import re
import resource
from dataclasses import dataclass
from typing import Any

from session_pids import session_pids
from sessiond.agent.video_stats import CPU, STAGES, parse_report

TICK = os.sysconf("SC_CLK_TCK")
# The agent is the session's Python process (/proc/PID/comm "python3", "python3.13", ...).
AGENT_COMM_PREFIX = "python"


def _ticks(pid: int) -> int | None:
    """utime + stime of a process in clock ticks, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5), after pid and (comm)


def _processes(user: str) -> dict[int, str]:
    """pid -> name of every process of USER's session (session_pids.py: its Xvfb may run as an X uid)."""
    found = {}
    for pid in session_pids(user):
        try:
            with open(f"/proc/{pid}/comm", encoding="utf-8") as handle:
                name = handle.read().strip()
        except OSError:
            continue
        found[pid] = "agent" if name.startswith(AGENT_COMM_PREFIX) else name
    return found


def _machine() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    with open("/proc/stat", encoding="ascii") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def _self_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuSample:
    """CPU seconds per process group between start() and stop()."""

    user: str
    daemon_pid: int

    def start(self) -> None:
        """Take the first snapshot."""
        self._names = _processes(self.user)
        self._first = {pid: _ticks(pid) for pid in [*self._names, self.daemon_pid]}
        self._self = _self_seconds()
        self._machine = _machine()

    def stop(self) -> dict[str, float]:
        """Seconds of CPU per group: each session process name, "sessiond",
        "client" (this process), "other" (the rest of the machine), "idle"."""
        out: dict[str, float] = {}
        for pid, first in self._first.items():
            last = _ticks(pid)
            if first is None or last is None:
                continue
            name = "sessiond" if pid == self.daemon_pid else self._names[pid]
            out[name] = out.get(name, 0.0) + (last - first) / TICK
        out["client"] = _self_seconds() - self._self
        busy, total = _machine()
        busy_seconds = (busy - self._machine[0]) / TICK
        out["other"] = max(0.0, busy_seconds - sum(out.values()))
        out["idle"] = ((total - self._machine[1]) - (busy - self._machine[0])) / TICK
        return out


def agent_stages(log_text: str) -> tuple[dict[str, float], int]:
    """The agent's ms/frame per stage over the report lines in log_text
    (weighted by each report's frames), plus "kbps": the lowest target
    bitrate they name, and "keys": the keyframes among the frames; and the
    frames they cover."""
    totals = dict.fromkeys((*STAGES, CPU), 0.0)
    seen: set[str] = set()  # an older agent's lines lack some (its table shows n/a)
    frames, keys, kbps = 0, 0, None
    for line in log_text.splitlines():
        report = parse_report(line)
        if report is None:
            continue
        kbps = report.kbps if kbps is None else min(kbps, report.kbps)
        frames += report.frames
        keys += report.keys
        for stage in totals:
            totals[stage] += report.ms_per_frame.get(stage, 0.0) * report.frames
        seen.update(report.ms_per_frame)
    if not frames:
        return {}, 0
    per_frame = {stage: total / frames for stage, total in totals.items() if stage in seen}
    return {**per_frame, "kbps": float(kbps or 0), "keys": float(keys)}, frames


class AgentLogs:
    """The agent.log files under a sessiond runtime directory, read from a mark on."""

    def __init__(self, runtime_dir: str) -> None:
        self.runtime_dir = runtime_dir
        self._marks: dict[str, int] = {}

    def _paths(self) -> list[str]:
        return glob.glob(os.path.join(self.runtime_dir, "**", "agent.log"), recursive=True)

    def mark(self) -> None:
        """Remember how long each log is now."""
        self._marks = {path: os.path.getsize(path) for path in self._paths()}

    def since_mark(self) -> str:
        """What the logs gained since mark()."""
        text = []
        for path in self._paths():
            with open(path, encoding="utf-8", errors="replace") as handle:
                handle.seek(self._marks.get(path, 0))
                text.append(handle.read())
        return "".join(text)


# ffplay's status line: "<master clock> M-V: <diff> fd= <dropped> aq= ..." (also "A-V", "M-A", "V-").
_STATUS = re.compile(rb"(-?[0-9.]+) (?:M-V|A-V|M-A|V-):\s*-?[0-9.]+ fd=\s*(\d+)")


class PlayerStatus:
    """Frames the player showed between mark() and shown() (its clock at
    `fps` frames a second, less the frames it dropped)."""

    def __init__(self, user: str, path: str, fps: int) -> None:
        self.user, self.path, self.fps = user, path, fps
        self._first: tuple[float, int] | None = None

    def _status(self) -> tuple[float, int] | None:
        pids = [pid for pid, name in _processes(self.user).items() if name == "ffplay"]
        for pid in pids:
            try:
                with open(f"/proc/{pid}/root{self.path}", "rb") as handle:
                    handle.seek(max(0, os.fstat(handle.fileno()).st_size - 4096))
                    found = _STATUS.findall(handle.read())
            except OSError:
                continue
            if found:
                return float(found[-1][0]), int(found[-1][1])
        return None

    def mark(self) -> None:
        """Read the player's clock and drop count now."""
        self._first = self._status()

    def shown(self) -> tuple[float, int] | None:
        """(frames shown, frames dropped) since mark(), None if the status cannot be read."""
        last = self._status()
        if self._first is None or last is None:
            return None
        dropped = last[1] - self._first[1]
        return (last[0] - self._first[0]) * self.fps - dropped, dropped


def shown_ratio(watch: Any, fps: float, seconds: float) -> str:
    """", / frames the player showed R" (R: the share of the player's frames received), or ""."""
    if watch is None or watch.shown is None or watch.shown[0] <= 0:
        return ""
    return f", / frames the player showed {fps * seconds / watch.shown[0]:.2f}"

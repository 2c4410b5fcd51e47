# Counters sessiond keeps for /metrics (Prometheus text format 0.0.4). Only
# what sessiond itself sees: logins, and the display frames and bytes it
# relays to clients (it never decodes them); per-session memory/CPU come from
# the sessions themselves at scrape time.
"""Metrics counters and their Prometheus rendering."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable



@dataclass
class Metrics:
    """Process-wide counters (reset when sessiond restarts, as Prometheus expects)."""

    logins_ok: int = 0
    logins_failed: int = 0
    frames_sent: int = 0
    bytes_sent: int = 0

    def count_relayed(self, frame_end: bool, wire_size: int) -> None:
        """One display frame relayed to a client: WIRE_SIZE bytes, the end of a picture if FRAME_END."""
        self.bytes_sent += wire_size
        if frame_end:
            self.frames_sent += 1


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(metrics: Metrics, sessions: Iterable[dict[str, Any]], states: Iterable[str]) -> str:
    """Prometheus text exposition of METRICS and the session listing."""
    listing = list(sessions)
    lines = [
        "# HELP sessiond_sessions Sessions by state.",
        "# TYPE sessiond_sessions gauge",
    ]
    for state in states:
        count = sum(1 for s in listing if s["state"] == state)
        lines.append(f'sessiond_sessions{{state="{state}"}} {count}')
    lines += [
        "# HELP sessiond_logins_total Login attempts by result.",
        "# TYPE sessiond_logins_total counter",
        f'sessiond_logins_total{{result="ok"}} {metrics.logins_ok}',
        f'sessiond_logins_total{{result="failed"}} {metrics.logins_failed}',
        "# HELP sessiond_display_frames_total Display frames relayed to clients.",
        "# TYPE sessiond_display_frames_total counter",
        f"sessiond_display_frames_total {metrics.frames_sent}",
        "# HELP sessiond_display_bytes_total Display channel bytes relayed to clients (frame headers included).",
        "# TYPE sessiond_display_bytes_total counter",
        f"sessiond_display_bytes_total {metrics.bytes_sent}",
        "# HELP sessiond_session_memory_bytes Resident memory of a session's processes.",
        "# TYPE sessiond_session_memory_bytes gauge",
    ]
    for s in listing:
        lines.append(f'sessiond_session_memory_bytes{{session="{s["id"]}",user="{_label(s["user"])}"}} '
                     f'{s["memory_bytes"]}')  # fmt: skip
    lines += [
        "# HELP sessiond_session_cpu_seconds_total CPU time of a session's processes.",
        "# TYPE sessiond_session_cpu_seconds_total counter",
    ]
    for s in listing:
        lines.append(f'sessiond_session_cpu_seconds_total{{session="{s["id"]}",user="{_label(s["user"])}"}} '
                     f'{s["cpu_seconds"]}')  # fmt: skip
    return "\n".join(lines) + "\n"

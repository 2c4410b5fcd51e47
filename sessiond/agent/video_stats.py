# Where a video stream's time goes, per frame, in the agent's log.
#
# Why: a stream's frame rate is bounded by the slowest of capture (MIT-SHM),
# detection, conversion to YUV, x264 and what the rest of the machine (the
# player, Xvfb, the client) leaves of two cores; without the split one
# cannot tell which to cut.  Each stream sums the seconds of each stage and
# every REPORT_SECONDS (and when it ends) writes one line to the agent's
# log (stderr: the session directory's agent.log) and starts afresh.  The
# line's format is defined here once: format_report() writes it and
# parse_report() reads it back (bench/bench_video.py prints the per-stage
# table from it).  Timing costs two perf_counter calls per stage.
"""StreamStats: per-stage seconds of one video stream; its log line and parser."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import field

from protocol.frozen import frozen_dataclass, plain_dataclass

# Seconds between two report lines of a running stream.
REPORT_SECONDS = 5.0
# The stages, in pipeline order: the MIT-SHM capture of the frame, the
# detection and bookkeeping of video_frame(), the BGRX -> YUV conversion,
# x264's encode, and the send of the frame's messages to the link.  After
# them each line also names "cpu": the agent process's CPU (all threads) per
# frame over the report's seconds, whatever it was spent on.
STAGES = ("capture", "detect", "convert", "encode", "send")
CPU = "cpu"
_PREFIX = "video stream"
_LINE = re.compile(
    _PREFIX + r" (?P<stream>\d+) (?P<w>\d+)x(?P<h>\d+): (?P<frames>\d+) frames \((?P<keys>\d+) key\) in "
    r"(?P<seconds>[0-9.]+) s, "
    r"(?P<bytes>\d+) bytes, target (?P<kbps>\d+) kbit/s; ms/frame (?P<stages>.*)$"
)


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@plain_dataclass
class StreamStats:
    """Per-stage seconds, frames and bytes of one stream since the last report."""

    clock: Callable[[], float]
    size: tuple[int, int]
    log: Callable[[str], None] = _stderr
    started: float = 0.0
    frames: int = 0
    keys: int = 0
    bytes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_started: float = 0.0

    def __post_init__(self) -> None:
        self.started = self.clock()
        self.cpu_started = time.process_time()

    def add(self, stage: str, seconds: float) -> None:
        """Count `seconds` spent in `stage` (one of STAGES)."""
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def frame(self, unit_bytes: int, key: bool) -> None:
        """One access unit of unit_bytes went out (a keyframe if `key`)."""
        self.frames += 1
        self.keys += key
        self.bytes += unit_bytes

    def tick(self, stream_id: int, bitrate: int, final: bool = False) -> None:
        """Write the report line (with the encoder's target `bitrate`) if
        REPORT_SECONDS passed (or `final`) and frames were sent; then start afresh."""
        now = self.clock()
        if not final and now - self.started < REPORT_SECONDS:
            return
        cpu = time.process_time()
        if self.frames:
            self.log(format_report(stream_id, self.size, (self.frames, self.keys), now - self.started, self.bytes,
                                   bitrate, {**self.seconds, CPU: cpu - self.cpu_started}))  # fmt: skip
        self.started, self.frames, self.keys, self.bytes, self.seconds = now, 0, 0, 0, {}
        self.cpu_started = cpu


def format_report(stream_id: int, size: tuple[int, int], counts: tuple[int, int], seconds: float, sent: int,
                  bitrate: int, stages: dict[str, float]) -> str:  # fmt: skip
    """The log line of one report (counts: frames, keyframes among them; parse_report() reads it back)."""
    frames = counts[0]
    names = STAGES + ((CPU,) if CPU in stages else ())
    per_frame = " ".join(f"{name} {stages.get(name, 0.0) * 1000 / max(1, frames):.2f}" for name in names)
    return f"{_PREFIX} {stream_id} {size[0]}x{size[1]}: {frames} frames ({counts[1]} key) in {seconds:.2f} s, " \
        f"{sent} bytes, target {bitrate // 1000} kbit/s; ms/frame {per_frame}"  # fmt: skip


@frozen_dataclass
class Report:
    """One parsed report line."""

    stream: int
    size: tuple[int, int]
    frames: int
    keys: int
    seconds: float
    bytes: int
    kbps: int  # the encoder's target bitrate (adaptive quality lowers it on a slow link)
    ms_per_frame: dict[str, float]


def parse_report(line: str) -> Report | None:
    """The report in a log line (anything may precede it), or None."""
    at = line.find(_PREFIX)
    match = _LINE.match(line[at:].rstrip()) if at >= 0 else None
    if match is None:
        return None
    words = match["stages"].split()
    try:
        stages = {name: float(value) for name, value in zip(words[::2], words[1::2])}
    except ValueError:
        return None
    return Report(int(match["stream"]), (int(match["w"]), int(match["h"])), int(match["frames"]), int(match["keys"]),
                  float(match["seconds"]), int(match["bytes"]), int(match["kbps"]), stages)  # fmt: skip

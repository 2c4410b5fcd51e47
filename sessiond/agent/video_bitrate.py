# Whether lowering a video's bitrate helped: adaptive quality's guard
# against reading a CPU-starved client as a slow link (issue 15).
#
# Why: the link estimate (link_estimate.py) measures the client's drain
# rate from FRAME_END -> FRAME_ACK, and a client acknowledges a frame only
# once it has decoded it. A client whose CPU is taken (2 cores, a player,
# Xvfb and other work) acks late whatever the frames' size, so the drain
# rate it shows is its decode rate times the frame size: each lower bitrate
# makes the frames smaller, the measured rate lower, and the next target
# lower still, down to MIN_VIDEO_BITRATE (measured: 200 kbit/s on
# localhost, a blurred picture at the same frame rate). Frames and link
# alone cannot tell the two apart (either way the frame window is full),
# but the outcome can: on a slow link smaller frames drain faster, so the
# frames delivered per second rise; on a slow client they do not.
#
# So a step down is a probe: the frames acknowledged per second before it
# are compared with those from PROBE_SETTLE_SECONDS after it (its keyframe
# has drained) over PROBE_SECONDS. On a link that is the limit the frame
# rate rises as much as the frames shrink; a starved CPU also gets a little
# faster with fewer bits (x264's and the decoder's entropy coding: measured
# under 3 CPU burners, 3 Mbit/s -> 200 kbit/s gave ~1.4x the frames for
# 1/15 of the bits, a blur). So the step stays only if the frame rate rose
# by at least the HELPED_SHARE power of the bitrate's ratio (a 1.43x step
# needs 1.2x the frames); otherwise the previous bitrate comes back and no
# step down is tried for HOLD_SECONDS. Steps up are never held back.
"""BitrateProbe: apply a lower video bitrate only while it raises the delivered frame rate."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from protocol.frozen import plain_dataclass

# Frame rate before a step down: acknowledged frames over this many seconds.
BEFORE_SECONDS = 2.0
# After a step down: its keyframe drains for PROBE_SETTLE_SECONDS, then the
# frame rate is measured over PROBE_SECONDS.
PROBE_SETTLE_SECONDS = 1.0
PROBE_SECONDS = 2.0
# The step helped if the frame rate rose by (old bitrate / new) ** HELPED_SHARE
# (a link that is the limit gives the whole ratio: ** 1).
HELPED_SHARE = 0.5
# After a step down that did not help, no step down for this long.
HOLD_SECONDS = 20.0
# Acknowledgements remembered (time, frames): enough for BEFORE_SECONDS and
# the probe at 60 frames/s; the oldest go first.
MAX_ACK_RECORDS = 512


@plain_dataclass
class _Probe:
    started: float
    previous: int  # the bitrate before the step down
    bitrate: int  # the bitrate of the step
    fps_before: float


class BitrateProbe:
    """Decides which link-derived video bitrates to apply (see the header)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        """A new client: nothing measured, nothing held."""
        self._acks: deque[tuple[float, int]] = deque(maxlen=MAX_ACK_RECORDS)
        self._probe: _Probe | None = None
        self.hold_until = float("-inf")

    def acked(self, frames: int) -> None:
        """The client acknowledged `frames` more frames now."""
        if frames > 0:
            self._acks.append((self.clock(), frames))

    def fps(self, start: float, end: float) -> float | None:
        """Frames acknowledged per second between the first and the last
        acknowledgement within [start, end] (None: fewer than two)."""
        inside = [(at, frames) for at, frames in self._acks if start <= at <= end]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return None
        return sum(frames for _at, frames in inside[1:]) / (inside[-1][0] - inside[0][0])

    def choose(self, current: int, target: int, step: float) -> int | None:
        """The bitrate to set now, given the streams' `current` one and the
        link's `target`; None: keep it. Changes smaller than the factor
        `step` are not made."""
        now = self.clock()
        probe = self._probe
        if probe is not None:
            judged = probe.started + PROBE_SETTLE_SECONDS + PROBE_SECONDS
            if now < judged:
                if target > step * current:  # the link got faster: no probe needed
                    self._probe = None
                    return target
                return None
            self._probe = None
            after = self.fps(probe.started + PROBE_SETTLE_SECONDS, judged)
            wanted = probe.fps_before * (probe.previous / probe.bitrate) ** HELPED_SHARE
            if after is None or after < wanted:
                self.hold_until = now + HOLD_SECONDS
                return probe.previous if probe.previous > current else None
        if target > step * current:
            return target
        if step * target >= current or now < self.hold_until:
            return None
        before = self.fps(now - BEFORE_SECONDS, now)
        if before is None:  # no frame rate to judge the step by yet (a stream starting)
            return None
        self._probe = _Probe(now, current, target, before)
        return target

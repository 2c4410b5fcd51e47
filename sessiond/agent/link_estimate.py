# What the link to one display client carries: round-trip time and drain
# rate, measured from the display channel's own FRAME_END -> FRAME_ACK
# exchange, and what the display pipeline should do with them (issue 15,
# adaptive quality).
#
# Why from frame acks and not from TCP: the agent sits behind sessiond (a
# Unix socket, then TLS to the client), so it never sees the client's TCP
# connection; what matters to a user is how fast frames are *drawn* at the
# client, and the ack says exactly that. The estimate follows BBR's shape:
#   - RTT: the minimum over RTT_WINDOW_SECONDS of samples from frames the
#     client acknowledged at once (FRAME_END ack_now=1); a held ack
#     (ack_now=0) says nothing about the round trip.
#   - drain rate: bytes acknowledged per second since the frame was sent, the
#     largest sample in RATE_WINDOW_SECONDS, from frames sent while the
#     pipeline was streaming; a frame sent by an idle pipeline (typing) says
#     how fast we typed, not how fast the link is, so it is no sample (an
#     idle link must not look like a slow one).
# From those: keep at most rate x (RTT + QUEUE_TARGET_SECONDS) bytes in
# flight (a keystroke's echo never queues behind seconds of scroll), space
# frames no closer than the link drains them, lower JPEG quality while frames
# are too big for the link, give a video encoder its target bitrate, and
# wait longer before lossless refinement on a busy link. Unknown until the
# first samples: then nothing is limited beyond the frame window.
"""LinkEstimate: per-connection RTT and drain rate, and the pacing/quality they imply."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from protocol.frozen import plain_dataclass

# Frames remembered until acknowledged. The frame window is at most 16
# ([display] frames_in_flight), so this is never reached by a correct
# pipeline; past it the oldest record is dropped (its ack then yields no sample).
MAX_TRACKED_FRAMES = 64
# RTT samples are kept this long; the estimate is their minimum.
RTT_WINDOW_SECONDS = 10.0
# Drain-rate samples are kept this long; the estimate is their maximum.
RATE_WINDOW_SECONDS = 10.0
# Samples kept per window at most (bounded memory at any frame rate).
MAX_SAMPLES = 256
# Ask for an immediate ack when the newest RTT sample is older than this,
# so the estimate follows a link that changes while the user only types.
RTT_SAMPLE_MAX_AGE = 2.0
# Bytes in flight: BUDGET_GAIN round trips of the drain rate (BBR's cwnd gain:
# the rate is measured through this very budget, and with a gain of 1 it would
# settle far below the link; with 2 the estimate climbs until the link is
# full) plus QUEUE_TARGET_SECONDS of queue (the typing budget is RTT + 10 ms).
BUDGET_GAIN = 2.0
QUEUE_TARGET_SECONDS = 0.010
# Never hold back the first bytes: one small frame always goes.
MIN_BUDGET_BYTES = 16 * 1024
# ... and always room for this many average frames: a rate measured through
# a one-frame budget includes the client's decode and the round trip, so it
# would shrink the budget further (measured: 0.7x the frame rate of a noisy
# video on the 40 ms link with one frame; the frame window stays the bound).
MIN_BUDGET_FRAMES = 2
# A rate sample needs at least this much time between its two ends.
MIN_SAMPLE_SECONDS = 0.001
# Weight of the newest frame in the frame-size average.
FRAME_BYTES_WEIGHT = 0.25
# JPEG quality: lowered while a frame takes longer than 1/TARGET_FPS to
# drain and the pipeline had to wait for acks (the link is the limit),
# raised back when it takes less than half of that; at most one step per
# QUALITY_ADJUST_SECONDS, never below MIN_JPEG_QUALITY.
TARGET_FPS = 20.0
MIN_JPEG_QUALITY = 30
QUALITY_STEP = 10
QUALITY_ADJUST_SECONDS = 0.5
# Video: this share of the drain rate, within [MIN, MAX] bit/s; DEFAULT while unknown.
VIDEO_SHARE = 0.7
MIN_VIDEO_BITRATE = 200_000
MAX_VIDEO_BITRATE = 8_000_000
DEFAULT_VIDEO_BITRATE = 4_000_000
# Lossless refinement waits at least this long after a region stops changing,
# and on a busy link until its bytes would take at most REFINE_LINK_SHARE of it.
MIN_REFINE_DELAY = 0.25
MAX_REFINE_DELAY = 5.0
REFINE_LINK_SHARE = 0.5


@plain_dataclass
class _Sent:
    """One frame awaiting its ack."""

    seq: int
    sent_at: float
    size: int
    ack_now: bool
    delivered_at_send: int  # bytes acknowledged before this frame was sent
    delivered_time_at_send: float  # when the last of those was acknowledged
    app_limited: bool  # the pipeline was idle before it: the link was not the limit


class _WindowPick:
    """min (or max) of the values of a deque of (time, value) samples no
    older than `window` seconds at the clock's `now`, None if none, as a
    scan of them gives it, but kept until a sample is added (changed())
    or one of them leaves the window: the display pipeline asks for the RTT
    and the drain rate ~10 times a frame (window size, budget, quality),
    and each answer was a scan of up to MAX_SAMPLES samples (~5% of the
    agent's CPU per frame on a scroll).  Exact for any clock: a kept answer
    is used only at a `now` no earlier than the one it was found at, while
    the oldest of its samples is still inside the window (so the samples
    inside are the same ones)."""

    def __init__(self, samples: deque[tuple[float, float]], window: float,
                 pick: Callable[[list[float]], float]) -> None:  # fmt: skip
        self._samples, self._window, self._pick = samples, window, pick
        self._kept: tuple[float, float, float | None] | None = None  # (found at, oldest sample's time, answer)

    def changed(self) -> None:
        """A sample was added or dropped."""
        self._kept = None

    def value(self, now: float) -> float | None:
        """The pick of the samples at most `window` seconds old at `now` (None: none is)."""
        kept = self._kept
        if kept is not None and kept[0] <= now and kept[1] >= now - self._window:
            return kept[2]
        recent = [(at, value) for at, value in self._samples if at >= now - self._window]
        if not recent:
            self._kept = None  # (one found later may be older than the window is now: scanned again)
            return None
        answer = self._pick([value for _at, value in recent])
        self._kept = (now, min(at for at, _value in recent), answer)
        return answer


class LinkEstimate:
    """RTT and drain rate of one display client, and the pacing they imply."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        """A new client: forget everything measured."""
        self._sent: deque[_Sent] = deque()
        self._rtt: deque[tuple[float, float]] = deque()  # (time, seconds)
        self._rate: deque[tuple[float, float]] = deque()  # (time, bytes/s)
        self._rtt_min = _WindowPick(self._rtt, RTT_WINDOW_SECONDS, min)
        self._rate_max = _WindowPick(self._rate, RATE_WINDOW_SECONDS, max)
        self._last_rtt: float | None = None
        self._last_rate: float | None = None
        self._last_rtt_at = -RTT_SAMPLE_MAX_AGE - 1.0
        self.delivered = 0
        self.delivered_time = self.clock()
        self.frame_bytes = 0.0
        self.quality_scale = 1.0
        self._quality_at = -QUALITY_ADJUST_SECONDS
        self._waited = False  # the pipeline waited for an ack since the last quality step

    # -- measurement ------------------------------------------------------------------
    def frame_sent(self, seq: int, size: int, ack_now: bool, app_limited: bool) -> None:
        """Frame `seq` of `size` bytes left; ack_now: the client acks it at
        once; app_limited: the pipeline was idle before it (not streaming)."""
        now = self.clock()
        if not self._sent:
            self.delivered_time = now  # from idle: the link's time starts now, not at the last ack
        if len(self._sent) >= MAX_TRACKED_FRAMES:
            self._sent.popleft()
        self._sent.append(_Sent(seq, now, size, ack_now, self.delivered, self.delivered_time, app_limited))
        self.frame_bytes = size if self.frame_bytes == 0 else (
            FRAME_BYTES_WEIGHT * size + (1 - FRAME_BYTES_WEIGHT) * self.frame_bytes)  # fmt: skip

    def frame_acked(self, seq: int) -> None:
        """The client acknowledged every frame up to `seq` (FRAME_ACK is cumulative)."""
        now = self.clock()
        last: _Sent | None = None
        while self._sent and self._sent[0].seq <= seq:
            last = self._sent.popleft()
            self.delivered += last.size
        if last is None:
            return
        self.delivered_time = now
        if not last.ack_now:
            return  # a held ack: the client chose when to send it
        self._add(self._rtt, now, now - last.sent_at, RTT_WINDOW_SECONDS)
        self._rtt_min.changed()
        self._last_rtt_at = now
        elapsed = now - last.delivered_time_at_send
        if elapsed >= MIN_SAMPLE_SECONDS:
            if not last.app_limited:
                rate = (self.delivered - last.delivered_at_send) / elapsed
                self._add(self._rate, now, rate, RATE_WINDOW_SECONDS)
                self._rate_max.changed()
        self._adjust_quality(now)

    @staticmethod
    def _add(samples: deque[tuple[float, float]], now: float, value: float, window: float) -> None:
        samples.append((now, value))
        while samples and (len(samples) > MAX_SAMPLES or samples[0][0] < now - window):
            samples.popleft()

    @property
    def rtt(self) -> float | None:
        """Seconds from FRAME_END to FRAME_ACK, the recent minimum (None: no sample yet)."""
        recent = self._rtt_min.value(self.clock())
        if recent is not None:
            self._last_rtt = recent
        return self._last_rtt

    @property
    def bandwidth(self) -> float | None:
        """Bytes per second the client drains, the recent maximum (None: unknown)."""
        recent = self._rate_max.value(self.clock())
        if recent is not None:
            self._last_rate = recent
        return self._last_rate

    @property
    def in_flight_bytes(self) -> int:
        """Bytes of frames sent and not yet acknowledged."""
        return sum(sent.size for sent in self._sent)

    # -- what the pipeline does with it -----------------------------------------------
    def budget(self) -> float | None:
        """Bytes that may be in flight: BUDGET_GAIN round trips of the drain
        rate plus QUEUE_TARGET_SECONDS of it (None: unknown, no byte limit)."""
        rtt, rate = self.rtt, self.bandwidth
        if rtt is None or rate is None:
            return None
        floor = max(float(MIN_BUDGET_BYTES), MIN_BUDGET_FRAMES * self.frame_bytes)
        return max(floor, rate * (BUDGET_GAIN * rtt + QUEUE_TARGET_SECONDS))

    def budget_full(self, extra: int = 0) -> bool:
        """True if the bytes in flight (plus `extra` about to be sent) reach the budget."""
        budget = self.budget()
        return budget is not None and self.in_flight_bytes + extra >= budget

    def wants_sample(self) -> bool:
        """True if the next frame should ask for an immediate ack (RTT sample stale)."""
        return self.clock() - self._last_rtt_at > RTT_SAMPLE_MAX_AGE

    def waited(self) -> None:
        """The pipeline had damage but waited for an ack (frame window or byte
        budget full): the link or the client, not the encoder, set the pace."""
        self._waited = True

    def _adjust_quality(self, now: float) -> None:
        rate = self.bandwidth
        if rate is None or rate <= 0 or now - self._quality_at < QUALITY_ADJUST_SECONDS:
            return
        drain = self.frame_bytes / rate
        waited, self._waited = self._waited, False
        # Lower only when the link set the pace: a busy encoder or CPU makes
        # frames slow too, and smaller frames would not make them faster.
        if drain > 1.0 / TARGET_FPS and waited:
            self.quality_scale = max(0.0, self.quality_scale - QUALITY_STEP / 100)
        elif drain < 0.5 / TARGET_FPS:
            self.quality_scale = min(1.0, self.quality_scale + QUALITY_STEP / 200)
        else:
            return
        self._quality_at = now

    def jpeg_quality(self, configured: int) -> int:
        """The JPEG quality to use now: `configured` on a fast link, lower while
        frames are too big for it (never below MIN_JPEG_QUALITY or above `configured`)."""
        floor = min(configured, MIN_JPEG_QUALITY)
        return max(floor, round(floor + (configured - floor) * self.quality_scale))

    def target_bitrate(self) -> int:
        """Bits per second a video encoder should aim at on this link."""
        rate = self.bandwidth
        if rate is None:
            return DEFAULT_VIDEO_BITRATE
        return int(min(MAX_VIDEO_BITRATE, max(MIN_VIDEO_BITRATE, rate * 8 * VIDEO_SHARE)))

    def refine_delay(self, refine_bytes: int) -> float:
        """Seconds a lossy region should stay unchanged before its lossless
        refinement (`refine_bytes` large) is sent: longer on a slow or busy link."""
        rate = self.bandwidth
        if rate is None or rate <= 0:
            return MIN_REFINE_DELAY
        busy = self.in_flight_bytes / rate
        return min(MAX_REFINE_DELAY, max(MIN_REFINE_DELAY, refine_bytes / (rate * REFINE_LINK_SHARE) + busy))

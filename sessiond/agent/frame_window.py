# How many display frames may be unacknowledged at once, and which frame
# asks the client to acknowledge at once (FRAME_END ack_now), per link.
#
# Why a window that widens: the pipeline sends a frame only while fewer than
# `window` frames await their FRAME_ACK, so it delivers at most `window`
# frames per round trip. `[display] frames_in_flight` (default 2) is plenty on
# a LAN, but on a 40 ms link (plus the client's decode) two frames per round
# trip is ~13 frames/s of scroll however small the frames are. With
# `[display] adaptive`, once the link estimate knows the round trip and the
# drain rate, the window grows to the frames max_fps needs to fill one round
# trip, as long as that many average frames fit the estimate's byte budget
# (about two round trips of the drain rate: the bandwidth-delay product with
# BBR's gain). MAX_FRAME_WINDOW is the hard bound whatever the estimate says,
# so the frames queued anywhere between agent and client stay bounded; the
# byte budget itself still stops a frame that would overfill the link.
#
# Why ack_now on every streaming frame and at half a widened window: a
# client holds an ack the server did not ask for until its next write. Asked
# only at the frame that fills the window, the window is a burst, then a
# whole round trip of silence: at 2 frames, the third frame of a 60 frames/s
# scroll waited for the second's ack, i.e. for its encode and round trip,
# which together are longer than a frame gap. So while frames go back to back
# (scroll, video) each is acknowledged at once (12 bytes up per frame, beside
# the stream), and a widened window asks from its half on. A lone frame from
# an idle pipeline (a typed key's echo) is held unless the configured window
# is full, so its ack rides on the next keystroke (one TLS record up per key).
#
# Why small damage goes ahead (split_ahead): a typed key's echo (a glyph and
# the cursor, ~150 pixels) damaged together with a big region (a video beside
# the terminal) waited in the same frame for the big region's encode (JPEG or
# H.264, tens of ms) and then behind its bytes on the link, and clients paint
# at FRAME_END: on the emulated 40 ms link typing while a video played took
# RTT + 64-100 ms. Split off, the echo is encoded first (a PALETTE of tens of
# bytes), ended and flushed at once, and the big region follows in the next
# frame: only when the window has room for both frames (it stays the bound),
# for at most AHEAD_MAX_RECTS rectangles of at most AHEAD_MAX_PIXELS, and when
# the rest is big enough (AHEAD_MIN_REST_PIXELS) to be worth a FRAME_END.
# Seamless mode splits the same way over all damaged windows together
# (split_ahead_by: the echo of xterm ahead of a video in ffplay's window).
#
# Why a key skips the max_fps slot (frame_delay): while a video streams, the
# echo of a key that came during a frame's encode was damaged right after it,
# and waited for the next max_fps slot (up to a 60 frames/s gap) on top of
# the encode. Within ECHO_SECONDS of a key the next frame goes as soon as the
# echo's coalescing wait allows; with split-ahead the echo leads that frame.
"""FrameWindow: the frame window (widened by the link estimate), when to ask
for an ack, and which small damage goes out ahead of a big frame."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final, Protocol, TypeVar

from protocol.messages import Message
from sessiond.agent.encoder import RegionEncoder
from sessiond.agent.link_estimate import LinkEstimate

Rect = tuple[int, int, int, int]
R = TypeVar("R")
K = TypeVar("K")

# Hard bound of the widened window: never more frames unacknowledged than
# this because of the estimate (an admin's larger frames_in_flight stays
# theirs). 8 frames hold 60 frames/s through ~115 ms of round trip.
MAX_FRAME_WINDOW: Final = 8
# A widened window asks for an immediate ack from this share of it on.
ACK_SHARE: Final = 0.5
# Split-ahead (see the header): a rectangle this small may go ahead (64 x 64
# holds a word of glyphs and the cursor), at most this many of them, only if
# the rest is at least this big, and only with room for both frames.
AHEAD_MAX_PIXELS: Final = 64 * 64
AHEAD_MAX_RECTS: Final = 4
AHEAD_MIN_REST_PIXELS: Final = 128 * 128
AHEAD_FRAMES: Final = 2
# A frame that started late (timer, a busy machine) lets the next ones start
# early by up to this many max_fps gaps in all, so a stream keeps max_fps on
# average: frames are paced by absolute deadlines (slots), and a frame late
# by up to two gaps keeps the grid (the next ones may go at once). Paced from
# each late start a 60 frames/s scroll showed ~55; with half a gap of debt
# it showed ~56 (peer sitting): every frame the X server held back more
# than 8 ms (its capture waits behind xterm's flood of drawing requests)
# lost the rest of its lateness for good. With one gap it showed 59.8
# (59.4-60.0, session 7's sitting), and the agent's trace of the harness's
# scroll (SESSIOND_FRAME_TRACE, session 8, on a machine shared with other
# benchmarks, load 3-6) showed ~15 % of the frames starting 1-2 gaps late
# (a capture behind Xvfb, or the window full until the busy viewer's ack),
# each losing the part past one gap for good. Two gaps keep those; whether
# that reaches 60 in a quiet sitting was not measurable on that machine
# (the harness's rates there were 15-58/s, bound by CPU, either way).
MAX_CATCH_UP_GAPS: Final = 2.0
# A frame later than this many gaps ends a stream (the pipeline was idle or
# stalled): the grid restarts half a gap before its start, as it always did
# (IDLE_CATCH_UP_GAPS), so the next frame waits at least half a gap (no
# burst after an idle spell; a keystroke's echo paces as before). One gap
# past MAX_CATCH_UP_GAPS, so a stream's late frame keeps its debt.
IDLE_GAPS: Final = 3.0
IDLE_CATCH_UP_GAPS: Final = 0.5
# A frame that starts within this long of a key from the client skips the
# max_fps slot (frame_delay): xterm's echo is damaged ~1 ms after the key,
# more on a busy machine; the window and the max_kbps bucket still hold.
ECHO_SECONDS: Final = 0.030


def widened_window(configured: int, rtt: float | None, rate: float | None, budget: float | None,
                   frame_bytes: float, max_fps: float) -> int:  # fmt: skip
    """Frames that may be unacknowledged: enough for `max_fps` through one
    `rtt`, plus the one being acknowledged, if `budget` bytes hold that many
    `frame_bytes` frames; never below `configured`, never above
    max(configured, MAX_FRAME_WINDOW). Unknown link (None), or a round trip
    shorter than the configured window's frames at max_fps: `configured`."""
    if rtt is None or rate is None or budget is None or rtt * max_fps < configured:
        return configured
    wanted = math.ceil(rtt * max_fps) + 1
    fits = int(budget // max(frame_bytes, 1.0))
    return max(configured, min(wanted, fits, MAX_FRAME_WINDOW))


def frame_slot(previous: float, started: float, gap: float) -> float:
    """The max_fps slot a frame that started at `started` fills: the one
    after `previous` if it started at most MAX_CATCH_UP_GAPS late (the next
    frame may go at slot + gap), else `started` less that much (a stream
    far behind does not burst to catch up), and `started` less
    IDLE_CATCH_UP_GAPS after more than IDLE_GAPS (an idle pipeline)."""
    nominal = previous + gap
    late = started - nominal
    if late <= MAX_CATCH_UP_GAPS * gap:
        return nominal
    return started - (MAX_CATCH_UP_GAPS if late <= IDLE_GAPS * gap else IDLE_CATCH_UP_GAPS) * gap


def frame_delay(now: float, slot: float, gap: float, streaming: bool, typed_at: float, coalesce: float,
                cap_wait: float) -> float:  # fmt: skip
    """Seconds until the next frame: the coalescing wait (none while
    streaming), the next max_fps slot after `slot`, and the max_kbps bucket's
    wait. Within ECHO_SECONDS of a key that came after the last frame's slot
    started (`typed_at`) the slot is skipped, so an echo damaged while a video
    frame was encoded goes out at once rather than up to a whole gap later
    (the video's next frame then paces from it)."""
    if typed_at > slot and now - typed_at < ECHO_SECONDS:
        return max(coalesce, cap_wait)
    return max(0.0 if streaming else coalesce, slot + gap - now, cap_wait)


def ack_threshold(window: int, configured: int) -> int:
    """Unacknowledged frames (this one included) from which a frame asks for
    an immediate ack: the full window at the configured size, half a widened
    one (at least 2, so a lone keystroke's echo is never asked)."""
    if window <= configured:
        return window
    return max(2, math.ceil(window * ACK_SHARE))


class FrameWindow:
    """The display pipeline's window over one link estimate."""

    def __init__(self, estimate: LinkEstimate, configured: int, max_fps: float, adaptive: bool) -> None:
        self.estimate = estimate
        self.configured = configured
        self.max_fps = max_fps
        self.adaptive = adaptive

    def size(self) -> int:
        """The window now: configured, widened with [display] adaptive."""
        if not self.adaptive:
            return self.configured
        est = self.estimate
        return widened_window(self.configured, est.rtt, est.bandwidth, est.budget(), est.frame_bytes, self.max_fps)

    def room_ahead(self, unacked: int) -> bool:
        """True if the window holds both frames of a split (split_ahead) now."""
        return self.size() - unacked >= AHEAD_FRAMES

    def full(self, unacked: int) -> bool:
        """True if `unacked` frames fill the window (no frame may go)."""
        return unacked >= self.size()

    def link_full(self, last_ack_now: bool) -> bool:
        """Adaptive: the bytes in flight reach the budget, and the client was
        told to ack the last frame at once (else its held ack never comes)."""
        return self.adaptive and last_ack_now and self.estimate.budget_full()

    def ack_now(self, unacked: int, size: int, streaming: bool) -> bool:
        """FRAME_END ack_now for a frame of `size` bytes, `unacked` frames
        counted with it: True if the pipeline is streaming (frames back to
        back), the window or the byte budget is (half) full after it, or the
        RTT estimate wants a sample."""
        if streaming:
            return True
        window = self.size()
        if unacked >= ack_threshold(window, self.configured):
            return True
        if self.adaptive and self.estimate.budget_full(size):
            return True
        return self.estimate.wants_sample()


def _area(rect: Rect) -> int:
    return rect[2] * rect[3]


def split_ahead(rects: list[Rect]) -> tuple[list[Rect], list[Rect]]:
    """(ahead, rest): the small rectangles that go out first in a frame of
    their own, and the others; ([], rects) when no split is worth it."""
    ahead, rest = split_ahead_by({0: rects})
    return ahead.get(0, []), rest.get(0, [])


def split_ahead_by(damage: dict[K, list[Rect]]) -> tuple[dict[K, list[Rect]], dict[K, list[Rect]]]:
    """split_ahead over the rectangles of several surfaces together (seamless:
    an echo in one window, a video in another): (ahead, rest) by surface,
    ({}, damage) when no split is worth it."""
    small = [(key, rect) for key, rects in damage.items() for rect in rects if _area(rect) <= AHEAD_MAX_PIXELS]
    big = [(key, rect) for key, rects in damage.items() for rect in rects if _area(rect) > AHEAD_MAX_PIXELS]
    if not small or len(small) > AHEAD_MAX_RECTS or sum(_area(rect) for _, rect in big) < AHEAD_MIN_REST_PIXELS:
        return {}, damage
    ahead: dict[K, list[Rect]] = {}
    rest: dict[K, list[Rect]] = {key: [] for key in damage}
    for key, rect in small:
        ahead.setdefault(key, []).append(rect)
    for key, rect in big:
        rest[key].append(rect)
    return ahead, rest


def send_ahead(ahead: Callable[[list[R]], None] | None, rects: list[Rect],
               encode: Callable[[list[Rect], bool], list[R]]) -> list[Rect]:  # fmt: skip
    """Through `ahead` (None: no room), the small rectangles of `rects`
    encoded (lossless) as a frame of their own; returns the rest."""
    if ahead is None:
        return rects
    first, rest = split_ahead(rects)
    if first:
        ahead(encode(first, False))
    return rest


def send_ahead_by(ahead: Callable[[list[R]], None] | None, damage: dict[K, list[Rect]],
                  encode: Callable[[K, list[Rect]], list[R]]) -> dict[K, list[Rect]]:  # fmt: skip
    """send_ahead over several surfaces (seamless windows): the small
    rectangles of all of them, each surface's encoded by `encode`, as one
    frame through `ahead`; returns each surface's rest."""
    if ahead is None:
        return damage
    first, rest = split_ahead_by(damage)
    if first:
        ahead([item for key, rects in first.items() for item in encode(key, rects)])
    return rest


class FrameSource(Protocol):
    """Where frames come from: damage bookkeeping and encoded pixels (the
    display pipeline's sources; one with an `ahead` attribute gets the
    pipeline's split-ahead sender there before each frame, see send_ahead)."""

    def pending(self) -> bool:
        """True if something changed since the last frame."""
        ...

    def mark_all(self) -> None:
        """Send everything in the next frame (new client, refresh, resize)."""
        ...

    def frame(self, encoder: RegionEncoder) -> list[Message]:
        """The display messages of one frame (FRAME_END excluded); [] if nothing changed."""
        ...

# An idle agent's release changes no output: a surface history released
# (packed into zlib bands, pages dropped) between any two frames plans
# exactly what a history never released plans, over random scrolls of
# overlapping column spans, and holds the same pixels after; a band stays
# packed until a frame touches its rows. IdleRelease releases once per idle
# spell, only after IDLE_RELEASE_SECONDS without a frame. A capture's pages go
# back at the end of a frame that sent a surface whole, and after any other
# large read once QUIET_RELEASE_SECONDS passed without one (never while large
# reads go on, never without the loop's call_later).
"""Unit tests for SurfaceHistory.release, RegionEncoder.release_idle, IdleRelease and the capture's release rule."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sessiond.agent.encoder import RegionEncoder
from sessiond.agent.idle_release import IDLE_RELEASE_SECONDS, IdleRelease, malloc_trim, release_display
from sessiond.agent.scroll import RELEASE_BAND_ROWS, Source, SurfaceHistory
from sessiond.agent.xshm import QUIET_RELEASE_SECONDS, WHOLE_CAPTURE_RELEASE_BYTES, XShmError, _ReleaseAfterWhole
from unit.test_agent_cpu import HEIGHT, WIDTH, start_histories, step_releasing


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**16), steps=st.lists(
    st.tuples(st.integers(0, HEIGHT - 1), st.integers(1, HEIGHT), st.integers(-20, 20),
              st.sampled_from(((0, WIDTH), (0, 24), (8, 32), (20, 20), (8, 12))), st.booleans()),
    min_size=1, max_size=10))  # fmt: skip
def test_a_released_history_plans_exactly_as_one_never_released(
        seed: int, steps: list[tuple[int, int, int, tuple[int, int], bool]]) -> None:  # fmt: skip
    rng = random.Random(seed)
    released, kept = SurfaceHistory(WIDTH, HEIGHT), SurfaceHistory(WIDTH, HEIGHT)
    rows, frame = start_histories(rng, released, kept)
    frame = step_releasing(rng, rows, frame, HEIGHT, steps, released, kept)
    assert bytes(released.pixels) == frame


def test_a_released_band_stays_packed_until_its_rows_are_touched() -> None:
    width, height = 16, RELEASE_BAND_ROWS * 3
    frame = bytes(random.Random(1).randrange(256) for _ in range(width * height * 4))
    history = SurfaceHistory(width, height)
    source = Source(memoryview(frame), width * 4)
    history.remember(source, (0, 0, width, height))
    packed = history.release()
    assert 0 < packed
    assert len(history.pixels) == 0, "the released history still holds its pixels"
    last_band = (0, 2 * RELEASE_BAND_ROWS, width, 1)
    assert history.plan(source, last_band).rects == [], "an unchanged row after release was not recognised"
    stride = width * 4
    band = slice(2 * RELEASE_BAND_ROWS * stride, height * stride)
    assert bytes(history.pixels[band]) == frame[band]
    assert bytes(history.pixels[: 2 * RELEASE_BAND_ROWS * stride]) == bytes(2 * RELEASE_BAND_ROWS * stride)


def test_the_encoder_releases_every_surface_and_forgets_none() -> None:
    encoder = RegionEncoder()
    frame = bytes(64 * 32 * 4)
    for surface in ("desktop", 7):
        encoder.encode(frame, 64 * 4, [(0, 0, 64, 32)], width=64, height=32, surface=surface)
    assert encoder.release_idle() > 0
    # Unchanged after the release: the history still knows the client's copy, so nothing is sent.
    assert encoder.encode(frame, 64 * 4, [(0, 0, 64, 32)], width=64, height=32, surface="desktop") == []


class FakeLoop:
    """call_later that records; the test fires the timers."""

    def __init__(self) -> None:
        self.timers: list[tuple[float, Any]] = []

    def call_later(self, delay: float, callback: Any) -> Any:
        self.timers.append((delay, callback))
        return self

    def cancel(self) -> None:
        pass


def test_release_runs_once_per_idle_spell() -> None:
    loop, now, last_frame, calls = FakeLoop(), [100.0], [95.0], []
    idle = IdleRelease(loop, lambda: last_frame[0], lambda: calls.append(now[0]),  # type: ignore[arg-type]
                       clock=lambda: now[0])  # fmt: skip
    assert loop.timers[-1][0] == IDLE_RELEASE_SECONDS
    idle.check()  # a frame 5 s ago: not yet
    assert calls == [] and loop.timers[-1][0] == IDLE_RELEASE_SECONDS - 5.0
    now[0] = 95.0 + IDLE_RELEASE_SECONDS
    idle.check()
    assert calls == [now[0]]
    now[0] += 3 * IDLE_RELEASE_SECONDS
    idle.check()  # still idle: released already
    assert len(calls) == 1
    last_frame[0] = now[0] - 1.0  # a frame: the next idle spell releases again
    idle.check()
    assert len(calls) == 1
    now[0] += IDLE_RELEASE_SECONDS
    idle.check()
    assert len(calls) == 2 and idle.releases == 2


class RecordedCapture(_ReleaseAfterWhole):
    """The release rule of xshm's capture classes over a recorded release() and a fake clock."""

    def __init__(self, loop: FakeLoop | None, now: list[float]) -> None:
        self.call_later = loop.call_later if loop is not None else None  # type: ignore[assignment]
        self.clock = lambda: now[0]  # type: ignore[method-assign]
        self.released: list[float] = []
        self.now = now

    def release(self) -> None:
        self.released.append(self.now[0])

    def frame(self, nbytes: int, whole: bool = False) -> None:
        """One frame that reads `nbytes` (a surface whole if `whole`), then frame_done()."""
        if whole:
            self.release_after_frame(nbytes)
        self._read(nbytes)
        self.frame_done()


LARGE = WHOLE_CAPTURE_RELEASE_BYTES


def test_a_surface_sent_whole_is_released_at_its_frames_end_and_arms_nothing() -> None:
    loop, now = FakeLoop(), [10.0]
    capture = RecordedCapture(loop, now)
    capture.frame(LARGE, whole=True)
    assert capture.released == [10.0] and loop.timers == []
    capture.frame(LARGE - 4, whole=True)  # small: the pages it reads are few
    capture.frame(LARGE - 4)
    assert capture.released == [10.0] and loop.timers == []


def test_a_large_read_its_frame_keeps_is_released_once_quiet_and_kept_while_large_reads_go_on() -> None:
    loop, now = FakeLoop(), [10.0]
    capture = RecordedCapture(loop, now)
    capture.frame(LARGE)  # an app redrew its window whole
    assert capture.released == [] and [delay for delay, _ in loop.timers] == [QUIET_RELEASE_SECONDS]
    for _ in range(3):  # ... and goes on redrawing it whole: no release, no second timer
        now[0] += QUIET_RELEASE_SECONDS / 2
        capture.frame(LARGE)
    assert capture.released == [] and len(loop.timers) == 1
    now[0] += QUIET_RELEASE_SECONDS / 2
    _, check = loop.timers.pop()
    check()  # the last read is half a period old: re-armed for the rest
    assert capture.released == [] and [delay for delay, _ in loop.timers] == [QUIET_RELEASE_SECONDS / 2]
    now[0] += QUIET_RELEASE_SECONDS / 2
    capture.frame(LARGE - 4)  # small frames (typing) do not hold the pages
    loop.timers.pop()[1]()
    assert capture.released == [now[0]] and loop.timers == []
    capture.frame(LARGE - 4)  # nothing large since: nothing armed, nothing released
    assert capture.released == [now[0]] and loop.timers == []


def test_a_whole_frame_releases_what_a_pending_quiet_release_held() -> None:
    loop, now = FakeLoop(), [10.0]
    capture = RecordedCapture(loop, now)
    capture.frame(LARGE)
    capture.frame(LARGE, whole=True)  # a refresh: released at once, the timer finds nothing left
    assert capture.released == [10.0]
    now[0] += QUIET_RELEASE_SECONDS
    loop.timers.pop()[1]()
    assert capture.released == [10.0] and loop.timers == []


def test_without_a_loop_a_large_read_waits_for_the_idle_release() -> None:
    capture = RecordedCapture(None, [10.0])
    capture.frame(LARGE)
    assert capture.released == []


def test_malloc_trim_is_available_on_glibc() -> None:
    assert malloc_trim()


def test_a_capture_release_that_fails_is_logged_and_the_history_still_goes() -> None:
    """madvise refused (XShmError): the agent logs it, and the encoder's histories and the heap are released."""

    class Refusing:
        def release_idle(self) -> None:
            raise XShmError("madvise(MADV_REMOVE) failed: Invalid argument")

    released: list[str] = []
    lines: list[str] = []
    release_display(lambda: released.append("history") or 0, Refusing(), lines.append)
    assert released == ["history"]
    assert any("stay resident" in line and "madvise" in line for line in lines), lines

"""Per-channel bandwidth caps: the token bucket with a fake clock (crossing
the cap both ways: drop for audio, delay for display), and audio-out over its
cap dropping packets (never queueing) while the format still goes out."""

from __future__ import annotations

import math
import struct

import pytest

from protocol.audio import AudioData, AudioFormat
from protocol.connection import frame_cost
from sessiond.agent.audio import AudioOut
from sessiond.agent.audio_bandwidth import BURST_SECONDS, MAX_KBPS, MIN_BURST_BYTES, TokenBucket
from media.opus import FRAME_SAMPLES, OpusEncoder


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_no_cap_allows_everything() -> None:
    bucket = TokenBucket(0, FakeClock())
    assert all(bucket.try_take(10**9) for _ in range(100))
    bucket.charge(10**12)
    assert bucket.wait_seconds() == 0.0 and bucket.dropped == 0


@pytest.mark.parametrize("kbps", [-1, MAX_KBPS + 1, 1.5])
def test_cap_out_of_range_is_refused(kbps: object) -> None:
    with pytest.raises(ValueError, match="max_kbps"):
        TokenBucket(kbps)  # type: ignore[arg-type]


def test_try_take_crosses_the_cap_and_refills_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(800, clock)  # 100 000 B/s; burst max(10 000, MIN_BURST_BYTES)
    burst = max(100_000 * BURST_SECONDS, MIN_BURST_BYTES)
    assert bucket.capacity == burst
    assert bucket.try_take(int(burst))  # the whole burst at once
    assert not bucket.try_take(1)  # one byte over: dropped
    assert bucket.dropped == 1
    clock.now += 0.01  # 1000 bytes of credit
    assert not bucket.try_take(1001)
    assert bucket.try_take(1000)
    assert not bucket.try_take(1)
    clock.now += 3600  # a long quiet spell accrues only the burst
    assert bucket.try_take(int(burst)) and not bucket.try_take(1)


def test_sustained_rate_stays_at_the_cap() -> None:
    clock = FakeClock()
    bucket = TokenBucket(80, clock)  # 10 000 B/s
    sent = 0
    for _ in range(10_000):  # 10 s offered at 100 B per ms = 10x the cap
        clock.now += 0.001
        if bucket.try_take(100):
            sent += 100
    assert 10 * 10_000 <= sent <= 10 * 10_000 + bucket.capacity


def test_charge_goes_into_debt_and_wait_seconds_repays_it() -> None:
    clock = FakeClock()
    bucket = TokenBucket(8000, clock)  # 1 MB/s, burst 100 kB
    assert bucket.wait_seconds() == 0.0
    bucket.charge(300_000)  # a big frame: 200 kB of debt
    assert bucket.wait_seconds() == pytest.approx(0.2)
    clock.now += 0.15
    assert bucket.wait_seconds() == pytest.approx(0.05)
    clock.now += 0.05
    assert bucket.wait_seconds() == 0.0


def test_display_frames_paced_by_debt_average_the_cap() -> None:
    clock = FakeClock()
    bucket = TokenBucket(4000, clock)  # 500 kB/s
    frames = 0
    while True:  # 10 s of 200 kB frames as fast as the bucket allows
        clock.now += bucket.wait_seconds()
        if clock.now >= 110.0:
            break
        bucket.charge(200_000)
        frames += 1
    assert frames == 26  # (10 s x 500 kB/s + 50 kB burst) / 200 kB, rounded up


def tone(frames: int) -> bytes:
    values = (int(12000 * math.sin(2 * math.pi * 440 * k / 48000)) for k in range(frames * FRAME_SAMPLES))
    return b"".join(struct.pack("<hh", v, v) for v in values)


class FakeConn:
    def __init__(self) -> None:
        self.sent: list[object] = []

    def send_window(self, channel: int) -> int:
        return 1 << 30

    def send(self, channel: int, message: object) -> None:
        self.sent.append(message)


class FakeLink:
    def __init__(self) -> None:
        self.conn = FakeConn()

    def flush(self) -> None:
        pass


def test_audio_out_over_its_cap_drops_and_never_queues() -> None:
    clock = FakeClock()
    link = FakeLink()
    cap = TokenBucket(16, clock)  # 2 kB/s: far below 64 kbit/s Opus
    out = AudioOut(link, 3, OpusEncoder(), cap=cap)
    for _ in range(50):  # one second of tone, 20 ms at a time
        clock.now += 0.02
        out.feed(tone(1))
    assert isinstance(link.conn.sent[0], AudioFormat)  # never dropped by the cap
    data = [m for m in link.conn.sent if isinstance(m, AudioData)]
    assert out.capped > 0 and len(data) + out.capped == 50
    sent_bytes = sum(frame_cost(m) for m in data)  # type: ignore[arg-type]
    assert sent_bytes <= 2000 * 1.0 + cap.capacity
    assert out.dropped == 0  # the window was never the reason


def test_audio_out_under_its_cap_sends_every_packet() -> None:
    clock = FakeClock()
    link = FakeLink()
    out = AudioOut(link, 3, OpusEncoder(), cap=TokenBucket(128, clock))
    for _ in range(50):
        clock.now += 0.02
        out.feed(tone(1))
    assert out.capped == 0 and out.packets_sent == 50

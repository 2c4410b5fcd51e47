# Per-channel bandwidth caps for what the agent sends: [audio] max_kbps for
# audio-out and [display] max_kbps for display (0 = no cap).
#
# Why a token bucket, and why two ways to spend it: credit accrues at the cap
# rate up to a small burst, and each channel spends it in the way that suits
# its data. Late audio is useless, so an audio packet that the bucket cannot
# cover is dropped at once (try_take), never queued. A display frame is only
# known in size once it is encoded, and a half frame is worse than a late
# one, so the display sends the whole frame, is charged for it (charge; the
# bucket may go into debt) and the next frame waits until the debt is repaid
# (wait_seconds). Over any window the display's average stays at the cap,
# and frames that would come faster coalesce their damage meanwhile.
#
# It lives beside the audio code because audio brought the cap; the display
# pipeline in main.py uses the same class.
"""TokenBucket: a byte-rate cap with drop (audio) and delay (display) spending."""

from __future__ import annotations

import time
from typing import Callable

# Credit that may accumulate while a channel is quiet: 100 ms at the cap
# rate, so a cap holds over any window longer than that.
BURST_SECONDS = 0.1
# ... but never less than this, so one large audio packet (4000-byte Opus
# packet plus headers) or a small display frame can pass at low caps.
MIN_BURST_BYTES = 8192
# Largest cap accepted (10 Gbit/s): beyond any link this serves.
MAX_KBPS = 10_000_000


def kbps_to_bytes_per_second(kbps: int) -> float:
    """Kilobits per second (1000 bits) to bytes per second."""
    return kbps * 1000 / 8


class TokenBucket:
    """Bytes allowed at `kbps` kbit/s with a short burst; kbps=0 means no cap."""

    def __init__(self, kbps: int, clock: Callable[[], float] = time.monotonic) -> None:
        if not isinstance(kbps, int) or not 0 <= kbps <= MAX_KBPS:
            raise ValueError(f"max_kbps={kbps!r} outside [0, {MAX_KBPS}]")
        self.kbps = kbps
        self.clock = clock
        self.rate = kbps_to_bytes_per_second(kbps)
        self.capacity = max(self.rate * BURST_SECONDS, MIN_BURST_BYTES)
        self.tokens = self.capacity
        self._last = clock()
        self.dropped = 0

    @property
    def capped(self) -> bool:
        """True when a cap is configured."""
        return self.kbps > 0

    def _refill(self) -> None:
        now = self.clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)

    def try_take(self, size: int) -> bool:
        """Spend SIZE bytes if the credit covers them (True); else spend nothing,
        count a drop and return False. Always True without a cap."""
        if not self.capped:
            return True
        self._refill()
        if self.tokens >= size:
            self.tokens -= size
            return True
        self.dropped += 1
        return False

    def charge(self, size: int) -> None:
        """Spend SIZE bytes already sent, going into debt if need be."""
        if self.capped:
            self._refill()
            self.tokens -= size

    def wait_seconds(self) -> float:
        """Seconds until the debt is repaid (0.0 when there is none or no cap)."""
        if not self.capped:
            return 0.0
        self._refill()
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

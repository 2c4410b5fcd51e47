# Icon renders must never compete with logins. Decoding and resizing an icon
# with Pillow takes tens of milliseconds; before this module every ICON_REQUEST
# that missed the cache queued one more render on the reactor's shared thread
# pool, the same pool that runs PAM for everyone, so 1000 identical requests
# from one logged-in user delayed every login behind 1000 renders.
#
# Now: one render per (file, size) at a time (later identical requests wait
# for the same result), at most MAX_PENDING_RENDERS distinct renders waiting,
# all in a pool of their own (ICON_THREADS threads), and each user may ask
# for at most ICON_BURST icons at once, refilled at ICON_RATE per second.
"""IconRenderQueue: coalesced icon renders in their own bounded pool, rate-limited per user."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from apps.icons import IconError

# Distinct (file, size) renders waiting or running; more are refused at once.
MAX_PENDING_RENDERS = 64
# Threads of the icon pool: renders are rare once the cache is warm.
ICON_THREADS = 1
# Icon requests a user may make at once (a launcher asks for every app's
# icon, a few sizes each), and the sustained rate after that.
ICON_BURST = 200
ICON_RATE = 50.0
# Users whose buckets are remembered; the oldest are forgotten past this.
MAX_TRACKED_USERS = 4096


class IconRateLimited(IconError):
    """The user asked for icons faster than ICON_RATE; the message says so."""


class _Bucket:
    """A token bucket: BURST tokens, refilled at RATE per second."""

    def __init__(self, now: float) -> None:
        self.tokens = float(ICON_BURST)
        self.stamp = now

    def take(self, now: float) -> bool:
        self.tokens = min(float(ICON_BURST), self.tokens + (now - self.stamp) * ICON_RATE)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def _default_runner() -> Callable[..., defer.Deferred[Any]]:
    """deferToThreadPool on a pool of ICON_THREADS threads, started lazily, stopped with the reactor."""
    state: dict[str, Any] = {}

    def run(function: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        from twisted.internet import reactor, threads
        from twisted.python.threadpool import ThreadPool

        pool = state.get("pool")
        if pool is None:
            pool = state["pool"] = ThreadPool(minthreads=0, maxthreads=ICON_THREADS, name="sessiond-icons")
            pool.start()
            reactor.addSystemEventTrigger("during", "shutdown", pool.stop)  # type: ignore[attr-defined]
        return threads.deferToThreadPool(reactor, pool, function, *args)  # type: ignore[arg-type]

    return run


class IconRenderQueue:
    """Runs render(path, size) at most once at a time per (path, size), boundedly."""

    def __init__(self, render: Callable[[str, int], bytes], *,
                 run_in_thread: Callable[..., defer.Deferred[Any]] | None = None,
                 clock: Callable[[], float] | None = None) -> None:  # fmt: skip
        self._render = render
        self._run = run_in_thread if run_in_thread is not None else _default_runner()
        self._clock = clock or time.monotonic
        self._waiting: dict[tuple[str, int], list[defer.Deferred[bytes]]] = {}
        self._buckets: dict[str, _Bucket] = {}

    @property
    def pending(self) -> int:
        """Distinct renders waiting or running now."""
        return len(self._waiting)

    def admit(self, user: str) -> None:
        """Count one icon request of USER; IconRateLimited if it is over the rate."""
        now = self._clock()
        bucket = self._buckets.pop(user, None) or _Bucket(now)
        self._buckets[user] = bucket  # most recently seen last
        if len(self._buckets) > MAX_TRACKED_USERS:
            del self._buckets[next(iter(self._buckets))]
        if not bucket.take(now):
            raise IconRateLimited(f"too many icon requests from {user}; at most {ICON_RATE:g} per second")

    def render(self, path: str, size: int) -> defer.Deferred[bytes]:
        """The PNG of PATH at SIZE; joins a render already under way for the same key."""
        key = (path, size)
        waiters = self._waiting.get(key)
        mine: defer.Deferred[bytes] = defer.Deferred()
        if waiters is not None:
            waiters.append(mine)
            return mine
        if len(self._waiting) >= MAX_PENDING_RENDERS:
            return defer.fail(IconError("the server is busy rendering icons; try again shortly"))
        self._waiting[key] = [mine]
        d = self._run(self._render, path, size)
        d.addBoth(self._finished, key)
        return mine

    def _finished(self, result: bytes | Failure, key: tuple[str, int]) -> None:
        for waiter in self._waiting.pop(key, []):
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

# Icon requests cannot starve logins: identical renders coalesce, distinct
# ones are bounded, each user is rate-limited, and renders run on a runner of
# their own (a recorder here; a dedicated thread pool in the daemon).
"""Unit tests of apps.icon_renders (fake runner and clock)."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from twisted.internet import defer

from apps.icon_renders import ICON_BURST, ICON_RATE, MAX_PENDING_RENDERS, IconRateLimited, IconRenderQueue
from apps.icons import IconError


class Runner:
    """Records each render handed to the pool; the test finishes them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, defer.Deferred[Any]]] = []

    def __call__(self, function: Callable[..., Any], path: str, size: int) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.calls.append((path, size, d))
        return d


def queue(runner: Runner, now: list[float] | None = None) -> IconRenderQueue:
    clock = now if now is not None else [0.0]
    return IconRenderQueue(lambda p, s: b"", run_in_thread=runner, clock=lambda: clock[0])


def test_a_thousand_identical_requests_cost_one_render() -> None:
    runner = Runner()
    renders = queue(runner)
    got: list[bytes] = []
    for _ in range(1000):
        renders.render("/icons/xterm.png", 48).addCallback(got.append)
    assert len(runner.calls) == 1 and renders.pending == 1
    runner.calls[0][2].callback(b"PNG")
    assert got == [b"PNG"] * 1000 and renders.pending == 0
    renders.render("/icons/xterm.png", 48)  # after it finished, a new render may run (the cache sits above)
    assert len(runner.calls) == 2


def test_a_failed_render_fails_every_waiter() -> None:
    runner = Runner()
    renders = queue(runner)
    failures: list[type[BaseException]] = []
    for _ in range(3):
        renders.render("/icons/bad.png", 32).addErrback(lambda f: failures.append(f.type))
    runner.calls[0][2].errback(IconError("not an image"))
    assert failures == [IconError] * 3


def test_distinct_renders_waiting_are_bounded() -> None:
    runner = Runner()
    renders = queue(runner)
    for index in range(MAX_PENDING_RENDERS):
        renders.render(f"/icons/{index}.png", 48)
    refused: list[BaseException] = []
    renders.render("/icons/one-more.png", 48).addErrback(lambda f: refused.append(f.value))
    assert len(runner.calls) == MAX_PENDING_RENDERS
    assert len(refused) == 1 and "busy" in str(refused[0])
    runner.calls[0][2].callback(b"PNG")  # one finishes: room for one more
    renders.render("/icons/one-more.png", 48)
    assert len(runner.calls) == MAX_PENDING_RENDERS + 1


def test_each_user_is_rate_limited_alone() -> None:
    now = [100.0]
    renders = queue(Runner(), now)
    for _ in range(ICON_BURST):
        renders.admit("mallory")
    with pytest.raises(IconRateLimited, match="too many icon requests from mallory"):
        renders.admit("mallory")
    renders.admit("alice")  # another user is not affected
    now[0] += 1.5 / ICON_RATE
    renders.admit("mallory")  # refilled at ICON_RATE per second
    with pytest.raises(IconRateLimited):
        renders.admit("mallory")

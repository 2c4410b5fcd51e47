"""Fakes for the farm unit tests: a scripted HTTP transport and a coroutine runner."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure


def result_of(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that completes synchronously (fakes answer at once); return or raise."""
    results: list[Any] = []
    defer.Deferred.fromCoroutine(coro).addBoth(results.append)
    if not results:
        raise AssertionError("the coroutine did not complete")
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


class FakeTransport:
    """Answers each POST from a script: url prefix -> (status, body) or an exception; records calls."""

    def __init__(self) -> None:
        self.answers: dict[str, list[Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.streams: list[Any] = []

    def script(self, base: str, *answers: Any) -> None:
        self.answers.setdefault(base, []).extend(answers)

    def post(self, url: str, body: bytes, timeout: float) -> defer.Deferred[tuple[int, bytes]]:
        self.calls.append((url, json.loads(body)))
        base = url.split("/v3/")[0]
        queue = self.answers.get(base, [])
        if not queue:
            return defer.fail(ConnectionRefusedError(f"{base} refused"))
        answer = queue.pop(0)
        if isinstance(answer, BaseException):
            return defer.fail(answer)
        if isinstance(answer, dict):
            return defer.succeed((200, json.dumps(answer).encode()))
        return defer.succeed(answer)

    def stream(self, url: str, body: bytes, on_line: Callable[[bytes], None]) -> Any:
        stream = FakeStream(url, json.loads(body), on_line)
        self.streams.append(stream)
        return stream


class FakeStream:
    """A stream the test feeds lines into."""

    def __init__(self, url: str, body: dict[str, Any], on_line: Callable[[bytes], None]) -> None:
        self.url, self.body, self.on_line = url, body, on_line
        self.done: defer.Deferred[None] = defer.Deferred()
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        if not self.done.called:
            self.done.callback(None)

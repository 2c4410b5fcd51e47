"""sessiond's window summary: one WINDOW_LIST_REQUEST per admin request, the
agent's answer fires the caller, an agent that does not answer costs
WINDOW_LIST_TIMEOUT, a lost link answers everyone, and the pending bound."""

from __future__ import annotations

from typing import Any

from twisted.internet import task

from protocol.windows_admin import WindowList, WindowListRequest, WindowSummary
from sessiond.session_windows import MAX_PENDING_LISTS, WINDOW_LIST_TIMEOUT, WindowLister, windows_view


class FakeLink:
    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.conn = self

    def send(self, channel: int, message: Any) -> None:
        self.sent.append((channel, message))

    def flush(self) -> None:
        pass


def test_answer_timeout_and_lost_link() -> None:
    clock, link, lister = task.Clock(), FakeLink(), WindowLister()
    results: list[Any] = []
    lister.request(link, clock).addCallback(results.append)
    assert link.sent == [(0, WindowListRequest(request=1))]
    row = WindowSummary(id=5, app="xterm", title="t", x=1, y=2, width=3, height=4, state="normal", kind="normal")
    lister.answered(WindowList(request=1, mode="seamless", windows=(row,), total=2))
    assert windows_view(results[0]) == {"mode": "seamless", "window_count": 2,
                                        "windows": [{"id": 5, "app": "xterm", "title": "t",
                                                     "geometry": "3x4+1+2", "state": "normal"}]}  # fmt: skip
    lister.answered(WindowList(request=1, mode="seamless", windows=(), total=0))  # late duplicate: ignored
    lister.request(link, clock).addCallback(results.append)
    clock.advance(WINDOW_LIST_TIMEOUT)
    assert results[1] is None and windows_view(None)["mode"] == "unknown"
    lister.request(link, clock).addCallback(results.append)
    lister.cancel_all()
    assert results[2] is None and not clock.getDelayedCalls()


def test_pending_requests_are_bounded_and_no_link_answers_at_once() -> None:
    clock, link, lister = task.Clock(), FakeLink(), WindowLister()
    results: list[Any] = []
    for _ in range(MAX_PENDING_LISTS + 1):
        lister.request(link, clock).addCallback(results.append)
    assert len(link.sent) == MAX_PENDING_LISTS and results == [None]
    lister.request(None, clock).addCallback(results.append)
    assert results == [None, None]

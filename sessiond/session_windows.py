# How root learns a session's windows for `sessionctl show` and /admin/:
# it asks the agent on the link (WINDOW_LIST_REQUEST) and the agent answers
# with a bounded summary (WINDOW_LIST, protocol/windows_admin.py).
#
# Why not read the windows channel: that channel is relayed raw (the relay
# predicate passes the whole WINDOWS kind undecoded), so root never parses
# what a client or an app put into window titles and icons on the hot path;
# the only window data root decodes is this one control message, checked
# like every other message from the agent, at most one per admin request.
"""WindowLister: one WINDOW_LIST_REQUEST at a time, with a timeout."""

from __future__ import annotations

from typing import Any, Final

from twisted.internet import defer

from protocol.windows_admin import WindowList, WindowListRequest

# Seconds an admin request waits for the agent's WINDOW_LIST.
WINDOW_LIST_TIMEOUT: Final = 2.0
# Requests in flight per session (admin requests beyond it wait for the same answer).
MAX_PENDING_LISTS: Final = 16


class WindowLister:
    """Asks the agent for its window summary; answers every waiting caller."""

    def __init__(self) -> None:
        self._next = 1
        self._pending: dict[int, defer.Deferred[WindowList | None]] = {}

    def request(self, link: Any, reactor: Any) -> defer.Deferred[WindowList | None]:
        """Send WINDOW_LIST_REQUEST on `link`; fires with the answer, or None
        after WINDOW_LIST_TIMEOUT (an old or busy agent)."""
        if link is None or len(self._pending) >= MAX_PENDING_LISTS:
            return defer.succeed(None)
        request = self._next
        self._next += 1
        d: defer.Deferred[WindowList | None] = defer.Deferred()
        self._pending[request] = d
        link.conn.send(0, WindowListRequest(request=request))
        link.flush()
        timer = reactor.callLater(WINDOW_LIST_TIMEOUT, self._expire, request)
        d.addBoth(lambda result: (timer.cancel() if timer.active() else None, result)[1])
        return d

    def answered(self, message: WindowList) -> None:
        """The agent's WINDOW_LIST (unknown request ids are ignored)."""
        d = self._pending.pop(message.request, None)
        if d is not None:
            d.callback(message)

    def _expire(self, request: int) -> None:
        d = self._pending.pop(request, None)
        if d is not None:
            d.callback(None)

    def cancel_all(self) -> None:
        """The link went: every waiting caller gets None."""
        pending, self._pending = self._pending, {}
        for d in pending.values():
            d.callback(None)


def windows_view(answer: WindowList | None) -> dict[str, object]:
    """The `mode`/`windows` fields of `sessionctl show` from an answer."""
    if answer is None:
        return {"mode": "unknown", "windows": []}
    rows = [{"id": w.id, "app": w.app, "title": w.title, "geometry": f"{w.width}x{w.height}+{w.x}+{w.y}",
             "state": w.state} for w in answer.windows]  # fmt: skip
    return {"mode": answer.mode, "windows": rows, "window_count": answer.total}

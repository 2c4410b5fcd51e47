# The agent's app answers while it has no link (sessiond.agent.link_events):
# the login's launch is answered before the agent's link exists (its window
# may map first), and an app may end while sessiond restarts. Those answers
# wait, bounded, and go out right behind the next link's AUTH_RESULT, in
# order; with a link they go at once.
"""Tests of LinkEvents' app backlog."""

from __future__ import annotations

import types
from typing import Any

from protocol.messages import AppExited, Auth, AuthResult, LaunchResult
from sessiond.agent.link_events import MAX_APP_BACKLOG, LinkEvents


class FakeConn:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, channel: int, message: Any) -> None:
        self.sent.append(message)

    def close(self, code: int, message: str) -> None:
        self.sent.append(("CLOSE", code))


class FakeLink:
    def __init__(self) -> None:
        self.conn = FakeConn()
        self.authenticated = False
        self.flushed = 0

    def flush(self) -> None:
        self.flushed += 1


class Events(LinkEvents):
    def __init__(self) -> None:
        self.link = None
        self.app_backlog = []
        self.session_id = "s-1"
        self._token = "secret"
        self.logged: list[str] = []
        self.drop_log = self.logged.append  # type: ignore[assignment]
        self.display = types.SimpleNamespace(closed=lambda: None)  # type: ignore[assignment]
        self.audio = types.SimpleNamespace(link_lost=lambda: None)  # type: ignore[assignment]
        self.seamless = None
        self.windows_channel = None


def test_answers_without_a_link_go_out_behind_the_next_links_auth_result_in_order() -> None:
    events = Events()
    answers = [LaunchResult(request=1, ok=True, message="window mapped", pid=40),
               AppExited(app="xterm", pid=41, status=0)]  # fmt: skip
    for answer in answers:
        events._app_event(answer)
    link = FakeLink()
    events._control(link, Auth(method="link", token="wrong"))  # type: ignore[arg-type]
    assert [type(m) for m in link.conn.sent] == [AuthResult, tuple] and not link.conn.sent[0].ok
    assert events.app_backlog == answers  # a refused link takes nothing
    link = FakeLink()
    events._control(link, Auth(method="link", token="secret"))  # type: ignore[arg-type]
    assert link.conn.sent == [AuthResult(ok=True, session="s-1"), *answers]
    assert events.app_backlog == []
    later = AppExited(app="xterm", pid=40, status=1)
    events._app_event(later)  # with a link: at once
    assert link.conn.sent[-1] == later and link.flushed == 1 and events.app_backlog == []


def test_the_backlog_is_bounded_and_drops_the_oldest_with_a_log_line() -> None:
    events = Events()
    for pid in range(MAX_APP_BACKLOG + 2):
        events._app_event(AppExited(app="a", pid=pid, status=0))
    assert [m.pid for m in events.app_backlog] == list(range(2, MAX_APP_BACKLOG + 2))
    assert len(events.logged) == 2 and "dropped AppExited of pid 0" in events.logged[0]

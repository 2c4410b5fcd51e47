# Input through xpra must count for sessiond's idle policies (issue 17):
# the agent's IdleWatch reports the X server's input as USER_ACTIVITY, at
# most once per poll and only after input; sessiond's link moves the
# session's last input; a client cannot send USER_ACTIVITY. Fakes only (the
# integration test types through the real xpra client).
"""Unit tests: IdleWatch polling and reporting, USER_ACTIVITY at both ends of the link."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from protocol.connection import Connection, Role
from protocol.events import MessageReceived
from protocol.messages import ChannelKind, decode_message, encode_message
from protocol.testing import handshaken_pair
from protocol.xpra import UserActivity
from sessiond.agent.x_activity import IdleWatch
from sessiond.agent_link import AgentLink


class FakeLink:
    authenticated = True

    def __init__(self) -> None:
        self.conn = Connection(Role.SERVER)
        self.sent: list[Any] = []
        self.conn.send = lambda channel, message: self.sent.append((channel, message))  # type: ignore[method-assign]

    def flush(self) -> None:
        pass


class ScriptedWatch(IdleWatch):
    """An IdleWatch whose X server answers from a script of idle times."""

    def __init__(self, loop: asyncio.AbstractEventLoop, link: FakeLink | None, idles: list[int]) -> None:
        super().__init__(loop, ":0", lambda: link, lambda _text: None, poll=0.01)
        self.idles = idles
        self._x = object()

    def idle_ms(self) -> int:
        return self.idles.pop(0) if self.idles else 10**6

    def stop(self) -> None:
        self._x = None
        super().stop()


def run_watch(link: FakeLink | None, idles: list[int]) -> ScriptedWatch:
    async def scenario() -> ScriptedWatch:
        watch = ScriptedWatch(asyncio.get_running_loop(), link, idles)
        watch._last = watch.loop.time()  # noqa: SLF001 - what start() sets
        watch._timer = watch.loop.call_later(watch.poll, watch._tick)  # noqa: SLF001
        await asyncio.sleep(0.3)
        watch.stop()
        return watch

    return asyncio.run(scenario())


def test_input_since_the_last_poll_is_reported_once_per_poll_and_idleness_never() -> None:
    link = FakeLink()
    watch = run_watch(link, [5, 10**6, 10**6, 1, 10**6])
    assert [m for _c, m in link.sent] == [UserActivity(idle_ms=5), UserActivity(idle_ms=1)]
    assert all(channel == 0 for channel, _m in link.sent) and watch.reports == 2


def test_no_link_no_report() -> None:
    assert run_watch(None, [1, 1, 1]).reports == 0


def test_user_activity_is_bounded_on_the_wire() -> None:
    type_, raw = encode_message(UserActivity(idle_ms=7))
    assert decode_message(ChannelKind.CONTROL, type_, raw) == UserActivity(idle_ms=7)
    with pytest.raises(ValueError):
        UserActivity(idle_ms=2**32)


class Owner:
    id = "s-1"
    link_token = "t"
    uid = 1500
    relay = None

    def __init__(self) -> None:
        self.touched: list[float] = []

    def touch(self, idle: float = 0.0) -> None:
        self.touched.append(idle)


def test_sessiond_counts_the_agents_report_as_input() -> None:
    owner = Owner()
    link = AgentLink(owner, credentials=lambda _t: 1500)  # type: ignore[arg-type]
    owner.relay = object()  # type: ignore[assignment]
    link.event_received(MessageReceived(0, ChannelKind.CONTROL, UserActivity(idle_ms=1500), 20))
    assert owner.touched == [1.5]


def test_the_session_keeps_its_latest_input_whatever_order_reports_come_in() -> None:
    from sessiond.sessions import Session  # noqa: PLC0415 - the real method, on a bare object

    session = Session.__new__(Session)
    now = time.time()
    session.last_input = now - 100
    Session.touch(session, 30.0)
    assert now - 31 <= session.last_input <= now - 29
    Session.touch(session, 90.0)  # older input than already seen: no change
    assert now - 31 <= session.last_input <= now - 29


def test_a_client_cannot_send_user_activity() -> None:
    client, server = handshaken_pair()
    with pytest.raises(Exception):  # noqa: B017, PT011 - refused at the sender: it is a server's message
        client.send(0, UserActivity(idle_ms=0))
    del server


class Peer:
    def __init__(self, beside: bool = False) -> None:
        self.beside = beside
        self.taken_over: list[str] = []

    def take_over(self, reason: str) -> None:
        self.taken_over.append(reason)


def test_a_launcher_beside_an_attached_client_does_not_take_the_session_over() -> None:
    from types import SimpleNamespace  # noqa: PLC0415

    from sessiond.launching import Launchers  # noqa: PLC0415
    from sessiond.sessions import Session  # noqa: PLC0415

    session = Session.__new__(Session)
    attached = Peer()
    session.client = attached  # type: ignore[assignment]
    session.link = object()  # type: ignore[assignment]
    session.lifecycle = SimpleNamespace(usable=True)  # type: ignore[assignment]
    session.launchers = Launchers()
    launcher = Peer(beside=True)
    Session.attach(session, launcher)  # type: ignore[arg-type]
    assert session.client is attached and attached.taken_over == []
    assert len(session.launchers) == 1  # told about attaches and exits (sessiond.launching)

# sessiond relays channels between the client and the agent without
# buffering beyond the credit the client granted: credit is passed through
# hop by hop, and data for nobody is credited straight back. Recorder fakes
# log the calls; the assertions are on the exact sequence.
"""Session relay and credit pass-through (recorder fakes, no processes)."""

from __future__ import annotations

from typing import Any

import pytest

from isolation.accounts import Account
from protocol.connection import frame_cost
from protocol.messages import ChannelKind, FrameEnd, Key
from sessiond.config import load_config
from sessiond.registry import Registry
from sessiond.sessions import Session, SessionState, SessionSupervisor

DISPLAY, INPUT = int(ChannelKind.DISPLAY), int(ChannelKind.INPUT)


class RecorderConn:
    def __init__(self, log: list[tuple[Any, ...]]) -> None:
        self.log = log

    def open_channel(self, channel: int, kind: ChannelKind) -> None:
        self.log.append(("link.open", channel))

    def close_channel(self, channel: int, code: int = 0, message: str = "") -> None:
        self.log.append(("link.close", channel))

    def send(self, channel: int, message: Any) -> None:
        self.log.append(("link.send", channel, message))

    def grant(self, channel: int, increment: int) -> None:
        self.log.append(("link.grant", channel, increment))


class RecorderLink:
    def __init__(self, log: list[tuple[Any, ...]]) -> None:
        self.conn = RecorderConn(log)

    def flush(self) -> None:
        pass


class RecorderClient:
    def __init__(self, log: list[tuple[Any, ...]]) -> None:
        self.log = log

    def relay_to_client(self, channel: int, message: Any) -> None:
        self.log.append(("client.send", channel, message))

    def grant_to_client(self, channel: int, increment: int) -> None:
        self.log.append(("client.grant", channel, increment))

    def notify(self, message: Any) -> None:
        self.log.append(("client.notify", message))

    def take_over(self, reason: str) -> None:
        self.log.append(("client.take_over", reason))

    def close_client_channel(self, channel: int, code: int, message: str) -> None:
        self.log.append(("client.close", channel, code, message))


@pytest.fixture()
def session(tmp_path: object) -> tuple[Session, list[tuple[Any, ...]]]:
    config = load_config(None, {"server": {"state_dir": str(tmp_path)}})
    supervisor = SessionSupervisor(config, reactor=None, registry=Registry(str(tmp_path)))
    s = Session(supervisor, Account("alice", 1000, 1000, (1000,), "/home/alice", "/bin/sh"))
    supervisor.registry.add_session(id=s.id, user="alice", uid=1000, socket="x", session_dir="x", link_token="t",
                                    width=1, height=1)  # fmt: skip
    log: list[tuple[Any, ...]] = []
    s.link = RecorderLink(log)  # type: ignore[assignment]
    s.state = SessionState.DISCONNECTED
    return s, log


def test_client_messages_wait_for_the_agent_channel_then_flow(session: tuple[Session, list[Any]]) -> None:
    s, log = session
    client = RecorderClient(log)
    s.attach(client)  # type: ignore[arg-type]
    s.client_channel_opened(INPUT, ChannelKind.INPUT)
    key = Key(keysym=0x61, down=True)
    s.from_client(INPUT, key)  # agent side not open yet: held
    assert log == [("link.open", INPUT)]
    s.link_channel_opened(INPUT)
    assert log[-1] == ("link.send", INPUT, key)
    s.from_client(INPUT, key)
    assert log[-1] == ("link.send", INPUT, key)


def test_credit_passes_through_both_ways(session: tuple[Session, list[Any]]) -> None:
    s, log = session
    s.attach(RecorderClient(log))  # type: ignore[arg-type]
    s.client_channel_opened(DISPLAY, ChannelKind.DISPLAY)
    s.link_channel_opened(DISPLAY)
    log.clear()
    s.client_granted(DISPLAY, 4096)  # client read 4 KiB: the agent may send 4 KiB more
    s.agent_granted(DISPLAY, 100)  # agent consumed client->agent data: the client may send more
    assert log == [("link.grant", DISPLAY, 4096), ("client.grant", DISPLAY, 100)]


def test_agent_data_without_a_client_is_credited_back_not_buffered(session: tuple[Session, list[Any]]) -> None:
    s, log = session
    client = RecorderClient(log)
    s.attach(client)  # type: ignore[arg-type]
    s.client_channel_opened(DISPLAY, ChannelKind.DISPLAY)
    s.link_channel_opened(DISPLAY)
    s.detach(client)
    assert ("link.close", DISPLAY) in log
    log.clear()
    s._link_open.add(DISPLAY)  # noqa: SLF001 - a frame already in flight when the close went out
    message = FrameEnd(seq=3)
    s.from_agent(DISPLAY, message)
    assert log == [("link.grant", DISPLAY, frame_cost(message))]


def test_pending_client_messages_are_bounded(session: tuple[Session, list[Any]], monkeypatch: Any) -> None:
    from sessiond import sessions

    monkeypatch.setattr(sessions, "MAX_PENDING_PER_CHANNEL", 3)
    s, log = session
    s.attach(RecorderClient(log))  # type: ignore[arg-type]
    s.client_channel_opened(INPUT, ChannelKind.INPUT)
    for n in range(10):
        s.from_client(INPUT, Key(keysym=0x61 + n, down=True))
    s.link_channel_opened(INPUT)
    assert [entry[2].keysym for entry in log if entry[0] == "link.send"] == [0x61, 0x62, 0x63]


def test_a_channel_the_agent_closes_is_closed_for_the_client_too(session: tuple[Session, list[Any]]) -> None:
    s, log = session
    s.attach(RecorderClient(log))  # type: ignore[arg-type]
    s.client_channel_opened(DISPLAY, ChannelKind.DISPLAY)
    s.link_channel_opened(DISPLAY)
    log.clear()
    s.link_channel_closed(DISPLAY, 20, "no display here", by_agent=True)
    assert log == [("client.close", DISPLAY, 20, "no display here")]
    log.clear()
    s.link_channel_closed(DISPLAY, 0, "", by_agent=False)  # our own close being answered: nothing to tell
    assert log == []

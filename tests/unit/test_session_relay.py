# sessiond relays channels between the client and the agent without
# buffering beyond the credit the client granted: credit is passed through
# hop by hop (clamped to what the protocol lets us grant), data for nobody
# is credited straight back, and a frame that cannot be forwarded costs its
# channel, never the session. Recorder fakes log the calls; the assertions
# are on the exact sequence.
"""ChannelRelay: routing, pending bounds, credit pass-through (recorder fakes)."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.errors import ReasonCode, SendBufferFull
from protocol.messages import ChannelKind, FrameEnd, Key
from sessiond import relay as relay_mod
from sessiond.relay import ChannelRelay, relayed

DISPLAY, INPUT = int(ChannelKind.DISPLAY), int(ChannelKind.INPUT)
KEY = Key(keysym=0x61, down=True)
KEY_PAYLOAD = KEY.encode()


class RecorderConn:
    """The parts of protocol.Connection the relay uses, recording every call."""

    def __init__(self, who: str, log: list[tuple[Any, ...]]) -> None:
        self.who, self.log = who, log
        self.channels: dict[int, ChannelKind] = {}
        self.closed = False
        self.grant_room = 1 << 20
        self.fail_send: Exception | None = None
        self.queued = 0

    def is_open(self, channel: int) -> bool:
        return channel in self.open_channels()

    def open_channels(self) -> dict[int, ChannelKind]:
        return {0: ChannelKind.CONTROL, **self.channels}

    def open_channel(self, channel: int, kind: ChannelKind) -> None:
        self.log.append((f"{self.who}.open", channel))

    def close_channel(self, channel: int, code: int = 0, message: str = "") -> None:
        self.channels.pop(channel, None)
        self.log.append((f"{self.who}.close", channel, code))

    def send(self, channel: int, message: Any) -> None:
        if self.fail_send is not None:
            raise self.fail_send
        self.queued += len(message.encode()) + 8
        self.log.append((f"{self.who}.send", channel, message))

    def send_raw(self, channel: int, type_: int, payload: bytes) -> None:
        if self.fail_send is not None:
            raise self.fail_send
        self.log.append((f"{self.who}.raw", channel, type_, payload))

    def grant(self, channel: int, increment: int) -> None:
        self.log.append((f"{self.who}.grant", channel, increment))

    def grantable(self, channel: int) -> int:
        return self.grant_room

    def queued_bytes(self, channel: int) -> int:
        return self.queued


class RecorderEnd:
    def __init__(self, who: str, log: list[tuple[Any, ...]]) -> None:
        self.conn = RecorderConn(who, log)

    def flush(self) -> None:
        pass


@pytest.fixture()
def wired() -> tuple[ChannelRelay, RecorderEnd, RecorderEnd, list[tuple[Any, ...]]]:
    log: list[tuple[Any, ...]] = []
    relay = ChannelRelay("s1", "alice")
    client, link = RecorderEnd("client", log), RecorderEnd("link", log)
    relay.link_up(link)  # type: ignore[arg-type]
    relay.attach(client)  # type: ignore[arg-type]
    return relay, client, link, log


def open_both(relay: ChannelRelay, client: RecorderEnd, channel: int, kind: ChannelKind) -> None:
    client.conn.channels[channel] = kind
    relay.client_channel_opened(channel, kind)
    relay.link_channel_opened(channel)


def test_the_predicate_relays_media_and_urbs_but_not_usb_control() -> None:
    assert relayed(ChannelKind.DISPLAY, FrameEnd.TYPE) and relayed(ChannelKind.INPUT, Key.TYPE)
    assert relayed(ChannelKind.AUDIO_OUT, 1) and relayed(ChannelKind.AUDIO_IN, 1)
    assert relayed(ChannelKind.USB, 0x06) and relayed(ChannelKind.USB, 0x07)
    assert not any(relayed(ChannelKind.USB, t) for t in (1, 2, 3, 4, 5, 8))
    assert not relayed(ChannelKind.CONTROL, 1)


def test_client_frames_wait_for_the_agent_channel_then_flow_raw(wired: Any) -> None:
    relay, client, _link, log = wired
    client.conn.channels[INPUT] = ChannelKind.INPUT
    relay.client_channel_opened(INPUT, ChannelKind.INPUT)
    relay.from_client(INPUT, Key.TYPE, KEY_PAYLOAD, None, 8 + len(KEY_PAYLOAD))  # agent side not open: held
    assert log == [("link.open", INPUT)]
    relay.link_channel_opened(INPUT)
    assert log[-1] == ("link.raw", INPUT, Key.TYPE, KEY_PAYLOAD)
    relay.from_client(INPUT, Key.TYPE, KEY_PAYLOAD, None, 8 + len(KEY_PAYLOAD))
    assert log[-1] == ("link.raw", INPUT, Key.TYPE, KEY_PAYLOAD)


def test_credit_passes_through_both_ways_clamped_to_what_may_be_granted(wired: Any) -> None:
    relay, client, link, log = wired
    open_both(relay, client, DISPLAY, ChannelKind.DISPLAY)
    log.clear()
    relay.client_granted(DISPLAY, 4096)  # client read 4 KiB: the agent may send 4 KiB more
    relay.agent_granted(DISPLAY, 100)  # agent consumed client->agent data: the client may send more
    assert log == [("link.grant", DISPLAY, 4096), ("client.grant", DISPLAY, 100)]
    log.clear()
    link.conn.grant_room = 1000  # a legal client WINDOW_UPDATE that would take our grant above MAX_WINDOW
    relay.client_granted(DISPLAY, 2**31 - 1)
    assert log == [("link.grant", DISPLAY, 1000)]
    link.conn.grant_room = 0
    relay.client_granted(DISPLAY, 5)
    assert log == [("link.grant", DISPLAY, 1000)]


def test_agent_frames_without_a_client_are_credited_back_not_buffered(wired: Any) -> None:
    relay, client, link, log = wired
    open_both(relay, client, DISPLAY, ChannelKind.DISPLAY)
    relay.detach()
    assert ("link.close", DISPLAY, 0) in log
    log.clear()
    relay._link_open.add(DISPLAY)  # noqa: SLF001 - a frame already in flight when the close went out
    relay.from_agent(DISPLAY, FrameEnd.TYPE, b"\0\0\0\3", None, 12)
    assert log == [("link.grant", DISPLAY, 12)]


def test_pending_client_frames_are_bounded_and_their_credit_returned(wired: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(relay_mod, "MAX_PENDING_PER_CHANNEL", 3)
    relay, client, _link, log = wired
    client.conn.channels[INPUT] = ChannelKind.INPUT
    relay.client_channel_opened(INPUT, ChannelKind.INPUT)
    for n in range(10):
        relay.from_client(INPUT, Key.TYPE, Key(keysym=0x61 + n, down=True).encode(), None, 20)
    assert [e for e in log if e[0] == "client.grant"] == [("client.grant", INPUT, 20)] * 7
    relay.link_channel_opened(INPUT)
    assert [Key.decode(e[3]).keysym for e in log if e[0] == "link.raw"] == [0x61, 0x62, 0x63]


def test_a_channel_reopened_while_its_close_is_in_flight_opens_once_the_agent_confirms(wired: Any) -> None:
    # A takeover: the old client's channels close on the link, and the new
    # client opens the same numbers milliseconds later, before the agent has
    # answered; the link's channel table still holds them (CLOSING).
    relay, client, _link, log = wired
    open_both(relay, client, DISPLAY, ChannelKind.DISPLAY)
    relay.client_channel_closed(DISPLAY)
    assert log[-1] == ("link.close", DISPLAY, 0)
    log.clear()
    client.conn.channels[DISPLAY] = ChannelKind.DISPLAY
    relay.client_channel_opened(DISPLAY, ChannelKind.DISPLAY)
    relay.from_client(DISPLAY, FrameEnd.TYPE, b"\0\0\0\1", None, 12)  # held until the agent side opens
    assert log == []  # no second open while the close is in flight ("channel is in use")
    relay.link_channel_closed(DISPLAY, 0, "", by_agent=False)  # the agent confirms the close
    assert log == [("link.open", DISPLAY)]
    relay.link_channel_opened(DISPLAY)
    assert log[-1] == ("link.raw", DISPLAY, FrameEnd.TYPE, b"\0\0\0\1")


def test_a_channel_the_agent_closes_is_closed_for_the_client_too(wired: Any) -> None:
    relay, client, _link, log = wired
    open_both(relay, client, DISPLAY, ChannelKind.DISPLAY)
    log.clear()
    relay.link_channel_closed(DISPLAY, 20, "no display here", by_agent=True)
    assert log == [("client.close", DISPLAY, 20)]
    log.clear()
    relay.link_channel_closed(DISPLAY, 0, "", by_agent=False)  # our own close being answered: nothing to tell
    assert log == []


@pytest.mark.parametrize("failure", [SendBufferFull("full"), ValueError("exceeds half the peer's window")])
def test_a_frame_the_client_cannot_take_closes_that_channel_only(wired: Any, failure: Exception) -> None:
    relay, client, _link, log = wired
    open_both(relay, client, DISPLAY, ChannelKind.DISPLAY)
    open_both(relay, client, INPUT, ChannelKind.INPUT)
    log.clear()
    client.conn.fail_send = failure
    relay.from_agent(DISPLAY, FrameEnd.TYPE, b"\0\0\0\1", None, 12)  # must not raise
    assert ("client.close", DISPLAY, ReasonCode.LIMIT_EXCEEDED) in log and ("link.close", DISPLAY, 0) in log
    client.conn.fail_send = None
    log.clear()
    relay.from_client(INPUT, Key.TYPE, KEY_PAYLOAD, None, 20)  # the other channel still flows
    assert log == [("link.raw", INPUT, Key.TYPE, KEY_PAYLOAD)]


def test_a_frame_the_agent_cannot_take_closes_that_client_channel(wired: Any) -> None:
    relay, client, link, log = wired
    open_both(relay, client, INPUT, ChannelKind.INPUT)
    log.clear()
    link.conn.fail_send = SendBufferFull("agent is not reading")
    relay.from_client(INPUT, Key.TYPE, KEY_PAYLOAD, None, 20)
    assert ("client.close", INPUT, ReasonCode.LIMIT_EXCEEDED) in log


def test_an_unexpected_failure_costs_the_channel_with_internal_error(wired: Any) -> None:
    relay, client, _link, log = wired
    open_both(relay, client, DISPLAY, ChannelKind.DISPLAY)
    log.clear()
    client.conn.fail_send = RuntimeError("bug")  # not a protocol refusal: the boundary catches it
    relay.from_agent(DISPLAY, FrameEnd.TYPE, b"\0\0\0\1", None, 12)
    assert ("client.close", DISPLAY, ReasonCode.INTERNAL_ERROR) in log


def test_credit_for_injected_frames_is_kept_back(wired: Any) -> None:
    relay, client, _link, log = wired
    open_both(relay, client, DISPLAY, ChannelKind.DISPLAY)
    relay.inject_to_client(DISPLAY, FrameEnd(7))
    log.clear()
    relay.client_granted(DISPLAY, 13)  # the client returns the credit our own frame used
    assert log == []
    relay.client_granted(DISPLAY, 100)
    assert log == [("link.grant", DISPLAY, 100)]

# KEY_TAP is a press and a release in one message: the agent injects both,
# in that order, and a tap the injector refuses is one drop, with no
# release of a key that never went down.
"""Unit tests for sessiond.agent.input_channel: KEY and KEY_TAP."""

from __future__ import annotations

import pytest

from protocol.errors import ProtocolError
from protocol.messages import ChannelKind, Key, KeyTap, Message, decode_message
from sessiond.agent.input_channel import InputChannel


class Recording:
    def __init__(self, refuse: frozenset[int] = frozenset()) -> None:
        self.calls: list[tuple[int, bool]] = []
        self.refuse = refuse

    def key(self, keysym: int, down: bool) -> bool:
        self.calls.append((keysym, down))
        return keysym not in self.refuse

    def pointer(self, x: int, y: int) -> bool:
        return True

    def button(self, x: int, y: int, button: int, down: bool) -> bool:
        return True

    def wheel(self, x: int, y: int, dx: int, dy: int) -> bool:
        return True

    def sync(self) -> None:
        pass


class NoFocus:
    def focus_at(self, x: int, y: int) -> None:
        pass


def channel(injector: Recording) -> InputChannel:
    replies: list[Message] = []
    return InputChannel(injector, NoFocus(), replies.append)


def test_key_tap_presses_then_releases_like_two_keys() -> None:
    tapped, keyed = Recording(), Recording()
    channel(tapped).message(KeyTap(keysym=0x61))
    chan = channel(keyed)
    chan.message(Key(keysym=0x61, down=True))
    chan.message(Key(keysym=0x61, down=False))
    assert tapped.calls == keyed.calls == [(0x61, True), (0x61, False)]


def test_a_refused_tap_is_one_drop_and_releases_nothing() -> None:
    injector = Recording(refuse=frozenset({0x62}))
    chan = channel(injector)
    chan.message(KeyTap(keysym=0x62))
    assert injector.calls == [(0x62, True)] and chan.dropped == 1


def test_key_tap_is_smaller_on_the_wire_and_bounded() -> None:
    assert len(KeyTap(keysym=0x61).encode()) == 4 < 2 * len(Key(keysym=0x61, down=True).encode())
    with pytest.raises(ProtocolError):
        decode_message(ChannelKind.INPUT, KeyTap.TYPE, b"\0\0\0\0")  # keysym 0
    with pytest.raises(ProtocolError):
        decode_message(ChannelKind.INPUT, KeyTap.TYPE, b"\0\0\0\x61\0")  # a byte too many

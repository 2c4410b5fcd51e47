# Issue 11: root must not parse what it only relays. A realistic exchange
# (display REGION and FRAME_END, AUDIO_DATA, a USB/IP import and URBs both
# ways, KEY) runs through the real ClientHandler, Session, ChannelRelay and
# AgentLink, with the decode() and encode() of every relayed message class
# counted. In neither direction does root decode or encode any of them: it
# forwards the original bytes; a malformed client frame is the agent's to
# refuse (its link Connection closes that channel, not the link).
"""Root relays display, audio and URB frames without building message objects."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.audio import AudioData
from protocol.base import Encoding
from protocol.events import FrameReceived
from protocol.media import FrameEnd, Key, Region
from protocol.messages import ChannelKind
from protocol.usb import (
    DIR_IN,
    CmdSubmit,
    DeviceAdd,
    ImportReply,
    ImportRequest,
    RetSubmit,
    UrbCommand,
    UrbReturn,
    UsbDevice,
    UsbInterface,
)
from relay_harness import Wired, events_of

DISPLAY, INPUT, AUDIO, USB = (int(k) for k in (ChannelKind.DISPLAY, ChannelKind.INPUT, ChannelKind.AUDIO_OUT,
                                               ChannelKind.USB))  # fmt: skip
LOOP = UsbDevice("vusb-1", 0x1209, 1, (UsbInterface(0xFF, 0, 0),))
COUNTED = (Region, FrameEnd, AudioData, UrbCommand, UrbReturn, Key)


def everything(_kind: ChannelKind, _type: int) -> bool:
    return True


@pytest.fixture()
def counts(monkeypatch: Any) -> dict[str, int]:
    """Count decode() and encode() of each relayed class from here on."""
    tally: dict[str, int] = {}
    for cls in COUNTED:
        real_decode, real_encode = cls.decode.__func__, cls.encode  # type: ignore[attr-defined]

        def decode(klass: Any, payload: bytes, _real: Any = real_decode, _name: str = cls.__name__) -> Any:
            tally[f"{_name}.decode"] = tally.get(f"{_name}.decode", 0) + 1
            return _real(klass, payload)

        def encode(self: Any, _real: Any = real_encode, _name: str = cls.__name__) -> bytes:
            tally[f"{_name}.encode"] = tally.get(f"{_name}.encode", 0) + 1
            return _real(self)  # type: ignore[no-any-return]

        monkeypatch.setattr(cls, "decode", classmethod(decode))
        monkeypatch.setattr(cls, "encode", encode)
    return tally


def test_a_realistic_exchange_builds_no_display_audio_or_urb_objects_in_root(tmp_path: Any,
                                                                            counts: dict[str, int]) -> None:
    # Payloads made up front (the fake peers are not root; their encoding is not counted).
    region = Region(0, 0, 64, 64, Encoding.JPEG, bytes(range(256)) * 64).encode()
    frame_end = FrameEnd(1).encode()
    audio = AudioData(pts=960, capture_us=1, packet=b"\x01" * 200).encode()
    command = UrbCommand(4, CmdSubmit(1, LOOP.devid, DIR_IN, 1, 64)).encode()
    urb_return = UrbReturn(4, RetSubmit(1, actual_length=64, data=b"\x02" * 64, direction=DIR_IN, ep=1)).encode()
    key = Key(keysym=0x61, down=True).encode()
    counts.clear()

    wired = Wired(str(tmp_path), client_relay=everything, agent_relay=everything)
    for channel, kind in ((DISPLAY, ChannelKind.DISPLAY), (INPUT, ChannelKind.INPUT),
                          (AUDIO, ChannelKind.AUDIO_OUT), (USB, ChannelKind.USB)):  # fmt: skip
        wired.open(channel, kind)
    # USB/IP import: the control messages policy needs are decoded (not counted), then URBs flow.
    wired.client.send(USB, DeviceAdd(LOOP))
    wired.pump()
    wired.agent.send(USB, ImportRequest(4, "vusb-1"))
    wired.pump()
    wired.client.send(USB, ImportReply(4, 0, LOOP))
    wired.pump()
    counts.clear()
    wired.client_events.clear()
    wired.agent_events.clear()

    for _ in range(3):
        wired.agent.send_raw(DISPLAY, Region.TYPE, region)
        wired.agent.send_raw(DISPLAY, FrameEnd.TYPE, frame_end)
        wired.agent.send_raw(AUDIO, AudioData.TYPE, audio)
        wired.agent.send_raw(USB, UrbCommand.TYPE, command)
        wired.pump()
        wired.client.send_raw(USB, UrbReturn.TYPE, urb_return)
        wired.client.send_raw(INPUT, Key.TYPE, key)
        wired.pump()

    def per_channel(events: list[Any]) -> dict[int, list[tuple[int, bytes]]]:
        out: dict[int, list[tuple[int, bytes]]] = {}
        for e in events_of(events, FrameReceived):  # channels are scheduled by priority: order within each
            out.setdefault(e.channel, []).append((e.type, e.payload))
        return out

    assert per_channel(wired.client_events) == {
        DISPLAY: [(Region.TYPE, region), (FrameEnd.TYPE, frame_end)] * 3, AUDIO: [(AudioData.TYPE, audio)] * 3,
        USB: [(UrbCommand.TYPE, command)] * 3}  # fmt: skip
    assert per_channel(wired.agent_events) == {USB: [(UrbReturn.TYPE, urb_return)] * 3, INPUT: [(Key.TYPE, key)] * 3}
    # Nothing was parsed or re-encoded by root, in either direction.
    assert counts == {}
    assert wired.session_alive() and wired.client_alive()

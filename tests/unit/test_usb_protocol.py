"""USB/IP codecs and usb channel messages: byte layouts, bounds crossed, fuzzed decoders."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import ProtocolError, ReasonCode
from protocol.messages import ChannelKind, decode_message
from protocol.usb import (
    DIR_IN,
    DIR_OUT,
    MAX_INTERFACES,
    MAX_ISO_PACKETS,
    MAX_TRANSFER_BUFFER,
    USB_MESSAGES,
    CmdSubmit,
    CmdUnlink,
    DeviceAdd,
    DeviceStatus,
    ImportReply,
    RetSubmit,
    UrbCommand,
    UrbReturn,
    UsbDevice,
    UsbInterface,
    command_length,
    pack_devlist_reply,
    parse_command,
    parse_return,
    return_length,
)

DEVICE = UsbDevice("1-2", 0x046D, 0xC52B, (UsbInterface(3, 1, 1), UsbInterface(3, 1, 2)), path="/sys/x",
                   busnum=1, devnum=2)  # fmt: skip


def test_device_record_is_the_kernel_layout() -> None:
    raw = DEVICE.pack()
    assert len(raw) == 312 + 2 * 4
    assert raw[:6] == b"/sys/x" and raw[256:259] == b"1-2" and raw[259] == 0
    assert raw[288:300] == bytes.fromhex("00000001" "00000002" "00000003")  # busnum, devnum, speed
    assert raw[300:306] == bytes.fromhex("046d" "c52b" "0100")
    assert raw[311] == 2 and raw[312:] == bytes([3, 1, 1, 0, 3, 1, 2, 0])
    assert UsbDevice.unpack(raw) == DEVICE
    assert DEVICE.devid == 0x10002 and DEVICE.classes() == (3, 3)


def test_devlist_reply_header() -> None:
    assert pack_devlist_reply([DEVICE])[:12] == bytes.fromhex("0111" "0005" "00000000" "00000001")


def test_cmd_submit_layout_and_stream_length() -> None:
    cmd = CmdSubmit(5, 0x10002, DIR_OUT, 2, 3, data=b"abc")
    raw = cmd.encode()
    assert raw[:20] == bytes.fromhex("00000001" "00000005" "00010002" "00000000" "00000002")
    assert raw[24:28] == bytes.fromhex("00000003") and raw[48:] == b"abc"
    assert command_length(raw[:48]) == 51 and parse_command(raw) == cmd
    read = CmdSubmit(6, 0x10002, DIR_IN, 2, 512)
    assert command_length(read.encode()) == 48  # IN carries no data outward


def test_ret_submit_length_depends_on_the_urb_direction() -> None:
    ret = RetSubmit(6, actual_length=2, data=b"hi", direction=DIR_IN)
    raw = ret.encode()
    assert return_length(raw[:48], DIR_IN) == 50 and return_length(raw[:48], DIR_OUT) == 48
    assert parse_return(raw) == ret


@pytest.mark.parametrize("make", [
    lambda: CmdSubmit(1, 0, DIR_OUT, 16, 0),  # endpoint numbers are 4 bits
    lambda: CmdSubmit(1, 0, 2, 1, 0),  # direction is 0 or 1
    lambda: CmdSubmit(1, 0, DIR_IN, 1, MAX_TRANSFER_BUFFER + 1),
    lambda: CmdSubmit(1, 0, DIR_OUT, 1, 4, data=b"abc"),  # data shorter than the header says
    lambda: CmdSubmit(1, 0, DIR_IN, 1, 0, number_of_packets=MAX_ISO_PACKETS + 1),
    lambda: RetSubmit(1, actual_length=3, data=b"ab"),
    lambda: UsbDevice("bad id!", 1, 1, ()),
    lambda: UsbDevice("1-1", 1, 1, tuple(UsbInterface(0, 0, 0) for _ in range(MAX_INTERFACES + 1))),
    lambda: DeviceStatus("1-1", 99),
    lambda: DeviceStatus("1-1", 1, "x" * 257),
    lambda: ImportReply(1, 0, None),
    lambda: UrbCommand(0, CmdUnlink(1, 0, 1)),  # connection ids start at 1
])
def test_bounds_are_refused(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_bounds_are_checked_from_the_header_before_data_is_read() -> None:
    header = bytearray(CmdSubmit(1, 0, DIR_OUT, 1, 0).encode())
    header[24:28] = (MAX_TRANSFER_BUFFER + 1).to_bytes(4, "big")
    with pytest.raises(ValueError):
        command_length(bytes(header))


def test_messages_round_trip_and_malformed_is_reported() -> None:
    for message in (DeviceAdd(DEVICE), UrbReturn(3, RetSubmit(9)), ImportReply(2, 1)):
        assert decode_message(ChannelKind.USB, message.TYPE, message.encode()) == message
    with pytest.raises(ProtocolError) as info:
        decode_message(ChannelKind.USB, UrbCommand.TYPE, b"\0\0\0\1" + b"\0" * 47)
    assert info.value.code is ReasonCode.MALFORMED_MESSAGE


@settings(max_examples=300, deadline=None)
@given(type_=st.sampled_from([cls.TYPE for cls in USB_MESSAGES]), payload=st.binary(max_size=400))
def test_decoders_only_raise_protocol_errors(type_: int, payload: bytes) -> None:
    try:
        message = decode_message(ChannelKind.USB, type_, payload)
    except ProtocolError as exc:
        assert exc.code is ReasonCode.MALFORMED_MESSAGE
    else:
        assert decode_message(ChannelKind.USB, type_, message.encode()) == message


@settings(max_examples=200, deadline=None)
@given(seq=st.integers(0, 2**32 - 1), ep=st.integers(0, 15), length=st.integers(0, 300), out=st.booleans())
def test_cmd_submit_property_round_trip(seq: int, ep: int, length: int, out: bool) -> None:
    data = bytes(length) if out else b""
    cmd = CmdSubmit(seq, 7, DIR_OUT if out else DIR_IN, ep, length, data=data)
    raw = cmd.encode()
    assert command_length(raw[:48]) == len(raw) and parse_command(raw) == cmd

# What a redirected USB device really is, read from the descriptors the
# session asks it for (issue 12 item 9).
#
# Why: DEVICE_ADD carries the classes the CLIENT declares, and [usb] policy is
# checked against them; a client can declare its mass-storage device's
# interface as 0xff (vendor) and pass a `deny = class:08`. The device's own
# answer is in the URBs: the session's USB stack asks for the device and
# configuration descriptors (a GET_DESCRIPTOR control transfer on endpoint 0)
# before it binds any driver. So sessiond, which relays URBs without reading
# them, reads exactly these: the 48-byte USB/IP header of each URB_COMMAND to
# spot a GET_DESCRIPTOR(DEVICE or CONFIGURATION) on endpoint 0, and the data of
# the matching URB_RETURN, walked descriptor by descriptor with every length
# checked. Everything else still passes unread.
"""DescriptorWatch: spot GET_DESCRIPTOR URBs, read the classes their answers declare."""

from __future__ import annotations

import struct
from typing import Final

from protocol.usb import CMD_SUBMIT, DIR_IN, RET_SUBMIT

# URB_COMMAND / URB_RETURN payload: u32 connection id, then the USB/IP PDU.
_CONN: Final = 4
_BASIC: Final = struct.Struct(">IIIII")  # command, seqnum, devid, direction, ep
_RET: Final = struct.Struct(">ii")  # status, actual_length (RET_SUBMIT, after the basic header)
_SETUP_OFFSET: Final = _CONN + 20 + 20  # the 8-byte setup packet of CMD_SUBMIT
_DATA_OFFSET: Final = _CONN + 48  # IN data of RET_SUBMIT
GET_DESCRIPTOR: Final = 6
DT_DEVICE: Final = 1
DT_CONFIGURATION: Final = 2
DT_INTERFACE: Final = 4
# GET_DESCRIPTOR requests remembered per session until their answer comes;
# the session's USB stack has one or two in flight, a flood is forgotten.
MAX_WATCHED_REQUESTS: Final = 64


def descriptor_request(payload: bytes) -> tuple[int, int, int] | None:
    """(conn, seqnum, descriptor type) if this URB_COMMAND payload is a
    standard GET_DESCRIPTOR(DEVICE or CONFIGURATION) on endpoint 0, else None."""
    if len(payload) < _SETUP_OFFSET + 8:
        return None
    conn = int.from_bytes(payload[:_CONN], "big")
    command, seqnum, _devid, direction, ep = _BASIC.unpack_from(payload, _CONN)
    if command != CMD_SUBMIT or ep != 0 or direction != DIR_IN:
        return None
    request_type, request = payload[_SETUP_OFFSET], payload[_SETUP_OFFSET + 1]
    kind = payload[_SETUP_OFFSET + 3]  # wValue's high byte (little-endian u16 at setup[2:4])
    if request_type != 0x80 or request != GET_DESCRIPTOR or kind not in (DT_DEVICE, DT_CONFIGURATION):
        return None
    return conn, seqnum, kind


def answer_of(payload: bytes) -> tuple[int, int, bytes] | None:
    """(conn, seqnum, data) of a successful RET_SUBMIT URB_RETURN payload, else None."""
    if len(payload) < _DATA_OFFSET:
        return None
    conn = int.from_bytes(payload[:_CONN], "big")
    command, seqnum, _devid, _direction, _ep = _BASIC.unpack_from(payload, _CONN)
    status, actual = _RET.unpack_from(payload, _CONN + 20)
    if command != RET_SUBMIT or status != 0 or actual <= 0:
        return None
    return conn, seqnum, payload[_DATA_OFFSET : _DATA_OFFSET + actual]


def declared_classes(kind: int, data: bytes) -> tuple[int, ...]:
    """The classes a device or configuration descriptor's bytes declare: the
    device class (if not 0, "per interface"), or every interface's class.
    Truncated or malformed descriptors yield what was readable before them."""
    if kind == DT_DEVICE:
        if len(data) >= 5 and data[1] == DT_DEVICE and data[4]:
            return (data[4],)
        return ()
    classes: list[int] = []
    offset = 0
    while offset + 2 <= len(data):
        length, dtype = data[offset], data[offset + 1]
        if length < 2:
            break  # a zero length would loop forever; the rest is not descriptors
        if dtype == DT_INTERFACE and length >= 9 and offset + 9 <= len(data):
            classes.append(data[offset + 5])
        offset += length
    return tuple(classes)

# The usb channel: USB/IP (the Linux kernel's protocol, docs.kernel.org
# usb/usbip_protocol) carried byte-exact inside channel messages, plus the
# three messages that announce, withdraw and report on shared devices.
#
# Why byte-exact USB/IP rather than a protocol of our own: the session side
# must end in a real USB/IP peer (vhci-hcd through `usbip attach`, or Debian's
# `usbip list`), so the agent only re-frames PDUs between its USB/IP socket
# and the channel, and nothing is translated twice. Every PDU is checked here
# structurally (version, command codes, directions, endpoint numbers, sizes
# bounded before allocation, data length consistent with the header);
# stateful checks (sequence numbers, connection ids, known devices) belong to
# the two ends. Sans-IO: no sockets, no event loop.
"""USB/IP PDUs (bounded codecs) and the usb channel's messages."""

from __future__ import annotations

import dataclasses
import re
import struct
from collections.abc import Callable
from typing import Any, ClassVar, Final, Self

from protocol.base import U32_MAX, ChannelKind, Message, Sender, check_int, check_str
from protocol.schema import (
    BYTES,
    CSTR,
    CUSTOM,
    I32,
    NESTED,
    TEXT,
    U8,
    U16,
    U32,
    Checked,
    Declared,
    cstring,
    message,
    shared,
    wire,
)

# -- USB/IP constants (kernel usbip_protocol.rst, tools/usb/usbip) ---------
USBIP_VERSION = 0x0111
USBIP_PORT = 3240
OP_REQ_DEVLIST = 0x8005
OP_REP_DEVLIST = 0x0005
OP_REQ_IMPORT = 0x8003
OP_REP_IMPORT = 0x0003
ST_OK = 0
ST_NA = 1  # "device not available" / generic failure in OP replies
CMD_SUBMIT = 1
CMD_UNLINK = 2
RET_SUBMIT = 3
RET_UNLINK = 4
DIR_OUT = 0
DIR_IN = 1
PATH_SIZE = 256
BUSID_SIZE = 32

# -- limits -----------------------------------------------------------------
# Largest URB data we carry: usb-storage's default max_sectors (240 x 512),
# and the whole URB frame stays under half the 256 KiB default window.
MAX_TRANSFER_BUFFER = 120 * 1024
# ISO packet descriptors per URB (16 bytes each): bounds the descriptor table.
MAX_ISO_PACKETS = 64
# Interfaces per announced device: bNumInterfaces is a u8; real devices use few.
MAX_INTERFACES = 32
# USB endpoint numbers are 4 bits.
MAX_ENDPOINT = 15
# Devices one client may share into one session at once.
MAX_DEVICES = 16
# Concurrent USB/IP connections (importers/listers) per usb channel.
MAX_CONNECTIONS = 16
# URBs submitted and not yet returned, per USB/IP connection: bounds pending state.
MAX_PENDING_URBS = 64
# Bytes of human-readable text in DEVICE_STATUS.
MAX_STATUS_TEXT = 256

_COMMON = struct.Struct(">HHI")
_DEVICE = struct.Struct(">256s32sIIIHHHBBBBBB")
_INTERFACE = struct.Struct(">BBBx")
_BASIC = struct.Struct(">IIIII")
_CMD_SUBMIT = struct.Struct(">Iiiii8s")
_RET_SUBMIT = struct.Struct(">iiiii8x")
_UNLINK = struct.Struct(">I24x")
_RET_UNLINK = struct.Struct(">i24x")
_ISO = 16
_U32 = struct.Struct(">I")
URB_HEADER_SIZE = _BASIC.size + _CMD_SUBMIT.size  # 48
OP_COMMON_SIZE = _COMMON.size  # 8
DEVICE_SIZE = _DEVICE.size  # 312
_BUSID_RE = re.compile(r"[A-Za-z0-9._:-]{1,31}")
_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1


def check_busid(busid: str) -> str:
    """A USB/IP bus id: 1..31 ASCII characters of [A-Za-z0-9._:-]; else ValueError."""
    if not isinstance(busid, str) or not _BUSID_RE.fullmatch(busid):
        raise ValueError(f"bad bus id {busid!r}")
    return busid


BUSID: Final = CSTR(BUSID_SIZE, lambda value: check_busid(value))  # type: ignore[arg-type]


def pack_op_common(code: int, status: int = ST_OK) -> bytes:
    """The 8-byte header of every OP_* PDU."""
    return _COMMON.pack(USBIP_VERSION, code, status)


def parse_op_common(data: bytes) -> tuple[int, int]:
    """(code, status) of an OP header; ValueError on a wrong version or length."""
    if len(data) < _COMMON.size:
        raise ValueError("OP header shorter than 8 bytes")
    version, code, status = _COMMON.unpack_from(data)
    if version != USBIP_VERSION:
        raise ValueError(f"USB/IP version 0x{version:04x}, want 0x{USBIP_VERSION:04x}")
    return code, status


@shared
class UsbInterface(Checked):
    """bInterfaceClass, bInterfaceSubClass, bInterfaceProtocol of one interface."""

    cls: int = wire(U8)
    subclass: int = wire(U8)
    protocol: int = wire(U8)


def _path(value: object) -> object:
    path = check_str("path", value)
    if len(path) >= PATH_SIZE or any(ord(c) < 0x20 or ord(c) > 0x7E for c in path):
        raise ValueError("path must be printable ASCII shorter than 256 bytes")
    return path


def _interfaces(value: object) -> object:
    if not isinstance(value, tuple) or len(value) > MAX_INTERFACES:
        raise ValueError(f"at most {MAX_INTERFACES} interfaces")
    if not all(isinstance(i, UsbInterface) for i in value):
        raise ValueError("interfaces must be UsbInterface")
    return value


@shared
class UsbDevice(Checked):
    """struct usbip_usb_device (312 bytes) and its interfaces, as OP_REP_DEVLIST lists them."""

    busid: str = wire(BUSID)
    id_vendor: int = wire(U16)
    id_product: int = wire(U16)
    interfaces: tuple[UsbInterface, ...] = wire(NESTED(_interfaces, "interfaces"))
    path: str = wire(CSTR(PATH_SIZE, _path), default="")
    busnum: int = wire(U32, default=1)
    devnum: int = wire(U32, default=1)
    speed: int = wire(U32, default=3)  # USB_SPEED_HIGH
    bcd_device: int = wire(U16, default=0x0100)
    device_class: int = wire(U8, default=0)
    device_subclass: int = wire(U8, default=0)
    device_protocol: int = wire(U8, default=0)
    configuration_value: int = wire(U8, default=1)
    num_configurations: int = wire(U8, default=1)

    @property
    def vid_pid(self) -> str:
        """"vvvv:pppp" in lower-case hex, as lsusb prints it."""
        return f"{self.id_vendor:04x}:{self.id_product:04x}"

    @property
    def devid(self) -> int:
        """The devid URB headers carry for this device: busnum << 16 | devnum."""
        return (self.busnum << 16) | (self.devnum & 0xFFFF)

    def classes(self) -> tuple[int, ...]:
        """Every class the device presents: the device class if set, then each interface's."""
        own = (self.device_class,) if self.device_class else ()
        return own + tuple(i.cls for i in self.interfaces)

    def pack(self, with_interfaces: bool = True) -> bytes:
        """The 312-byte struct, followed by 4 bytes per interface when with_interfaces."""
        head = _DEVICE.pack(self.path.encode("ascii"), self.busid.encode("ascii"), self.busnum, self.devnum,
                            self.speed, self.id_vendor, self.id_product, self.bcd_device, self.device_class,
                            self.device_subclass, self.device_protocol, self.configuration_value,
                            self.num_configurations, len(self.interfaces))  # fmt: skip
        if not with_interfaces:
            return head
        return head + b"".join(_INTERFACE.pack(i.cls, i.subclass, i.protocol) for i in self.interfaces)

    @classmethod
    def unpack(cls, data: bytes, with_interfaces: bool = True) -> Self:
        """Parse exactly one device (plus its interfaces if with_interfaces); ValueError if invalid."""
        if len(data) < _DEVICE.size:
            raise ValueError("device record shorter than 312 bytes")
        (path, busid, busnum, devnum, speed, vid, pid, bcd, dclass, dsub, dproto, conf, nconf,
         nintf) = _DEVICE.unpack_from(data)  # fmt: skip
        count = nintf if with_interfaces else 0
        if nintf > MAX_INTERFACES:
            raise ValueError(f"{nintf} interfaces exceed MAX_INTERFACES")
        if len(data) != _DEVICE.size + count * _INTERFACE.size:
            raise ValueError("device record length does not match bNumInterfaces")
        interfaces = tuple(UsbInterface(*_INTERFACE.unpack_from(data, _DEVICE.size + n * _INTERFACE.size))
                           for n in range(count))  # fmt: skip
        device = cls(busid=cstring(busid, "busid"), id_vendor=vid, id_product=pid, interfaces=interfaces,
                     path=cstring(path, "path"), busnum=busnum, devnum=devnum, speed=speed, bcd_device=bcd,
                     device_class=dclass, device_subclass=dsub, device_protocol=dproto, configuration_value=conf,
                     num_configurations=nconf)  # fmt: skip
        if not with_interfaces and nintf:
            # OP_REP_IMPORT carries the count but not the records.
            object.__setattr__(device, "interfaces", tuple(UsbInterface(0, 0, 0) for _ in range(nintf)))
        return device


def pack_devlist_reply(devices: tuple[UsbDevice, ...] | list[UsbDevice]) -> bytes:
    """A whole OP_REP_DEVLIST PDU."""
    body = b"".join(d.pack() for d in devices)
    return pack_op_common(OP_REP_DEVLIST) + _U32.pack(len(devices)) + body


# -- URB PDUs -----------------------------------------------------------------
DIRECTION: Final = U32.within(DIR_OUT, DIR_IN)
ENDPOINT: Final = U32.within(0, MAX_ENDPOINT)
ISO_PACKETS: Final = I32.within(-1, MAX_ISO_PACKETS)  # 0 and -1 (0xffffffff) mean none
TRANSFER: Final = U32.within(0, MAX_TRANSFER_BUFFER)
DATA: Final = BYTES(MAX_TRANSFER_BUFFER)
ISO: Final = BYTES(MAX_ISO_PACKETS * _ISO)


def _iso_count(number_of_packets: int) -> int:
    """Descriptors that follow: number_of_packets, where 0 and -1 (0xffffffff) mean none."""
    check_int("number_of_packets", number_of_packets, -1, MAX_ISO_PACKETS)
    return max(0, number_of_packets)


@shared
class CmdSubmit(Checked):
    """USBIP_CMD_SUBMIT: a URB for the device (session -> client). OUT data travels with it."""

    seqnum: int = wire(U32)
    devid: int = wire(U32)
    direction: int = wire(DIRECTION)
    ep: int = wire(ENDPOINT)
    transfer_buffer_length: int = wire(TRANSFER)
    setup: bytes = wire(BYTES(8, 8), default=bytes(8))
    data: bytes = wire(DATA, default=b"")
    transfer_flags: int = wire(U32, default=0)
    start_frame: int = wire(I32, default=0)
    number_of_packets: int = wire(ISO_PACKETS, default=0)
    interval: int = wire(I32, default=0)
    iso: bytes = wire(ISO, default=b"")

    def check(self) -> None:
        """OUT data is exactly transfer_buffer_length bytes (IN: none); iso matches number_of_packets."""
        want = self.transfer_buffer_length if self.direction == DIR_OUT else 0
        if len(self.data) != want:
            raise ValueError(f"CMD_SUBMIT carries {len(self.data)} data bytes, header says {want}")
        if len(self.iso) != _iso_count(self.number_of_packets) * _ISO:
            raise ValueError("iso descriptor bytes do not match number_of_packets")

    def encode(self) -> bytes:
        """The PDU bytes."""
        return (_BASIC.pack(CMD_SUBMIT, self.seqnum, self.devid, self.direction, self.ep)
                + _CMD_SUBMIT.pack(self.transfer_flags, self.transfer_buffer_length, self.start_frame,
                                   self.number_of_packets, self.interval, bytes(self.setup))
                + self.data + self.iso)  # fmt: skip


@shared
class CmdUnlink(Checked):
    """USBIP_CMD_UNLINK: cancel the pending CMD_SUBMIT `unlink_seqnum` (session -> client)."""

    seqnum: int = wire(U32)
    devid: int = wire(U32)
    unlink_seqnum: int = wire(U32)
    direction: int = wire(DIRECTION, default=DIR_OUT)
    ep: int = wire(ENDPOINT, default=0)

    def encode(self) -> bytes:
        """The PDU bytes."""
        return _BASIC.pack(CMD_UNLINK, self.seqnum, self.devid, self.direction, self.ep) + _UNLINK.pack(
            self.unlink_seqnum)


@shared
class RetSubmit(Checked):
    """USBIP_RET_SUBMIT: a URB's result (client -> session). IN data travels with it."""

    seqnum: int = wire(U32)
    status: int = wire(I32, default=0)
    actual_length: int = wire(TRANSFER, default=0)
    data: bytes = wire(DATA, default=b"")
    devid: int = wire(U32, default=0)
    direction: int = wire(DIRECTION, default=DIR_OUT)
    ep: int = wire(ENDPOINT, default=0)
    start_frame: int = wire(I32, default=0)
    number_of_packets: int = wire(ISO_PACKETS, default=0)
    error_count: int = wire(U32.within(0, MAX_ISO_PACKETS), default=0)
    iso: bytes = wire(ISO, default=b"")

    def check(self) -> None:
        """Data is empty (OUT) or actual_length bytes (IN); iso matches number_of_packets."""
        if len(self.data) not in (0, self.actual_length):
            raise ValueError("RET_SUBMIT data must be empty (OUT) or actual_length bytes (IN)")
        if len(self.iso) != _iso_count(self.number_of_packets) * _ISO:
            raise ValueError("iso descriptor bytes do not match number_of_packets")

    def encode(self) -> bytes:
        """The PDU bytes."""
        return (_BASIC.pack(RET_SUBMIT, self.seqnum, self.devid, self.direction, self.ep)
                + _RET_SUBMIT.pack(self.status, self.actual_length, self.start_frame, self.number_of_packets,
                                   self.error_count)
                + self.data + self.iso)  # fmt: skip


@shared
class RetUnlink(Checked):
    """USBIP_RET_UNLINK: the result of a CMD_UNLINK (client -> session)."""

    seqnum: int = wire(U32)
    status: int = wire(I32, default=0)
    devid: int = wire(U32, default=0)
    direction: int = wire(DIRECTION, default=DIR_OUT)
    ep: int = wire(ENDPOINT, default=0)

    def encode(self) -> bytes:
        """The PDU bytes."""
        return _BASIC.pack(RET_UNLINK, self.seqnum, self.devid, self.direction, self.ep) + _RET_UNLINK.pack(
            self.status)


Command = CmdSubmit | CmdUnlink
Return = RetSubmit | RetUnlink


def command_length(header: bytes) -> int:
    """Total PDU length of a command stream PDU given its 48-byte header; ValueError if invalid."""
    if len(header) < URB_HEADER_SIZE:
        raise ValueError("URB header shorter than 48 bytes")
    command, _seq, _devid, direction, _ep = _BASIC.unpack_from(header)
    if command == CMD_UNLINK:
        return URB_HEADER_SIZE
    if command != CMD_SUBMIT:
        raise ValueError(f"command {command} is not CMD_SUBMIT or CMD_UNLINK")
    _flags, length, _start, packets, _interval, _setup = _CMD_SUBMIT.unpack_from(header, _BASIC.size)
    check_int("direction", direction, DIR_OUT, DIR_IN)
    check_int("transfer_buffer_length", length, 0, MAX_TRANSFER_BUFFER)
    return URB_HEADER_SIZE + (length if direction == DIR_OUT else 0) + _iso_count(packets) * _ISO


def return_length(header: bytes, direction: int) -> int:
    """Total PDU length of a return PDU, given the direction of the URB it answers."""
    if len(header) < URB_HEADER_SIZE:
        raise ValueError("URB header shorter than 48 bytes")
    command = _BASIC.unpack_from(header)[0]
    if command == RET_UNLINK:
        return URB_HEADER_SIZE
    if command != RET_SUBMIT:
        raise ValueError(f"command {command} is not RET_SUBMIT or RET_UNLINK")
    _status, actual, _start, packets, _errors = _RET_SUBMIT.unpack_from(header, _BASIC.size)
    check_int("actual_length", actual, 0, MAX_TRANSFER_BUFFER)
    return URB_HEADER_SIZE + (actual if direction == DIR_IN else 0) + _iso_count(packets) * _ISO


def parse_command(pdu: bytes) -> Command:
    """Parse exactly one CMD_SUBMIT or CMD_UNLINK PDU; ValueError if invalid."""
    if len(pdu) != command_length(pdu):
        raise ValueError("command PDU length does not match its header")
    command, seqnum, devid, direction, ep = _BASIC.unpack_from(pdu)
    if command == CMD_UNLINK:
        return CmdUnlink(seqnum, devid, _UNLINK.unpack_from(pdu, _BASIC.size)[0], direction, ep)
    flags, length, start, packets, interval, setup = _CMD_SUBMIT.unpack_from(pdu, _BASIC.size)
    data_end = URB_HEADER_SIZE + (length if direction == DIR_OUT else 0)
    return CmdSubmit(seqnum, devid, direction, ep, length, setup, pdu[URB_HEADER_SIZE:data_end], flags, start,
                     packets, interval, pdu[data_end:])  # fmt: skip


def parse_return(pdu: bytes) -> Return:
    """Parse exactly one RET_SUBMIT or RET_UNLINK PDU (data length taken from the PDU size)."""
    if len(pdu) < URB_HEADER_SIZE:
        raise ValueError("return PDU shorter than 48 bytes")
    command, seqnum, devid, direction, ep = _BASIC.unpack_from(pdu)
    if command == RET_UNLINK:
        if len(pdu) != URB_HEADER_SIZE:
            raise ValueError("RET_UNLINK must be 48 bytes")
        return RetUnlink(seqnum, _RET_UNLINK.unpack_from(pdu, _BASIC.size)[0], devid, direction, ep)
    if command != RET_SUBMIT:
        raise ValueError(f"command {command} is not RET_SUBMIT or RET_UNLINK")
    status, actual, start, packets, errors = _RET_SUBMIT.unpack_from(pdu, _BASIC.size)
    iso_bytes = _iso_count(packets) * _ISO
    data_end = len(pdu) - iso_bytes
    if data_end < URB_HEADER_SIZE:
        raise ValueError("RET_SUBMIT shorter than its iso descriptors")
    return RetSubmit(seqnum, status, actual, pdu[URB_HEADER_SIZE:data_end], devid, direction, ep, start, packets,
                     errors, pdu[data_end:])  # fmt: skip


# -- usb channel messages ---------------------------------------------------------
# Test vectors (tests/vectors/frames.json) describe nested values language-
# neutrally: a device or PDU as a JSON object, bytes as hex. Messages accept
# that form too, so one description builds and compares in every client.
_PDU_CLASSES: dict[str, type[CmdSubmit | CmdUnlink | RetSubmit | RetUnlink]] = {
    "CMD_SUBMIT": CmdSubmit, "CMD_UNLINK": CmdUnlink, "RET_SUBMIT": RetSubmit, "RET_UNLINK": RetUnlink,
}  # fmt: skip


def _as_device(value: object) -> UsbDevice:
    if isinstance(value, dict):
        fields = dict(value)
        fields["interfaces"] = tuple(UsbInterface(*i) for i in fields.get("interfaces", ()))
        return UsbDevice(**fields)
    if not isinstance(value, UsbDevice):
        raise ValueError("device must be a UsbDevice")  # noqa: TRY004
    return value


def _as_pdu(value: object) -> object:
    if not isinstance(value, dict):
        return value
    fields: dict[str, Any] = {k: bytes.fromhex(v) if k in ("data", "setup", "iso") else v for k, v in value.items()}
    cls = _PDU_CLASSES.get(str(fields.pop("command", "")))
    if cls is None:
        raise ValueError("pdu needs a command: CMD_SUBMIT, CMD_UNLINK, RET_SUBMIT or RET_UNLINK")
    return cls(**fields)


def _conn_prefixed(payload: bytes, name: str) -> tuple[int, bytes]:
    if len(payload) < _U32.size:
        raise ValueError(f"{name} lacks its connection id")
    return _U32.unpack_from(payload)[0], payload[_U32.size :]


class UsbMessage(Declared):
    """Base of usb channel messages."""

    KIND: ClassVar[ChannelKind | None] = ChannelKind.USB


CONN: Final = U32.within(1, U32_MAX)  # a USB/IP connection id in the session
DEVICE: Final = NESTED(_as_device, "device")
_URB_MAX: Final = _U32.size + URB_HEADER_SIZE + MAX_TRANSFER_BUFFER + MAX_ISO_PACKETS * _ISO


@message(0x01, "DEVICE_ADD", sender=Sender.CLIENT, codec=CUSTOM, max_payload=DEVICE_SIZE + MAX_INTERFACES * 4)
class DeviceAdd(UsbMessage):
    """The client shares `device` (its OP_REP_DEVLIST record) into the session."""

    device: UsbDevice = wire(DEVICE)

    def encode(self) -> bytes:
        return self.device.pack()

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Parse the payload; ValueError if invalid."""
        return cls(UsbDevice.unpack(payload))


@message(0x02, "DEVICE_REMOVE", sender=Sender.CLIENT)
class DeviceRemove(UsbMessage):
    """The client (or sessiond, enforcing policy) withdraws device `busid`."""

    busid: str = wire(BUSID)


class DeviceState:
    """Values of DEVICE_STATUS.status."""

    OFFERED = 1  # listed in the session
    REFUSED = 2  # not allowed by the server's policy; never offered
    REVOKED = 3  # was offered; the policy changed and it is detached
    REMOVED = 4  # withdrawn (by the client, or the session ended its use)
    IMPORTED = 5  # a driver in the session imported it
    ALL = (OFFERED, REFUSED, REVOKED, REMOVED, IMPORTED)


@message(0x03, "DEVICE_STATUS", sender=Sender.SERVER)
class DeviceStatus(UsbMessage):
    """What became of device `busid` (server -> client), with a reason for people."""

    busid: str = wire(BUSID)
    status: int = wire(dataclasses.replace(U8, choices=frozenset(DeviceState.ALL)))
    text: str = wire(TEXT(MAX_STATUS_TEXT), default="")


@message(0x04, "IMPORT_REQUEST", sender=Sender.SERVER, codec=CUSTOM,
         max_payload=_U32.size + OP_COMMON_SIZE + BUSID_SIZE)  # fmt: skip
class ImportRequest(UsbMessage):
    """USB/IP connection `conn` in the session sent OP_REQ_IMPORT for `busid` (server -> client)."""

    conn: int = wire(CONN)
    busid: str = wire(BUSID)

    def encode(self) -> bytes:
        return _U32.pack(self.conn) + pack_op_common(OP_REQ_IMPORT) + self.busid.encode("ascii").ljust(
            BUSID_SIZE, b"\0")

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Parse the payload; ValueError if invalid."""
        conn, pdu = _conn_prefixed(payload, "IMPORT_REQUEST")
        if len(pdu) != OP_COMMON_SIZE + BUSID_SIZE or parse_op_common(pdu) != (OP_REQ_IMPORT, ST_OK):
            raise ValueError("IMPORT_REQUEST must carry one OP_REQ_IMPORT")
        return cls(conn, cstring(pdu[OP_COMMON_SIZE:], "busid"))


@message(0x05, "IMPORT_REPLY", sender=Sender.CLIENT, codec=CUSTOM,
         max_payload=_U32.size + OP_COMMON_SIZE + DEVICE_SIZE)  # fmt: skip
class ImportReply(UsbMessage):
    """OP_REP_IMPORT for connection `conn` (client -> server): the device, or a failure status."""

    conn: int = wire(CONN)
    status: int = wire(U32)
    device: UsbDevice | None = wire(NESTED(lambda v: None if v is None else _as_device(v), "device?"), default=None)

    def check(self) -> None:
        """A device goes with status 0, and only then."""
        if (self.status == ST_OK) != (self.device is not None):
            raise ValueError("a device goes with status 0, and only then")

    def encode(self) -> bytes:
        body = self.device.pack(with_interfaces=False) if self.device is not None else b""
        return _U32.pack(self.conn) + pack_op_common(OP_REP_IMPORT, self.status) + body

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Parse the payload; ValueError if invalid."""
        conn, pdu = _conn_prefixed(payload, "IMPORT_REPLY")
        code, status = parse_op_common(pdu)
        if code != OP_REP_IMPORT:
            raise ValueError("IMPORT_REPLY must carry one OP_REP_IMPORT")
        if status != ST_OK:
            if len(pdu) != OP_COMMON_SIZE:
                raise ValueError("a failed OP_REP_IMPORT has no device")
            return cls(conn, status)
        return cls(conn, status, UsbDevice.unpack(pdu[OP_COMMON_SIZE:], with_interfaces=False))


def _pdu_of(*types: type) -> Callable[[object], object]:
    def convert(value: object) -> object:
        pdu = _as_pdu(value)
        if not isinstance(pdu, types):
            raise ValueError(f"carries {' or '.join(t.__name__ for t in types)}")  # noqa: TRY004
        return pdu

    return convert


@message(0x06, "URB_COMMAND", sender=Sender.SERVER, codec=CUSTOM, max_payload=_URB_MAX)
class UrbCommand(UsbMessage):
    """A CMD_SUBMIT or CMD_UNLINK for connection `conn` (server -> client)."""

    conn: int = wire(CONN)
    pdu: CmdSubmit | CmdUnlink = wire(NESTED(_pdu_of(CmdSubmit, CmdUnlink), "command-pdu"), repr=False)

    def encode(self) -> bytes:
        return _U32.pack(self.conn) + self.pdu.encode()

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Parse the payload; ValueError if invalid."""
        conn, pdu = _conn_prefixed(payload, "URB_COMMAND")
        return cls(conn, parse_command(pdu))


@message(0x07, "URB_RETURN", sender=Sender.CLIENT, codec=CUSTOM, max_payload=_URB_MAX)
class UrbReturn(UsbMessage):
    """A RET_SUBMIT or RET_UNLINK for connection `conn` (client -> server)."""

    conn: int = wire(CONN)
    pdu: RetSubmit | RetUnlink = wire(NESTED(_pdu_of(RetSubmit, RetUnlink), "return-pdu"), repr=False)

    def encode(self) -> bytes:
        return _U32.pack(self.conn) + self.pdu.encode()

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Parse the payload; ValueError if invalid."""
        conn, pdu = _conn_prefixed(payload, "URB_RETURN")
        return cls(conn, parse_return(pdu))


@message(0x08, "CONN_CLOSE")
class ConnClose(UsbMessage):
    """USB/IP connection `conn` is over (either side; sessiond when it detaches a device)."""

    conn: int = wire(CONN)


USB_MESSAGES: tuple[type[Message], ...] = (
    DeviceAdd, DeviceRemove, DeviceStatus, ImportRequest, ImportReply, UrbCommand, UrbReturn, ConnClose,
)  # fmt: skip
USB_MESSAGE_NAMES: dict[type[Message], str] = {cls: cls.NAME for cls in USB_MESSAGES}

# Virtual USB devices the client can share when the machine has no USB (this
# one has none in its kernel) or for demos and tests: a vendor-specific bulk
# loopback device (what is written to bulk OUT endpoint 1 comes back from
# bulk IN endpoint 0x81, like the Linux gadget zero in loopback mode) and a
# descriptor-only mass-storage stub for exercising the server's policy.
#
# Why our own rather than the `usbip` PyPI package's device classes: a device
# here only has to answer the URBs the session sends through one small
# interface (submit/unlink), with bounded buffers; the package couples its
# devices to its own blocking socket server.
"""VirtualDevice, BulkLoopback, StorageStub and the catalogue of virtual devices."""

from __future__ import annotations

import errno
import struct
from collections import deque
from collections.abc import Callable

from protocol.usb import DIR_IN, CmdSubmit, RetSubmit, UsbDevice, UsbInterface

# pid.codes' open-source test vendor id; product ids below are ours to pick.
TEST_VENDOR = 0x1209
# Bytes the loopback device holds between OUT and IN transfers (its "RAM").
LOOPBACK_BUFFER = 256 * 1024
# IN URBs the loopback device parks while it has no data.
MAX_PARKED_IN = 32
# USB standard requests (USB 2.0 chapter 9).
GET_STATUS, CLEAR_FEATURE, SET_FEATURE, SET_ADDRESS = 0, 1, 3, 5
GET_DESCRIPTOR, GET_CONFIGURATION, SET_CONFIGURATION, GET_INTERFACE, SET_INTERFACE = 6, 8, 9, 10, 11
DESC_DEVICE, DESC_CONFIG, DESC_STRING = 1, 2, 3
_SETUP = struct.Struct("<BBHHH")

Complete = Callable[[RetSubmit], None]


def _string_descriptor(text: str) -> bytes:
    raw = text.encode("utf-16-le")
    return bytes([2 + len(raw), DESC_STRING]) + raw


class VirtualDevice:
    """A device answering URBs in-process; subclasses add endpoints."""

    vendor = TEST_VENDOR
    product = 0
    device_class = 0
    interface = (0xFF, 0, 0)
    strings = ("sessiond", "virtual device", "0001")
    endpoints: tuple[tuple[int, int, int], ...] = ()  # (address, attributes, max packet)

    def __init__(self, busid: str) -> None:
        self.busid = busid

    def record(self) -> UsbDevice:
        """The device as OP_REP_DEVLIST lists it."""
        devnum = int(self.busid.rsplit("-", 1)[-1])
        return UsbDevice(busid=self.busid, id_vendor=self.vendor, id_product=self.product,
                         interfaces=(UsbInterface(*self.interface),), path=f"/virtual/{self.busid}",
                         busnum=9, devnum=devnum, device_class=self.device_class)  # fmt: skip

    @property
    def name(self) -> str:
        """Product string."""
        return self.strings[1]

    def device_descriptor(self) -> bytes:
        return struct.pack("<BBHBBBBHHHBBBB", 18, DESC_DEVICE, 0x0200, self.device_class, 0, 0, 64, self.vendor,
                           self.product, 0x0100, 1, 2, 3, 1)  # fmt: skip

    def config_descriptor(self) -> bytes:
        eps = b"".join(struct.pack("<BBBBHB", 7, 5, addr, attrs, size, 0) for addr, attrs, size in self.endpoints)
        intf = struct.pack("<BBBBBBBBB", 9, 4, 0, 0, len(self.endpoints), *self.interface, 0)
        total = 9 + len(intf) + len(eps)
        return struct.pack("<BBHBBBBB", 9, DESC_CONFIG, total, 1, 1, 0, 0x80, 50) + intf + eps

    def submit(self, cmd: CmdSubmit, complete: Complete) -> None:
        """Handle one URB; call complete() now or later (parked IN transfers)."""
        if cmd.ep == 0:
            complete(self._control(cmd))
        elif not any(addr & 0x0F == cmd.ep and (addr >> 7) == cmd.direction for addr, _a, _s in self.endpoints):
            complete(RetSubmit(cmd.seqnum, status=-errno.EPIPE))  # no such endpoint: stall
        else:
            self.transfer(cmd, complete)

    def transfer(self, cmd: CmdSubmit, complete: Complete) -> None:
        """A transfer on a non-control endpoint of this device."""
        complete(RetSubmit(cmd.seqnum, status=-errno.EPIPE))

    def unlink(self, seqnum: int) -> bool:
        """Cancel a parked URB; True if it was still pending."""
        return False

    def reset(self) -> None:
        """The importer went away: drop parked URBs and state."""

    def _control(self, cmd: CmdSubmit) -> RetSubmit:
        request_type, request, value, _index, length = _SETUP.unpack(cmd.setup)
        reply: bytes | None = None
        if request_type == 0x80 and request == GET_DESCRIPTOR:
            kind, index = value >> 8, value & 0xFF
            if kind == DESC_DEVICE:
                reply = self.device_descriptor()
            elif kind == DESC_CONFIG and index == 0:
                reply = self.config_descriptor()
            elif kind == DESC_STRING and index == 0:
                reply = bytes([4, DESC_STRING, 0x09, 0x04])  # en-US
            elif kind == DESC_STRING and index <= len(self.strings):
                reply = _string_descriptor(self.strings[index - 1])
        elif request_type == 0x80 and request == GET_STATUS:
            reply = b"\x00\x00"
        elif request_type == 0x80 and request == GET_CONFIGURATION:
            reply = b"\x01"
        elif request_type in (0x00, 0x01, 0x02) and request in (SET_CONFIGURATION, SET_INTERFACE, CLEAR_FEATURE,
                                                                   SET_FEATURE, SET_ADDRESS):  # fmt: skip
            reply = b""
        if reply is None:
            return RetSubmit(cmd.seqnum, status=-errno.EPIPE)
        if cmd.direction != DIR_IN:
            return RetSubmit(cmd.seqnum, actual_length=0)
        data = reply[: min(length, cmd.transfer_buffer_length)]
        return RetSubmit(cmd.seqnum, actual_length=len(data), data=data, direction=DIR_IN)


class BulkLoopback(VirtualDevice):
    """1209:0001, vendor class: bulk OUT 0x01 stores, bulk IN 0x81 returns the same bytes."""

    product = 0x0001
    strings = ("sessiond", "sessiond bulk loopback", "LOOP0001")
    endpoints = ((0x01, 2, 512), (0x81, 2, 512))

    def __init__(self, busid: str) -> None:
        super().__init__(busid)
        self._data = bytearray()
        self._parked: deque[tuple[CmdSubmit, Complete]] = deque()

    def transfer(self, cmd: CmdSubmit, complete: Complete) -> None:
        if cmd.direction == DIR_IN:
            if self._data:
                complete(self._take(cmd))
            elif len(self._parked) < MAX_PARKED_IN:
                self._parked.append((cmd, complete))
            else:
                complete(RetSubmit(cmd.seqnum, status=-errno.ENOMEM))
            return
        if len(self._data) + len(cmd.data) > LOOPBACK_BUFFER:
            complete(RetSubmit(cmd.seqnum, status=-errno.EOVERFLOW))
            return
        self._data += cmd.data
        complete(RetSubmit(cmd.seqnum, actual_length=len(cmd.data)))
        while self._parked and self._data:
            parked, done = self._parked.popleft()
            done(self._take(parked))

    def _take(self, cmd: CmdSubmit) -> RetSubmit:
        data = bytes(self._data[: cmd.transfer_buffer_length])
        del self._data[: len(data)]
        return RetSubmit(cmd.seqnum, actual_length=len(data), data=data, direction=DIR_IN)

    def unlink(self, seqnum: int) -> bool:
        for entry in list(self._parked):
            if entry[0].seqnum == seqnum:
                self._parked.remove(entry)
                return True
        return False

    def reset(self) -> None:
        self._data.clear()
        self._parked.clear()


class StorageStub(VirtualDevice):
    """1209:0002, mass-storage class (08/06/50) descriptors only: for policy tests and demos."""

    product = 0x0002
    interface = (0x08, 0x06, 0x50)
    strings = ("sessiond", "sessiond storage stub", "STOR0002")
    endpoints = ((0x02, 2, 512), (0x82, 2, 512))


# name -> class; `svclient usb share virtual:NAME`.
VIRTUAL_DEVICES: dict[str, type[VirtualDevice]] = {"loopback": BulkLoopback, "storage": StorageStub}

# The client's half of USB redirection: it owns the devices. It opens the usb
# channel, announces each shared device (DEVICE_ADD), answers the session's
# OP_REQ_IMPORT and executes the URBs that the driver in the session submits,
# returning RET_SUBMIT/RET_UNLINK on the same channel.
#
# Why everything is checked again here: the session is another machine's
# user code. A URB for a connection we never opened, a devid that is not the
# imported device's, or an import of a device we do not share closes the usb
# channel (only), and nothing the session sends can reach a device the user
# did not share.
"""UsbExporter (client side of the usb channel) and local device listing."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from client.usb_virtual import VIRTUAL_DEVICES, VirtualDevice
from protocol.errors import ReasonCode
from protocol.frozen import frozen_dataclass
from protocol.messages import Message
from protocol.usb import (
    MAX_CONNECTIONS,
    ST_NA,
    ST_OK,
    CmdSubmit,
    CmdUnlink,
    ConnClose,
    DeviceAdd,
    DeviceRemove,
    DeviceState,
    DeviceStatus,
    ImportReply,
    ImportRequest,
    RetSubmit,
    RetUnlink,
    UrbCommand,
    UrbReturn,
)

# Where Linux lists USB devices (no libusb needed to list them).
SYSFS_USB = "/sys/bus/usb/devices"


class UsbUsageError(Exception):
    """The user named a device that cannot be shared; printed without a traceback."""


@frozen_dataclass
class LocalDevice:
    """A USB device on this machine (sysfs) or one of the built-in virtual devices."""

    name: str  # what `usb share` takes: a bus id, VID:PID, or virtual:NAME
    vid_pid: str
    description: str


def list_local(sysfs: str = SYSFS_USB) -> list[LocalDevice]:
    """Devices `svclient usb list` shows: sysfs USB devices, then the virtual ones."""
    found: list[LocalDevice] = []
    try:
        names = sorted(os.listdir(sysfs))
    except OSError:
        names = []
    for busid in names:
        if ":" in busid or busid.startswith("usb"):
            continue  # interfaces and root hubs
        base = os.path.join(sysfs, busid)

        def attr(key: str, base: str = base) -> str:
            try:
                with open(os.path.join(base, key), encoding="ascii", errors="replace") as handle:
                    return handle.read().strip()
            except OSError:
                return ""

        found.append(LocalDevice(busid, f"{attr('idVendor')}:{attr('idProduct')}",
                                 " ".join(filter(None, (attr("manufacturer"), attr("product")))) or "USB device"))
    for index, (name, cls) in enumerate(VIRTUAL_DEVICES.items(), start=1):
        device = cls(f"vusb-{index}")
        found.append(LocalDevice(f"virtual:{name}", device.record().vid_pid, f"{device.name} (virtual)"))
    return found


def open_device(spec: str, index: int) -> VirtualDevice:
    """The device `usb share SPEC` means; UsbUsageError if it cannot be shared from this client."""
    if spec.startswith("virtual:"):
        cls = VIRTUAL_DEVICES.get(spec.split(":", 1)[1])
        if cls is None:
            raise UsbUsageError(f"no virtual device {spec!r}; try {', '.join('virtual:' + n for n in VIRTUAL_DEVICES)}")
        return cls(f"vusb-{index}")
    names = {d.name for d in list_local()} | {d.vid_pid for d in list_local()}
    if spec not in names:
        raise UsbUsageError(f"no USB device {spec!r} on this machine (see `svclient usb list`)")
    raise UsbUsageError("sharing a physical device needs libusb access (pyusb), which this client build does not "
                        "include; share a virtual device (virtual:loopback) instead")  # fmt: skip


class UsbExporter:
    """Serves shared devices on one usb channel. `send` queues a message on it; `close` closes it."""

    def __init__(self, send: Callable[[Message], None], close: Callable[[int, str], None],
                 report: Callable[[DeviceStatus], None]) -> None:  # fmt: skip
        self._send = send
        self._close = close
        self._report = report
        self.devices: dict[str, VirtualDevice] = {}
        self.conns: dict[int, VirtualDevice] = {}
        self.closed = False

    def share(self, device: VirtualDevice) -> None:
        """Announce DEVICE to the session."""
        self.devices[device.busid] = device
        self._send(DeviceAdd(device.record()))

    def unshare(self, busid: str) -> None:
        """Withdraw a device; its importers are cut off."""
        device = self.devices.pop(busid, None)
        if device is not None:
            self._drop_conns(device)
            self._send(DeviceRemove(busid))

    def handle(self, message: Message) -> None:
        """One message from the session; a rule broken closes the usb channel."""
        if self.closed:
            return
        if isinstance(message, DeviceStatus):
            if message.status in (DeviceState.REFUSED, DeviceState.REVOKED, DeviceState.REMOVED):
                device = self.devices.pop(message.busid, None)
                if device is not None:
                    self._drop_conns(device)
            self._report(message)
        elif isinstance(message, ImportRequest):
            self._import(message)
        elif isinstance(message, UrbCommand):
            device = self.conns.get(message.conn)
            if device is None:
                self.fail(f"URB for connection {message.conn}, which was never imported")
            elif message.pdu.devid != device.record().devid:
                self.fail(f"URB devid 0x{message.pdu.devid:08x} is not device {device.busid}")
            else:
                self._urb(message.conn, device, message.pdu)
        elif isinstance(message, ConnClose):
            device = self.conns.pop(message.conn, None)
            if device is not None and device not in self.conns.values():
                device.reset()
        else:
            self.fail(f"{type(message).__name__} is not expected from the session")

    def _import(self, message: ImportRequest) -> None:
        if message.conn in self.conns:
            self.fail(f"connection {message.conn} imported twice")
            return
        device = self.devices.get(message.busid)
        if device is None or len(self.conns) >= MAX_CONNECTIONS:
            self._send(ImportReply(message.conn, ST_NA))
            return
        self.conns[message.conn] = device
        self._send(ImportReply(message.conn, ST_OK, device.record()))

    def _urb(self, conn: int, device: VirtualDevice, pdu: CmdSubmit | CmdUnlink) -> None:
        if isinstance(pdu, CmdUnlink):
            cancelled = device.unlink(pdu.unlink_seqnum)
            self._send(UrbReturn(conn, RetUnlink(pdu.seqnum, -errno.ECONNRESET if cancelled else 0)))
            return

        def complete(ret: RetSubmit) -> None:
            if self.conns.get(conn) is device and not self.closed:
                self._send(UrbReturn(conn, ret))

        device.submit(pdu, complete)

    def _drop_conns(self, device: VirtualDevice) -> None:
        for conn in [c for c, d in self.conns.items() if d is device]:
            del self.conns[conn]
            self._send(ConnClose(conn))
        device.reset()

    def fail(self, why: str) -> None:
        """Close the usb channel because the session broke a rule."""
        self.closed = True
        self._close(ReasonCode.MALFORMED_MESSAGE, why)

    def channel_closed(self) -> None:
        """The usb channel is gone (closed by either side)."""
        self.closed = True
        for device in self.devices.values():
            device.reset()
        self.conns.clear()

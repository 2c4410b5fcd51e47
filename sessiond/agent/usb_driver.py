# A small user-space USB/IP importer ("host driver"): what a session uses
# when the kernel has no vhci-hcd (this machine), and what the tests and the
# bench use to prove that bytes really travel from a driver in the session to
# the device on the client and back. It speaks the client side of USB/IP over
# the session's Unix endpoint or TCP (TCP_NODELAY: each small transfer would
# otherwise wait ~40 ms for a delayed ACK).
#
#   python -m sessiond.agent.usb_driver list
#   python -m sessiond.agent.usb_driver loopback vusb-1 --count 1000 --size 64
"""UsbipImporter: list, import, control and bulk transfers over USB/IP."""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import time

from protocol.usb import (
    DIR_IN,
    DIR_OUT,
    OP_COMMON_SIZE,
    OP_REP_DEVLIST,
    OP_REP_IMPORT,
    OP_REQ_DEVLIST,
    OP_REQ_IMPORT,
    ST_OK,
    URB_HEADER_SIZE,
    CmdSubmit,
    RetSubmit,
    UsbDevice,
    pack_op_common,
    parse_op_common,
    parse_return,
    return_length,
)

DEVICE_RECORD = 312
# Devices a DEVLIST reply may announce before we refuse to read it.
MAX_LISTED = 256


class UsbipError(Exception):
    """The server answered with an error or broke the protocol."""


class UsbipImporter:
    """The client side of one USB/IP connection (blocking)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.seqnum = 0
        self.device: UsbDevice | None = None

    @classmethod
    def connect(cls, address: str, timeout: float = 10.0) -> UsbipImporter:
        """ADDRESS is a Unix socket path, or HOST:PORT for TCP."""
        if address.startswith("/"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(address)
        else:
            host, _sep, port = address.rpartition(":")
            sock = socket.create_connection((host, int(port)), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(sock)

    def close(self) -> None:
        self.sock.close()

    def _recv(self, size: int) -> bytes:
        parts, left = [], size
        while left:
            chunk = self.sock.recv(left)
            if not chunk:
                raise UsbipError("the USB/IP server closed the connection")
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    def list_devices(self) -> list[UsbDevice]:
        """OP_REQ_DEVLIST; the connection is finished afterwards."""
        self.sock.sendall(pack_op_common(OP_REQ_DEVLIST))
        code, status = parse_op_common(self._recv(OP_COMMON_SIZE))
        if code != OP_REP_DEVLIST or status != ST_OK:
            raise UsbipError(f"DEVLIST failed (code 0x{code:04x}, status {status})")
        (count,) = struct.unpack(">I", self._recv(4))
        if count > MAX_LISTED:
            raise UsbipError(f"{count} devices listed")
        devices = []
        for _ in range(count):
            head = self._recv(DEVICE_RECORD)
            devices.append(UsbDevice.unpack(head + self._recv(4 * head[-1])))
        return devices

    def import_device(self, busid: str) -> UsbDevice:
        """OP_REQ_IMPORT; afterwards URBs may be submitted."""
        self.sock.sendall(pack_op_common(OP_REQ_IMPORT) + busid.encode("ascii").ljust(32, b"\0"))
        code, status = parse_op_common(self._recv(OP_COMMON_SIZE))
        if code != OP_REP_IMPORT or status != ST_OK:
            raise UsbipError(f"import of {busid} refused (status {status})")
        self.device = UsbDevice.unpack(self._recv(DEVICE_RECORD), with_interfaces=False)
        return self.device

    def submit(self, ep: int, direction: int, length: int, data: bytes = b"", setup: bytes = bytes(8)) -> RetSubmit:
        """One URB, waiting for its RET_SUBMIT."""
        if self.device is None:
            raise UsbipError("import a device first")
        self.seqnum += 1
        cmd = CmdSubmit(self.seqnum, self.device.devid, direction, ep, length, setup, data)
        self.sock.sendall(cmd.encode())
        header = self._recv(URB_HEADER_SIZE)
        pdu = parse_return(header + self._recv(return_length(header, direction) - URB_HEADER_SIZE))
        if not isinstance(pdu, RetSubmit) or pdu.seqnum != cmd.seqnum:
            raise UsbipError(f"unexpected answer to URB {cmd.seqnum}")
        if pdu.status != 0:
            raise UsbipError(f"URB on endpoint {ep} failed with status {pdu.status}")
        return pdu

    def control_in(self, request_type: int, request: int, value: int, index: int, length: int) -> bytes:
        """A control transfer that reads LENGTH bytes at most."""
        setup = struct.pack("<BBHHH", request_type, request, value, index, length)
        return self.submit(0, DIR_IN, length, setup=setup).data

    def bulk_out(self, ep: int, data: bytes) -> int:
        return self.submit(ep, DIR_OUT, len(data), data).actual_length

    def bulk_in(self, ep: int, length: int) -> bytes:
        return self.submit(ep, DIR_IN, length).data


def string_descriptor(importer: UsbipImporter, index: int) -> str:
    """String descriptor INDEX in US English."""
    raw = importer.control_in(0x80, 6, 0x0300 | index, 0x0409, 255)
    return raw[2 : raw[0]].decode("utf-16-le")


def run_loopback(address: str, busid: str, count: int, size: int) -> dict[str, object]:
    """Import BUSID, read its descriptors, then COUNT bulk OUT/IN round trips of SIZE bytes."""
    importer = UsbipImporter.connect(address)
    try:
        device = importer.import_device(busid)
        descriptor = importer.control_in(0x80, 6, 0x0100, 0, 18)
        product = string_descriptor(importer, descriptor[15])
        times, echoed = [], 0
        pattern = bytes(range(256)) * (size // 256 + 2)
        for n in range(count):
            payload = pattern[n % 256 : n % 256 + size]
            start = time.perf_counter()
            importer.bulk_out(1, payload)
            back = importer.bulk_in(1, size)
            times.append(time.perf_counter() - start)
            echoed += back == payload
        return {"busid": device.busid, "vid_pid": device.vid_pid, "device_descriptor": descriptor.hex(),
                "product": product, "round_trips": count, "echoed": echoed, "seconds": times}  # fmt: skip
    finally:
        importer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="usb_driver", description=__doc__)
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    parser.add_argument("--address", default=os.path.join(runtime, "usbip.sock"),
                        help="Unix socket path or HOST:PORT (default $XDG_RUNTIME_DIR/usbip.sock)")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list")
    loop = sub.add_parser("loopback")
    loop.add_argument("busid")
    loop.add_argument("--count", type=int, default=1000)
    loop.add_argument("--size", type=int, default=64)
    args = parser.parse_args(argv)
    if args.address.startswith("/") and not os.path.exists(args.address):
        print(f"usb_driver: no USB/IP endpoint at {args.address}: no device is shared into this session",
              file=sys.stderr)  # fmt: skip
        return 1
    try:
        if args.command == "list":
            importer = UsbipImporter.connect(args.address)
            devices = importer.list_devices()
            importer.close()
            print(json.dumps([{"busid": d.busid, "vid_pid": d.vid_pid, "classes": list(d.classes())}
                              for d in devices]))  # fmt: skip
        else:
            result = run_loopback(args.address, args.busid, args.count, args.size)
            print(json.dumps(result))
    except (OSError, UsbipError, ValueError) as exc:
        print(f"usb_driver: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

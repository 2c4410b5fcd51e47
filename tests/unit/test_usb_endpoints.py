"""The agent's USB/IP endpoint and the client's exporter, wired in memory (fake link and transports)."""

from __future__ import annotations

import asyncio
from typing import Any

from protocol.connection import ChannelOpened, MessageReceived
from protocol.messages import ChannelKind, Message
from protocol.testing import RecordingTransport
from protocol.usb import (
    DIR_IN,
    DIR_OUT,
    OP_REQ_DEVLIST,
    OP_REQ_IMPORT,
    CmdSubmit,
    DeviceState,
    DeviceStatus,
    RetSubmit,
    UrbReturn,
    pack_op_common,
)
from client.usb import UsbExporter
from client.usb_virtual import BulkLoopback
from sessiond.agent.usb import UsbService
from sessiond.agent.usb_server import UsbipPeer

USB = int(ChannelKind.USB)


class FakeConn:
    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.closed_channels: list[tuple[int, int, str]] = []
        self.closed = False
        self.consumed_bytes = 0

    def send(self, channel: int, message: Message) -> None:
        self.sent.append(message)

    def consumed(self, channel: int, nbytes: int) -> None:
        self.consumed_bytes += nbytes

    def queued_bytes(self, channel: int) -> int:
        return 0

    def is_open(self, channel: int) -> bool:
        return channel in self.open_channels()

    def open_channels(self) -> dict[int, ChannelKind]:
        return {USB: ChannelKind.USB}

    def close_channel(self, channel: int, code: int = 0, message: str = "") -> None:
        self.closed_channels.append((channel, code, message))


class FakeLink:
    def __init__(self) -> None:
        self.conn = FakeConn()

    def flush(self) -> None:
        pass


def setup(tmp_path: Any) -> tuple[UsbService, FakeLink, UsbExporter, list[DeviceStatus]]:
    loop = asyncio.new_event_loop()
    service = UsbService(loop, lambda text: None, str(tmp_path))
    link = FakeLink()
    service.link, service.channel = link, USB  # type: ignore[assignment]
    statuses: list[DeviceStatus] = []
    exporter = UsbExporter(lambda m: service.handles(link, MessageReceived(USB, ChannelKind.USB, m)),  # type: ignore[arg-type]
                           lambda code, why: None, statuses.append)  # fmt: skip
    exporter.share(BulkLoopback("vusb-1"))
    for message in list(link.conn.sent):
        exporter.handle(message)
    link.conn.sent.clear()
    return service, link, exporter, statuses


def pump(link: FakeLink, exporter: UsbExporter) -> None:
    while link.conn.sent:
        exporter.handle(link.conn.sent.pop(0))


def test_listing_import_and_bulk_echo(tmp_path: Any) -> None:
    service, link, exporter, statuses = setup(tmp_path)
    assert [(s.busid, s.status) for s in statuses] == [("vusb-1", DeviceState.OFFERED)]
    lister = UsbipPeer(service)
    lister.connection_made(RecordingTransport())
    transport = lister.transport
    lister.data_received(pack_op_common(OP_REQ_DEVLIST))
    assert transport is not None and transport.written[:12] == bytes.fromhex("0111000500000000" "00000001")  # type: ignore[attr-defined]
    assert b"vusb-1" in transport.written and transport.closed  # type: ignore[attr-defined]

    peer = UsbipPeer(service)
    fake = RecordingTransport()
    peer.connection_made(fake)
    peer.data_received(pack_op_common(OP_REQ_IMPORT) + b"vusb-1".ljust(32, b"\0"))
    pump(link, exporter)
    assert fake.written[:8] == bytes.fromhex("0111000300000000") and len(fake.written) == 8 + 312
    devid = (9 << 16) | 1
    fake.written.clear()
    out = CmdSubmit(1, devid, DIR_OUT, 1, 4, data=b"ping").encode()
    read = CmdSubmit(2, devid, DIR_IN, 1, 64).encode()
    for byte in out + read:  # one byte at a time: the reader reassembles PDUs
        peer.data_received(bytes([byte]))
    pump(link, exporter)
    first, second = fake.written[:48], fake.written[48:]
    assert int.from_bytes(first[0:4], "big") == 3 and int.from_bytes(first[24:28], "big") == 4
    assert int.from_bytes(second[4:8], "big") == 2 and second[48:] == b"ping"
    assert peer.pending == {}


def test_a_return_for_no_pending_urb_closes_the_usb_channel_only(tmp_path: Any) -> None:
    service, link, _exporter, _ = setup(tmp_path)
    peer = UsbipPeer(service)
    peer.connection_made(RecordingTransport())
    peer.data_received(pack_op_common(OP_REQ_IMPORT) + b"vusb-1".ljust(32, b"\0"))
    conn = link.conn.sent[-1].conn  # type: ignore[attr-defined]
    service.handles(link, MessageReceived(USB, ChannelKind.USB, UrbReturn(conn, RetSubmit(99))))  # type: ignore[arg-type]
    assert link.conn.closed_channels and link.conn.closed_channels[0][0] == USB
    assert service.devices == {} and service.peers == {}


def test_a_peer_using_another_devid_is_cut_off(tmp_path: Any) -> None:
    service, link, exporter, _ = setup(tmp_path)
    peer = UsbipPeer(service)
    fake = RecordingTransport()
    peer.connection_made(fake)
    peer.data_received(pack_op_common(OP_REQ_IMPORT) + b"vusb-1".ljust(32, b"\0"))
    pump(link, exporter)
    peer.data_received(CmdSubmit(1, 0x12345, DIR_IN, 1, 8).encode())
    assert fake.closed and service.peers == {}


def test_second_usb_channel_is_refused(tmp_path: Any) -> None:
    service, link, _exporter, _ = setup(tmp_path)
    assert service.handles(link, ChannelOpened(9, ChannelKind.USB, by_peer=True))  # type: ignore[arg-type]
    assert link.conn.closed_channels[0][0] == 9

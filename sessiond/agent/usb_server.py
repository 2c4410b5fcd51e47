# One USB/IP peer inside the session (vhci-hcd through `usbip attach`, a
# user-space driver, or `usbip list`), speaking the server side of USB/IP on
# the agent's endpoint socket.
#
# Why a state machine that never buffers more than one PDU: the peer is the
# user's own process, but the agent still bounds what it reads before it
# allocates (command_length checks the header first), pauses reading while
# the usb channel is congested or MAX_PENDING_URBS are in flight, and checks
# every return from the client against the URBs actually pending (sequence
# number, direction, length) before writing it to the peer.
"""UsbipPeer: the server side of one USB/IP connection in the session."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, Protocol

from protocol.usb import (
    DIR_IN,
    MAX_PENDING_URBS,
    OP_COMMON_SIZE,
    OP_REP_IMPORT,
    OP_REQ_DEVLIST,
    OP_REQ_IMPORT,
    ST_NA,
    URB_HEADER_SIZE,
    BUSID_SIZE,
    CmdSubmit,
    CmdUnlink,
    ConnClose,
    ImportReply,
    ImportRequest,
    RetSubmit,
    RetUnlink,
    UrbCommand,
    check_busid,
    command_length,
    pack_devlist_reply,
    pack_op_common,
    parse_command,
    parse_op_common,
)



class PeerHost(Protocol):
    """What a peer needs of sessiond.agent.usb.UsbService; a Protocol rather
    than an import, so usb and usb_server do not import each other."""

    devices: dict[str, Any]
    log: Callable[[str], None]

    def register(self, peer: UsbipPeer) -> int | None:
        """A connection id for an importing peer, or None."""
        ...

    def unregister(self, conn: int) -> None:
        """Forget an importing peer."""
        ...

    def send(self, message: Any) -> bool:
        """Send on the usb channel; False if there is none or it is full."""
        ...

    def congested(self) -> bool:
        """True while the usb channel has too much queued."""
        ...

    def fail(self, why: str) -> None:
        """Close the usb channel because the client broke a rule."""
        ...


class UsbipPeer(asyncio.Protocol):
    """States: op (awaiting OP_REQ_*), importing (asked the client), attached (URBs flow), closed."""

    def __init__(self, service: PeerHost) -> None:
        self.service = service
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.state = "op"
        self.conn = 0
        self.busid = ""
        self.devid = 0
        self.pending: dict[int, tuple[int, int]] = {}  # seqnum -> (direction, length) of CMD_SUBMITs
        self.unlinks: dict[int, int] = {}  # seqnum of CMD_UNLINK -> seqnum it cancels
        self._paused = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._parse_guarded()

    def _parse_guarded(self) -> None:
        """Parse what the peer sent, inside the peer's guard: whatever is
        malformed (and however parsing was started -- new bytes, the
        client's import reply, credit) costs this USB/IP connection only."""
        try:
            self._parse()
        except Exception as exc:  # noqa: BLE001 - the boundary of one USB/IP connection
            self.service.log(f"usb: bad USB/IP input from a session peer: {type(exc).__name__}: {exc}")
            self.disconnect(notify=True)

    def _parse(self) -> None:
        while self.transport is not None:
            if self.state == "op":
                if len(self.buffer) < OP_COMMON_SIZE:
                    return
                code, _status = parse_op_common(bytes(self.buffer[:OP_COMMON_SIZE]))
                if code == OP_REQ_DEVLIST:
                    self._write(pack_devlist_reply(list(self.service.devices.values())))
                    self.disconnect(notify=False)
                    return
                if code != OP_REQ_IMPORT:
                    raise ValueError(f"unexpected OP code 0x{code:04x}")
                if len(self.buffer) < OP_COMMON_SIZE + BUSID_SIZE:
                    return
                raw = bytes(self.buffer[OP_COMMON_SIZE : OP_COMMON_SIZE + BUSID_SIZE])
                del self.buffer[: OP_COMMON_SIZE + BUSID_SIZE]
                self._import(raw.split(b"\0", 1)[0].decode("ascii", "replace"))
            elif self.state == "importing":
                return  # the client answers first; more input waits in the buffer
            else:
                if len(self.buffer) < URB_HEADER_SIZE:
                    return
                total = command_length(bytes(self.buffer[:URB_HEADER_SIZE]))
                if len(self.buffer) < total:
                    return
                pdu = parse_command(bytes(self.buffer[:total]))
                del self.buffer[:total]
                self._command(pdu)
                if self._paused:
                    return

    def _import(self, busid: str) -> None:
        try:
            check_busid(busid)
        except ValueError:
            busid = ""
        conn = self.service.register(self) if busid in self.service.devices else None
        if conn is None:
            self._write(pack_op_common(OP_REP_IMPORT, ST_NA))
            self.disconnect(notify=False)
            return
        self.conn, self.busid, self.state = conn, busid, "importing"
        if not self.service.send(ImportRequest(conn, busid)):
            self.disconnect(notify=False)

    def import_answered(self, reply: ImportReply) -> None:
        """The client's OP_REP_IMPORT: pass it on; URBs may flow if it succeeded."""
        if self.state != "importing":
            self.service.fail(f"unexpected IMPORT_REPLY for connection {self.conn}")
            return
        if reply.device is None or reply.device.busid != self.busid:
            self._write(pack_op_common(OP_REP_IMPORT, reply.status or ST_NA))
            self.disconnect(notify=False)
            return
        self.devid = reply.device.devid
        self.state = "attached"
        self._write(reply.encode()[4:])  # the OP_REP_IMPORT PDU, byte for byte
        self._parse_guarded()

    def _command(self, pdu: CmdSubmit | CmdUnlink) -> None:
        if pdu.devid != self.devid:
            raise ValueError(f"devid 0x{pdu.devid:08x} is not the imported device's 0x{self.devid:08x}")
        if pdu.seqnum in self.pending or pdu.seqnum in self.unlinks:
            raise ValueError(f"sequence number {pdu.seqnum} is already in flight")
        if len(self.pending) + len(self.unlinks) >= MAX_PENDING_URBS:
            raise ValueError(f"more than {MAX_PENDING_URBS} URBs in flight")
        if isinstance(pdu, CmdSubmit):
            self.pending[pdu.seqnum] = (pdu.direction, pdu.transfer_buffer_length)
        else:
            self.unlinks[pdu.seqnum] = pdu.unlink_seqnum
        if not self.service.send(UrbCommand(self.conn, pdu)):
            raise ValueError("the usb channel is gone or full")
        if self.service.congested() or len(self.pending) + len(self.unlinks) >= MAX_PENDING_URBS:
            self.pause()

    def urb_returned(self, pdu: RetSubmit | RetUnlink) -> None:
        """A return from the client: checked against what is pending, then written to the peer."""
        if isinstance(pdu, RetUnlink):
            cancelled = self.unlinks.pop(pdu.seqnum, None)
            if cancelled is None:
                self.service.fail(f"RET_UNLINK {pdu.seqnum} matches no CMD_UNLINK")
                return
            if pdu.status != 0:
                self.pending.pop(cancelled, None)  # cancelled: no RET_SUBMIT follows
        else:
            entry = self.pending.pop(pdu.seqnum, None)
            if entry is None:
                self.service.fail(f"RET_SUBMIT {pdu.seqnum} matches no pending URB")
                return
            direction, length = entry
            if pdu.actual_length > length or len(pdu.data) != (pdu.actual_length if direction == DIR_IN else 0):
                self.service.fail(f"RET_SUBMIT {pdu.seqnum}: length does not match the URB")
                return
        self._write(pdu.encode())
        self.resume()

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if (self._paused and self.transport is not None and not self.service.congested()
                and len(self.pending) + len(self.unlinks) < MAX_PENDING_URBS):  # fmt: skip
            self._paused = False
            self.transport.resume_reading()
            self._parse_guarded()

    def _write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def disconnect(self, notify: bool) -> None:
        """Close the peer's socket; tell the client when NOTIFY and the import had started."""
        if self.conn:
            self.service.unregister(self.conn)
            if notify:
                self.service.send(ConnClose(self.conn))
        self.conn, self.state = 0, "closed"
        if self.transport is not None:
            transport, self.transport = self.transport, None
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.conn:
            self.disconnect(notify=True)

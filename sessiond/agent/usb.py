# The session's USB/IP server endpoint. Devices the user's client shares
# arrive on the usb channel (already checked against the server's policy by
# sessiond); the agent lists them to USB/IP peers inside the session and, for
# an import, re-frames each USB/IP PDU between the peer's socket and the
# channel, so the driver in the session talks to the device on the client.
#
# Why a Unix socket in $XDG_RUNTIME_DIR: with `network = host` a TCP port on
# the host loopback would be reachable from every other session; the private
# 0700 tmpfs on /run/user/UID exists only inside this session's mount
# namespace. TCP tools (`usbip list -r`, `usbip attach`) reach it through
# sessiond.agent.usb_netns, which gives them a private network namespace
# whose 127.0.0.1:3240 forwards here.
"""UsbService: the agent's USB/IP endpoint over the usb channel."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import TYPE_CHECKING, Any

from protocol.connection import ChannelClosed, ChannelOpened, MessageReceived, WindowUpdated
from protocol.errors import ReasonCode, SendBufferFull
from protocol.messages import ChannelKind, Message
from protocol.usb import (
    MAX_CONNECTIONS,
    MAX_DEVICES,
    ConnClose,
    DeviceAdd,
    DeviceRemove,
    DeviceState,
    DeviceStatus,
    ImportReply,
    UrbReturn,
)

if TYPE_CHECKING:
    from sessiond.agent.link import LinkProtocol
    from sessiond.agent.usb_server import UsbipPeer

# Name of the endpoint in the session's runtime directory.
SOCKET_NAME = "usbip.sock"
# Bytes queued on the usb channel above which peers' sockets stop being read:
# a fast driver cannot make the agent buffer without bound.
CHANNEL_QUEUE_HIGH = 512 * 1024


class UsbChannelError(Exception):
    """The client broke the usb channel's rules; the channel is closed."""


class UsbService:
    """Owns the endpoint socket, the shared devices and the USB/IP peers of one session."""

    def __init__(self, loop: asyncio.AbstractEventLoop, log: Any, runtime_dir: str) -> None:
        self.loop = loop
        self.log = log
        self.socket_path = os.path.join(runtime_dir, SOCKET_NAME)
        self.link: LinkProtocol | None = None
        self.channel = 0
        self.devices: dict[str, Any] = {}
        self.peers: dict[int, UsbipPeer] = {}
        self._next_conn = 1
        self._server: asyncio.AbstractServer | None = None
        self._starting: asyncio.Task[None] | None = None

    # -- events from the link ------------------------------------------------
    def handles(self, link: LinkProtocol, event: object) -> bool:
        """Take the events of the usb channel; False for everything else."""
        if isinstance(event, ChannelOpened):
            if event.kind is not ChannelKind.USB or not event.by_peer:
                return False
            if self.channel:
                link.conn.close_channel(event.channel, ReasonCode.CHANNEL_IN_USE, "one usb channel per session")
            else:
                self._opened(link, event.channel)
            return True
        if isinstance(event, MessageReceived) and event.kind is ChannelKind.USB:
            if event.channel == self.channel and link is self.link:
                try:
                    self._message(event.message)
                except UsbChannelError as exc:
                    self.fail(str(exc))
                    return True
                except Exception as exc:  # noqa: BLE001 - the usb channel's boundary: it costs this channel only
                    self.fail(f"{type(event.message).__name__} could not be handled: {type(exc).__name__}: {exc}")
                    return True
                self._consume(event.wire_size)
            return True
        if isinstance(event, ChannelClosed) and event.channel == self.channel and link is self.link:
            self.reset()
            return True
        if isinstance(event, WindowUpdated) and event.channel == self.channel:
            self.resume_peers()
            return True
        return False

    def _opened(self, link: LinkProtocol, channel: int) -> None:
        self.link, self.channel = link, channel
        if self._server is None and self._starting is None:
            self._starting = self.loop.create_task(self._listen())

    async def _listen(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        from sessiond.agent.usb_server import UsbipPeer  # noqa: PLC0415 - with the first usb channel only

        old = os.umask(0o177)
        try:
            self._server = await self.loop.create_unix_server(lambda: UsbipPeer(self), path=self.socket_path)
        except OSError as exc:
            self.log(f"usb: cannot listen on {self.socket_path}: {exc}")
        finally:
            os.umask(old)
            self._starting = None
        self.log(f"usb: USB/IP endpoint at {self.socket_path}")

    def _message(self, message: Message) -> None:
        if isinstance(message, DeviceAdd):
            device = message.device
            if device.busid in self.devices:
                raise UsbChannelError(f"device {device.busid} is already shared")
            if len(self.devices) >= MAX_DEVICES:
                self.send(DeviceStatus(device.busid, DeviceState.REFUSED, f"at most {MAX_DEVICES} devices"))
                return
            self.devices[device.busid] = device
            self.send(DeviceStatus(device.busid, DeviceState.OFFERED, f"listed at {self.socket_path}"))
        elif isinstance(message, DeviceRemove):
            if self.devices.pop(message.busid, None) is not None:
                for peer in [p for p in self.peers.values() if p.busid == message.busid]:
                    peer.disconnect(notify=True)
                self.send(DeviceStatus(message.busid, DeviceState.REMOVED, "no longer shared"))
        elif isinstance(message, (ImportReply, UrbReturn, ConnClose)):
            peer = self.peers.get(message.conn)
            if peer is None:
                if isinstance(message, ConnClose):
                    return  # crossed with our own close
                raise UsbChannelError(f"no USB/IP connection {message.conn}")
            if isinstance(message, ConnClose):
                peer.disconnect(notify=False)
            elif isinstance(message, ImportReply):
                peer.import_answered(message)
            else:
                peer.urb_returned(message.pdu)
        else:
            raise UsbChannelError(f"{type(message).__name__} is not expected from the client")

    def _consume(self, cost: int) -> None:
        if self.link is not None and self.channel:
            self.link.conn.consumed(self.channel, cost)
            self.link.flush()

    # -- for peers -------------------------------------------------------------
    def register(self, peer: UsbipPeer) -> int | None:
        """A new id for an importing peer, or None past MAX_CONNECTIONS or without a client."""
        if self.link is None or len(self.peers) >= MAX_CONNECTIONS:
            return None
        conn = self._next_conn
        self._next_conn = self._next_conn % 0xFFFF_FFFF + 1
        self.peers[conn] = peer
        return conn

    def unregister(self, conn: int) -> None:
        """Forget an importing peer."""
        self.peers.pop(conn, None)

    def send(self, message: Message) -> bool:
        """Send on the usb channel; False if there is none or its queue is full."""
        link = self.link
        if link is None or not self.channel or link.conn.closed:
            return False
        try:
            link.conn.send(self.channel, message)
        except SendBufferFull:
            return False
        link.flush()
        return True

    def congested(self) -> bool:
        """True while the usb channel has more queued than CHANNEL_QUEUE_HIGH."""
        return self.link is not None and self.link.conn.queued_bytes(self.channel) > CHANNEL_QUEUE_HIGH

    def resume_peers(self) -> None:
        """Credit arrived: peers paused for congestion may read again."""
        if not self.congested():
            for peer in list(self.peers.values()):
                peer.resume()

    def fail(self, why: str) -> None:
        """Close the usb channel (only) because the client broke a rule."""
        self.log(f"usb: closing the usb channel: {why}")
        link, channel = self.link, self.channel
        self.reset()
        if link is not None and not link.conn.closed and channel in link.conn.open_channels():
            link.conn.close_channel(channel, ReasonCode.MALFORMED_MESSAGE, why)
            link.flush()

    def reset(self) -> None:
        """The usb channel is gone: forget the devices, drop every peer."""
        self.link, self.channel = None, 0
        self.devices.clear()
        for peer in list(self.peers.values()):
            peer.disconnect(notify=False)
        self.peers.clear()

    def stop(self) -> None:
        """Agent shutdown: close the endpoint."""
        self.reset()
        if self._server is not None:
            self._server.close()
            self._server = None
        with contextlib.suppress(OSError):
            os.unlink(self.socket_path)

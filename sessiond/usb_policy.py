# Server-side USB device policy on a session's usb channel. sessiond relays
# USB/IP traffic without reading it, except here: a device a client announces
# (DEVICE_ADD) is checked against [usb] before the session ever sees it, and
# when the policy changes every live session is checked again; a device that
# is no longer allowed is withdrawn from the agent, its USB/IP connections are
# closed on both sides and any later traffic for it is dropped (a forbidden
# device must not stay attached because it was allowed once).
#
# Why in sessiond and not the agent: the agent runs as the user; the policy is
# the administrator's, so it is enforced by the process the user cannot touch.
#
# UsbFilter is a RelayFilter plugged into the session's ChannelRelay: it sees
# the decoded USB control messages and, of URB frames, only the 4-byte
# connection id; it drops by returning False (the relay returns the credit)
# and injects through the relay (which keeps back the credit the peer
# returns for it). It knows nothing of Session.
"""UsbFilter (per session) and policy_from_config()."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable, Protocol

from twisted.logger import Logger

from protocol.messages import Message
from protocol.usb import (
    ConnClose,
    DeviceAdd,
    DeviceRemove,
    DeviceState,
    DeviceStatus,
    ImportReply,
    ImportRequest,
    UrbReturn,
    UsbDevice,
    UsbInterface,
)
from sessiond.relay import urb_conn
from sessiond.usb_descriptors import (
    DT_DEVICE,
    MAX_WATCHED_REQUESTS,
    answer_of,
    declared_classes,
    descriptor_request,
)
from sessiond.usb_rules import UsbPolicy

if TYPE_CHECKING:
    from sessiond.config_sections import UsbSection

log = Logger()


def policy_from_config(usb: UsbSection) -> UsbPolicy:
    """The policy of a loaded [usb] section."""
    return UsbPolicy(enabled=usb.enabled, allow=usb.allow, deny=usb.deny, users=dict(usb.users),
                     groups=dict(usb.groups))  # fmt: skip


class Injector(Protocol):
    """Where the filter sends messages of its own (the session's ChannelRelay)."""

    def inject_to_client(self, channel: int, message: Message) -> None: ...

    def inject_to_agent(self, channel: int, message: Message) -> None: ...


class UsbFilter:
    """The policy checkpoint on one session's usb channels (a RelayFilter)."""

    def __init__(self, relay: Injector, policy: Callable[[], UsbPolicy], user: str,
                 groups: Callable[[], tuple[str, ...]], audit: Callable[[str, str], None],
                 on_shared: Callable[[], None]) -> None:  # fmt: skip
        self.relay = relay
        self.policy = policy
        self.user = user
        self.groups = groups  # the user's group names, looked up when a device is checked
        self.audit = audit  # (event, detail) -> the audit log
        self.on_shared = on_shared  # a device is shared: start watching the policy
        self.offered: dict[tuple[int, str], UsbDevice] = {}  # (channel, busid) -> device
        self.conns: dict[tuple[int, int], str] = {}  # (channel, conn) -> busid
        self.watched: dict[tuple[int, int, int], int] = {}  # (channel, conn, seqnum) -> descriptor type

    # -- RelayFilter ---------------------------------------------------------------
    def from_client(self, channel: int, type_: int, payload: bytes, message: Message | None) -> bool:
        if message is None:  # URB_RETURN, raw: its connection id, and descriptors the session asked for
            conn = urb_conn(payload) or 0
            if type_ != UrbReturn.TYPE or (channel, conn) not in self.conns:
                return False
            return not self.watched or self._check_answer(channel, payload)
        if isinstance(message, DeviceAdd):
            device = message.device
            why = self.policy().refusal(device, self.user, self.groups())
            if why is not None:
                self._audit("usb_refused", why)
                self.relay.inject_to_client(channel, DeviceStatus(device.busid, DeviceState.REFUSED, why))
                return False
            self.offered[(channel, device.busid)] = device
            self._audit("usb_shared", f"{device.busid} {device.vid_pid}")
            self.on_shared()
        elif isinstance(message, DeviceRemove):
            self.offered.pop((channel, message.busid), None)
        elif isinstance(message, ImportReply):
            return (channel, message.conn) in self.conns
        elif isinstance(message, ConnClose):
            self.conns.pop((channel, message.conn), None)
        return True

    def from_agent(self, channel: int, type_: int, payload: bytes, message: Message | None) -> bool:
        if message is None:  # URB_COMMAND, raw
            if (channel, urb_conn(payload) or 0) not in self.conns:
                return False
            asked = descriptor_request(payload)
            if asked is not None:
                conn, seqnum, kind = asked
                if len(self.watched) >= MAX_WATCHED_REQUESTS:
                    del self.watched[next(iter(self.watched))]
                self.watched[(channel, conn, seqnum)] = kind
            return True
        if isinstance(message, ImportRequest):
            if (channel, message.busid) not in self.offered:
                self.relay.inject_to_agent(channel, ConnClose(message.conn))
                return False
            self.conns[(channel, message.conn)] = message.busid
        elif isinstance(message, ConnClose):
            self.conns.pop((channel, message.conn), None)
        return True

    def channel_closed(self, channel: int) -> None:
        self.offered = {key: device for key, device in self.offered.items() if key[0] != channel}
        self.conns = {key: busid for key, busid in self.conns.items() if key[0] != channel}
        self.watched = {key: kind for key, kind in self.watched.items() if key[0] != channel}

    # -- what the device really is ---------------------------------------------------
    def _check_answer(self, channel: int, payload: bytes) -> bool:
        """A URB_RETURN the filter may be waiting for: if it answers a watched
        GET_DESCRIPTOR, the classes it declares must be ones the client
        declared, and allowed; else the device is revoked and the answer dropped."""
        answer = answer_of(payload)
        if answer is None:
            return True
        conn, seqnum, data = answer
        kind = self.watched.pop((channel, conn, seqnum), None)
        busid = self.conns.get((channel, conn))
        device = self.offered.get((channel, busid)) if busid is not None else None
        if kind is None or busid is None or device is None:
            return True
        real = declared_classes(kind, data)
        claimed = set(device.classes()) | {0}
        hidden = sorted(set(real) - claimed)
        if hidden:
            why = (f"USB device {device.vid_pid} declared class(es) "
                   f"{', '.join(f'{c:02x}' for c in sorted(claimed - {0})) or '00'} but its descriptors say "
                   f"{', '.join(f'{c:02x}' for c in hidden)}")  # fmt: skip
            self._revoke(channel, busid, why)
            return False
        if kind == DT_DEVICE:
            actual = dataclasses.replace(device, device_class=real[0]) if real else device
        else:
            actual = dataclasses.replace(device, interfaces=tuple(UsbInterface(c, 0, 0) for c in real[:32]))
        why_not = self.policy().refusal(actual, self.user, self.groups())
        if why_not is not None:
            self._revoke(channel, busid, why_not)
            return False
        return True

    def _revoke(self, channel: int, busid: str, why: str) -> None:
        """Withdraw one offered device: its USB/IP connections closed on both sides, the client told why."""
        if self.offered.pop((channel, busid), None) is None:
            return
        self._audit("usb_revoked", why)
        for (ch, conn), owner in list(self.conns.items()):
            if ch == channel and owner == busid and self.conns.pop((ch, conn), None) is not None:
                self.relay.inject_to_agent(channel, ConnClose(conn))
                self.relay.inject_to_client(channel, ConnClose(conn))
        self.relay.inject_to_agent(channel, DeviceRemove(busid))
        self.relay.inject_to_client(channel, DeviceStatus(busid, DeviceState.REVOKED, why))

    # -- policy changes --------------------------------------------------------------
    def recheck(self) -> int:
        """Apply the current policy to every offered device; returns how many were detached."""
        policy, detached = self.policy(), 0
        for (channel, busid), device in list(self.offered.items()):
            why = policy.refusal(device, self.user, self.groups())
            if why is None or (channel, busid) not in self.offered:
                continue  # allowed, or forgotten meanwhile (its channel failed while revoking another)
            detached += 1
            self._revoke(channel, busid, why)
        return detached

    def _audit(self, event: str, detail: str) -> None:
        log.info("{user}: {event}: {detail}", user=self.user, event=event, detail=detail)
        self.audit(event, detail)

# Server-side USB device policy. sessiond relays the usb channel without
# touching USB/IP traffic, except here: a device a client announces
# (DEVICE_ADD) is checked against [usb] before the session ever sees it, and
# when the policy changes every live session is checked again; a device that
# is no longer allowed is withdrawn from the agent, its USB/IP connections are
# closed on both sides and any later traffic for it is dropped (a forbidden
# device must not stay attached because it was allowed once).
#
# Why in sessiond and not the agent: the agent runs as the user; the policy is
# the administrator's, so it is enforced by the process the user cannot touch.
"""UsbPolicy (parsed from [usb]), UsbGate (per session) and UsbPolicyWatcher."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from twisted.internet import task
from twisted.logger import Logger

from protocol.connection import frame_cost
from protocol.messages import Message
from protocol.usb import (
    ConnClose,
    DeviceAdd,
    DeviceRemove,
    DeviceState,
    DeviceStatus,
    ImportReply,
    ImportRequest,
    UrbCommand,
    UrbReturn,
    UsbDevice,
)

log = Logger()

_RULE_RE = re.compile(r"\*|class:[0-9a-fA-F]{2}|[0-9a-fA-F]{4}:(?:[0-9a-fA-F]{4}|\*)")


def parse_rules(value: str) -> tuple[str, ...]:
    """Device rules: `*`, `class:XX` (hex), `VVVV:PPPP` or `VVVV:*`; ValueError on anything else."""
    rules = tuple(word.lower() for word in value.split())
    for rule in rules:
        if not _RULE_RE.fullmatch(rule):
            raise ValueError(f"bad device rule {rule!r}: want *, class:XX, VVVV:PPPP or VVVV:*")
    return rules


def parse_principal_rules(value: str) -> dict[str, tuple[str, ...]]:
    """`NAME: RULES; NAME: RULES` (users or groups) -> {name: rules}."""
    out: dict[str, tuple[str, ...]] = {}
    for entry in filter(None, (part.strip() for part in value.split(";"))):
        name, sep, rules = entry.partition(":")
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            raise ValueError(f"bad entry {entry!r}: want NAME: RULES")
        out[name.strip()] = out.get(name.strip(), ()) + parse_rules(rules)
    return out


def _matches(rule: str, device: UsbDevice, cls: int | None) -> bool:
    if rule == "*":
        return True
    if rule.startswith("class:"):
        return cls is not None and int(rule[6:], 16) == cls
    vendor, product = rule.split(":")
    return int(vendor, 16) == device.id_vendor and product in ("*", f"{device.id_product:04x}")


@dataclass(frozen=True)
class UsbPolicy:
    """Which devices may be redirected, for whom. Deny beats allow."""

    enabled: bool = True
    allow: tuple[str, ...] = ("*",)
    deny: tuple[str, ...] = ()
    users: dict[str, tuple[str, ...]] = field(default_factory=dict)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Any) -> UsbPolicy:
        """The [usb] section of a loaded Config."""
        usb = config.section("usb")
        return cls(enabled=bool(usb["enabled"]), allow=usb["allow"], deny=usb["deny"], users=usb["users"],
                   groups=usb["groups"])  # fmt: skip

    def refusal(self, device: UsbDevice, user: str, groups: tuple[str, ...]) -> str | None:
        """None if USER may redirect DEVICE, else the reason, for the user and the audit log."""
        what = f"USB device {device.vid_pid} (class {', '.join(f'{c:02x}' for c in device.classes()) or '00'})"
        if not self.enabled:
            return "USB redirection is disabled on this server"
        classes = device.classes() or (0,)
        for rule in self.deny:
            if any(_matches(rule, device, c) for c in classes) or _matches(rule, device, None):
                return f"{what} is denied by the server's USB policy (rule {rule})"
        rules = self.allow + self.users.get(user, ()) + tuple(r for g in groups for r in self.groups.get(g, ()))
        if any(_matches(r, device, None) for r in rules if not r.startswith("class:")):
            return None
        if all(any(_matches(r, device, c) for r in rules) for c in classes):
            return None
        return f"{what} is not allowed by the server's USB policy for {user}"


class UsbGate:
    """The policy checkpoint on one session's usb channel. Hooks return False to drop a message
    (its credit is then returned to the sender here)."""

    def __init__(self, session: Any, policy: Callable[[], UsbPolicy]) -> None:
        self.session = session
        self.policy = policy
        self.offered: dict[tuple[int, str], UsbDevice] = {}  # (channel, busid) -> device
        self.conns: dict[tuple[int, int], str] = {}  # (channel, conn) -> busid
        self.debt_client: dict[int, int] = {}  # bytes we injected toward the client, per channel
        self.debt_agent: dict[int, int] = {}

    def _groups(self) -> tuple[str, ...]:
        import grp

        names = []
        for gid in self.session.account.groups:
            try:
                names.append(grp.getgrgid(gid).gr_name)
            except KeyError:
                continue
        return tuple(names)

    # -- hooks called by Session ---------------------------------------------------
    def from_client(self, channel: int, message: Message) -> bool:
        if isinstance(message, DeviceAdd):
            device = message.device
            why = self.policy().refusal(device, self.session.account.name, self._groups())
            if why is not None:
                self._audit("usb_refused", why)
                self._credit_client(channel, message)
                self._to_client(channel, DeviceStatus(device.busid, DeviceState.REFUSED, why))
                return False
            self.offered[(channel, device.busid)] = device
            self._audit("usb_shared", f"{device.busid} {device.vid_pid}")
            self.session.supervisor.usb_watch()
        elif isinstance(message, DeviceRemove):
            self.offered.pop((channel, message.busid), None)
        elif isinstance(message, (ImportReply, UrbReturn)):
            if (channel, message.conn) not in self.conns:
                self._credit_client(channel, message)
                return False
        elif isinstance(message, ConnClose):
            self.conns.pop((channel, message.conn), None)
        return True

    def from_agent(self, channel: int, message: Message) -> bool:
        if isinstance(message, ImportRequest):
            if (channel, message.busid) not in self.offered:
                self._credit_agent(channel, message)
                self._to_agent(channel, ConnClose(message.conn))
                return False
            self.conns[(channel, message.conn)] = message.busid
        elif isinstance(message, UrbCommand):
            if (channel, message.conn) not in self.conns:
                self._credit_agent(channel, message)
                return False
        elif isinstance(message, ConnClose):
            self.conns.pop((channel, message.conn), None)
        return True

    def client_credit(self, channel: int, increment: int) -> int:
        """Credit from the client to pass on to the agent, minus what our own injections used."""
        return _pay(self.debt_client, channel, increment)

    def agent_credit(self, channel: int, increment: int) -> int:
        """Credit from the agent to pass on to the client, minus what our own injections used."""
        return _pay(self.debt_agent, channel, increment)

    def channel_closed(self, channel: int) -> None:
        for table in (self.offered, self.conns):
            for key in [k for k in table if k[0] == channel]:
                del table[key]
        self.debt_client.pop(channel, None)
        self.debt_agent.pop(channel, None)

    def recheck(self) -> int:
        """Apply the current policy to every offered device; returns how many were detached."""
        policy, detached = self.policy(), 0
        for (channel, busid), device in list(self.offered.items()):
            why = policy.refusal(device, self.session.account.name, self._groups())
            if why is None:
                continue
            detached += 1
            del self.offered[(channel, busid)]
            self._audit("usb_revoked", why)
            for (ch, conn), owner in list(self.conns.items()):
                if ch == channel and owner == busid:
                    del self.conns[(ch, conn)]
                    self._to_agent(channel, ConnClose(conn))
                    self._to_client(channel, ConnClose(conn))
            self._to_agent(channel, DeviceRemove(busid))
            self._to_client(channel, DeviceStatus(busid, DeviceState.REVOKED, why))
        return detached

    # -- internals ---------------------------------------------------------------
    def _audit(self, event: str, detail: str) -> None:
        s = self.session
        log.info("session {session}: {event}: {detail}", session=s.id, event=event, detail=detail)
        s.registry.audit(event, user=s.account.name, session=s.id, detail=detail)

    def _credit_client(self, channel: int, message: Message) -> None:
        if self.session.client is not None:
            self.session.client.grant_to_client(channel, frame_cost(message))

    def _credit_agent(self, channel: int, message: Message) -> None:
        link = self.session.link
        if link is not None and channel in self.session._link_open:
            link.conn.grant(channel, frame_cost(message))
            link.flush()

    def _to_client(self, channel: int, message: Message) -> None:
        client = self.session.client
        if client is not None:
            self.debt_client[channel] = self.debt_client.get(channel, 0) + frame_cost(message)
            client.relay_to_client(channel, message)

    def _to_agent(self, channel: int, message: Message) -> None:
        link = self.session.link
        if link is not None and channel in self.session._link_open:
            self.debt_agent[channel] = self.debt_agent.get(channel, 0) + frame_cost(message)
            link.conn.send(channel, message)
            link.flush()


def _pay(debts: dict[int, int], channel: int, increment: int) -> int:
    owed = debts.get(channel, 0)
    paid = min(owed, increment)
    if paid:
        debts[channel] = owed - paid
    return increment - paid


class UsbPolicyWatcher:
    """Re-reads the config file while devices are shared; on a [usb] change, re-checks every session."""

    def __init__(self, config: Any, reactor: Any, sessions: Callable[[], list[Any]]) -> None:
        self.path = config.source
        self.policy = UsbPolicy.from_config(config)
        self.interval = float(config.get("usb", "recheck_interval"))
        self.reactor = reactor
        self.sessions = sessions
        self._stamp = self._stat()
        self._loop: task.LoopingCall | None = None

    def current(self) -> UsbPolicy:
        """The policy in force."""
        return self.policy

    def _stat(self) -> tuple[float, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime, st.st_size

    def ensure_running(self) -> None:
        """Start polling (a device is shared somewhere); idempotent."""
        if self._loop is None and self.reactor is not None and os.path.isfile(self.path):
            self._loop = task.LoopingCall(self.check)
            self._loop.clock = self.reactor
            self._loop.start(self.interval, now=False)

    def check(self) -> int:
        """Reload on change and re-check; returns the number of devices detached."""
        from sessiond.config import ConfigError, load_config

        stamp = self._stat()
        if stamp == self._stamp:
            return 0
        self._stamp = stamp
        try:
            policy = UsbPolicy.from_config(load_config(self.path))
        except ConfigError as exc:
            log.error("USB policy not reloaded: {why}", why=str(exc))
            return 0
        if policy == self.policy:
            return 0
        self.policy = policy
        log.info("USB policy reloaded from {path}; re-checking live sessions", path=self.path)
        return sum(s.usb.recheck() for s in self.sessions())

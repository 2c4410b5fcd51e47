# The administrator's USB device rules: their syntax (parsed by the config
# loader), the decision for one device and user, and the watcher that
# reloads them while devices are shared. Nothing here imports sessiond.config
# (the watcher is handed a loader), so config can import the parsers without
# an import circle; and nothing of Twisted at import time (the watcher loads
# it when it starts), so loading the config does not cost the daemon Twisted's
# imports before its listening socket is bound (sessiond/early_listen.py).
"""UsbPolicy, the [usb] rule parsers and UsbPolicyWatcher."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from protocol.usb import UsbDevice

if TYPE_CHECKING:
    from twisted.internet import task

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


class UsbPolicyWatcher:
    """Re-reads the config file while devices are shared; on a [usb] change, re-checks every session."""

    def __init__(self, path: str, policy: UsbPolicy, interval: float, reactor: Any,
                 load: Callable[[str], UsbPolicy], recheck: Callable[[], int]) -> None:  # fmt: skip
        self.path = path
        self.policy = policy
        self.interval = interval
        self.reactor = reactor
        self.load = load  # PATH -> its policy; raises ValueError if the file is invalid
        self.recheck = recheck  # applies the current policy everywhere; returns devices detached
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
            from twisted.internet import task

            self._loop = task.LoopingCall(self.check)
            self._loop.clock = self.reactor
            self._loop.start(self.interval, now=False)

    def check(self) -> int:
        """Reload on change and re-check; returns the number of devices detached."""
        stamp = self._stat()
        if stamp == self._stamp:
            return 0
        self._stamp = stamp
        from twisted.logger import Logger

        log = Logger(namespace=__name__)
        try:
            policy = self.load(self.path)
        except ValueError as exc:
            log.error("USB policy not reloaded: {why}", why=str(exc))
            return 0
        if policy == self.policy:
            return 0
        self.policy = policy
        log.info("USB policy reloaded from {path}; re-checking live sessions", path=self.path)
        return self.recheck()

# Shared by the farm integration tests (test_farm*.py): three real sessiond
# hosts, each in its own network namespace (tests/netns.py) with its own
# address, registered in a real etcd that listens on the host side, where the
# clients run too. Helpers to start a host, wait for a condition a user or an
# admin would observe, and find which host runs a session.
"""Farm test helpers: Farm (namespaces + hosts), start_host(), wait_for(), holder(), login()."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from etcdtest import Cluster
from netns import FarmNet
from svtest import Server, TestUser, start_sessiond, stop_sessiond, svclient

HOSTS = ("a", "b", "c")
# Short leases keep host-loss tests quick (etcd's own floor is about 2 s).
LEASE_TTL = 3
# Seconds a redirect ticket stays redeemable in these tests ([farm] ticket_ttl).
TICKET_TTL = 3


@dataclass
class Farm:
    """Three hosts in namespaces of NET on ETCD; servers by host name."""

    tmp: str
    net: FarmNet
    etcd: Cluster
    servers: dict[str, Server] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    lease_ttl: int = LEASE_TTL
    endpoints: list[str] = field(default_factory=list)  # etcd endpoints in the hosts' order (default: ETCD's)
    session: str = ""  # more [session] lines for every host

    def __getitem__(self, name: str) -> Server:
        return self.servers[name]

    def start_host(self, name: str, capacity: int = 3) -> Server:
        """Start (or restart, same state and port) host NAME inside its namespace."""
        ns = self.net.namespaces[name]
        # Inside a fresh namespace of our own every port is free: pick one, keep it across restarts.
        port = self.ports.setdefault(name, random.randrange(20000, 60000))
        farm = (f"[farm]\netcd = {','.join(self.endpoints or self.etcd.endpoints)}\nhost_id = {name}\n"
                f"advertise = {ns.address}:{port}\ncapacity = {capacity}\nlease_ttl = {self.lease_ttl}\n"
                f"ticket_ttl = {TICKET_TTL}\nprefix = /{os.path.basename(self.tmp)}/\n")  # fmt: skip
        state = os.path.join(self.tmp, name)
        os.makedirs(state, exist_ok=True)
        server = start_sessiond(state, extra=farm, port=port, host=ns.address, wrap=tuple(ns.exec_prefix()),
                                session=self.session)  # fmt: skip
        self.servers[name] = server
        return server

    def start(self) -> None:
        """All three hosts, returning once each has joined the farm."""
        for name in HOSTS:
            self.start_host(name)
        wait_for(lambda: all("registered under lease" in s.log() for s in self.servers.values()), 30,
                 "hosts to join")  # fmt: skip

    def stop(self) -> None:
        for server in self.servers.values():
            stop_sessiond(server)

    def holder(self, session: str) -> list[str]:
        """The hosts whose log shows SESSION starting (exactly one when all is well)."""
        return [name for name, server in self.servers.items() if f"session {session} starting" in server.log()]

    def logoff(self, user: TestUser, session: str) -> None:
        """Log USER's SESSION off on whichever host runs it."""
        for name in self.holder(session):
            svclient(self.servers[name], user, "logoff", resume=False)


def wait_for(check: Callable[[], object], seconds: float, what: str) -> None:
    """Poll CHECK until true; fail the test after SECONDS."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def login(server: Server, user: TestUser) -> str:
    """Log USER in through SERVER with a password (following a redirect); the session id."""
    out = svclient(server, user, "login", resume=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def ended(server: Server, session: str) -> bool:
    """Whether SERVER's log shows SESSION ended."""
    return any(session in line and ("ended" in line or "exited" in line) for line in server.log().splitlines())

# The one interface the broker talks to for "where does this user's session
# live, and where should a new one go". The etcd directory implements it for
# a farm; the single-host SQLite registry will be wrapped behind it (see
# docs/farm.md, "Integration plan"), so the broker never asks which it has.
# Methods are coroutines because a farm answers over the network; a local
# implementation simply returns at once.
"""FarmDirectory: the session-directory interface, its records and errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

SessionState = Literal["live", "lost"]


class FarmError(Exception):
    """Base of the directory's errors; the message is meant for users and admins."""


class FarmUnavailable(FarmError):
    """This host cannot reach etcd (or lost its lease): it refuses new placements rather than risk a duplicate."""


class FarmFull(FarmError):
    """No live, non-draining host has capacity left."""


class FarmConflict(FarmError):
    """A claim kept losing races (heavy contention); the login may be retried."""


@dataclass(frozen=True)
class HostLoad:
    """What a host publishes about itself a few times a minute."""

    sessions: int
    mem_available: int  # bytes (MemAvailable)
    cpu_load: float  # 1-minute load average divided by the number of CPUs
    capacity: int  # most sessions the admin allows on this host


@dataclass(frozen=True)
class HostInfo:
    """A live host as other hosts see it."""

    host_id: str
    advertise: str  # HOST:PORT clients connect to
    lease: int  # the lease of this incarnation (changes when the host re-registers)
    load: HostLoad
    placed: int  # sessions counted in the directory (authoritative for capacity)
    draining: bool
    updated: float  # when the load was published (host clock)
    fingerprint: str = ""  # SHA-256 of the host's TLS certificate, for redirects (docs/farm.md)
    adopting: bool = False  # re-registered and still taking back its sessions: no placements yet


@dataclass(frozen=True)
class SessionPlacement:
    """Where a user's session lives; STATE is "lost" when its host's lease is gone."""

    user: str
    session_id: str
    host_id: str
    advertise: str
    lease: int
    claimed: float
    state: SessionState


@dataclass(frozen=True)
class Claim:
    """The outcome of place(): the user's session, whether it already existed, and
    the lost session it replaces (so the login can say what happened)."""

    placement: SessionPlacement
    existing: bool
    replaced_lost: SessionPlacement | None = None


class FarmDirectory(Protocol):
    """Session directory shared by the hosts of a farm (or one host's own registry)."""

    host_id: str

    async def start(self) -> None:
        """Register this host (under a lease) and begin publishing load and keeping the lease alive."""
        ...

    async def stop(self) -> None:
        """Leave the farm: stop the keepalive and revoke the lease (this host vanishes at once)."""
        ...

    def can_place(self) -> bool:
        """Whether this host is in contact with the directory (False: place() would raise FarmUnavailable)."""
        ...

    async def publish_load(self, load: HostLoad) -> None:
        """Publish this host's load now (also done periodically by the directory)."""
        ...

    async def place(self, user: str, session_id: str) -> Claim:
        """USER's live session if there is one, else claim SESSION_ID for USER on the best host.

        Exactly one of several concurrent calls for one user (on any host) makes
        the claim; the others get it back with existing=True. Raises
        FarmUnavailable, FarmFull or FarmConflict.
        """
        ...

    async def lookup(self, user: str) -> SessionPlacement | None:
        """Where USER's session is (live or lost), or None."""
        ...

    async def release(self, user: str, session_id: str) -> bool:
        """The session ended: free USER's key and the host's slot; False if it was no longer theirs."""
        ...

    async def adopt(self, user: str, session_id: str) -> bool:
        """After this host re-registered, take back a session it still runs; False if someone replaced it."""
        ...

    async def hosts(self) -> list[HostInfo]:
        """Live hosts with their load and state."""
        ...

    async def sessions(self) -> list[SessionPlacement]:
        """Every session in the directory with its host and state."""
        ...

    async def drain(self, host_id: str, draining: bool = True) -> None:
        """Stop (or resume) new placements on HOST_ID; its sessions go on."""
        ...

    async def wait_drained(self, host_id: str) -> None:
        """Fires once HOST_ID has no session left."""
        ...

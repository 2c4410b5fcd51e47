# Placement picks the host for a new session from the hosts' published load.
# The count of sessions comes from the directory's per-host counter (the one
# the claim transaction checks against capacity), not from the load a host
# published up to a refresh period ago; CPU and memory come from the
# published load. Pure functions: the directory reads, this decides.
"""Placement: the least-loaded host with capacity, by a documented score."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sessiond.farm.directory import HostInfo

# Score weights (lower score wins). The fill fraction dominates, so hosts
# fill evenly relative to their capacity; CPU load and free memory break
# the near-ties that a fill fraction alone cannot (two half-full hosts, one
# of them busy compiling).
WEIGHT_FILL = 0.6
WEIGHT_CPU = 0.25
WEIGHT_MEMORY = 0.15
# A load average per CPU at or above this counts as fully busy.
CPU_SATURATION = 2.0


@dataclass(frozen=True)
class Choice:
    """The chosen host and its score (for logs and the admin API)."""

    host: HostInfo
    score: float


def eligible(host: HostInfo) -> bool:
    """A host that may take a new session: not draining or adopting, below its capacity."""
    return not host.draining and not host.adopting and host.load.capacity > 0 and host.placed < host.load.capacity


def score(host: HostInfo, max_mem_available: int) -> float:
    """0 (idle, most memory) .. 1 (full, saturated, least memory)."""
    fill = host.placed / host.load.capacity
    cpu = min(max(host.load.cpu_load, 0.0), CPU_SATURATION) / CPU_SATURATION
    memory = 1.0 - (host.load.mem_available / max_mem_available if max_mem_available > 0 else 1.0)
    return WEIGHT_FILL * fill + WEIGHT_CPU * cpu + WEIGHT_MEMORY * max(0.0, memory)


def _tie_break(user: str, host_id: str) -> bytes:
    # Rendezvous order: placers racing with equal scores spread over hosts
    # instead of all colliding on the same one.
    return hashlib.sha256(f"{user}\0{host_id}".encode()).digest()


def rank(user: str, hosts: Sequence[HostInfo]) -> list[Choice]:
    """Eligible hosts for USER, best first."""
    candidates = [h for h in hosts if eligible(h)]
    top_mem = max((h.load.mem_available for h in candidates), default=0)
    scored = [Choice(h, score(h, top_mem)) for h in candidates]
    scored.sort(key=lambda c: (round(c.score, 6), _tie_break(user, c.host.host_id)))
    return scored


def choose(user: str, hosts: Sequence[HostInfo]) -> Choice | None:
    """The best host for USER's new session, or None when every host is full or draining."""
    ranked = rank(user, hosts)
    return ranked[0] if ranked else None

"""Placement: eligibility (capacity, draining) and the documented score."""

from __future__ import annotations

from sessiond.farm.directory import HostInfo, HostLoad
from sessiond.farm.placement import choose, eligible, rank, score


def host(name: str, placed: int = 0, capacity: int = 10, cpu: float = 0.0, mem: int = 8 << 30,
         draining: bool = False) -> HostInfo:  # fmt: skip
    return HostInfo(name, f"{name}:4443", 1, HostLoad(placed, mem, cpu, capacity), placed, draining, 0.0)


def test_full_draining_and_zero_capacity_hosts_are_not_eligible() -> None:
    assert not eligible(host("a", placed=10))
    assert not eligible(host("a", draining=True))
    assert not eligible(host("a", capacity=0))
    assert eligible(host("a", placed=9))
    assert choose("u", [host("a", placed=10), host("b", draining=True)]) is None


def test_least_filled_host_wins_relative_to_capacity() -> None:
    # 5 of 20 (25 %) beats 2 of 4 (50 %) although it holds more sessions.
    assert choose("u", [host("small", placed=2, capacity=4), host("big", placed=5, capacity=20)]).host.host_id == "big"


def test_cpu_and_memory_break_near_ties() -> None:
    busy, idle = host("busy", placed=3, cpu=1.5), host("idle", placed=3, cpu=0.1)
    assert choose("u", [busy, idle]).host.host_id == "idle"
    low, high = host("low", placed=3, mem=1 << 30), host("high", placed=3, mem=8 << 30)
    assert choose("u", [low, high]).host.host_id == "high"


def test_score_bounds() -> None:
    assert score(host("a"), 8 << 30) == 0.0
    assert abs(score(host("a", placed=10, cpu=9.0, mem=0), 8 << 30) - 1.0) < 1e-9


def test_equal_hosts_are_ranked_per_user_so_racing_placers_spread() -> None:
    hosts = [host(f"h{i}") for i in range(3)]
    firsts = {rank(f"user{n}", hosts)[0].host.host_id for n in range(30)}
    assert firsts == {"h0", "h1", "h2"}
    assert rank("alice", hosts) == rank("alice", list(reversed(hosts)))

# A warm slot's cgroup: the slot's processes live in it from their start,
# and the login that claims the slot renames it to the session's.
#
# Why: joining a cgroup (writing a pid to cgroup.procs) makes the kernel
# wait for an RCU grace period (cgroup_threadgroup_rwsem): 6-20 ms per login
# on this host, between PAM's yes and the agent's first instruction, where
# nothing else can run. A slot that joins a cgroup of its own while it
# waits, and a claim that renames that cgroup to the session's id, moves no
# process at the claim: a rename is one directory operation per hierarchy
# (~0.04 ms). The kernel renames v1 cgroups only (v2 refuses), so on a v2
# host slots wait where they were spawned and join at the claim, as before.
#
# A slot cgroup carries no limits, like sessiond's own cgroup where slots
# used to wait: until its claim it holds only root's slot code and the
# slot's X server. The claim writes the session's limits after the rename,
# exactly as into a new cgroup. A slot cgroup whose slot ends unclaimed is
# removed then; empty ones a killed daemon left behind are removed when a
# pool starts (a cgroup with processes, another daemon's live slot, stays).
"""create_slot_cgroup(), adopt_slot_cgroup(), remove_slot_cgroup(), remove_stale_slot_cgroups()."""

from __future__ import annotations

import contextlib
import secrets

from isolation.cgroups import CgroupBackend, CgroupError, CgroupV1, detect_backend
from isolation.limits import SessionLimits
from isolation.slot import SLOT_CGROUP_PREFIX as SLOT_PREFIX
from isolation.slot import SLOT_CGROUP_RE


class SlotCgroupError(ValueError):
    """A slot cgroup name that create_slot_cgroup() could not have made."""


def check_slot_cgroup(name: object) -> str:
    """NAME if it is a slot cgroup's name, else SlotCgroupError."""
    if not isinstance(name, str) or not SLOT_CGROUP_RE.fullmatch(name):
        raise SlotCgroupError(f"invalid slot cgroup {name!r}: want {SLOT_PREFIX} and 16 hex digits")
    return name


def _backend(backend: CgroupBackend | None) -> CgroupBackend:
    return backend if backend is not None else detect_backend()


def create_slot_cgroup(backend: CgroupBackend | None = None) -> str | None:
    """A new, empty slot cgroup without limits; its name, or None where a claim could not
    rename it (a v2 host). CgroupError if it cannot be made."""
    chosen = _backend(backend)
    if not isinstance(chosen, CgroupV1):
        return None
    name = SLOT_PREFIX + secrets.token_hex(8)
    chosen.create(name, SessionLimits())
    return name


def adopt_slot_cgroup(name: str, session_id: str, backend: CgroupBackend | None = None) -> bool:
    """Make slot cgroup NAME the session's cgroup, its processes in it; False if it cannot
    be (then the slot joins the session's own cgroup at the claim)."""
    try:
        _backend(backend).rename(check_slot_cgroup(name), session_id)
    except CgroupError:
        return False
    return True


def remove_slot_cgroup(name: str, backend: CgroupBackend | None = None) -> None:
    """Kill what is left in slot cgroup NAME and remove it; CgroupError if it cannot be."""
    _backend(backend).remove(check_slot_cgroup(name))


def remove_stale_slot_cgroups(backend: CgroupBackend | None = None) -> int:
    """Remove the empty slot cgroups under the sessions' parent (a killed daemon's);
    returns how many. Slot cgroups with processes are another daemon's and stay."""
    try:
        chosen = _backend(backend)
    except CgroupError:
        return 0
    removed = 0
    for name in chosen.names():
        if not SLOT_CGROUP_RE.fullmatch(name):
            continue
        with contextlib.suppress(CgroupError, OSError):
            if not chosen.pids(name):
                chosen.remove_empty(name)
                removed += 1
    return removed

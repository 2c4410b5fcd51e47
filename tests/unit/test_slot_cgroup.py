"""Slot cgroups (isolation/slot_cgroup.py): made per X slot, renamed to the session's at the
claim (all hierarchies or none), removed with an unclaimed slot, stale empty ones removed at
the pool's start; the backends' rename, membership and listing on the dict cgroupfs."""

from __future__ import annotations

import pytest
from test_isolation_cgroups import V1_CONTROLLERS, FakeFS, v1_fs
from test_warm_pool_x import NAMESPACES, SCREEN
from test_warm_start_units import PYTHON, FakeReactor
from twisted.python.failure import Failure

from isolation.cgroups import PARENT, CgroupError, CgroupV1, CgroupV2
from isolation.limits import SessionLimits
from isolation.slot import parse_slot_line
from isolation.slot_cgroup import (
    SlotCgroupError,
    adopt_slot_cgroup,
    check_slot_cgroup,
    create_slot_cgroup,
    remove_slot_cgroup,
    remove_stale_slot_cgroups,
)
from sessiond.warm_pool import SlotX, WarmPool
from sessiond.x_uids import XUidPool, XUidRange


class RenamingFS(FakeFS):
    """FakeFS with rename: a directory and everything under it move; FAIL_IN names a path
    whose rename fails (EPERM, as a v2 kernel answers)."""

    def __init__(self, files: dict[str, str] | None = None, fail_in: str = "") -> None:
        super().__init__(files)
        self.fail_in = fail_in
        self.renames: list[tuple[str, str]] = []

    def rename(self, source: str, target: str) -> None:
        if self.fail_in and self.fail_in in source:
            raise PermissionError(1, "Operation not permitted")
        if target in self.dirs:
            raise FileExistsError(17, "File exists")
        self.renames.append((source, target))
        self.dirs = {target + d[len(source):] if d == source or d.startswith(source + "/") else d for d in self.dirs}
        self.files = {(target + f[len(source):] if f.startswith(source + "/") else f): v for f, v in self.files.items()}


def v1() -> tuple[RenamingFS, CgroupV1]:
    fs = RenamingFS(v1_fs().files)
    return fs, CgroupV1("/cg", fs)


def test_a_slot_cgroup_is_made_without_limits_in_every_v1_hierarchy() -> None:
    fs, backend = v1()
    name = create_slot_cgroup(backend)
    assert name is not None and check_slot_cgroup(name) == name
    assert {f"/cg/{c}/{PARENT}/{name}" for c in V1_CONTROLLERS} <= fs.dirs
    written = {path.rsplit("/", 1)[1] for path, _text in fs.writes if f"/{name}/" in path}
    assert written == {"cpu.shares"}, "no memory, pids or CPU ceiling before a user's limits are known"
    assert create_slot_cgroup(backend) != name


def test_v2_hosts_make_no_slot_cgroup() -> None:
    fs = RenamingFS({"/cg/cgroup.controllers": "cpu memory pids"})
    assert create_slot_cgroup(CgroupV2("/cg", fs)) is None and not fs.dirs


def test_the_claim_renames_every_hierarchy_with_its_processes_then_writes_the_users_limits() -> None:
    fs, backend = v1()
    name = create_slot_cgroup(backend)
    assert name is not None
    fs.files[f"/cg/pids/{PARENT}/{name}/cgroup.procs"] = "4242\n"
    assert adopt_slot_cgroup(name, "s1", backend)
    assert not any(f"/{name}" in d for d in fs.dirs)
    assert backend.pids("s1") == [4242] and len(fs.renames) == len(V1_CONTROLLERS)
    backend.create("s1", SessionLimits(memory_bytes=256 << 20, pids=100))
    assert fs.files[f"/cg/memory/{PARENT}/s1/memory.limit_in_bytes"] == str(256 << 20)
    assert fs.files[f"/cg/pids/{PARENT}/s1/pids.max"] == "100"


def test_a_failed_rename_renames_back_what_it_did_and_reports_false() -> None:
    fs, backend = v1()
    name = create_slot_cgroup(backend)
    assert name is not None
    fs.fail_in = f"/cg/cpu/{PARENT}/{name}"  # the third hierarchy refuses
    assert not adopt_slot_cgroup(name, "s1", backend)
    assert {f"/cg/{c}/{PARENT}/{name}" for c in V1_CONTROLLERS} <= fs.dirs
    assert not any(d.endswith("/s1") for d in fs.dirs)
    with pytest.raises(CgroupError, match="cannot rename"):
        backend.rename(name, "s1")


def test_a_rename_onto_an_existing_session_is_refused_whole() -> None:
    fs, backend = v1()
    name = create_slot_cgroup(backend)
    backend.create("s1", SessionLimits())
    assert name is not None and not adopt_slot_cgroup(name, "s1", backend)
    assert {f"/cg/{c}/{PARENT}/{name}" for c in V1_CONTROLLERS} <= fs.dirs


@pytest.mark.parametrize("bad", ["s1", "../s1", "slot-0123", "slot-0123456789abcdeF", "", None])
def test_only_slot_cgroup_names_are_adopted_or_removed(bad: object) -> None:
    _fs, backend = v1()
    with pytest.raises(SlotCgroupError):
        adopt_slot_cgroup(bad, "s1", backend)  # type: ignore[arg-type]
    with pytest.raises(SlotCgroupError):
        remove_slot_cgroup(bad, backend)  # type: ignore[arg-type]


def test_membership_is_read_from_proc_pid_cgroup_for_every_hierarchy() -> None:
    _fs, backend = v1()
    inside = "\n".join(f"{n}:{c}:/{PARENT}/s1" for n, c in enumerate(V1_CONTROLLERS, 2)) + "\n1:name=systemd:/\n"
    assert backend.member("s1", inside)
    assert not backend.member("s2", inside)
    half = inside.replace(f"memory:/{PARENT}/s1", f"memory:/{PARENT}/slot-00112233445566aa")
    assert not backend.member("s1", half), "one hierarchy elsewhere is not in"
    joint = f"4:cpu,cpuacct:/{PARENT}/s1\n" + "\n".join(
        f"{n}:{c}:/{PARENT}/s1" for n, c in enumerate(("memory", "pids", "freezer"), 5))
    assert backend.member("s1", joint)
    v2 = CgroupV2("/cg", RenamingFS({"/cg/cgroup.controllers": "cpu memory pids"}))
    assert v2.member("s1", f"0::/{PARENT}/s1\n") and not v2.member("s1", "0::/\n")


def test_stale_empty_slot_cgroups_go_and_live_ones_and_sessions_stay() -> None:
    fs, backend = v1()
    stale, live = create_slot_cgroup(backend), create_slot_cgroup(backend)
    backend.create("s1", SessionLimits())
    assert stale is not None and live is not None
    fs.files[f"/cg/pids/{PARENT}/{live}/cgroup.procs"] = "77\n"
    for controller in V1_CONTROLLERS:  # another daemon's live slot is busy in every hierarchy
        fs.files[f"/cg/{controller}/{PARENT}/{live}/cgroup.procs"] = "77\n"
    assert remove_stale_slot_cgroups(backend) == 1
    assert sorted(backend.names()) == sorted([live, "s1"])
    assert remove_stale_slot_cgroups(CgroupV1("/cg", RenamingFS(v1_fs().files))) == 0, "no parent yet"


class FakeSlotCgroups:
    def __init__(self, fail: bool = False) -> None:
        self.made: list[str] = []
        self.removed: list[str] = []
        self.stale_runs = 0
        self.fail = fail

    def create(self) -> str | None:
        if self.fail:
            raise CgroupError("no room")
        self.made.append(f"slot-{len(self.made):016x}")
        return self.made[-1]

    def remove(self, name: str) -> None:
        self.removed.append(name)

    def remove_stale(self) -> int:
        self.stale_runs += 1
        return 0


def pool(cgroups: FakeSlotCgroups, size: int = 1) -> tuple[FakeReactor, WarmPool]:
    reactor = FakeReactor()
    slots = WarmPool(reactor, PYTHON, size, early=True,
                     x=SlotX(XUidPool(XUidRange(5000, 5009), in_use=set, lock_dir=None), NAMESPACES, SCREEN, cgroups))
    slots.start()
    return reactor, slots


def test_each_x_slot_gets_a_cgroup_of_its_own_in_its_slot_line() -> None:
    cgroups = FakeSlotCgroups()
    _reactor, slots = pool(cgroups, size=2)
    assert cgroups.stale_runs == 1, "a killed daemon's empty slot cgroups go first"
    lines = [parse_slot_line(slot.transport.written) for slot in slots.idle]  # type: ignore[union-attr]
    assert [line.cgroup for line in lines] == cgroups.made == ["slot-0000000000000000", "slot-0000000000000001"]


def test_an_unclaimed_slots_cgroup_is_removed_when_it_ends_and_a_taken_over_one_is_not() -> None:
    cgroups = FakeSlotCgroups()
    reactor, slots = pool(cgroups, size=1)
    first = slots.idle[0]
    first.processEnded(Failure(Exception("died waiting")))
    assert cgroups.removed == [cgroups.made[0]]
    reactor.advance(1.0)
    claimed = slots.claim(SCREEN)
    assert claimed is not None
    claimed.cgroup = ""  # the session renamed it (WarmSlot.give_cgroup, from sessiond/spawn.py)
    claimed.processEnded(Failure(Exception("session over")))
    assert cgroups.removed == [cgroups.made[0]], "the session's cgroup is the session's to remove"


def test_a_slot_whose_cgroup_cannot_be_renamed_keeps_it_and_the_pool_removes_it_at_its_end() -> None:
    cgroups = FakeSlotCgroups()
    _reactor, slots = pool(cgroups, size=1)
    claimed = slots.claim(SCREEN)
    assert claimed is not None
    assert not claimed.give_cgroup("s1"), "a cgroup that does not exist on this host was renamed"
    assert claimed.cgroup == cgroups.made[0]
    claimed.processEnded(Failure(Exception("session over")))
    assert cgroups.removed == [cgroups.made[0]]


def test_an_unclaimed_slots_cgroup_that_cannot_be_removed_does_not_stop_the_refill() -> None:
    cgroups = FakeSlotCgroups()
    reactor, slots = pool(cgroups, size=1)

    def gone(name: str) -> None:
        raise FileNotFoundError(2, "No such file or directory")

    cgroups.remove = gone  # type: ignore[method-assign]
    first = slots.idle[0]
    first.processEnded(Failure(Exception("died waiting")))
    reactor.advance(1.0)
    assert len(slots.idle) == 1 and slots.idle[0] is not first, "the dead slot was not replaced"


def test_a_slot_whose_cgroup_cannot_be_made_starts_without_one() -> None:
    _reactor, slots = pool(FakeSlotCgroups(fail=True))
    assert parse_slot_line(slots.idle[0].transport.written).cgroup == ""  # type: ignore[union-attr]

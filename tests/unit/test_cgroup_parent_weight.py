"""The sessions' parent cgroup weighs the sum of its live sessions (isolation.cgroup_tree), v1 and v2."""

from __future__ import annotations

import pytest

from isolation.cgroup_tree import MAX_SESSIONS_READ, V1_SHARES_RANGE, V2_WEIGHT_RANGE, rebalance, session_weights_sum
from isolation.cgroups import CgroupError, CgroupV1, CgroupV2
from isolation.limits import MAX_CPU_WEIGHT, SessionLimits
from test_isolation_cgroups import FakeFS, v1_fs

V1_PARENT = "/cg/cpu/sessiond/cpu.shares"
V2_PARENT = "/cg/sessiond/cpu.weight"


def v1() -> tuple[FakeFS, CgroupV1]:
    fs = v1_fs()
    return fs, CgroupV1("/cg", fs, kill=lambda _p, _s: None, sleep=lambda _s: None)


def v2() -> tuple[FakeFS, CgroupV2]:
    fs = FakeFS({"/cg/cgroup.controllers": "cpu memory pids\n"})
    return fs, CgroupV2("/cg", fs, kill=lambda _p, _s: None, sleep=lambda _s: None)


def start(fs: FakeFS, backend: CgroupV1 | CgroupV2, session: str, limits: SessionLimits) -> None:
    """Create SESSION's cgroup and put a process in it (what the sandbox's first process does)."""
    backend.create(session, limits)
    for directory in backend.dirs(session):
        fs.files[f"{directory}/cgroup.procs"] = "4242\n"


def stop(fs: FakeFS, backend: CgroupV1 | CgroupV2, session: str) -> None:
    """The session's processes exit, then its cgroup is removed."""
    for directory in backend.dirs(session):
        fs.files[f"{directory}/cgroup.procs"] = ""
    backend.remove(session)


def test_v1_parent_follows_the_live_sessions_and_their_weights() -> None:
    fs, backend = v1()
    start(fs, backend, "s1", SessionLimits())
    assert fs.files[V1_PARENT] == "1024"  # one session: what one root-level group weighs
    start(fs, backend, "s2", SessionLimits())
    start(fs, backend, "s3", SessionLimits(cpu_weight=300))
    assert fs.files[V1_PARENT] == str(1024 + 1024 + 3072)
    # Inside the parent each session keeps its own share: equal sessions stay equal.
    assert fs.files["/cg/cpu/sessiond/s1/cpu.shares"] == fs.files["/cg/cpu/sessiond/s2/cpu.shares"] == "1024"
    stop(fs, backend, "s3")
    assert fs.files[V1_PARENT] == "2048"
    stop(fs, backend, "s1")
    stop(fs, backend, "s2")
    assert fs.files[V1_PARENT] == "1024"  # empty: one session's worth, ready for the next


def test_v2_parent_weight_is_the_sum_of_cpu_weights_capped_at_the_kernel_maximum() -> None:
    fs, backend = v2()
    start(fs, backend, "a", SessionLimits())
    start(fs, backend, "b", SessionLimits(cpu_weight=250))
    assert fs.files[V2_PARENT] == "350"
    start(fs, backend, "c", SessionLimits(cpu_weight=MAX_CPU_WEIGHT))
    assert fs.files[V2_PARENT] == str(V2_WEIGHT_RANGE[1])
    stop(fs, backend, "c")
    assert fs.files[V2_PARENT] == "350"


def test_another_daemons_live_session_counts_and_an_empty_left_behind_one_does_not() -> None:
    # The weight is read back from the kernel's files, not counted in one daemon; a cgroup
    # without processes (e.g. left by a daemon killed before it removed it) competes for nothing.
    fs, backend = v1()
    fs.mkdir("/cg/cpu/sessiond")
    for name, procs in (("other", "77\n"), ("stale", "")):
        fs.mkdir(f"/cg/cpu/sessiond/{name}")
        fs.files[f"/cg/cpu/sessiond/{name}/cpu.shares"] = "2048"
        fs.files[f"/cg/cpu/sessiond/{name}/cgroup.procs"] = procs
    start(fs, backend, "mine", SessionLimits())
    assert fs.files[V1_PARENT] == "3072"


def test_a_session_vanishing_mid_rebalance_or_odd_file_is_skipped() -> None:
    fs = FakeFS()
    fs.mkdir("/p")
    for name, shares in (("a", "1024\n"), ("b", "garbage"), ("c", None)):
        fs.mkdir(f"/p/{name}")
        fs.files[f"/p/{name}/cgroup.procs"] = "1\n"
        if shares is not None:
            fs.files[f"/p/{name}/cpu.shares"] = shares
    assert rebalance(fs, "/p", "cpu.shares", 1024, V1_SHARES_RANGE) == 1024
    assert fs.files["/p/cpu.shares"] == "1024"


def test_weight_policy_floor_and_bounds() -> None:
    assert session_weights_sum([], 1024, V1_SHARES_RANGE) == 1024
    assert session_weights_sum([10], 1024, V1_SHARES_RANGE) == 1024  # never below one default session
    assert session_weights_sum([200_000, 200_000], 1024, V1_SHARES_RANGE) == V1_SHARES_RANGE[1]
    assert session_weights_sum([100] * 3, 100, V2_WEIGHT_RANGE) == 300


def test_at_most_max_sessions_read_are_summed() -> None:
    fs = FakeFS()
    fs.mkdir("/p")
    for i in range(MAX_SESSIONS_READ + 1):
        fs.mkdir(f"/p/s{i:05d}")
        fs.files[f"/p/s{i:05d}/cgroup.procs"] = "1\n"
        fs.files[f"/p/s{i:05d}/cpu.shares"] = "2"
    assert rebalance(fs, "/p", "cpu.shares", 2, V1_SHARES_RANGE) == 2 * MAX_SESSIONS_READ


def refuse_writes(fs: FakeFS, refused: str, error: OSError) -> None:
    """Make every write to REFUSED fail with ERROR from now on."""
    real_write = fs.write

    def write(path: str, text: str) -> None:
        if path == refused:
            raise error
        real_write(path, text)

    fs.write = write  # type: ignore[method-assign]


def test_remove_succeeds_even_if_the_parent_cannot_be_rebalanced() -> None:
    fs, backend = v1()
    start(fs, backend, "s1", SessionLimits())
    refuse_writes(fs, V1_PARENT, PermissionError(13, "denied"))
    stop(fs, backend, "s1")
    assert not any(d.endswith("/s1") for d in fs.dirs)


@pytest.mark.parametrize("version", [1, 2])
def test_create_fails_loudly_if_the_parent_weight_cannot_be_written(version: int) -> None:
    fs, backend = v1() if version == 1 else v2()
    refuse_writes(fs, V1_PARENT if version == 1 else V2_PARENT, OSError(22, "Invalid argument"))
    with pytest.raises(CgroupError, match="cannot create"):
        backend.create("s1", SessionLimits())

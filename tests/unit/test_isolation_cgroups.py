"""cgroup v1/v2 backends, limits parsing and the Sandbox handle, on a dict filesystem."""

from __future__ import annotations

import signal

import pytest

from isolation.accounts import Account
from isolation.cgroups import CgroupError, CgroupV1, CgroupV2, detect_backend
from isolation.limits import (
    SessionLimits,
    DEFAULT_CPU_WEIGHT,
    MAX_CPU_WEIGHT,
    MIN_CPU_WEIGHT,
    limits_from_settings,
    parse_cpu,
    parse_cpu_weight,
    parse_memory,
    parse_overrides,
    parse_pids,
    resolve_limits,
)
from isolation.sandbox import create_sandbox, open_sandbox, session_namespaces

V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "freezer")


class FakeFS:
    """A cgroupfs stand-in: files are dict entries; procs lists are editable."""

    def __init__(self, files: dict[str, str] | None = None) -> None:
        self.files: dict[str, str] = dict(files or {})
        self.dirs: set[str] = set()
        self.writes: list[tuple[str, str]] = []

    def read(self, path: str) -> str:
        if path not in self.files:
            raise FileNotFoundError(path)
        return self.files[path]

    def write(self, path: str, text: str) -> None:
        self.writes.append((path, text))
        if path.endswith("/freezer.state"):
            self.files[path] = "FROZEN" if text == "FROZEN" else "THAWED"
        else:
            self.files[path] = text

    def exists(self, path: str) -> bool:
        return path in self.files or path in self.dirs

    def mkdir(self, path: str) -> None:
        self.dirs.add(path)
        self.files.setdefault(f"{path}/cgroup.procs", "")

    def rmdir(self, path: str) -> None:
        if self.files.get(f"{path}/cgroup.procs", "").strip():
            raise OSError(16, "Device or resource busy")
        self.dirs.discard(path)
        for name in [f for f in self.files if f.startswith(path + "/")]:
            del self.files[name]

    def listdir(self, path: str) -> list[str]:
        if path not in self.dirs:
            raise FileNotFoundError(path)
        return sorted(d[len(path) + 1:] for d in self.dirs if d.rpartition("/")[0] == path)


def v1_fs() -> FakeFS:
    return FakeFS({f"/cg/{c}/cgroup.procs": "" for c in V1_CONTROLLERS})


def test_v1_create_writes_every_limit_in_its_controller() -> None:
    fs = v1_fs()
    fs.files["/cg/memory/sessiond/s1/memory.memsw.limit_in_bytes"] = "x"  # swap accounting on
    backend = CgroupV1("/cg", fs)
    backend.create("s1", SessionLimits(memory_bytes=256 << 20, pids=100, cpu_percent=150))
    assert {f"/cg/{c}/sessiond/s1" for c in V1_CONTROLLERS} <= fs.dirs
    assert ("/cg/memory/sessiond/s1/memory.limit_in_bytes", str(256 << 20)) in fs.writes
    assert ("/cg/memory/sessiond/s1/memory.memsw.limit_in_bytes", str(256 << 20)) in fs.writes
    assert ("/cg/pids/sessiond/s1/pids.max", "100") in fs.writes
    assert ("/cg/cpu/sessiond/s1/cpu.cfs_quota_us", "150000") in fs.writes
    assert ("/cg/cpu/sessiond/s1/cpu.cfs_period_us", "100000") in fs.writes


def test_v1_unlimited_writes_no_limit_and_attach_joins_every_hierarchy() -> None:
    fs = v1_fs()
    backend = CgroupV1("/cg", fs)
    backend.create("s1", SessionLimits())
    assert not [w for w in fs.writes if "max" in w[0] or "limit" in w[0] or "quota" in w[0]]
    # No hard cap, but an explicit equal share: the kernel's default weight.
    assert ("/cg/cpu/sessiond/s1/cpu.shares", "1024") in fs.writes
    backend.attach("s1", 0)
    assert sorted(p for p, t in fs.writes if t == "0") == sorted(
        f"/cg/{c}/sessiond/s1/cgroup.procs" for c in V1_CONTROLLERS)


def test_cpu_weight_is_written_on_both_versions_and_scaled_for_v1_shares() -> None:
    fs = v1_fs()
    CgroupV1("/cg", fs).create("s1", SessionLimits(cpu_weight=250))
    assert ("/cg/cpu/sessiond/s1/cpu.shares", "2560") in fs.writes
    CgroupV1("/cg", fs).create("s3", SessionLimits(cpu_weight=MIN_CPU_WEIGHT))
    assert ("/cg/cpu/sessiond/s3/cpu.shares", "10") in fs.writes
    v2 = FakeFS({"/cg/cgroup.controllers": "cpu memory pids\n"})
    CgroupV2("/cg", v2, kill=lambda _p, _s: None, sleep=lambda _s: None).create("s2", SessionLimits())
    assert ("/cg/sessiond/s2/cpu.weight", "100") in v2.writes
    assert not [w for w in v2.writes if w[0].endswith("cpu.max")]


def test_cpu_weight_bounds_and_overrides() -> None:
    assert parse_cpu_weight("100") == 100
    assert parse_cpu_weight(str(MAX_CPU_WEIGHT)) == MAX_CPU_WEIGHT
    for bad in ("0", str(MAX_CPU_WEIGHT + 1), "50%", "-1", "max"):
        with pytest.raises(ValueError):
            parse_cpu_weight(bad)
    account = Account("alice", 1500, 1500, (1500,), "/home/alice", "/bin/sh")
    users = parse_overrides("alice: cpu_weight=300 cpu_max=150%")
    limits = resolve_limits(SessionLimits(), account, users)
    assert (limits.cpu_weight, limits.cpu_percent) == (300, 150)
    assert limits_from_settings({"cpu_max": None}).cpu_weight == DEFAULT_CPU_WEIGHT


def test_v1_missing_required_controller_is_refused() -> None:
    fs = FakeFS({"/cg/memory/cgroup.procs": "", "/cg/cpu/cgroup.procs": ""})
    with pytest.raises(CgroupError, match="pids"):
        CgroupV1("/cg", fs)


def test_kill_all_freezes_kills_thaws_until_empty_then_remove() -> None:
    fs = v1_fs()
    killed: list[tuple[int, int]] = []
    procs = "/cg/pids/sessiond/s1/cgroup.procs"
    rounds = iter(["10\n11\n", "12\n", ""])

    def kill(pid: int, sig: int) -> None:
        killed.append((pid, sig))

    backend = CgroupV1("/cg", fs, kill=kill, sleep=lambda _s: None)
    backend.create("s1", SessionLimits(pids=64))
    real_read = fs.read

    def read(path: str) -> str:
        return next(rounds) if path == procs else real_read(path)

    fs.read = read  # type: ignore[method-assign]
    assert backend.kill_all("s1") == 3
    assert killed == [(10, signal.SIGKILL), (11, signal.SIGKILL), (12, signal.SIGKILL)]
    states = [t for p, t in fs.writes if p.endswith("freezer.state")]
    assert states == ["FROZEN", "THAWED"] * 3
    fs.read = real_read  # type: ignore[method-assign]
    backend.remove("s1")
    assert not any("/sessiond/s1" in d for d in fs.dirs)


def test_without_a_freezer_each_pid_is_pinned_and_rechecked_before_the_kill() -> None:
    # v1 without the freezer hierarchy: the pid list can go stale, so every kill goes
    # through the checked (pidfd) path, which re-reads membership; a pid that left the
    # cgroup (exited, possibly reused by another process) is not signalled.
    fs = FakeFS({f"/cg/{c}/cgroup.procs": "" for c in V1_CONTROLLERS if c != "freezer"})
    plain: list[int] = []
    checked: list[tuple[int, bool]] = []
    procs = "/cg/pids/sessiond/s1/cgroup.procs"

    def checked_kill(pid: int, still_member: object) -> bool:
        member = still_member(pid)  # type: ignore[operator]
        checked.append((pid, member))
        if member:  # the process dies: it leaves the cgroup
            fs.files[procs] = "\n".join(p for p in fs.files[procs].split() if p != str(pid))
        return bool(member)

    backend = CgroupV1("/cg", fs, kill=lambda pid, _sig: plain.append(pid), sleep=lambda _s: None,
                       checked_kill=checked_kill)  # fmt: skip
    backend.create("s1", SessionLimits())
    fs.files[procs] = "20\n21\n"
    real_read = fs.read
    reads = {"n": 0}

    def read(path: str) -> str:
        if path == procs:
            reads["n"] += 1
            if reads["n"] == 2:  # right after the list was read, 21 exits (its pid may be reused)
                fs.files[procs] = "20\n"
        return real_read(path)

    fs.read = read  # type: ignore[method-assign]
    assert backend.kill_all("s1") == 1
    assert plain == []
    assert checked == [(20, True), (21, False)]
    assert not any(p.endswith("freezer.state") for p, _t in fs.writes)


def test_pidfd_kill_spares_a_process_that_left_the_cgroup() -> None:
    import subprocess

    from isolation.cgroups import pidfd_kill

    child = subprocess.Popen(["sleep", "30"])
    try:
        assert pidfd_kill(child.pid, lambda _pid: False) is False
        assert child.poll() is None  # not a member any more: untouched
        assert pidfd_kill(child.pid, lambda _pid: True) is True
        assert child.wait(timeout=10) == -signal.SIGKILL
        assert pidfd_kill(child.pid, lambda _pid: True) is False  # reaped: nothing to kill
    finally:
        child.kill()
        child.wait()


def test_kill_all_gives_up_on_immortal_processes() -> None:
    fs = v1_fs()
    backend = CgroupV1("/cg", fs, kill=lambda _p, _s: None, sleep=lambda _s: None)
    backend.create("s1", SessionLimits())
    fs.files["/cg/pids/sessiond/s1/cgroup.procs"] = "42\n"
    with pytest.raises(CgroupError, match="survive"):
        backend.kill_all("s1")


def test_v1_usage_reads_memory_cpu_and_tasks() -> None:
    fs = v1_fs()
    backend = CgroupV1("/cg", fs)
    backend.create("s1", SessionLimits())
    fs.files.update({"/cg/memory/sessiond/s1/memory.usage_in_bytes": "1048576\n",
                     "/cg/cpuacct/sessiond/s1/cpuacct.usage": "2500000000\n",
                     "/cg/pids/sessiond/s1/pids.current": "7\n"})
    used = backend.usage("s1")
    assert (used.memory_bytes, used.cpu_seconds, used.tasks) == (1 << 20, 2.5, 7)


def test_v2_create_enables_controllers_sets_limits_and_kills_with_cgroup_kill() -> None:
    fs = FakeFS({"/cg/cgroup.controllers": "cpuset cpu io memory pids\n"})
    backend = CgroupV2("/cg", fs, kill=lambda _p, _s: None, sleep=lambda _s: None)
    backend.create("s2", SessionLimits(memory_bytes=64 << 20, pids=32, cpu_percent=50))
    assert ("/cg/cgroup.subtree_control", "+memory +pids +cpu") in fs.writes
    assert ("/cg/sessiond/cgroup.subtree_control", "+memory +pids +cpu") in fs.writes
    assert ("/cg/sessiond/s2/memory.max", str(64 << 20)) in fs.writes
    assert ("/cg/sessiond/s2/memory.swap.max", "0") in fs.writes
    assert ("/cg/sessiond/s2/pids.max", "32") in fs.writes
    assert ("/cg/sessiond/s2/cpu.max", "50000 100000") in fs.writes
    fs.files["/cg/sessiond/s2/cgroup.kill"] = ""
    assert backend.kill_all("s2") == 0
    assert ("/cg/sessiond/s2/cgroup.kill", "1") in fs.writes
    fs.files.update({"/cg/sessiond/s2/memory.current": "4096", "/cg/sessiond/s2/pids.current": "3",
                     "/cg/sessiond/s2/cpu.stat": "usage_usec 1500000\nuser_usec 1000000\n"})
    assert backend.usage("s2").cpu_seconds == 1.5


def test_detect_prefers_v2_only_when_root_is_cgroup2() -> None:
    hybrid = "tmpfs /cg tmpfs rw 0 0\ncgroup2 /cg/unified cgroup2 rw 0 0\n"
    assert detect_backend("/cg", v1_fs(), mounts=hybrid).version == 1
    v2 = FakeFS({"/cg/cgroup.controllers": "memory pids cpu"})
    assert detect_backend("/cg", v2, mounts="cgroup2 /cg cgroup2 rw 0 0\n").version == 2
    with pytest.raises(CgroupError, match="lacks"):
        detect_backend("/cg", FakeFS({"/cg/cgroup.controllers": "hugetlb"}),
                       mounts="cgroup2 /cg cgroup2 rw 0 0\n")
    with pytest.raises(CgroupError, match="no usable"):
        detect_backend("/cg", FakeFS(), mounts=hybrid)


def test_session_id_is_checked_before_any_path_is_built() -> None:
    backend = CgroupV1("/cg", v1_fs())
    for bad in ("../x", "a/b", ""):
        with pytest.raises(ValueError):
            backend.create(bad, SessionLimits())


@pytest.mark.parametrize(("text", "value"), [("2G", 2 << 30), ("512M", 512 << 20), ("max", None),
                                             ("40000000", 40000000), ("1GiB", 1 << 30)])
def test_parse_memory(text: str, value: int | None) -> None:
    assert parse_memory(text) == value


@pytest.mark.parametrize(("parse", "text", "message"), [
    (parse_memory, "1M", "minimum"), (parse_memory, "lots", "want"),
    (parse_pids, "15", "between"), (parse_pids, str(4 * 1024 * 1024 + 1), "between"),
    (parse_cpu, "100", "percentage"), (parse_cpu, "0%", "between"), (parse_cpu, "10001%", "between"),
])
def test_limit_parsers_refuse_out_of_range(parse: object, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(text)  # type: ignore[operator]


def test_overrides_user_beats_groups_and_later_group_wins() -> None:
    account = Account("alice", 1500, 1500, (27, 1500), "/home/alice", "/bin/sh")
    defaults = SessionLimits(memory_bytes=2 << 30, pids=1024, cpu_percent=100)
    groups = parse_overrides("sudo: memory_max=3G cpu_max=200%; staff: memory_max=1G; other: pids_max=20")
    users = parse_overrides("alice: pids_max=2048; bob: memory_max=max")
    gids = {"sudo": 27, "staff": 1500, "other": 9999}
    limits = resolve_limits(defaults, account, users, groups, group_gid=gids.get)
    assert limits == SessionLimits(memory_bytes=1 << 30, pids=2048, cpu_percent=200)
    bob = Account("bob", 1600, 1600, (1600,), "/home/bob", "/bin/sh")
    assert resolve_limits(defaults, bob, users, groups, group_gid=gids.get).memory_bytes is None


@pytest.mark.parametrize(("text", "message"), [
    ("alice memory_max=1G", "NAME:"), ("alice: memory=1G", "is not one of"),
    ("alice: pids_max=1", "between"), ("alice:", "sets nothing"),
    ("a: pids_max=20; a: pids_max=30", "twice"), ("../x: pids_max=20", "NAME:"),
])
def test_bad_overrides_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_overrides(text)


def test_sandbox_handle_spec_destroy_and_reopen() -> None:
    fs = v1_fs()
    backend = CgroupV1("/cg", fs, kill=lambda _p, _s: None, sleep=lambda _s: None)
    account = Account("alice", 1500, 1500, (1500,), "/home/alice", "/bin/sh")
    sandbox = create_sandbox("s9", SessionLimits(pids=64), backend=backend)
    spec = sandbox.spec(account, ("/bin/agent",), {"PATH": "/bin"}, network="loopback", hostname="box")
    assert spec.namespaces == ("mount", "ipc", "uts", "pid", "net")
    assert spec.cgroup and spec.hostname == "box" and spec.session_id == "s9"
    assert session_namespaces("host") == ("mount", "ipc", "uts", "pid")
    with pytest.raises(ValueError, match="network mode"):
        session_namespaces("bridge")
    reopened = open_sandbox("s9", backend=backend)
    assert reopened is not None and reopened.session_id == "s9"
    sandbox.destroy()
    sandbox.destroy()  # idempotent
    assert open_sandbox("s9", backend=backend) is None
    assert sandbox.usage().memory_bytes == 0 and sandbox.pids() == []

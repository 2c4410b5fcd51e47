"""isolation.enter's sequence against a recorder fake of the system calls."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from isolation import linux
from isolation.accounts import Account, AccountError
from isolation.enter import (
    EXIT_BAD_SPEC,
    EXIT_DROP_FAILED,
    EXIT_EXEC_FAILED,
    EXIT_SETUP_FAILED,
    run,
)
from isolation.privcheck import DropCheck, first_failure, parse_status
from isolation.spec import MAX_SPEC_BYTES, SandboxSpec, to_json

ACCOUNT = Account(name="alice", uid=1500, gid=1500, groups=(27, 1500),
                  home="/home/alice", shell="/bin/bash")
PASSING = (DropCheck("always", lambda _a: True),)


def make_spec(**changes: Any) -> SandboxSpec:
    fields: dict[str, Any] = {
        "account": ACCOUNT,
        "session_id": "s1",
        "argv": ("/usr/bin/agent", "--serve"),
        "env": {"PATH": "/usr/bin:/bin", "SESSIOND_SESSION": "s1"},
        "keep_fds": (5,),
    }
    fields.update(changes)
    return SandboxSpec(**fields)


class RecorderOps:
    """Records every call; fails the named one with OSError if asked."""

    def __init__(self, euid: int = 0, fail: str = "", fail_path: str = "", scoped: bool = True) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.euid = euid
        self.scoped = scoped
        self.fail = fail
        self.fail_path = fail_path

    def _rec(self, *call: Any) -> None:
        self.calls.append(call)
        if call[0] == self.fail and (not self.fail_path or self.fail_path in call):
            raise OSError(1, f"fake failure of {call[0]}")

    def names(self) -> list[str]:
        return [call[0] for call in self.calls]

    def geteuid(self) -> int:
        return self.euid

    def unshare(self, flags: int) -> None:
        self._rec("unshare", flags)

    def make_rprivate(self) -> None:
        self._rec("make_rprivate")

    def mount_tmpfs(self, target: str, options: str) -> None:
        self._rec("mount_tmpfs", target, options)

    def make_root_dir(self, path: str, mode: int) -> None:
        self._rec("make_root_dir", path, mode)

    def drop_bounding_set(self) -> None:
        self._rec("drop_bounding_set")

    def clear_ambient_caps(self) -> None:
        self._rec("clear_ambient_caps")

    def setgroups(self, groups: Sequence[int]) -> None:
        self._rec("setgroups", tuple(groups))

    def setresgid(self, gid: int) -> None:
        self._rec("setresgid", gid)

    def setresuid(self, uid: int) -> None:
        self._rec("setresuid", uid)

    def clear_all_caps(self) -> None:
        self._rec("clear_all_caps")

    def set_no_new_privs(self) -> None:
        self._rec("set_no_new_privs")

    def scope_abstract_sockets(self) -> bool:
        self._rec("scope_abstract_sockets")
        return self.scoped

    def chdir(self, path: str) -> None:
        self._rec("chdir", path)

    def umask(self, mask: int) -> None:
        self._rec("umask", mask)

    def stdin_from_devnull(self) -> None:
        self._rec("stdin_from_devnull")

    def close_fds(self, keep: Sequence[int]) -> None:
        self._rec("close_fds", tuple(keep))

    def execve(self, path: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self._rec("execve", path, tuple(argv), dict(env))


def lookup_same(name: str, *, min_uid: int) -> Account:
    assert min_uid >= 1
    return ACCOUNT


def enter(data: bytes, ops: RecorderOps, checks: Sequence[DropCheck] = PASSING,
          lookup: Any = lookup_same) -> tuple[int, str]:
    err = io.StringIO()
    status = run(io.BytesIO(data), err, ops, checks=checks, lookup=lookup)
    return status, err.getvalue()


def test_success_sequence_and_exact_env() -> None:
    ops = RecorderOps()
    status, err = enter(to_json(make_spec()), ops)
    assert (status, err) == (0, "")
    assert ops.calls == [
        ("unshare", linux.CLONE_NEWNS | linux.CLONE_NEWIPC | linux.CLONE_NEWUTS),
        ("make_rprivate",),
        ("mount_tmpfs", "/tmp", "mode=1777,size=1024m"),
        ("make_root_dir", "/tmp/.X11-unix", 0o1777),
        ("mount_tmpfs", "/dev/shm", "mode=1777,size=512m"),
        ("make_root_dir", "/var/tmp", 0o1777),
        ("mount_tmpfs", "/var/tmp", "mode=1777,size=1024m"),
        ("make_root_dir", "/run/user", 0o755),
        ("make_root_dir", "/run/user/1500", 0o700),
        ("mount_tmpfs", "/run/user/1500", "mode=0700,uid=1500,gid=1500,size=64m"),
        ("clear_ambient_caps",),
        ("drop_bounding_set",),
        ("setgroups", (27, 1500)),
        ("setresgid", 1500),
        ("setresuid", 1500),
        ("clear_all_caps",),
        ("set_no_new_privs",),
        ("scope_abstract_sockets",),
        ("chdir", "/home/alice"),
        ("umask", 0o077),
        ("stdin_from_devnull",),
        ("close_fds", (5,)),
        ("execve", "/usr/bin/agent", ("/usr/bin/agent", "--serve"), {
            "PATH": "/usr/bin:/bin", "SESSIOND_SESSION": "s1", "HOME": "/home/alice",
            "USER": "alice", "LOGNAME": "alice", "SHELL": "/bin/bash",
            "XDG_RUNTIME_DIR": "/run/user/1500",
        }),
    ]


def test_no_private_tmp_and_mount_only_namespace() -> None:
    ops = RecorderOps()
    status, _ = enter(to_json(make_spec(private_tmp=False, namespaces=("mount",))), ops)
    assert status == 0
    assert ops.calls[0] == ("unshare", linux.CLONE_NEWNS)
    mounted = [call[1] for call in ops.calls if call[0] == "mount_tmpfs"]
    assert mounted == ["/run/user/1500"]


def test_failing_drop_check_exits_70_and_never_execs() -> None:
    checks = (DropCheck("first ok", lambda _a: True),
              DropCheck("CapEff is 0", lambda _a: False),
              DropCheck("never reached", lambda _a: True))
    ops = RecorderOps()
    status, err = enter(to_json(make_spec()), ops, checks=checks)
    assert status == EXIT_DROP_FAILED == 70
    assert err == "isolation.enter: privilege drop check failed: CapEff is 0\n"
    assert "execve" not in ops.names()
    assert "chdir" not in ops.names()


def test_raising_drop_check_counts_as_failure() -> None:
    def boom(_account: Account) -> bool:
        raise OSError("cannot read /proc")

    ops = RecorderOps()
    status, err = enter(to_json(make_spec()), ops, checks=(DropCheck("NoNewPrivs is 1", boom),))
    assert status == 70
    assert "NoNewPrivs is 1" in err
    assert "execve" not in ops.names()


def test_failing_landlock_scoping_exits_70_after_the_drop_and_never_execs() -> None:
    ops = RecorderOps(fail="scope_abstract_sockets")
    status, err = enter(to_json(make_spec()), ops)
    assert status == 70
    assert err.startswith("isolation.enter: Landlock scoping failed:")
    assert ops.names().index("scope_abstract_sockets") > ops.names().index("set_no_new_privs")
    assert "execve" not in ops.names()


def test_a_kernel_without_scoping_is_named_in_the_log_unless_the_session_has_its_own_network() -> None:
    status, err = enter(to_json(make_spec()), RecorderOps(scoped=False))
    assert status == 0
    assert "no Landlock scoping" in err and "abstract Unix sockets" in err
    with_net = RecorderOps(scoped=False)
    with_net.loopback_up = lambda: with_net._rec("loopback_up")  # type: ignore[attr-defined]
    status, err = enter(to_json(make_spec(namespaces=("mount", "ipc", "uts", "net"))), with_net)
    assert (status, err) == (0, "")


@pytest.mark.parametrize("step", ["clear_ambient_caps", "drop_bounding_set", "setgroups",
                                  "setresgid", "setresuid", "clear_all_caps",
                                  "set_no_new_privs"])
def test_failing_drop_step_exits_70(step: str) -> None:
    ops = RecorderOps(fail=step)
    status, err = enter(to_json(make_spec()), ops)
    assert status == 70
    assert "privilege drop failed" in err and err.count("\n") == 1
    assert "execve" not in ops.names()


@pytest.mark.parametrize(("step", "path"), [("unshare", ""), ("make_rprivate", ""),
                                            ("mount_tmpfs", "/tmp"),
                                            ("mount_tmpfs", "/run/user/1500"),
                                            ("make_root_dir", "/run/user")])
def test_failing_setup_exits_72_before_any_drop(step: str, path: str) -> None:
    ops = RecorderOps(fail=step, fail_path=path)
    status, err = enter(to_json(make_spec()), ops)
    assert status == EXIT_SETUP_FAILED == 72
    assert err.startswith("isolation.enter: sandbox setup failed:")
    assert "setresuid" not in ops.names() and "execve" not in ops.names()


def test_not_root_is_refused() -> None:
    ops = RecorderOps(euid=1500)
    status, err = enter(to_json(make_spec()), ops)
    assert status == 72
    assert "euid 0" in err
    assert ops.calls == []


@pytest.mark.parametrize("data", [b"", b"{}", b"garbage", b"x" * (MAX_SPEC_BYTES + 1)])
def test_bad_spec_exits_71(data: bytes) -> None:
    ops = RecorderOps()
    status, err = enter(data, ops)
    assert status == EXIT_BAD_SPEC == 71
    assert err.startswith("isolation.enter: bad spec:") and err.count("\n") == 1
    assert ops.calls == []


def test_uid_zero_spec_refused_before_anything() -> None:
    doc = json.loads(to_json(make_spec()))
    doc["account"]["uid"] = 0
    ops = RecorderOps()
    status, err = enter(json.dumps(doc).encode(), ops)
    assert status == 71
    assert "root" in err
    assert ops.calls == []


def test_account_database_mismatch_is_refused() -> None:
    def other_uid(name: str, *, min_uid: int) -> Account:
        return Account(name, 1501, 1500, (1500,), "/home/alice", "/bin/bash")

    ops = RecorderOps()
    status, err = enter(to_json(make_spec()), ops, lookup=other_uid)
    assert status == 71
    assert "does not match" in err
    assert ops.calls == []


def test_unknown_account_is_refused() -> None:
    def unknown(name: str, *, min_uid: int) -> Account:
        raise AccountError(f"unknown user {name!r}")

    ops = RecorderOps()
    status, err = enter(to_json(make_spec()), ops, lookup=unknown)
    assert status == 71
    assert "unknown user 'alice'" in err


def test_inaccessible_cwd_falls_back_to_root_with_warning() -> None:
    ops = RecorderOps(fail="chdir", fail_path="/srv/private")
    status, err = enter(to_json(make_spec(cwd="/srv/private")), ops)
    assert status == 0
    assert "warning: cannot enter /srv/private" in err
    chdirs = [call[1] for call in ops.calls if call[0] == "chdir"]
    assert chdirs == ["/srv/private", "/"]
    assert ops.names()[-1] == "execve"


def test_exec_failure_exits_127() -> None:
    ops = RecorderOps(fail="execve")
    status, err = enter(to_json(make_spec()), ops)
    assert status == EXIT_EXEC_FAILED
    assert "cannot execute /usr/bin/agent" in err


def test_parse_status_and_first_failure() -> None:
    fields = parse_status("Name:\tpython\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\n")
    assert fields == {"Name": "python", "CapEff": "0000000000000000", "NoNewPrivs": "1"}
    checks = [DropCheck("a", lambda _a: True), DropCheck("b", lambda _a: 1 == 0)]
    assert first_failure(checks, ACCOUNT) == "b"
    assert first_failure(checks[:1], ACCOUNT) is None
    # A truthy non-True result is not a pass.
    assert first_failure([DropCheck("c", lambda _a: "yes")], ACCOUNT) == "c"  # type: ignore[arg-type,return-value]

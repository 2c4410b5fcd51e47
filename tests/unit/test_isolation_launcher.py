"""Launcher helpers and account lookup; session-dir tests need root (chown)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from isolation.accounts import Account, AccountError, lookup_account
from isolation.launcher import (
    LauncherError,
    enter_argv,
    enter_env,
    prepare_session_dir,
    remove_session_dir,
)
from isolation.spec import SpecError

_skip_unless_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


def needs_root(test: Any) -> Any:
    """Mark a test as needing root (chown), and skip it otherwise."""
    return pytest.mark.root(_skip_unless_root(test))
ACCOUNT = Account(name="alice", uid=4321, gid=4322, groups=(4322,),
                  home="/home/alice", shell="/bin/sh")


def test_enter_argv() -> None:
    assert enter_argv("/opt/venv/bin/python") == [
        "/opt/venv/bin/python", "-m", "isolation.enter"]
    with pytest.raises(ValueError, match="absolute"):
        enter_argv("python3")


def test_the_zygote_runs_optimized_from_the_venvs_compiled_cache(tmp_path: object) -> None:
    venv = os.path.join(str(tmp_path), "venv")
    python = os.path.join(venv, "bin", "python")
    # No cache (an interpreter outside an installation): as before.
    assert enter_argv(python, zygote=True) == [python, "-m", "isolation.enter", "--zygote"]
    os.makedirs(os.path.join(venv, "agent-pycache"))
    assert enter_argv(python, zygote=True) == [
        python, "-OO", "-X", f"pycache_prefix={venv}/agent-pycache", "-m", "isolation.enter", "--zygote"]
    assert enter_argv(python) == [python, "-m", "isolation.enter"]  # the exec'd agent: unchanged


def test_enter_env_takes_nothing_from_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LD_PRELOAD", "/tmp/evil.so")
    monkeypatch.setenv("SESSIOND_LEAK", "1")
    env = enter_env()
    assert set(env) == {"PATH", "LANG", "PYTHONPATH"}
    assert (Path(env["PYTHONPATH"]) / "isolation" / "enter.py").is_file()


@pytest.mark.parametrize("name", ["root", "daemon"])
def test_lookup_refuses_root_and_system_accounts(name: str) -> None:
    with pytest.raises(AccountError, match=r"root|below the minimum"):
        lookup_account(name)


@pytest.mark.parametrize("name", ["svt-no-such-user-zz", "", "a/b", "-x", "x" * 33])
def test_lookup_refuses_unknown_and_malformed(name: str) -> None:
    with pytest.raises(AccountError):
        lookup_account(name)


def test_lookup_min_uid_is_honoured() -> None:
    # "daemon" (uid 1 on Debian) passes once min_uid allows it.
    account = lookup_account("daemon", min_uid=1)
    assert account.uid >= 1 and account.gid in account.groups
    assert list(account.groups) == sorted(set(account.groups))


@needs_root
def test_prepare_and_remove_session_dir(tmp_path: Path) -> None:
    base = tmp_path / "sessions"
    path = prepare_session_dir(str(base), "s-1", ACCOUNT)
    assert path == str(base / "s-1")
    info = os.lstat(path)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (4321, 4322, 0o700)
    binfo = os.lstat(base)
    assert (binfo.st_uid, stat.S_IMODE(binfo.st_mode)) == (0, 0o755)
    # Idempotent (re-adoption): a second call fixes mode and owner again.
    os.chmod(path, 0o777)
    assert prepare_session_dir(str(base), "s-1", ACCOUNT) == path
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o700
    # A symlink planted inside the dir is removed, its target is not.
    target = tmp_path / "keep.txt"
    target.write_text("keep")
    os.symlink(target, os.path.join(path, "link"))
    remove_session_dir(str(base), "s-1")
    assert not os.path.lexists(path)
    assert target.read_text() == "keep"
    remove_session_dir(str(base), "s-1")  # missing is fine


@needs_root
def test_session_dir_refuses_symlink_and_unsafe_base(tmp_path: Path) -> None:
    base = tmp_path / "sessions"
    base.mkdir(mode=0o755)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, base / "s-2")
    with pytest.raises(LauncherError, match="not a plain directory"):
        prepare_session_dir(str(base), "s-2", ACCOUNT)
    assert os.lstat(elsewhere).st_uid == 0
    os.chmod(base, 0o777)
    with pytest.raises(LauncherError, match="not group/other-writable"):
        prepare_session_dir(str(base), "s-3", ACCOUNT)


def test_session_id_is_validated(tmp_path: Path) -> None:
    with pytest.raises(SpecError):
        prepare_session_dir(str(tmp_path), "../etc", ACCOUNT)
    with pytest.raises(SpecError):
        remove_session_dir(str(tmp_path), "..")

"""[session] x_uids (sessiond/x_uids.py): the range's syntax and bounds, the overlap check, the allocator."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sessiond.x_uids import MAX_X_UID_COUNT, XUidPool, XUidRange, parse_x_uids, uids_in_use


def test_the_range_syntax_and_its_bounds() -> None:
    assert parse_x_uids("1900000000-1900009999") == (1900000000, 1900009999)
    assert parse_x_uids("5-5") == (5, 5)
    assert parse_x_uids(f"1-{MAX_X_UID_COUNT}") == (1, MAX_X_UID_COUNT)
    for bad in ("", "5", "5-", "-5", "a-b", "0-5", "6-5", f"1-{MAX_X_UID_COUNT + 1}", "2147483600-2147483648",
                "1 - 2 - 3", "+1-2"):  # fmt: skip
        with pytest.raises(ValueError):
            parse_x_uids(bad)


def test_an_overlap_with_an_account_a_group_or_a_subid_range_is_named(tmp_path: Path) -> None:
    span = XUidRange(2000, 2999)
    subuid = tmp_path / "subuid"
    subuid.write_text("root:100000:65536\nbroken line\nalice:2500:10\n")
    assert span.overlaps(users=[("root", 0), ("bob", 1999)], groups=[("g", 3000)], subid_files=()) is None
    assert span.overlaps(users=[("bob", 2000)], groups=[], subid_files=()) == "user 'bob' has id 2000"
    assert span.overlaps(users=[], groups=[("staff", 2999)], subid_files=()) == "group 'staff' has id 2999"
    assert span.overlaps(users=[], groups=[], subid_files=(str(subuid),)) == f"{subuid} delegates 2500-2509"
    assert XUidRange(1000, 1999).overlaps(users=[], groups=[], subid_files=(str(subuid),)) is None
    assert XUidRange(99990, 100000).overlaps(users=[], groups=[], subid_files=(str(subuid),)) is not None
    assert span.overlaps(users=[], groups=[], subid_files=(str(tmp_path / "missing"),)) is None


def test_the_allocator_takes_the_lowest_uid_no_slot_holds_and_no_process_runs_as() -> None:
    running = {11}
    pool = XUidPool(XUidRange(10, 13), in_use=lambda: set(running), lock_dir=None)
    assert pool.allocate() == 10
    assert pool.allocate() == 12, "11 is a process's uid (a session adopted after a restart)"
    running.clear()
    assert pool.allocate() == 11
    assert pool.allocate() == 13
    assert pool.allocate() is None, "exhausted"
    pool.release(12)
    pool.release(12)
    assert pool.allocate() == 12
    running.add(12)
    pool.release(12)
    assert pool.allocate() is None, "released, but a process still runs as 12"


def test_two_daemons_on_one_host_never_hold_the_same_uid(tmp_path: Path) -> None:
    # No process runs as any of them yet (their Xvfbs have not started): only the host-wide lock tells.
    first = XUidPool(XUidRange(10, 12), in_use=set, lock_dir=str(tmp_path / "locks"))
    second = XUidPool(XUidRange(10, 12), in_use=set, lock_dir=str(tmp_path / "locks"))
    assert [first.allocate(), second.allocate(), first.allocate()] == [10, 11, 12]
    assert second.allocate() is None, "every uid is locked by the other daemon or held"
    first.release(10)
    assert second.allocate() == 10, "released: its lock is free"
    assert first.held == {12} and second.held == {10, 11}
    for uid in (10, 11):
        second.release(uid)
    first.release(12)
    assert first.allocate() == 10 and not second.held


def test_uids_in_use_reads_real_effective_and_saved_uids(tmp_path: Path) -> None:
    for pid, line in (("7", "Uid:\t1\t2\t3\t4\n"), ("8", "Uid:\t5\t5\t5\t5\n")):
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "status").write_text(f"Name:\tx\n{line}Gid:\t0\t0\t0\t0\n")
    (tmp_path / "self").mkdir()
    (tmp_path / "9").mkdir()  # ended meanwhile: no status
    assert uids_in_use(str(tmp_path)) == {1, 2, 3, 5}
    assert os.getuid() in uids_in_use()


def test_the_config_keys_and_a_bad_range_named(tmp_path: Path) -> None:
    from sessiond.config import ConfigError, load_config

    defaults = load_config(None).session
    assert defaults.warm_x is True and defaults.x_uids == (1900000000, 1900009999)
    assert XUidRange(*defaults.x_uids).overlaps(users=[("nobody", 65534)], groups=[("nogroup", 65534)],
                                                 subid_files=()) is None  # fmt: skip
    path = tmp_path / "sessiond.conf"
    path.write_text("[session]\nwarm_x = false\nx_uids = 3000-3001\n")
    assert (load_config(str(path)).session.warm_x, load_config(str(path)).session.x_uids) == (False, (3000, 3001))
    path.write_text("[session]\nx_uids = 3001-3000\n")
    with pytest.raises(ConfigError, match="x_uids"):
        load_config(str(path))

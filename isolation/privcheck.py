# Verification that a privilege drop really happened.
#
# Why: dropping root is a sequence of calls whose failure modes are subtle
# (securebits that keep capabilities across setuid, inherited ambient or
# inheritable sets, a forgotten supplementary group). Instead of trusting the
# calls, enter.py re-reads the process's credentials from the kernel after
# the drop and refuses to exec unless every check below passes: fail closed.
# Each check has a name so the one-line error says exactly what was wrong, and
# the list is injectable so tests can prove a failing check aborts the start.
"""Named post-drop checks: ids, groups, capabilities, no_new_privs, no way back to root."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from isolation.accounts import Account

PROC_STATUS_PATH = "/proc/self/status"
# /proc/self/status is ~1.5 KiB; 64 KiB is a generous ceiling for one read.
MAX_STATUS_BYTES = 64 * 1024

# Capability sets that must all be empty after the drop.
CAP_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


@dataclass(frozen=True)
class DropCheck:
    """One named condition that must hold after dropping privileges."""

    name: str
    verify: Callable[[Account], bool]


def parse_status(text: str) -> dict[str, str]:
    """Parse /proc/<pid>/status "Key:\\tvalue" lines into a dict."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def read_status() -> dict[str, str]:
    """This process's /proc/self/status fields, read fresh."""
    with open(PROC_STATUS_PATH, "rb") as handle:
        return parse_status(handle.read(MAX_STATUS_BYTES).decode("ascii", "replace"))


def _cap_is_zero(fields: Mapping[str, str], name: str) -> bool:
    value = fields.get(name)
    if value is None:
        return False
    try:
        return int(value, 16) == 0
    except ValueError:
        return False


def _uids_are_user(account: Account) -> bool:
    return os.getresuid() == (account.uid, account.uid, account.uid)


def _gids_are_user(account: Account) -> bool:
    return os.getresgid() == (account.gid, account.gid, account.gid)


def _groups_are_user(account: Account) -> bool:
    return sorted(set(os.getgroups())) == sorted(set(account.groups))


def _cannot_become_uid_root(account: Account) -> bool:
    try:
        os.setuid(0)
    except PermissionError:
        return True
    except OSError:
        return False  # unexpected error: we cannot tell, so fail closed
    return False


def _cannot_become_gid_root(account: Account) -> bool:
    try:
        os.setgid(0)
    except PermissionError:
        return True
    except OSError:
        return False
    return False


def _cap_check(name: str) -> DropCheck:
    return DropCheck(f"{name} is 0", lambda _account: _cap_is_zero(read_status(), name))


def _no_new_privs(account: Account) -> bool:
    return read_status().get("NoNewPrivs") == "1"


DEFAULT_CHECKS: tuple[DropCheck, ...] = (
    DropCheck("real/effective/saved uids are the user's", _uids_are_user),
    DropCheck("real/effective/saved gids are the user's", _gids_are_user),
    DropCheck("supplementary groups are the user's", _groups_are_user),
    DropCheck("setuid(0) fails", _cannot_become_uid_root),
    DropCheck("setgid(0) fails", _cannot_become_gid_root),
    *(_cap_check(name) for name in CAP_FIELDS),
    DropCheck("NoNewPrivs is 1", _no_new_privs),
)


# A slot's X server (isolation/xslot.py) keeps CAP_IPC_OWNER (bit 15) and
# nothing else, in every set: ambient, so that it survives the exec of Xvfb.
IPC_OWNER_MASK = 1 << 15


def _cap_is_exactly(name: str, mask: int) -> DropCheck:
    def verify(_account: Account) -> bool:
        value = read_status().get(name)
        try:
            return value is not None and int(value, 16) == mask
        except ValueError:
            return False
    return DropCheck(f"{name} is exactly CAP_IPC_OWNER", verify)


X_SERVER_CHECKS: tuple[DropCheck, ...] = (
    DropCheck("real/effective/saved uids are the X uid", _uids_are_user),
    DropCheck("real/effective/saved gids are the X gid", _gids_are_user),
    DropCheck("no supplementary groups", _groups_are_user),
    DropCheck("setuid(0) fails", _cannot_become_uid_root),
    DropCheck("setgid(0) fails", _cannot_become_gid_root),
    *(_cap_is_exactly(name, IPC_OWNER_MASK) for name in CAP_FIELDS),
    DropCheck("NoNewPrivs is 1", _no_new_privs),
)


def first_failure(checks: tuple[DropCheck, ...] | list[DropCheck],
                  account: Account) -> str | None:
    """Run `checks` in order; return the name of the first that fails, else None.

    A check that raises counts as failed.
    """
    for check in checks:
        try:
            ok = check.verify(account)
        except Exception:  # noqa: BLE001 - any surprise means "not verified"
            ok = False
        if ok is not True:
            return check.name
    return None

# Who a session runs as.
#
# Why: the sandbox must switch to exactly the Linux account the session
# belongs to — uid, primary gid, every supplementary group, home and shell —
# and must never switch to root or a system account. This module is the one
# place that reads the account database (pwd/grp via NSS), so the rules for
# which accounts may own a session live in one place, and enter.py can
# re-check a spec against the same rules just before dropping privileges.
"""Look up the Linux account a session runs as."""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

# First uid of a regular login account on Debian (adduser's FIRST_UID); uids
# below it are system accounts that must never own a session.
DEFAULT_MIN_UID = 1000

# Longest user name we accept: useradd's limit is 32; anything longer is not a
# name this host created.
MAX_USER_NAME_LEN = 32


class AccountError(Exception):
    """The account cannot own a session (unknown, root, or a system account)."""


@dataclass(frozen=True)
class Account:
    """A Linux account as the sandbox needs it: credentials plus login fields."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str
    shell: str


def _check_name(name: str) -> None:
    if not name or len(name) > MAX_USER_NAME_LEN:
        raise AccountError(
            f"invalid user name {name!r}: must be 1-{MAX_USER_NAME_LEN} characters"
        )
    if "\0" in name or "/" in name or ":" in name or name.startswith("-"):
        raise AccountError(f"invalid user name {name!r}")


def lookup_account(name: str, *, min_uid: int = DEFAULT_MIN_UID) -> Account:
    """Return the account called `name` from the system account database.

    Supplementary groups come from os.getgrouplist (so NSS sources such as
    LDAP are honoured) and include the primary group; they are returned
    sorted and without duplicates.

    Raises AccountError for an unknown user, root (uid 0 or primary gid 0),
    or a uid below `min_uid`.
    """
    _check_name(name)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise AccountError(
            f"unknown user {name!r}: no such account on this host"
        ) from None
    if entry.pw_uid == 0:
        raise AccountError(f"user {name!r} has uid 0: sessions never run as root")
    if entry.pw_gid == 0:
        raise AccountError(
            f"user {name!r} has primary group 0 (root): refusing to run a session"
        )
    if entry.pw_uid < min_uid:
        raise AccountError(
            f"user {name!r} has uid {entry.pw_uid}, below the minimum {min_uid} "
            "for session accounts (system accounts cannot log in)"
        )
    groups = tuple(sorted(set(os.getgrouplist(entry.pw_name, entry.pw_gid))))
    return Account(
        name=entry.pw_name,
        uid=entry.pw_uid,
        gid=entry.pw_gid,
        groups=groups,
        home=entry.pw_dir,
        shell=entry.pw_shell,
    )

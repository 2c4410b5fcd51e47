# Which display a user's session runs: sessiond's own ("native": Xvfb, the
# agent as window manager, the display/windows channels) or an xpra server
# ("xpra": the session's windows reach the user's own xpra client through
# the xpra channel). Per server in [session] display, with per-user and
# per-group overrides in the grammar every override key shares
# (isolation.limits.split_overrides): display_users = "alice: display=xpra".
#
# Why resolved in sessiond, at session start: the choice decides which
# process tree the sandbox runs, so it is fixed for the session's life (a
# config reload applies to the next session), like the limits.
"""DISPLAYS, the override parser and resolve_display()."""

from __future__ import annotations

import grp
from collections.abc import Callable
from typing import Final

from isolation.accounts import Account
from isolation.limits import split_overrides

# [session] display values; "native" is the default.
DISPLAYS: Final = ("native", "xpra")
# Entries in one display_users / display_groups value: bounds parsing and lookup.
MAX_DISPLAY_OVERRIDES: Final = 1000

DisplayOverride = tuple[str, str]  # (user or group name, display)


def parse_display(value: str) -> str:
    """One of DISPLAYS, else ValueError naming them."""
    if value not in DISPLAYS:
        raise ValueError(f"must be one of {', '.join(DISPLAYS)}")
    return value


def parse_display_overrides(value: str) -> tuple[DisplayOverride, ...]:
    """'alice: display=xpra; bob: display=native' -> (('alice', 'xpra'), ('bob', 'native'))."""
    found: list[DisplayOverride] = []
    for name, pairs in split_overrides(value, ("display",), MAX_DISPLAY_OVERRIDES):
        for _key, raw in pairs:
            found.append((name, parse_display(raw)))
    return tuple(found)


def _group_gid(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def resolve_display(default: str, users: tuple[DisplayOverride, ...], groups: tuple[DisplayOverride, ...],
                    account: Account | None, group_gid: Callable[[str], int | None] = _group_gid) -> str:  # fmt: skip
    """The display of `account`'s session: a user override wins over a group
    override, which wins over the server's default."""
    if account is None:
        return default
    for name, display in users:
        if name == account.name:
            return display
    member_of = set(account.groups) | {account.gid}
    chosen = default
    for name, display in groups:
        gid = group_gid(name)
        if gid is not None and gid in member_of:
            chosen = display
    return chosen

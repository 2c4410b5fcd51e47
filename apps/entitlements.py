# Why this module exists: a published application is not published to
# everyone.  sessiond.conf says which users and Linux groups may see and
# launch which apps, and the same decision must be taken twice: when the
# list is built (so users see only what they may use) and again when a
# launch arrives (a client can send any app id it likes, offered or not).
# Keeping the rules and the one decision function here means the two checks
# can never disagree.
#
# The rules are written in the [entitlements] section of sessiond.conf:
#
#   default = everyone            (or nobody): apps that no rule names
#   rules =
#       xterm xclock: alice @staff
#       org.gnome.*: @gnome-users
#
# Each rule line is "APP_PATTERNS: PRINCIPALS".  Patterns are desktop-file
# ids with shell wildcards (* ? [...]), matched case-sensitively; principals
# are user names, @group names, or * for every user.  An app that at least
# one rule's pattern matches is available exactly to the principals of the
# matching rules; an app no rule matches follows `default`.
"""Who may see and launch which published application."""

from __future__ import annotations

import fnmatch
import grp
import os
import pwd
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

EVERYONE = "*"
GROUP_PREFIX = "@"
DEFAULT_EVERYONE = "everyone"
DEFAULT_NOBODY = "nobody"
RULE_SEPARATOR = ":"
MAX_RULES = 1000  # more rule lines than this is a generated file that should use groups
MAX_ITEMS_PER_RULE = 1000  # patterns or principals on one line; bounds the match loop
MAX_GROUPS_PER_USER = 1024  # NGROUPS_MAX is 65536 but real accounts have a handful
# Desktop-file ids are file names: letters, digits, - _ . (and + in the wild).
PATTERN_RE = re.compile(r"^[A-Za-z0-9._+*?\[\]!-]{1,255}$")
# POSIX portable user/group names (plus the $ of Samba machine accounts).
NAME_RE = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}\$?$")


class EntitlementConfigError(ValueError):
    """An [entitlements] value that cannot be understood (the message says where)."""


@dataclass(frozen=True)
class Rule:
    """One rule line: these app patterns are for these principals."""

    patterns: tuple[str, ...]
    users: frozenset[str]
    groups: frozenset[str]
    everyone: bool

    def matches_app(self, app_id: str) -> bool:
        """Whether one of the patterns matches ``app_id``."""
        return any(fnmatch.fnmatchcase(app_id, pattern) for pattern in self.patterns)

    def admits(self, principal: Principal) -> bool:
        """Whether the rule lists this user, one of its groups, or everyone."""
        return self.everyone or principal.user in self.users or not self.groups.isdisjoint(principal.groups)


@dataclass(frozen=True)
class Principal:
    """A user as entitlements see it: the name and the names of all its groups."""

    user: str
    groups: frozenset[str]


def parse_default(value: str) -> bool:
    """``everyone`` -> True, ``nobody`` -> False; ValueError otherwise."""
    text = value.strip()
    if text == DEFAULT_EVERYONE:
        return True
    if text == DEFAULT_NOBODY:
        return False
    raise EntitlementConfigError(f"must be {DEFAULT_EVERYONE} or {DEFAULT_NOBODY}, not {text!r}")


def parse_rules(value: str) -> tuple[Rule, ...]:
    """Parse the multi-line ``rules`` value; EntitlementConfigError names the bad line."""
    rules: list[Rule] = []
    for number, raw_line in enumerate(value.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if len(rules) >= MAX_RULES:
            raise EntitlementConfigError(f"more than {MAX_RULES} rules")
        rules.append(_parse_rule(line, number))
    return tuple(rules)


def _parse_rule(line: str, number: int) -> Rule:
    where = f"rule line {number} ({line!r})"
    apps_part, separator, who_part = line.partition(RULE_SEPARATOR)
    if not separator:
        raise EntitlementConfigError(f"{where}: expected 'APP_PATTERNS: USERS_AND_@GROUPS'")
    patterns = apps_part.split()
    principals = who_part.split()
    if not patterns or not principals:
        raise EntitlementConfigError(f"{where}: needs at least one app pattern and one user, @group or *")
    if len(patterns) > MAX_ITEMS_PER_RULE or len(principals) > MAX_ITEMS_PER_RULE:
        raise EntitlementConfigError(f"{where}: more than {MAX_ITEMS_PER_RULE} items")
    for pattern in patterns:
        if not PATTERN_RE.match(pattern):
            raise EntitlementConfigError(f"{where}: {pattern!r} is not a desktop-file id pattern")
    users: set[str] = set()
    groups: set[str] = set()
    everyone = False
    for item in principals:
        if item == EVERYONE:
            everyone = True
            continue
        name = item[len(GROUP_PREFIX) :] if item.startswith(GROUP_PREFIX) else item
        if not NAME_RE.match(name):
            raise EntitlementConfigError(f"{where}: {item!r} is not a user name, @group or *")
        (groups if item.startswith(GROUP_PREFIX) else users).add(name)
    return Rule(tuple(patterns), frozenset(users), frozenset(groups), everyone)


class Entitlements:
    """The decision: may this principal see and launch this app id?"""

    def __init__(self, rules: Iterable[Rule] = (), *, default_everyone: bool = True) -> None:
        self._rules = tuple(rules)
        self._default_everyone = default_everyone

    def allows(self, principal: Principal, app_id: str) -> bool:
        """True if a matching rule admits the principal, or no rule matches and the default is everyone."""
        matched = False
        for rule in self._rules:
            if rule.matches_app(app_id):
                if rule.admits(principal):
                    return True
                matched = True
        return not matched and self._default_everyone


def principal_for(
    user: str,
    *,
    getpwnam: Callable[[str], pwd.struct_passwd] = pwd.getpwnam,
    getgrouplist: Callable[[str, int], list[int]] = os.getgrouplist,
    getgrgid: Callable[[int], grp.struct_group] = grp.getgrgid,
) -> Principal:
    """The principal for a logged-in user, with every group from NSS.

    Groups are read at each call, so a group change applies at the next list
    or launch.  An account that vanished has no groups (and no rule names it
    by group); unknown gids are skipped.
    """
    try:
        entry = getpwnam(user)
    except KeyError:
        return Principal(user, frozenset())
    names: set[str] = set()
    for gid in getgrouplist(user, entry.pw_gid)[:MAX_GROUPS_PER_USER]:
        try:
            names.add(getgrgid(gid).gr_name)
        except KeyError:
            continue
    return Principal(user, frozenset(names))

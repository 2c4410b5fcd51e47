# Why these tests: entitlements decide who can run what on a shared host.
# The same decision must hide an app from the list and refuse its launch
# and its icon, whatever id a client sends; a config mistake must be an
# error that says where, never a silent "allow".  Users and groups here are
# fakes (the rules are pure), plus one check against the real account
# database; tests/integration/test_apps.py repeats the story with real
# users, real groups and a forged LAUNCH over TLS.
"""Tests for apps.entitlements and the entitlement checks of apps.publisher."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer

from apps.catalog import Catalog, UnknownApp
from apps.entitlements import (
    MAX_RULES,
    EntitlementConfigError,
    Entitlements,
    Principal,
    parse_default,
    parse_rules,
    principal_for,
)
from apps.icons import IconError, IconResolver
from apps.publisher import AppPublisher, NotEntitled
from sessiond.config import ConfigError, load_config

ALICE = Principal("alice", frozenset({"alice", "staff"}))
BOB = Principal("bob", frozenset({"bob", "gnome-users"}))
CAROL = Principal("carol", frozenset({"carol"}))

RULES = """
    # comments and blank lines are ignored

    xterm: @staff carol
    org.gnome.*: @gnome-users
    xclock xcalc: *
"""


@pytest.mark.parametrize(
    ("principal", "app_id", "default_everyone", "allowed"),
    [
        (ALICE, "xterm", True, True),  # by group
        (CAROL, "xterm", True, True),  # by user name
        (BOB, "xterm", True, False),  # a rule names xterm, not bob
        (BOB, "org.gnome.Terminal", True, True),  # wildcard + group
        (ALICE, "org.gnome.Terminal", True, False),
        (ALICE, "org.gnome", True, True),  # "org.gnome.*" needs the dot: no rule, default
        (CAROL, "xcalc", False, True),  # * is everyone, even with default nobody
        (CAROL, "unlisted", True, True),  # no rule matches: default everyone
        (CAROL, "unlisted", False, False),  # no rule matches: default nobody
        (ALICE, "XTERM", True, True),  # ids are case-sensitive: no rule matches XTERM
        (BOB, "XTERM", False, False),
    ],
)
def test_decision_table(principal: Principal, app_id: str, default_everyone: bool, allowed: bool) -> None:
    entitlements = Entitlements(parse_rules(RULES), default_everyone=default_everyone)
    assert entitlements.allows(principal, app_id) is allowed


def test_rules_for_one_app_add_up() -> None:
    entitlements = Entitlements(parse_rules("x*: alice\nxterm: bob"), default_everyone=False)
    assert entitlements.allows(ALICE, "xterm") and entitlements.allows(BOB, "xterm")
    assert not entitlements.allows(CAROL, "xterm")
    assert entitlements.allows(ALICE, "xclock") and not entitlements.allows(BOB, "xclock")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("xterm @staff", "expected 'APP_PATTERNS: USERS_AND_@GROUPS'"),
        ("xterm:", "needs at least one app pattern"),
        (": alice", "needs at least one app pattern"),
        ("x/term: alice", "is not a desktop-file id pattern"),
        ("xterm: al;ice", "is not a user name, @group or *"),
        ("xterm: @", "is not a user name, @group or *"),
    ],
)
def test_bad_rules_are_errors_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(EntitlementConfigError, match=message) as caught:
        parse_rules("xclock: *\n" + text)
    assert "rule line 2" in str(caught.value)


def test_rule_count_limit() -> None:
    parse_rules("\n".join(["a: b"] * MAX_RULES))
    with pytest.raises(EntitlementConfigError, match=f"more than {MAX_RULES} rules"):
        parse_rules("\n".join(["a: b"] * (MAX_RULES + 1)))


def test_default_values() -> None:
    assert parse_default("everyone") is True and parse_default("nobody") is False
    with pytest.raises(EntitlementConfigError):
        parse_default("all")


def test_config_section_is_parsed_and_errors_name_file_section_key(tmp_path: Path) -> None:
    good = tmp_path / "good.conf"
    good.write_text("[entitlements]\ndefault = nobody\nrules =\n    xterm: @staff\n    xc*: *\n")
    config = load_config(str(good))
    assert config.get("entitlements", "default") is False
    assert len(config.get("entitlements", "rules")) == 2  # type: ignore[arg-type]
    bad = tmp_path / "bad.conf"
    bad.write_text("[entitlements]\nrules =\n    xterm alice\n")
    with pytest.raises(ConfigError, match=r"bad.conf: \[entitlements\] rules"):
        load_config(str(bad))
    unknown = tmp_path / "unknown.conf"
    unknown.write_text("[entitlements]\nallow = alice\n")
    with pytest.raises(ConfigError, match="unknown key 'allow'"):
        load_config(str(unknown))


def test_principal_for_reads_every_group_through_the_given_lookups() -> None:
    class Entry:
        pw_gid = 100

    class Group:
        def __init__(self, name: str) -> None:
            self.gr_name = name

    groups = {100: "users", 27: "sudo"}

    def getgrgid(gid: int) -> Any:
        if gid not in groups:
            raise KeyError(gid)
        return Group(groups[gid])

    principal = principal_for("dave", getpwnam=lambda name: Entry(),  # type: ignore[arg-type, return-value]
                              getgrouplist=lambda name, gid: [gid, 27, 999], getgrgid=getgrgid)  # fmt: skip
    assert principal == Principal("dave", frozenset({"users", "sudo"}))  # unknown gid 999 skipped

    def missing(name: str) -> Any:
        raise KeyError(name)

    assert principal_for("ghost", getpwnam=missing) == Principal("ghost", frozenset())


def test_principal_for_a_real_account() -> None:
    me = pwd.getpwuid(os.getuid())
    principal = principal_for(me.pw_name)
    assert grp.getgrgid(me.pw_gid).gr_name in principal.groups


# -- the publisher applies the same decision to list, launch and icon -------------


def publisher(tmp_path: Path, rules: str, default_everyone: bool = True) -> AppPublisher:
    apps = tmp_path / "apps"
    apps.mkdir()
    for name in ("xterm", "xclock"):
        (apps / f"{name}.desktop").write_text(
            f"[Desktop Entry]\nType=Application\nName={name}\nExec={name} %u\nIcon={name}\n"
        )
    principals = {"alice": ALICE, "bob": BOB, "carol": CAROL}
    return AppPublisher(
        Catalog([str(apps)]),
        Entitlements(parse_rules(rules), default_everyone=default_everyone),
        IconResolver([str(tmp_path / "no-icons")]),
        principal_of=lambda user: principals.get(user, Principal(user, frozenset())),
        run_in_thread=lambda f, *args: defer.maybeDeferred(f, *args),
    )


def test_listing_shows_only_entitled_apps(tmp_path: Path) -> None:
    published = publisher(tmp_path, "xterm: @staff")
    assert [app.id for app in published.listing("alice")] == ["xclock", "xterm"]
    assert [app.id for app in published.listing("bob")] == ["xclock"]
    (tmp_path / "strict").mkdir()
    strict = publisher(tmp_path / "strict", "xterm: @staff", default_everyone=False)
    assert [app.id for app in strict.listing("bob")] == []
    assert [app.id for app in strict.listing("alice")] == ["xterm"]


def test_a_launch_not_offered_is_refused_before_any_argv_is_built(tmp_path: Path) -> None:
    published = publisher(tmp_path, "xterm: @staff")
    assert published.plan_launch("alice", "xterm", ["https://example.org/"]).argv == ("xterm", "https://example.org/")
    with pytest.raises(NotEntitled, match="'bob' is not entitled to the application 'xterm'"):
        published.plan_launch("bob", "xterm")
    with pytest.raises(NotEntitled):
        published.plan_launch("bob", "xterm", ["--option-injection"])  # entitlement is checked first
    with pytest.raises(UnknownApp):
        published.plan_launch("alice", "nonexistent")


def test_icon_of_an_app_not_offered_is_refused(tmp_path: Path) -> None:
    published = publisher(tmp_path, "xterm: @staff")
    failures: list[type[BaseException]] = []
    published.icon_png("bob", "xterm", 48).addErrback(lambda f: failures.append(f.type))
    published.icon_png("alice", "xterm", 48).addErrback(lambda f: failures.append(f.type))  # no icon file
    published.icon_png("alice", "ghost", 48).addErrback(lambda f: failures.append(f.type))
    published.icon_png("alice", "xterm", 4096).addErrback(lambda f: failures.append(f.type))
    assert failures == [NotEntitled, IconError, UnknownApp, IconError]

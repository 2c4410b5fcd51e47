# Per-session resource limits: what they are, how config spells them, and
# which apply to a given account.
#
# Why: one session must never starve the host or another session, so every
# session's cgroup gets a memory and a pids ceiling and a CPU weight (an
# equal share of every core when sessions compete; an optional hard cap). Admins set
# defaults in [session] and override them per user or per group in [limits];
# this module parses those strings into one typed SessionLimits and resolves
# the overrides for an account (user beats group beats default), so the
# cgroup backends only ever see validated numbers.
"""SessionLimits, config parsers for sizes / CPU shares, per-user and per-group overrides."""

from __future__ import annotations

import grp
import re
from typing import Any
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from isolation.accounts import Account

# Below this a session cannot even start Python + Xvfb; a typo like "64" (bytes)
# would otherwise produce a session that is OOM-killed at once.
MIN_MEMORY_BYTES = 32 * 1024 * 1024
# The agent, Xvfb, an app and a shell already need a few dozen tasks.
MIN_PIDS = 16
# Largest pids.max the kernel accepts (PID_MAX_LIMIT, 2^22).
MAX_PIDS = 4 * 1024 * 1024
# CPU quota as percent of one CPU: 1% .. 100 CPUs.
MIN_CPU_PERCENT = 1
MAX_CPU_PERCENT = 100 * 100
# CPU weight, on cgroup v2's cpu.weight scale (v1 cpu.shares = weight * 1024 / 100).
# Every session gets DEFAULT_CPU_WEIGHT unless configured: idle cores are
# used, and busy sessions share the CPUs equally.
MIN_CPU_WEIGHT = 1
MAX_CPU_WEIGHT = 10_000
DEFAULT_CPU_WEIGHT = 100
# Overrides per [limits] key: far above any real policy, bounds parsing work.
MAX_OVERRIDES = 1024

UNLIMITED = "max"
_SIZE_RE = re.compile(r"(\d+)([KMGT]?)(i?B)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_NAME_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,31}")


@dataclass(frozen=True)
class SessionLimits:
    """Ceilings for one session's cgroup; None means no limit."""

    memory_bytes: int | None = None
    pids: int | None = None
    cpu_percent: int | None = None
    cpu_weight: int = DEFAULT_CPU_WEIGHT


def parse_memory(value: str) -> int | None:
    """'2G', '512M', '1073741824' or 'max' -> bytes (None for max)."""
    text = value.strip()
    if text.lower() == UNLIMITED:
        return None
    match = _SIZE_RE.fullmatch(text)
    if not match:
        raise ValueError(f"memory size {value!r}: want a number with K/M/G/T or 'max'")
    number = int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]
    if number < MIN_MEMORY_BYTES:
        raise ValueError(f"memory size {value!r} is below the minimum {MIN_MEMORY_BYTES >> 20}M")
    return number


def parse_pids(value: str) -> int | None:
    """A task count or 'max'."""
    text = value.strip()
    if text.lower() == UNLIMITED:
        return None
    number = int(text)
    if not MIN_PIDS <= number <= MAX_PIDS:
        raise ValueError(f"pids limit {value!r} must be between {MIN_PIDS} and {MAX_PIDS} or 'max'")
    return number


def parse_cpu(value: str) -> int | None:
    """'150%' (of one CPU) or 'max'."""
    text = value.strip()
    if text.lower() == UNLIMITED:
        return None
    if not text.endswith("%"):
        raise ValueError(f"cpu limit {value!r}: want a percentage of one CPU such as 100% or 'max'")
    number = int(text[:-1])
    if not MIN_CPU_PERCENT <= number <= MAX_CPU_PERCENT:
        raise ValueError(f"cpu limit {value!r} must be between {MIN_CPU_PERCENT}% and {MAX_CPU_PERCENT}%")
    return number


def parse_cpu_weight(value: str) -> int:
    """A relative CPU weight, MIN_CPU_WEIGHT..MAX_CPU_WEIGHT (100 = an equal share)."""
    text = value.strip()
    if not text.isdigit():
        raise ValueError(f"cpu weight {value!r}: want a whole number such as 100")
    number = int(text)
    if not MIN_CPU_WEIGHT <= number <= MAX_CPU_WEIGHT:
        raise ValueError(f"cpu weight {value!r} must be between {MIN_CPU_WEIGHT} and {MAX_CPU_WEIGHT}")
    return number


def cpu_shares(weight: int) -> int:
    """cgroup v1 cpu.shares for a v2-scale weight (100 -> 1024, the kernel's default)."""
    return max(2, weight * 1024 // DEFAULT_CPU_WEIGHT)


# Keys accepted in an override, with their parser and SessionLimits field.
_FIELDS: dict[str, tuple[Callable[[str], int | None], str]] = {
    "memory_max": (parse_memory, "memory_bytes"),
    "pids_max": (parse_pids, "pids"),
    "cpu_max": (parse_cpu, "cpu_percent"),
    "cpu_weight": (parse_cpu_weight, "cpu_weight"),
}


@dataclass(frozen=True)
class LimitOverride:
    """Settings for one user or group name: field name -> value (None = unlimited)."""

    name: str
    values: tuple[tuple[str, int | None], ...]

    def apply(self, limits: SessionLimits) -> SessionLimits:
        """`limits` with this override's fields replaced."""
        # Each value comes from its field's own parser (_FIELDS), so its type fits.
        changes: dict[str, Any] = dict(self.values)
        return replace(limits, **changes)


def split_overrides(value: str, keys: Iterable[str],
                    limit: int = MAX_OVERRIDES) -> list[tuple[str, list[tuple[str, str]]]]:
    """The grammar every per-user/per-group override key shares:
    'alice: k1=v1 k2=v2; @staff: k1=v3' -> [(name, [(key, raw value), ...]), ...].

    Entries are separated by ';'; each names a user or group (a plain name),
    a colon, then KEY=VALUE words with KEY among `keys`. A name may appear
    once, an entry must set something, and there are at most `limit` entries.
    """
    allowed = set(keys)
    found: list[tuple[str, list[tuple[str, str]]]] = []
    seen: set[str] = set()
    for entry in value.split(";"):
        if not entry.strip():
            continue
        name, sep, settings = entry.partition(":")
        name = name.strip()
        if not sep or not _NAME_RE.fullmatch(name):
            raise ValueError(f"override {entry.strip()!r}: want NAME: key=value ...")
        if name in seen:
            raise ValueError(f"override for {name!r} appears twice")
        seen.add(name)
        pairs: list[tuple[str, str]] = []
        for word in settings.split():
            key, eq, raw = word.partition("=")
            if not eq or key not in allowed:
                raise ValueError(f"override for {name!r}: {word!r} is not one of {', '.join(sorted(allowed))}=VALUE")
            pairs.append((key, raw))
        if not pairs:
            raise ValueError(f"override for {name!r} sets nothing")
        found.append((name, pairs))
        if len(found) > limit:
            raise ValueError(f"more than {limit} overrides")
    return found


def parse_overrides(value: str) -> tuple[LimitOverride, ...]:
    """'alice: memory_max=4G pids_max=2048; bob: cpu_max=50%' -> overrides
    (KEY in memory_max, pids_max, cpu_max, cpu_weight)."""
    overrides: list[LimitOverride] = []
    for name, pairs in split_overrides(value, _FIELDS):
        values: dict[str, int | None] = {}
        for key, raw in pairs:
            parse, field_name = _FIELDS[key]
            values[field_name] = parse(raw)
        overrides.append(LimitOverride(name, tuple(sorted(values.items()))))
    return tuple(overrides)


def _group_gid(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def resolve_limits(defaults: SessionLimits, account: Account,
                   users: tuple[LimitOverride, ...] = (),
                   groups: tuple[LimitOverride, ...] = (),
                   group_gid: Callable[[str], int | None] = _group_gid) -> SessionLimits:
    """The limits for `account`: defaults, then matching group overrides in
    config order (later wins), then the user's own override."""
    limits = defaults
    member_of = set(account.groups) | {account.gid}
    for override in groups:
        gid = group_gid(override.name)
        if gid is not None and gid in member_of:
            limits = override.apply(limits)
    for override in users:
        if override.name == account.name:
            limits = override.apply(limits)
    return limits


def limits_from_settings(settings: Mapping[str, object]) -> SessionLimits:
    """SessionLimits from parsed [session] values memory_max, pids_max, cpu_max, cpu_weight."""
    def pick(key: str) -> int | None:
        value = settings.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    weight = pick("cpu_weight")
    return SessionLimits(memory_bytes=pick("memory_max"), pids=pick("pids_max"),
                         cpu_percent=pick("cpu_max"),
                         cpu_weight=DEFAULT_CPU_WEIGHT if weight is None else weight)

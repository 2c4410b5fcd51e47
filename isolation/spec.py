# The one typed request the privileged sandbox entry point accepts.
#
# Why: sessiond (root) tells `python -m isolation.enter` (root, until exec)
# what to start as whom through a single JSON document on a pipe. Keeping
# that request a frozen, fully validated dataclass with a strict decoder means
# the privileged child never acts on a field it did not expect: unknown keys,
# wrong types, oversized input, root credentials and environment variables
# outside an allow-list are all refused before anything is mounted or exec'd.
# New isolation features (pid/net namespaces, cgroups) become new validated
# fields here, bumping SPEC_VERSION.
"""SandboxSpec: what to run, as whom, inside which sandbox; strict JSON codec."""

from __future__ import annotations

import json
import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from isolation.accounts import MAX_USER_NAME_LEN, Account

# Wire format version; bumped whenever a field is added or changes meaning.
# 2: pid/net namespaces, hostname, cgroup.
SPEC_VERSION = 2

# A real spec is well under 4 KiB; 64 KiB also fits one default pipe buffer,
# so the writer in sessiond never blocks on a child that died early.
MAX_SPEC_BYTES = 64 * 1024

# Bounds on individual parts, so a spec cannot smuggle huge allocations.
MAX_ARGV = 256  # an agent command line is a handful of words
MAX_ARG_BYTES = 4096  # one argument or path; PATH_MAX on Linux
MAX_ENV_VARS = 64  # the allow-list is small; prefixes add a few
MAX_ENV_VALUE_BYTES = 4096  # PATH-like values; nothing legitimate is larger
MAX_GROUPS = 1024  # far above any real membership, far below NGROUPS_MAX
MAX_KEEP_FDS = 16  # the agent needs one socket or pipe to sessiond, maybe two
MAX_FD_NUMBER = 1023  # kept fds are low numbers handed over by the spawner

SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A hostname for the session's UTS namespace: one or more RFC 1123 labels,
# at most HOST_NAME_MAX (64) bytes.
MAX_HOSTNAME_BYTES = 64
HOSTNAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")

# Environment the session may receive from sessiond. Everything else (HOME,
# USER, XDG_RUNTIME_DIR...) is derived from the account by enter.py, and
# loader/interpreter variables (LD_*, PYTHON*) are never passed.
ENV_ALLOWED = frozenset(
    {"PATH", "LANG", "LANGUAGE", "LC_ALL", "TERM", "TZ", "DISPLAY", "COLORTERM"}
)
# Prefixes of allowed names: locale categories and sessiond's own settings.
ENV_ALLOWED_PREFIXES = ("LC_", "SESSIOND_")

# Namespaces enter.py knows how to create. "mount" is mandatory: private /tmp,
# /dev/shm and XDG_RUNTIME_DIR depend on it. "pid" makes enter fork (the child
# is the namespace's init) and mount a fresh /proc; "net" gives the session a
# network namespace with only its own loopback interface, brought up.
SUPPORTED_NAMESPACES = ("mount", "ipc", "uts", "pid", "net")
DEFAULT_NAMESPACES = ("mount", "ipc", "uts")

_ACCOUNT_KEYS = frozenset({"name", "uid", "gid", "groups", "home", "shell"})
_SPEC_KEYS = frozenset(
    {"version", "account", "session_id", "argv", "env", "private_tmp", "cwd",
     "keep_fds", "namespaces", "hostname", "cgroup"}
)


class SpecError(ValueError):
    """A sandbox spec is malformed or asks for something not allowed."""


def env_name_allowed(name: str) -> bool:
    """True if `name` may be passed into a session's environment."""
    if not ENV_NAME_RE.fullmatch(name):
        return False
    return name in ENV_ALLOWED or name.startswith(ENV_ALLOWED_PREFIXES)


def check_session_id(session_id: object) -> str:
    """Return `session_id` if it is a valid session id, else raise SpecError."""
    if not isinstance(session_id, str) or not SESSION_ID_RE.fullmatch(session_id):
        raise SpecError(f"invalid session id {session_id!r}: want [A-Za-z0-9_-]{{1,64}}")
    return session_id


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_text(what: str, value: object, *, limit: int = MAX_ARG_BYTES) -> str:
    if not isinstance(value, str):
        raise SpecError(f"{what} must be a string, got {type(value).__name__}")
    if "\0" in value:
        raise SpecError(f"{what} contains a NUL byte")
    if len(value.encode("utf-8", "surrogateescape")) > limit:
        raise SpecError(f"{what} is longer than {limit} bytes")
    return value


def _check_account(account: object) -> None:
    if not isinstance(account, Account):
        raise SpecError("account must be an Account")
    name = _check_text("account name", account.name, limit=MAX_USER_NAME_LEN)
    if not name:
        raise SpecError("account name is empty")
    for what, value in (("uid", account.uid), ("gid", account.gid)):
        if not _is_int(value) or not 0 <= value < 2**32 - 1:
            raise SpecError(f"account {what} {value!r} is not a valid id")
    if account.uid == 0 or account.gid == 0:
        raise SpecError(f"account {name!r} is root: sessions never run as root")
    if not isinstance(account.groups, tuple) or len(account.groups) > MAX_GROUPS:
        raise SpecError(f"account groups must be a tuple of at most {MAX_GROUPS} ids")
    for gid in account.groups:
        if not _is_int(gid) or not 0 <= gid < 2**32 - 1:
            raise SpecError(f"account group {gid!r} is not a valid id")
    if 0 in account.groups:
        raise SpecError(f"account {name!r} is in group 0 (root): refused")
    home = _check_text("account home", account.home)
    if not os.path.isabs(home):
        raise SpecError(f"account home {home!r} is not an absolute path")
    shell = _check_text("account shell", account.shell)
    if shell and not os.path.isabs(shell):
        raise SpecError(f"account shell {shell!r} is not an absolute path")


@dataclass(frozen=True)
class SandboxSpec:
    """What to exec (argv, env), as which account, in which sandbox.

    `cwd` empty means the account's home. `keep_fds` are descriptors (>= 3)
    the spawner passes and the program must inherit; all others are closed.
    `namespaces` lists the namespaces to unshare (see SUPPORTED_NAMESPACES).
    `hostname` (needs "uts"; empty keeps the host's) is set in the session's
    UTS namespace. `cgroup` true: the sandbox's first process joins the
    session's cgroup (created by sessiond beforehand) before anything else.
    """

    account: Account
    session_id: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    private_tmp: bool = True
    cwd: str = ""
    keep_fds: tuple[int, ...] = ()
    namespaces: tuple[str, ...] = field(default=DEFAULT_NAMESPACES)
    hostname: str = ""
    cgroup: bool = False

    def __post_init__(self) -> None:
        _check_account(self.account)
        check_session_id(self.session_id)
        self._check_argv()
        self._check_env()
        if not isinstance(self.private_tmp, bool):
            raise SpecError("private_tmp must be true or false")
        cwd = _check_text("cwd", self.cwd)
        if cwd and not os.path.isabs(cwd):
            raise SpecError(f"cwd {cwd!r} is not an absolute path")
        self._check_keep_fds()
        self._check_namespaces()
        self._check_hostname()
        if not isinstance(self.cgroup, bool):
            raise SpecError("cgroup must be true or false")

    def _check_argv(self) -> None:
        if not isinstance(self.argv, tuple) or not self.argv:
            raise SpecError("argv must be a non-empty tuple of strings")
        if len(self.argv) > MAX_ARGV:
            raise SpecError(f"argv has more than {MAX_ARGV} entries")
        for index, arg in enumerate(self.argv):
            _check_text(f"argv[{index}]", arg)
        if not os.path.isabs(self.argv[0]):
            raise SpecError(f"argv[0] {self.argv[0]!r} is not an absolute path")

    def _check_env(self) -> None:
        if not isinstance(self.env, Mapping):
            raise SpecError("env must be a mapping of strings")
        if len(self.env) > MAX_ENV_VARS:
            raise SpecError(f"env has more than {MAX_ENV_VARS} variables")
        copy: dict[str, str] = {}
        for name, value in self.env.items():
            if not isinstance(name, str) or not env_name_allowed(name):
                raise SpecError(
                    f"environment variable {name!r} is not allowed "
                    f"(allowed: {sorted(ENV_ALLOWED)} and {ENV_ALLOWED_PREFIXES}*)"
                )
            copy[name] = _check_text(f"env {name}", value, limit=MAX_ENV_VALUE_BYTES)
        # Freeze a private copy so later changes to the caller's dict cannot
        # alter a validated spec.
        object.__setattr__(self, "env", types.MappingProxyType(copy))

    def _check_keep_fds(self) -> None:
        if not isinstance(self.keep_fds, tuple) or len(self.keep_fds) > MAX_KEEP_FDS:
            raise SpecError(f"keep_fds must be a tuple of at most {MAX_KEEP_FDS} fds")
        for fd in self.keep_fds:
            if not _is_int(fd) or not 3 <= fd <= MAX_FD_NUMBER:
                raise SpecError(f"keep_fds entry {fd!r} must be an fd in 3..{MAX_FD_NUMBER}")
        if len(set(self.keep_fds)) != len(self.keep_fds):
            raise SpecError("keep_fds has duplicates")

    def _check_namespaces(self) -> None:
        if not isinstance(self.namespaces, tuple):
            raise SpecError("namespaces must be a tuple of names")
        for name in self.namespaces:
            if name not in SUPPORTED_NAMESPACES:
                raise SpecError(
                    f"namespace {name!r} is not supported (supported: {SUPPORTED_NAMESPACES})"
                )
        if len(set(self.namespaces)) != len(self.namespaces):
            raise SpecError("namespaces has duplicates")
        if "mount" not in self.namespaces:
            raise SpecError("the mount namespace is mandatory")

    def _check_hostname(self) -> None:
        name = _check_text("hostname", self.hostname, limit=MAX_HOSTNAME_BYTES)
        if not name:
            return
        if not HOSTNAME_RE.fullmatch(name):
            raise SpecError(f"hostname {name!r} is not a valid host name")
        if "uts" not in self.namespaces:
            raise SpecError("a hostname needs the uts namespace (it would rename the host)")

    def working_dir(self) -> str:
        """The directory the program starts in: cwd, or the account's home."""
        return self.cwd or self.account.home


def to_json(spec: SandboxSpec) -> bytes:
    """Encode `spec` as compact UTF-8 JSON; raises SpecError past MAX_SPEC_BYTES."""
    acc = spec.account
    doc = {
        "version": SPEC_VERSION,
        "account": {"name": acc.name, "uid": acc.uid, "gid": acc.gid,
                    "groups": list(acc.groups), "home": acc.home, "shell": acc.shell},
        "session_id": spec.session_id,
        "argv": list(spec.argv),
        "env": dict(spec.env),
        "private_tmp": spec.private_tmp,
        "cwd": spec.cwd,
        "keep_fds": list(spec.keep_fds),
        "namespaces": list(spec.namespaces),
        "hostname": spec.hostname,
        "cgroup": spec.cgroup,
    }
    data = json.dumps(doc, ensure_ascii=True, separators=(",", ":"), sort_keys=True).encode()
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(f"spec is {len(data)} bytes, more than {MAX_SPEC_BYTES}")
    return data


def strict_json(text: str, error: type[ValueError], what: str) -> Any:
    """json.loads that also refuses duplicate keys and NaN/Infinity; every deviation raises
    ERROR naming WHAT (the spec here, the slot line in isolation/slot.py)."""
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise error(f"duplicate key {key!r} in {what}")
            result[key] = value
        return result

    def reject_constant(name: str) -> Any:
        raise error(f"non-standard JSON constant {name} in {what}")

    try:
        return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=reject_constant)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise error(f"{what} is not valid JSON: {exc}") from None


def _object(what: str, value: object, keys: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(f"{what} must be a JSON object")
    missing, unknown = keys - value.keys(), value.keys() - keys
    if unknown:
        raise SpecError(f"unknown key(s) in {what}: {sorted(unknown)}")
    if missing:
        raise SpecError(f"missing key(s) in {what}: {sorted(missing)}")
    return value


def _list(what: str, value: object) -> list[Any]:
    if not isinstance(value, list):
        raise SpecError(f"{what} must be a JSON array")
    return value


def from_json(data: bytes) -> SandboxSpec:
    """Decode and validate a spec; every deviation raises SpecError."""
    if not isinstance(data, bytes):
        raise SpecError("spec must be bytes")
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(f"spec is more than {MAX_SPEC_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"spec is not valid JSON: {exc}") from None
    raw = strict_json(text, SpecError, "spec")
    doc = _object("spec", raw, _SPEC_KEYS)
    if not _is_int(doc["version"]) or doc["version"] != SPEC_VERSION:
        raise SpecError(f"unsupported spec version {doc['version']!r} (want {SPEC_VERSION})")
    acc = _object("account", doc["account"], _ACCOUNT_KEYS)
    account = Account(
        name=acc["name"], uid=acc["uid"], gid=acc["gid"],
        groups=tuple(_list("account groups", acc["groups"])),
        home=acc["home"], shell=acc["shell"],
    )
    env = doc["env"]
    if not isinstance(env, dict):
        raise SpecError("env must be a JSON object")
    return SandboxSpec(
        account=account,
        session_id=doc["session_id"],
        argv=tuple(_list("argv", doc["argv"])),
        env=env,
        private_tmp=doc["private_tmp"],
        cwd=doc["cwd"],
        keep_fds=tuple(_list("keep_fds", doc["keep_fds"])),
        namespaces=tuple(_list("namespaces", doc["namespaces"])),
        hostname=doc["hostname"],
        cgroup=doc["cgroup"],
    )

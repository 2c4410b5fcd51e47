# [clipboard] and [files]: key parsers, per-user/group overrides and the
# resolution of one account's policy.
#
# Why overrides name keys of the section itself ("alice: to_client=false"):
# an admin who can write a key for everyone can write it for one user or
# group with the same spelling, as in [limits]. Resolution order is [limits']
# too: the section's values, then matching group overrides in config order
# (later wins), then the user's own.
#
# The resolved ClipboardPolicy / FilePolicy is what sessiond enforces in the
# relay (sessiond.transfer_filter) and what it hands the agent, as defence in
# depth, in AgentSettings.
"""Parsers for [clipboard]/[files] and resolve_clipboard()/resolve_files()."""

from __future__ import annotations

import grp
import re
from collections.abc import Callable
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, Final

from isolation.accounts import Account
from isolation.limits import split_overrides
from sessiond.agent.clipboard_policy import (
    HARD_MAX_IMAGE_BYTES,
    HARD_MAX_TEXT_BYTES,
    PNG_MIME,
    SUPPORTED_MIMES,
    TEXT_MIME,
    ClipboardPolicy,
    FilePolicy,
)

if TYPE_CHECKING:
    from sessiond.config_sections import ClipboardSection, FilesSection

# Overrides per [clipboard]/[files] users or groups key.
MAX_TRANSFER_OVERRIDES: Final = 256
# The largest max_file_bytes config accepts (1 TiB, the protocol's MAX_FILE_BYTES).
MAX_FILE_BYTES_CONFIG: Final = 2**40
_DIR_RE: Final = re.compile(r"[^/\0][^\0]{0,254}")

TYPE_ALIASES: Final = {"text": TEXT_MIME, "image": PNG_MIME}
Override = tuple[str, tuple[tuple[str, Any], ...]]  # (user or group, ((key, value), ...))


def parse_bool(value: str) -> bool:
    """true or false."""
    if value not in ("true", "false"):
        raise ValueError("must be true or false")
    return value == "true"


def byte_count(high: int) -> Callable[[str], int]:
    """A byte count 0..high."""
    def parse(value: str) -> int:
        if not value.isdigit() or not 0 <= int(value) <= high:
            raise ValueError(f"must be a byte count between 0 and {high}")
        return int(value)
    return parse


def parse_types(value: str) -> frozenset[str]:
    """Space-separated MIME types the clipboard carries; "text" and "image" are short
    for them (overrides separate entries with ';', so they write types=text,image)."""
    types = frozenset(TYPE_ALIASES.get(word, word) for word in value.split())
    unknown = types - SUPPORTED_MIMES
    if unknown:
        raise ValueError(f"unsupported types {sorted(unknown)}; supported: {' '.join(sorted(SUPPORTED_MIMES))}")
    return types


def home_dir_name(value: str) -> str:
    """A directory below the home: relative, no '..' component."""
    parts = value.split("/")
    if not _DIR_RE.fullmatch(value) or ".." in parts or "." in parts or "" in parts:
        raise ValueError("must be a path relative to the home directory, without '.' or '..'")
    return value


CLIPBOARD_KEYS: Final[dict[str, Callable[[str], object]]] = {
    "to_client": parse_bool,
    "from_client": parse_bool,
    "primary_to_client": parse_bool,
    "primary_from_client": parse_bool,
    "max_text_bytes": byte_count(HARD_MAX_TEXT_BYTES),
    "max_image_bytes": byte_count(HARD_MAX_IMAGE_BYTES),
    "types": parse_types,
}
FILES_KEYS: Final[dict[str, Callable[[str], object]]] = {
    "to_client": parse_bool,
    "from_client": parse_bool,
    "max_file_bytes": byte_count(MAX_FILE_BYTES_CONFIG),
}


def overrides_of(keys: dict[str, Callable[[str], object]]) -> Callable[[str], tuple[Override, ...]]:
    """A parser of 'alice: to_client=false max_text_bytes=1024; bob: ...' with KEY among `keys`."""
    def parse(value: str) -> tuple[Override, ...]:
        found: list[Override] = []
        for name, pairs in split_overrides(value, keys, MAX_TRANSFER_OVERRIDES):
            values = tuple((key, keys[key](raw.replace(",", " ") if key == "types" else raw)) for key, raw in pairs)
            found.append((name, values))
        return tuple(found)
    return parse


def _group_gid(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def _resolve(section: Any, keys: dict[str, Callable[[str], object]], account: Account | None,
             group_gid: Callable[[str], int | None]) -> dict[str, Any]:  # fmt: skip
    values = {key: getattr(section, key) for key in keys}
    if account is None:
        return values
    member_of = set(account.groups) | {account.gid}
    for name, settings in section.groups:
        gid = group_gid(name)
        if gid is not None and gid in member_of:
            values.update(settings)
    for name, settings in section.users:
        if name == account.name:
            values.update(settings)
    return values


def resolve_clipboard(section: ClipboardSection, account: Account | None,
                      group_gid: Callable[[str], int | None] = _group_gid) -> ClipboardPolicy:  # fmt: skip
    """The clipboard policy of `account` (the section's defaults without one)."""
    v = _resolve(section, CLIPBOARD_KEYS, account, group_gid)
    return ClipboardPolicy(to_client=v["to_client"], from_client=v["from_client"],
                           primary_to_client=v["primary_to_client"], primary_from_client=v["primary_from_client"],
                           max_text_bytes=v["max_text_bytes"], max_image_bytes=v["max_image_bytes"],
                           allowed_mimes=v["types"])  # fmt: skip


def resolve_files(section: FilesSection, account: Account | None,
                  group_gid: Callable[[str], int | None] = _group_gid) -> FilePolicy:  # fmt: skip
    """The file-transfer policy of `account` (the section's defaults without one)."""
    v = _resolve(section, FILES_KEYS, account, group_gid)
    return FilePolicy(to_client=v["to_client"], from_client=v["from_client"], max_file_bytes=v["max_file_bytes"],
                      downloads_dir=section.downloads_dir, outbox_dir=section.outbox_dir)  # fmt: skip


def files_under_clipboard(files: FilePolicy, clipboard: ClipboardPolicy) -> FilePolicy:
    """Files to the client only if the clipboard to the client is open too: an admin who
    closes [clipboard] to_client means "nothing leaves", and a file is the easy way around."""
    if clipboard.to_client or not files.to_client:
        return files
    return replace(files, to_client=False)


def policy_fields(policy: ClipboardPolicy | FilePolicy) -> dict[str, object]:
    """The policy as plain values (logs, tests)."""
    return {f.name: getattr(policy, f.name) for f in fields(policy)}

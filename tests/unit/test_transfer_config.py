"""[clipboard] and [files]: parsing, bounds, per-user/group overrides and the policy handed to the agent."""

from __future__ import annotations

import pytest

from isolation.accounts import Account
from sessiond.agent.clipboard_policy import HARD_MAX_TEXT_BYTES, PNG_MIME, TEXT_MIME
from sessiond.agent.settings import AgentSettings
from sessiond.config import ConfigError, load_config
from sessiond.spawn import agent_settings
from sessiond.transfer_config import (
    MAX_TRANSFER_OVERRIDES,
    files_under_clipboard,
    resolve_clipboard,
    resolve_files,
)

ALICE = Account("alice", 1000, 1000, (2000,), "/home/alice", "/bin/sh")
GROUPS = {"staff": 2000, "other": 3000}


def test_defaults_let_both_ways_but_keep_primary_in_the_session() -> None:
    config = load_config()
    clip = resolve_clipboard(config.clipboard, ALICE, GROUPS.get)
    assert clip.to_client and clip.from_client and not clip.primary_to_client and clip.primary_from_client
    assert clip.allowed_mimes == {TEXT_MIME, PNG_MIME}
    files = resolve_files(config.files, ALICE, GROUPS.get)
    assert files.to_client and files.downloads_dir == "Downloads" and files.outbox_dir == "Outbox"


def test_group_then_user_overrides() -> None:
    config = load_config(overrides={"clipboard": {
        "groups": "staff: to_client=false max_text_bytes=100; other: from_client=false",
        "users": "alice: max_text_bytes=200 types=text",
    }, "files": {"users": "bob: to_client=false", "groups": "staff: max_file_bytes=10"}})  # fmt: skip
    clip = resolve_clipboard(config.clipboard, ALICE, GROUPS.get)
    assert not clip.to_client and clip.from_client  # staff applies, other does not
    assert clip.max_text_bytes == 200 and clip.allowed_mimes == {TEXT_MIME}
    files = resolve_files(config.files, ALICE, GROUPS.get)
    assert files.to_client and files.max_file_bytes == 10


@pytest.mark.parametrize(("section", "key", "value", "why"), [
    ("clipboard", "max_text_bytes", str(HARD_MAX_TEXT_BYTES + 1), "byte count"),
    ("clipboard", "types", "text/html", "unsupported"),
    ("clipboard", "to_client", "yes", "true or false"),
    ("clipboard", "users", "alice: colour=red", "not one of"),
    ("clipboard", "users", "alice: to_client=false; alice: from_client=false", "twice"),
    ("files", "downloads_dir", "../etc", "relative"),
    ("files", "outbox_dir", "/tmp", "relative"),
    ("files", "max_file_bytes", str(2**40 + 1), "byte count"),
])  # fmt: skip
def test_bad_values_name_section_and_key(section: str, key: str, value: str, why: str) -> None:
    with pytest.raises(ConfigError, match=rf"\[{section}\] {key}.*{why}"):
        load_config(overrides={section: {key: value}})


def test_overrides_are_bounded() -> None:
    many = "; ".join(f"u{i}: to_client=false" for i in range(MAX_TRANSFER_OVERRIDES + 1))
    with pytest.raises(ConfigError, match="more than"):
        load_config(overrides={"clipboard": {"users": many}})


def test_the_resolved_policy_reaches_the_agent_settings() -> None:
    config = load_config(overrides={"clipboard": {"users": "alice: to_client=false"},
                                    "files": {"users": "alice: from_client=false"}})  # fmt: skip
    settings = agent_settings(config, "/run/s/agent.sock", 800, 600, resolve_clipboard(config.clipboard, ALICE),
                              resolve_files(config.files, ALICE))  # fmt: skip
    parsed = AgentSettings.from_json(settings.to_json())
    assert not parsed.clip_to_client and parsed.clip_from_client
    assert parsed.files_to_client and not parsed.files_from_client


def test_closing_the_clipboard_to_the_client_closes_files_to_it_too() -> None:
    config = load_config(overrides={"clipboard": {"to_client": "false"}})
    files = files_under_clipboard(resolve_files(config.files, ALICE), resolve_clipboard(config.clipboard, ALICE))
    assert not files.to_client and files.from_client
    open_config = load_config()
    clip = resolve_clipboard(open_config.clipboard, ALICE)
    assert files_under_clipboard(resolve_files(open_config.files, ALICE), clip).to_client

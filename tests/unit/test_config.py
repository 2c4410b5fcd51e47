"""sessiond.conf loading: defaults, types, and errors naming file/section/key."""

from __future__ import annotations

import os

import pytest

from sessiond.config import ConfigError, load_config
from sessiond.farm.tickets import MAX_TICKET_TTL, MIN_TICKET_TTL

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write(tmp_path: object, text: str) -> str:
    path = os.path.join(str(tmp_path), "sessiond.conf")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def test_defaults_without_a_file() -> None:
    config = load_config(None)
    assert config.listen == ("127.0.0.1", 4443)
    assert config.get("display", "frames_in_flight") == 2


def test_shipped_config_matches_the_defaults() -> None:
    shipped = load_config(os.path.join(REPO, "conf", "sessiond.conf"))
    assert shipped.values == load_config(None).values


def test_unknown_key_names_file_section_and_key(tmp_path: object) -> None:
    path = write(tmp_path, "[server]\nlisen = 1.2.3.4:5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert path in str(info.value) and "[server]" in str(info.value) and "'lisen'" in str(info.value)


def test_unknown_section_is_an_error(tmp_path: object) -> None:
    path = write(tmp_path, "[servre]\nlisten = 1.2.3.4:5\n")
    with pytest.raises(ConfigError, match=r"unknown section \[servre\]"):
        load_config(path)


@pytest.mark.parametrize("text", [
    "[server]\nlisten = nope\n",
    "[server]\nlisten = 1.2.3.4:70000\n",
    "[session]\nwidth = 10\n",
    "[display]\nframes_in_flight = 0\n",
    "[auth]\nfailure_delay = -1\n",
    "[session]\nidle_release_seconds = 0.5\n",
    "[session]\nidle_release_seconds = never\n",
])  # fmt: skip
def test_bad_values_name_the_setting(tmp_path: object, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    section, key = text.split("\n")[0], text.split("\n")[1].split(" = ")[0]
    assert section in str(info.value) and key in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_config(os.path.join(str(tmp_path), "absent.conf"))


def test_overrides_apply_and_are_checked() -> None:
    config = load_config(None, {"server": {"listen": "127.0.0.1:5000"}})
    assert config.listen == ("127.0.0.1", 5000)
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config(None, {"server": {"nope": "1"}})


def test_sessionctl_finds_the_same_control_socket_as_sessiond(tmp_path: object) -> None:
    from sessiond.ctl import control_socket

    assert control_socket(None) == load_config(None).get("admin", "socket")
    for text in ("[server]\nruntime_dir = /run/x\n", "[admin]\nsocket = /run/y.sock\n", "[auth]\nmin_uid = 1000\n"):
        path = write(tmp_path, text)
        assert control_socket(path) == load_config(path).get("admin", "socket")


def test_sections_are_typed_dataclasses_matching_the_whitelist() -> None:
    import dataclasses

    from sessiond.config import SCHEMA, SECTION_TYPES

    assert list(SECTION_TYPES) == list(SCHEMA)
    for name, cls in SECTION_TYPES.items():
        assert [f.name for f in dataclasses.fields(cls)] == list(SCHEMA[name]), name
    config = load_config(None, {"session": {"width": "1024"}, "apps": {"end_session_with_last_app": "false"}})
    assert config.session.width == 1024 and isinstance(config.session.width, int)
    assert config.apps.end_session_with_last_app is False
    assert config.admin.socket == config.get("admin", "socket")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.session.width = 1  # type: ignore[misc]


def test_farm_absent_means_a_single_host() -> None:
    farm = load_config(None).farm
    assert not farm.enabled and farm.etcd == ()


def test_farm_section_is_parsed(tmp_path: object) -> None:
    path = write(tmp_path, "[farm]\netcd = http://10.0.0.1:2379, http://10.0.0.2:2379\nhost_id = a1\n"
                           "advertise = 10.0.0.9:4443\ncapacity = 3\nlease_ttl = 4\n")  # fmt: skip
    farm = load_config(path).farm
    assert farm.enabled and farm.etcd == ("http://10.0.0.1:2379", "http://10.0.0.2:2379")
    assert (farm.host_id, farm.advertise, farm.capacity, farm.lease_ttl) == ("a1", "10.0.0.9:4443", 3, 4)
    assert farm.ticket_ttl == 30
    assert load_config(write(tmp_path, f"[farm]\nticket_ttl = {MAX_TICKET_TTL}\n")).farm.ticket_ttl == MAX_TICKET_TTL


@pytest.mark.parametrize(("text", "words"), [
    ("etcd = ftp://x:1\nadvertise = a:1\n", "etcd"),
    ("etcd = http://x:1\n", "advertise"),
    ("etcd = http://x:1\nadvertise = a:1\nhost_id = -bad\n", "host_id"),
    ("etcd = http://x:1\nadvertise = a:1\nlease_ttl = 1\n", "lease_ttl"),
    ("etcd = https://x:1\nadvertise = a:1\n", "etcd_ca"),
    ("etcd = http://x:1\nadvertise = a:1\netcd_cert = /c\n", "etcd_key"),
    ("prefix = nope\n", "prefix"),
    (f"ticket_ttl = {MIN_TICKET_TTL - 1}\n", "ticket_ttl"),
    (f"ticket_ttl = {MAX_TICKET_TTL + 1}\n", "ticket_ttl"),
])  # fmt: skip
def test_farm_errors_name_the_key(tmp_path: object, text: str, words: str) -> None:
    path = write(tmp_path, "[farm]\n" + text)
    with pytest.raises(ConfigError, match=words):
        load_config(path)


def test_idle_release_seconds_is_read_and_refused_out_of_range_with_the_bounds(tmp_path: object) -> None:
    assert load_config(None).session.idle_release_seconds == 15.0
    assert load_config(write(tmp_path, "[session]\nidle_release_seconds = 2.5\n")).session.idle_release_seconds == 2.5
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "[session]\nidle_release_seconds = 0\n"))
    assert "[session] idle_release_seconds = '0': must be between 1.0 and 86400.0" in str(info.value)

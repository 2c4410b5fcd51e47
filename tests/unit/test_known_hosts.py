"""Trust on first use of the server certificate."""

from __future__ import annotations

import os

import pytest

from client.known_hosts import HostKeyMismatch, KnownHosts


def test_first_use_pins_then_accepts_the_same(tmp_path: object) -> None:
    hosts = KnownHosts(os.path.join(str(tmp_path), "sub", "known_hosts"))
    assert hosts.check("h:1", "aa") is False
    assert hosts.check("h:1", "aa") is True
    assert hosts.check("h:2", "bb") is False


def test_changed_certificate_names_both_fingerprints(tmp_path: object) -> None:
    hosts = KnownHosts(os.path.join(str(tmp_path), "known_hosts"))
    hosts.check("h:1", "aa")
    with pytest.raises(HostKeyMismatch) as info:
        hosts.check("h:1", "bb")
    assert "aa" in str(info.value) and "bb" in str(info.value) and hosts.path in str(info.value)

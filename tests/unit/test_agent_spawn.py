# The agent's settings are typed once and travel as JSON (no argv to keep in
# step with an argparse on the other side); an adopted agent is signalled
# through the pidfd held since adoption, so a recycled pid is never hit.
"""AgentSettings round trip and bounds; AgentHandle adoption and pidfd signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from isolation.accounts import Account
from sessiond import spawn
from sessiond.agent.settings import MAX_SETTINGS_BYTES, AgentSettings, SettingsError
from sessiond.config import load_config
from sessiond.spawn import AgentHandle, agent_settings

ALICE = Account("alice", 1000, 1000, (1000,), "/home/alice", "/bin/sh")


def test_settings_come_from_the_typed_config_and_survive_json() -> None:
    config = load_config(None, {"display": {"max_fps": "30"}, "audio": {"max_kbps": "96"}})
    settings = agent_settings(config, "/run/s/agent.sock", 1024, 768)
    assert (settings.width, settings.height, settings.max_fps, settings.audio_max_kbps) == (1024, 768, 30, 96)
    assert AgentSettings.from_json(settings.to_json()) == settings


def test_the_idle_release_period_reaches_the_agent() -> None:
    config = load_config(None, {"session": {"idle_release_seconds": "3"}})
    settings = AgentSettings.from_json(agent_settings(config, "/run/s/agent.sock", 1024, 768).to_json())
    assert settings.idle_release_seconds == 3.0


@pytest.mark.parametrize("change", [
    {"width": 10}, {"width": True}, {"max_fps": 0}, {"launch_timeout": "20"}, {"socket": "relative"},
    {"unknown": 1}, {"idle_release_seconds": 0}, {"idle_release_seconds": "15"},
])  # fmt: skip
def test_bad_settings_are_refused_naming_the_field(change: dict[str, Any]) -> None:
    data = json.loads(AgentSettings(socket="/run/s/agent.sock").to_json())
    data.update(change)
    with pytest.raises(SettingsError) as info:
        AgentSettings.from_json(json.dumps(data))
    assert next(iter(change)) in str(info.value)


def test_settings_are_bounded_before_parsing() -> None:
    with pytest.raises(SettingsError, match="exceed"):
        AgentSettings.from_json(" " * (MAX_SETTINGS_BYTES + 1))
    with pytest.raises(SettingsError, match="missing"):
        AgentSettings.from_json("{}")


class FakeReactor:
    def addReader(self, reader: Any) -> None:  # noqa: N802
        pass

    def removeReader(self, reader: Any) -> None:  # noqa: N802
        pass


def test_an_adopted_agent_is_signalled_through_its_pidfd(monkeypatch: Any) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        monkeypatch.setattr(spawn, "process_matches", lambda pid, uid, sid: pid == child.pid)
        sent: list[tuple[int, int]] = []
        real = signal.pidfd_send_signal

        def spy(fd: int, sig: int, *args: Any) -> None:
            sent.append((fd, sig))
            real(fd, sig, *args)

        monkeypatch.setattr(spawn.signals, "pidfd_send_signal", spy)
        monkeypatch.setattr(os, "kill", _no_bare_pids)
        handle = AgentHandle("s1", ALICE)
        assert handle.adopt(FakeReactor(), child.pid, lambda: None)
        assert handle.signal("TERM")
        assert child.wait(timeout=10) == -signal.SIGTERM
        assert [sig for _fd, sig in sent] == [signal.SIGTERM]
        assert not handle.signal("KILL")  # exited and reaped: the pidfd reaches nothing, whoever has the pid now
    finally:
        child.kill()
        child.wait()


def _no_bare_pids(*_args: Any) -> None:
    raise AssertionError("os.kill with a bare pid")


def test_adoption_refuses_a_pid_that_is_not_the_sessions_agent(monkeypatch: Any) -> None:
    monkeypatch.setattr(spawn, "process_matches", lambda pid, uid, sid: False)
    handle = AgentHandle("s1", ALICE)
    assert not handle.adopt(FakeReactor(), 1, lambda: None)
    assert not handle.adopt(FakeReactor(), None, lambda: None)
    assert not handle.signal("TERM") and handle.pid is None

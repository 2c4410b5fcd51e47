"""MicSwitch: the session's microphone source starts muted, turns on when a
client sends and off when it stops, in order, the last request winning, and
failures are logged and retried on the next request. Recorder fakes for pactl;
an asyncio loop drives the switch's task (no sleeps, no processes)."""

from __future__ import annotations

import asyncio
from typing import Any

from sessiond.agent.audio_privacy import MicSwitch, mute_argv
from sessiond.agent.audio_server import MIC_NAME, server_script


class FakePactl:
    """Records the argv of each call; each call waits until released if gated."""

    def __init__(self, results: list[bool] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.results = list(results or [])
        self.gate: asyncio.Event | None = None

    async def __call__(self, argv: list[str]) -> bool:
        self.calls.append(argv)
        if self.gate is not None:
            await self.gate.wait()
        return self.results.pop(0) if self.results else True


def make_switch(pactl: FakePactl) -> tuple[MicSwitch, list[asyncio.Task[None]], list[str]]:
    tasks: list[asyncio.Task[None]] = []
    logs: list[str] = []

    def spawn(coro: Any) -> None:
        tasks.append(asyncio.get_running_loop().create_task(coro))

    return MicSwitch(pactl, spawn, logs.append), tasks, logs


async def settle(tasks: list[asyncio.Task[None]]) -> None:
    while not all(t.done() for t in tasks):
        await asyncio.gather(*tasks)


def test_server_script_starts_with_the_mic_muted() -> None:
    script = server_script("/run/user/1000/pulse", 48000, 2).splitlines()
    assert f"set-source-mute {MIC_NAME} 1" in script
    loads = [i for i, line in enumerate(script) if f"source_name={MIC_NAME}" in line]
    assert loads and loads[0] < script.index(f"set-source-mute {MIC_NAME} 1")


def test_mute_argv() -> None:
    assert mute_argv(True) == ["pactl", "set-source-mute", MIC_NAME, "1"]
    assert mute_argv(False) == ["pactl", "set-source-mute", MIC_NAME, "0"]


def test_on_then_off_unmutes_then_mutes() -> None:
    async def scenario() -> None:
        pactl = FakePactl()
        switch, tasks, _ = make_switch(pactl)
        switch.set(False)  # already muted by the server's script: nothing to do
        assert tasks == [] and pactl.calls == []
        switch.set(True)
        await settle(tasks)
        assert pactl.calls == [mute_argv(False)] and switch.applied is True
        switch.set(True)  # already on: no second call
        await settle(tasks)
        switch.set(False)
        await settle(tasks)
        assert pactl.calls == [mute_argv(False), mute_argv(True)] and switch.applied is False

    asyncio.run(scenario())


def test_requests_during_a_call_are_applied_in_order_last_wins() -> None:
    async def scenario() -> None:
        pactl = FakePactl()
        pactl.gate = asyncio.Event()
        switch, tasks, _ = make_switch(pactl)
        switch.set(True)
        await asyncio.sleep(0)  # the task starts its first call and waits at the gate
        switch.set(False)
        switch.set(True)
        switch.set(False)
        assert len(tasks) == 1, "one worker, never two pactl calls at once"
        pactl.gate.set()
        await settle(tasks)
        assert pactl.calls == [mute_argv(False), mute_argv(True)]
        assert switch.applied is False and switch.wanted is False

    asyncio.run(scenario())


def test_a_failed_call_is_logged_and_retried_on_the_next_request() -> None:
    async def scenario() -> None:
        pactl = FakePactl(results=[False])
        switch, tasks, logs = make_switch(pactl)
        switch.set(True)
        await settle(tasks)
        assert switch.applied is False and switch.failures == 1
        assert logs and "unmute" in logs[0]
        switch.set(True)
        await settle(tasks)
        assert switch.applied is True and pactl.calls == [mute_argv(False)] * 2

    asyncio.run(scenario())

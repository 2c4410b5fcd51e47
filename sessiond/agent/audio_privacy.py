# The session's microphone is off until a client turns it on, and the
# session can see that.
#
# Why a source mute rather than only "no data in the FIFO": an app cannot
# tell a silent microphone from a switched-off one, and users expect the
# mic-on indicator their desktop shows (pavucontrol, a panel applet, or
# `pactl get-source-mute sessiond_mic`). PulseAudio's source mute is that
# standard, visible state: the server's start-up script mutes the source, the
# agent unmutes it when a client starts sending (MIC_FORMAT on audio-in) and
# mutes it again when that channel closes or the client goes away.
#
# Why a "wanted state" worker rather than one pactl per event: on/off events
# can arrive faster than pactl runs (a client that opens and drops the
# channel at once); pactl calls must not overtake each other, and the last
# event must win. One task applies the wanted state until it sticks.
"""MicSwitch: the session's virtual microphone muted unless a client sends."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Awaitable, Callable

from sessiond.agent.audio_server import MIC_NAME

PACTL = "pactl"
# Seconds one pactl call may take before it counts as failed (it answers in ~5 ms).
PACTL_TIMEOUT = 5.0

Runner = Callable[[list[str]], Awaitable[bool]]


def mute_argv(muted: bool, source: str = MIC_NAME) -> list[str]:
    """The pactl command that mutes (or unmutes) SOURCE."""
    return [PACTL, "set-source-mute", source, "1" if muted else "0"]


async def run_quietly(argv: list[str], env: dict[str, str]) -> bool:
    """Run ARGV with ENV, output discarded; True if it exited 0 in time."""
    devnull = asyncio.subprocess.DEVNULL
    try:
        process = await asyncio.create_subprocess_exec(*argv, env=env, stdin=devnull, stdout=devnull,
                                                       stderr=devnull, start_new_session=True)  # fmt: skip
    except OSError:
        return False
    try:
        return await asyncio.wait_for(process.wait(), PACTL_TIMEOUT) == 0
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        return False


class MicSwitch:
    """Applies the wanted mic state (on = unmuted) to the session's source, in order.

    The source starts muted (the sound server's script mutes it), so the
    applied state starts as "off" and nothing runs until a client sends.
    """

    def __init__(self, run: Runner, spawn: Callable[[Any], None], log: Callable[[str], None]) -> None:
        self.run = run
        self.spawn = spawn
        self.log = log
        self.wanted = False
        self.applied = False
        self.failures = 0
        self._busy = False

    def set(self, on: bool) -> None:
        """Ask for the mic on (a client is sending) or off; applied in the background."""
        self.wanted = on
        if not self._busy and self.applied != self.wanted:
            self._busy = True
            self.spawn(self._apply())

    async def _apply(self) -> None:
        try:
            while self.applied != self.wanted:
                target = self.wanted
                if not await self.run(mute_argv(not target)):
                    self.failures += 1
                    self.log(f"could not {'unmute' if target else 'mute'} the session microphone {MIC_NAME}")
                    return
                self.applied = target
        finally:
            self._busy = False

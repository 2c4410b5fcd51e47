# Starting, watching and signalling one session's agent process.
#
# The agent's settings are a typed AgentSettings (sessiond.agent.settings)
# serialized into the sandbox spec's environment, next to the link token;
# isolation.enter owns the privileged spawn. An agent sessiond spawned is its
# child (Twisted's process transport signals it); an agent it re-adopts after
# a restart is not, so it is held by a pidfd opened at adoption and every
# signal goes through that pidfd, never a bare pid that may have been reused.
"""agent_settings(), AgentHandle: spawn, adopt, signal, usage and cleanup."""

from __future__ import annotations

import os
import signal as signals
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet import error, protocol
from twisted.logger import Logger

from isolation.accounts import Account
from isolation.launcher import enter_argv, enter_env
from isolation.limits import limits_from_settings, resolve_limits
from isolation.sandbox import CgroupError, Sandbox, create_sandbox, open_sandbox
from isolation.slot import X_SCREEN_ENV
from isolation.spec import to_json
from sessiond.agent.clipboard_policy import ClipboardPolicy, FilePolicy
from sessiond.agent.frame_trace import TRACE_ENV as FRAME_TRACE_ENV
from sessiond.agent.settings import SETTINGS_ENV, AgentSettings
from sessiond.procwatch import PidWatcher, process_matches, tree_usage

if TYPE_CHECKING:
    from sessiond.config import Config
    from sessiond.warm_pool import WarmSlot

log = Logger()


def agent_settings(config: Config, socket: str, width: int, height: int,
                   clipboard: ClipboardPolicy | None = None, files: FilePolicy | None = None,
                   display: str = "native") -> AgentSettings:  # fmt: skip
    """The agent's settings from sessiond's config and the user's resolved transfer
    policy and display (sessiond.display_config.resolve_display)."""
    clipboard = clipboard or ClipboardPolicy()
    files = files or FilePolicy()
    return AgentSettings(
        socket=socket, width=width, height=height,
        max_width=config.session.max_width, max_height=config.session.max_height,
        jpeg_quality=config.display.jpeg_quality, max_fps=config.display.max_fps,
        frames_in_flight=config.display.frames_in_flight, launch_timeout=config.apps.launch_timeout,
        display_max_kbps=config.display.max_kbps, display_adaptive=config.display.adaptive,
        display_glyphs=config.display.glyphs,
        audio_max_kbps=config.audio.max_kbps, sound_server_on_demand=config.audio.sound_server == "on_demand",
        clip_to_client=clipboard.to_client, clip_from_client=clipboard.from_client,
        clip_primary_to_client=clipboard.primary_to_client, clip_primary_from_client=clipboard.primary_from_client,
        clip_max_text_bytes=clipboard.max_text_bytes, clip_max_image_bytes=clipboard.max_image_bytes,
        clip_types=" ".join(sorted(clipboard.allowed_mimes)), files_to_client=files.to_client,
        files_from_client=files.from_client, files_max_bytes=files.max_file_bytes,
        files_downloads_dir=files.downloads_dir, files_outbox_dir=files.outbox_dir,
        mode=config.session.mode, idle_release_seconds=config.session.idle_release_seconds,
        display=display, xpra=config.session.xpra if display == "xpra" else "",
    )  # fmt: skip


class AgentHandle:
    """One session's agent process: spawned here, or adopted by pidfd after a restart."""

    def __init__(self, session_id: str, account: Account) -> None:
        self.session_id = session_id
        self.account = account
        self.pid: int | None = None
        self.sandbox: Sandbox | None = None  # the session's cgroup (isolation.sandbox)
        self._process: Any = None  # Twisted process transport, when we spawned it
        self._watcher: PidWatcher | None = None  # pidfd, when adopted

    def spawn(self, reactor: Any, config: Config, settings: AgentSettings, env: dict[str, str],
              process_protocol: protocol.ProcessProtocol, slot: WarmSlot | None = None) -> None:  # fmt: skip
        """Create the sandbox and start the agent in it; CgroupError if the sandbox cannot be made.
        SLOT: a warm zygote (sessiond.warm_pool) that gets the spec instead of a new process."""
        limits = resolve_limits(limits_from_settings({"memory_max": config.session.memory_max,
                                                      "pids_max": config.session.pids_max,
                                                      "cpu_max": config.session.cpu_max,
                                                      "cpu_weight": config.session.cpu_weight}), self.account,
                                users=config.limits.users, groups=config.limits.groups)  # fmt: skip
        adopted = slot is not None and slot.give_cgroup(self.session_id)  # the slot's own, renamed
        try:
            self.sandbox = create_sandbox(self.session_id, limits)  # on the renamed one: its limits
        except CgroupError:
            if slot is not None:
                slot.discard()
            if adopted:
                self.destroy_sandbox()  # nothing of a session that never started stays
            raise
        python = config.session.python
        argv = (python, "-m", "sessiond.agent")
        env = {**env, SETTINGS_ENV: settings.to_json()}
        if slot is not None and slot.x is not None:  # the slot's X server (isolation/slot.py): ask for its screen
            env[X_SCREEN_ENV] = slot.x.screen
        spec = self.sandbox.spec(self.account, argv, env, network=config.session.network,
                                 hostname=config.session.hostname)  # fmt: skip
        if slot is not None:
            self._process = slot.claim(process_protocol)
        else:
            entry = enter_argv(python, config.session.zygote)
            self._process = reactor.spawnProcess(process_protocol, python, entry, env=enter_env(), path="/",
                                                 childFDs={0: "w", 1: "r", 2: "r"})  # fmt: skip
        self._process.write(to_json(spec))
        self._process.closeStdin()
        self.pid = self._process.pid

    def adopt(self, reactor: Any, pid: int | None, on_exit: Callable[[], None]) -> bool:
        """Hold the agent a previous sessiond started, by pidfd; False if it is gone or not ours."""
        if pid is None:
            return False
        try:
            watcher = PidWatcher(reactor, pid, on_exit)
        except OSError:
            return False
        # Checked after the pidfd is open: the pidfd pins this very process.
        if not process_matches(pid, self.account.uid, self.session_id):
            watcher.stop()
            return False
        self._watcher, self.pid = watcher, pid
        return True

    def signal(self, name: str) -> bool:
        """Send SIG<NAME> to the agent; False if there is no agent to signal."""
        if self._process is not None:
            if self._process.pid is None:
                return False
            try:
                self._process.signalProcess(name)
            except error.ProcessExitedAlready:
                return False
            return True
        if self._watcher is None or self._watcher.fd < 0:
            return False
        try:
            signals.pidfd_send_signal(self._watcher.fd, getattr(signals, f"SIG{name}"))
        except ProcessLookupError:
            return False
        return True

    def stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()

    def usage(self) -> tuple[int, float]:
        """(memory bytes, CPU seconds) from the session's cgroup, or the agent's process tree."""
        if self.sandbox is None and self.pid is not None:
            self.sandbox = open_sandbox(self.session_id)  # re-adopted after a restart
        if self.sandbox is not None and not self.sandbox.destroyed:
            used = self.sandbox.usage()
            return used.memory_bytes, used.cpu_seconds
        if self.pid is None:
            return 0, 0.0
        return tree_usage(self.pid)

    def destroy_sandbox(self) -> None:
        """Kill every process left in the session's cgroup and remove it."""
        sandbox = self.sandbox if self.sandbox is not None else open_sandbox(self.session_id)
        if sandbox is None:
            return
        try:
            sandbox.destroy()
        except CgroupError as exc:
            log.error("session {session}: sandbox cleanup failed: {why}", session=self.session_id, why=str(exc))


def session_env(config: Config, link_token: str, session_id: str) -> dict[str, str]:
    """The agent's environment (allow-listed again by the sandbox spec)."""
    env = {"PATH": config.session.path, "LANG": config.session.lang, "SESSIOND_LINK_TOKEN": link_token,
           "SESSIOND_SESSION_ID": session_id}  # fmt: skip
    if os.environ.get(FRAME_TRACE_ENV) == "1":  # the display pipeline's timeline (sessiond/agent/frame_trace.py)
        env[FRAME_TRACE_ENV] = "1"
    return env

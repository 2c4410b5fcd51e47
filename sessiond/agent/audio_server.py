# The session's own PulseAudio server, started by the agent as the user
# inside the session sandbox.
#
# Why one server per session, configured from scratch (`-n -F script`): the
# session's apps must hear only their own session, and no other session may
# reach this one. The native socket lives in the session's private runtime
# directory (/run/user/UID is a per-session tmpfs, mode 0700, visible only in
# the session's mount namespace), exactly like the X socket; no TCP module,
# no D-Bus, no X11 publishing, no state written to the user's home. Apps find
# it through PULSE_SERVER (which also disables client autospawn).
#
# Why at session start rather than on the first audio channel: apps connect
# to the sound server when they start and most never retry, so an app
# launched before a client opened audio would stay silent forever. Cost,
# measured here: ~16 ms (in the background, READY is not delayed) and ~6 MiB
# PSS (1.2 MiB of it private). The Opus codec and the capture process start
# only while a client has the audio channel open.
"""SoundServer: start, probe and stop the session's PulseAudio."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time

PULSEAUDIO = "pulseaudio"
# Names the session's apps see in their sound settings.
SINK_NAME = "sessiond_out"
MIC_NAME = "sessiond_mic"
# Subdirectory of the runtime directory holding socket, FIFO and state.
PULSE_SUBDIR = "pulse"
# The server's own log, in that directory.
LOG_NAME = "pulseaudio.log"
# Seconds to wait for the server's socket after starting it.
START_TIMEOUT = 5.0
# Seconds the server gets to exit after SIGTERM before SIGKILL.
STOP_GRACE = 2.0
# Poll interval while waiting for the socket (start-up takes ~16 ms).
START_POLL = 0.005


class SoundServerError(Exception):
    """The sound server could not be started."""


def runtime_dir() -> str:
    """The session's private runtime directory (XDG_RUNTIME_DIR), else a private dir under /tmp."""
    path = os.environ.get("XDG_RUNTIME_DIR", "")
    if path and os.path.isdir(path) and os.access(path, os.W_OK):
        return path
    fallback = f"/tmp/sessiond-runtime-{os.getuid()}"
    os.makedirs(fallback, mode=0o700, exist_ok=True)
    return fallback


def server_script(pulse_dir: str, rate: int, channels: int) -> str:
    """The PulseAudio startup script: private socket, null sink, FIFO-fed microphone."""
    socket_path = os.path.join(pulse_dir, "native")
    fifo = os.path.join(pulse_dir, "mic.fifo")
    return (
        f"load-module module-native-protocol-unix auth-anonymous=1 auth-cookie-enabled=0 socket={socket_path}\n"
        f"load-module module-null-sink sink_name={SINK_NAME} rate={rate} channels={channels} "
        "sink_properties=device.description=Session\n"
        f"load-module module-pipe-source source_name={MIC_NAME} file={fifo} format=s16le rate={rate} "
        f"channels={channels} source_properties=device.description=Client-microphone\n"
        f"set-default-sink {SINK_NAME}\n"
        f"set-default-source {MIC_NAME}\n"
        # Privacy: the mic is off until a client sends (audio_privacy.MicSwitch).
        f"set-source-mute {MIC_NAME} 1\n"
    )


class SoundServer:
    """One PulseAudio process for this session."""

    def __init__(self, base_dir: str | None = None, *, rate: int = 48000, channels: int = 2) -> None:
        self.pulse_dir = os.path.join(base_dir or runtime_dir(), PULSE_SUBDIR)
        self.socket_path = os.path.join(self.pulse_dir, "native")
        self.mic_fifo = os.path.join(self.pulse_dir, "mic.fifo")
        self.rate = rate
        self.channels = channels
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """The PULSE_SERVER value of this session."""
        return f"unix:{self.socket_path}"

    def client_env(self) -> dict[str, str]:
        """Variables that point PulseAudio clients (apps, parec) at this server only."""
        return {
            "PULSE_SERVER": self.address,
            "PULSE_COOKIE": os.path.join(self.pulse_dir, "cookie"),
            "PULSE_RUNTIME_PATH": self.pulse_dir,
            "PULSE_STATE_PATH": os.path.join(self.pulse_dir, "state"),
        }

    def start(self, env: dict[str, str]) -> None:
        """Start the server without waiting for it (see wait_ready)."""
        binary = shutil.which(PULSEAUDIO, path=env.get("PATH"))
        if binary is None:
            raise SoundServerError("pulseaudio is not installed (Debian package pulseaudio); audio is unavailable")
        os.makedirs(self.pulse_dir, mode=0o700, exist_ok=True)
        for stale in (self.socket_path, self.mic_fifo):
            if os.path.lexists(stale):
                os.unlink(stale)
        script = os.path.join(self.pulse_dir, "session.pa")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write(server_script(self.pulse_dir, self.rate, self.channels))
        argv = [binary, "--daemonize=no", "--use-pid-file=no", "--system=no", "--exit-idle-time=-1",
                "--realtime=no", "--high-priority=no", "--log-target=stderr", "--log-level=error",
                # Audio is a few hundred kB/s: copying over the socket costs nothing and
                # avoids memfd/SHM segments (and PulseAudio's memfd fallback warnings).
                "--disable-shm=yes",
                "-n", "-F", script]  # fmt: skip
        # Its own log file: the agent's stderr is a pipe to sessiond only until READY.
        with open(os.path.join(self.pulse_dir, LOG_NAME), "ab") as log:
            self.process = subprocess.Popen(argv, env={**env, **self.client_env()}, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=log, start_new_session=True)  # fmt: skip

    async def wait_ready_async(self, timeout: float = START_TIMEOUT) -> None:
        """Like wait_ready, without blocking the event loop."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process is None or self.process.poll() is not None:
                raise SoundServerError("pulseaudio is not running")
            if time.monotonic() > deadline:
                raise SoundServerError(f"pulseaudio did not start within {timeout} s")
            await asyncio.sleep(START_POLL)

    def ready(self) -> bool:
        """True once the server's socket and the microphone FIFO exist."""
        return os.path.exists(self.socket_path) and os.path.exists(self.mic_fifo)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Block until ready (used by tools and tests; the agent polls ready())."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process is None or self.process.poll() is not None:
                raise SoundServerError("pulseaudio exited during start-up")
            if time.monotonic() > deadline:
                raise SoundServerError(f"pulseaudio did not start within {timeout} s")
            time.sleep(START_POLL)

    def alive(self) -> bool:
        """True while the server process runs."""
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after STOP_GRACE)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

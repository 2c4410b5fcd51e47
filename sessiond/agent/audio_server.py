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
# When it starts (`[audio] sound_server`): apps connect to the sound server
# when they start and most never retry, so the socket must exist before any
# app runs. on_demand (the default): the agent creates and listens on the
# server's socket itself (listen()) and starts PulseAudio only when something
# connects to it or a client opens an audio channel, handing it the listening
# socket by systemd-style socket activation (LISTEN_FDS/LISTEN_PID, fd 3;
# PulseAudio's native protocol module takes an inherited socket whose path
# matches). An app that connects first waits in the socket's backlog for the
# ~16 ms the server takes to start, and is then served. A session that never
# plays sound never pays PulseAudio's ~4 MiB PSS. eager: started at session
# start (after READY), as before. The Opus codec and the capture process
# start only while a client has the audio channel open.
"""SoundServer: start, probe and stop the session's PulseAudio."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
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
# Connections that may wait on the socket before the server accepts them.
LISTEN_BACKLOG = 64
# Runs the server with the listening socket (its stdin) as fd 3 and
# LISTEN_PID set to its own pid, as socket activation wants; a constant
# script, the argv follows as "$@".
ACTIVATE_SCRIPT = 'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@" 3<&0 </dev/null'


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
        self.listener: socket.socket | None = None  # on demand: the socket we hold until the server runs

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

    def _prepare_dir(self) -> None:
        os.makedirs(self.pulse_dir, mode=0o700, exist_ok=True)
        for stale in (self.socket_path, self.mic_fifo):
            if os.path.lexists(stale):
                os.unlink(stale)

    def listen(self) -> socket.socket:
        """On demand: create and listen on the server's socket now; start() hands it over."""
        self._prepare_dir()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.socket_path)
            listener.listen(LISTEN_BACKLOG)
        except OSError:
            listener.close()
            raise
        listener.setblocking(False)
        self.listener = listener
        return listener

    @property
    def started(self) -> bool:
        """True once start() ran (the server may still be coming up)."""
        return self.process is not None

    def start(self, env: dict[str, str]) -> None:
        """Start the server without waiting for it (see wait_ready); with a
        listening socket (listen()), the server takes that socket over."""
        import shutil  # noqa: PLC0415 - not at the agent's start (xserver.py's header)

        binary = shutil.which(PULSEAUDIO, path=env.get("PATH"))
        if binary is None:
            raise SoundServerError("pulseaudio is not installed (Debian package pulseaudio); audio is unavailable")
        if self.listener is None:
            self._prepare_dir()
        script = os.path.join(self.pulse_dir, "session.pa")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write(server_script(self.pulse_dir, self.rate, self.channels))
        argv = [binary, "--daemonize=no", "--use-pid-file=no", "--system=no", "--exit-idle-time=-1",
                "--realtime=no", "--high-priority=no", "--log-target=stderr", "--log-level=error",
                # Audio is a few hundred kB/s: copying over the socket costs nothing and
                # avoids memfd/SHM segments (and PulseAudio's memfd fallback warnings).
                "--disable-shm=yes",
                "-n", "-F", script]  # fmt: skip
        stdin: int | socket.socket = subprocess.DEVNULL
        if self.listener is not None:
            argv = ["/bin/sh", "-c", ACTIVATE_SCRIPT, "sh", *argv]
            stdin = self.listener
        # Its own log file: the agent's stderr is a pipe to sessiond only until READY.
        with open(os.path.join(self.pulse_dir, LOG_NAME), "ab") as log:
            self.process = subprocess.Popen(argv, env={**env, **self.client_env()}, stdin=stdin,
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
        """True once the server runs with its socket and the microphone FIFO."""
        return self.started and os.path.exists(self.socket_path) and os.path.exists(self.mic_fifo)

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
        """Stop the server (SIGTERM, then SIGKILL after STOP_GRACE) and close our socket."""
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

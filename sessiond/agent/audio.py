# Audio both ways for one session: the session's sound to the client on the
# audio-out channel, the client's microphone into the session on audio-in.
#
# Why this shape: nothing is captured or decoded unless a client has the
# channel open (privacy and CPU: an idle or disconnected session runs only
# its sound server). audio-out reads the null sink's monitor through parec at
# 10 ms latency, cuts 20 ms frames, and sends an Opus packet only for frames
# that are not silent (plus a short hangover so tails decay naturally), each
# stamped with its stream position (pts) and capture time. A client that
# stops reading loses packets instead of making the agent queue them: late
# audio is useless. audio-in decodes the client's packets and writes PCM
# into the FIFO that feeds the session's virtual microphone.
"""AudioService: audio-out capture/encode and audio-in decode for the agent."""

from __future__ import annotations

import array
import asyncio
import contextlib
import errno
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Protocol

from protocol.audio import AudioCodec, AudioData, AudioFormat, MicData, MicFormat
from protocol.base import ChannelKind, Message
from protocol.connection import frame_cost
from protocol.errors import ReasonCode
from sessiond.agent.audio_bandwidth import TokenBucket
from media.opus import CHANNELS, SAMPLE_RATE, frame_bytes
from sessiond.agent.audio_privacy import MicSwitch, run_quietly
from sessiond.agent.audio_server import SINK_NAME, SoundServer, SoundServerError

if TYPE_CHECKING:
    from media.opus import OpusDecoder, OpusEncoder

# A frame whose every sample is within +-SILENCE_PEAK (about -66 dBFS) is silence.
SILENCE_PEAK = 16
# Frames still sent after the last loud one (100 ms), so the decoder's tail
# and quiet reverb are not cut off.
HANGOVER_FRAMES = 5
# parec's requested latency: frames reach us every 10 ms (MACHINE-NOTES).
CAPTURE_LATENCY_MS = 10
# Bytes read from parec at once: bounds one read, far above one frame.
READ_CHUNK = 64 * 1024
# Seconds parec gets to exit after SIGINT (it drops output on SIGTERM).
CAPTURE_STOP_GRACE = 1.0


class Link(Protocol):
    """The agent's link as the audio service uses it."""

    conn: Any

    def flush(self) -> None: ...


def is_silent(pcm: bytes, threshold: int = SILENCE_PEAK) -> bool:
    """True if every s16le sample of PCM is within +-threshold."""
    samples = array.array("h")
    samples.frombytes(pcm)
    if sys.byteorder != "little":
        samples.byteswap()
    return not samples or (max(samples) <= threshold and min(samples) >= -threshold)


def monotonic_us() -> int:
    """The agent's capture clock: CLOCK_MONOTONIC in microseconds."""
    return time.monotonic_ns() // 1000


class AudioOut:
    """Frames, gates, encodes and sends the session's sound on one channel."""

    def __init__(self, link: Link, channel: int, encoder: OpusEncoder,
                 clock: Callable[[], int] = monotonic_us, cap: TokenBucket | None = None) -> None:  # fmt: skip
        self.link = link
        self.cap = cap or TokenBucket(0)
        self.channel = channel
        self.encoder = encoder
        self.clock = clock
        self.frame_bytes = frame_bytes(encoder.frame_samples, encoder.channels)
        self._buffer = bytearray()
        self._pts = 0
        self._hangover = 0
        self.started = False
        self.frames_in = 0
        self.packets_sent = 0
        self.bytes_sent = 0
        self.dropped = 0
        self.capped = 0

    @property
    def pts(self) -> int:
        """Samples captured so far on this stream (the audio clock)."""
        return self._pts

    def feed(self, pcm: bytes) -> None:
        """Add captured PCM; sends AUDIO_FORMAT first, then a packet per loud frame."""
        if not self.started:
            self.started = True
            fmt = AudioFormat(AudioCodec.OPUS, self.encoder.channels, self.encoder.frame_samples,
                              self.encoder.sample_rate)  # fmt: skip
            self._send(fmt, droppable=False)
        self._buffer += pcm
        size = self.frame_bytes
        while len(self._buffer) >= size:
            frame = bytes(self._buffer[:size])
            del self._buffer[:size]
            self._frame(frame)
        self.link.flush()

    def _frame(self, frame: bytes) -> None:
        pts = self._pts
        self._pts += self.encoder.frame_samples
        self.frames_in += 1
        if is_silent(frame):
            if self._hangover == 0:
                return
            self._hangover -= 1
        else:
            self._hangover = HANGOVER_FRAMES
        now = self.clock()
        for packet in self.encoder.encode(frame):
            self._send(AudioData(pts=pts, capture_us=now, packet=packet), droppable=True)

    def _send(self, message: Message, *, droppable: bool) -> None:
        conn = self.link.conn
        if droppable and conn.send_window(self.channel) < frame_cost(message):
            self.dropped += 1  # the client is not keeping up: drop, never queue
            return
        if droppable and not self.cap.try_take(frame_cost(message)):
            self.capped += 1  # over [audio] max_kbps: drop, never queue
            return
        conn.send(self.channel, message)
        if isinstance(message, AudioData):
            self.packets_sent += 1
            self.bytes_sent += frame_cost(message)


class MicIn:
    """Decodes the client's microphone packets into the session's mic FIFO."""

    def __init__(self, fifo_fd: int, decoder: OpusDecoder) -> None:
        self.fd = fifo_fd
        self.decoder = decoder
        self.format: MicFormat | None = None
        self.bytes_written = 0
        self.dropped = 0

    def message(self, message: Message) -> None:
        """Handle MIC_FORMAT / MIC_DATA; ValueError for a packet that does not decode."""
        if isinstance(message, MicFormat):
            self.format = message
        elif isinstance(message, MicData):
            pcm = self.decoder.decode(message.packet)
            if pcm:
                self._write(pcm)

    def _write(self, pcm: bytes) -> None:
        try:
            self.bytes_written += os.write(self.fd, pcm)
        except BlockingIOError:
            self.dropped += 1  # nobody in the session is draining the mic fast enough

    def close(self) -> None:
        """Close the FIFO (the session's microphone goes quiet)."""
        with contextlib.suppress(OSError):
            os.close(self.fd)


# Longest wait for the sound server before a launched app is started anyway.
APP_WAIT_SECONDS = 2.0


class AudioService:
    """The session's sound server plus, while a client has them open, the audio channels."""

    def __init__(self, loop: asyncio.AbstractEventLoop, server: SoundServer,
                 log: Callable[[str], None], max_kbps: int = 0, on_demand: bool = False) -> None:  # fmt: skip
        self.loop = loop
        self.on_demand = on_demand  # [audio] sound_server = on_demand: start on first use (audio_server.py)
        self.max_kbps = max_kbps
        self.server = server
        self.log = log
        self.out: AudioOut | None = None
        self.mic: MicIn | None = None
        self._capture: asyncio.subprocess.Process | None = None
        self._mic_channel = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._server_begun = False  # start_server ran (early for the login's launch, else after READY)
        self.env: dict[str, str] = {}
        self.mic_switch = MicSwitch(lambda argv: run_quietly(argv, self.env), self._spawn, log)

    def start(self, env: dict[str, str]) -> dict[str, str]:
        """Start the sound server in the background; returns the apps' extra environment."""
        extra = self.prepare(env)
        self.start_server()
        return extra

    def prepare(self, env: dict[str, str]) -> dict[str, str]:
        """The apps' extra environment, without starting anything yet."""
        self.env = dict(env)
        self.env.update(self.server.client_env())
        return self.server.client_env()

    def start_server(self) -> None:
        """Start the sound server in the background (the agent does this right
        after READY, so PulseAudio's start-up is off the session's critical path);
        on demand, only listen on its socket and start it on the first connection.
        Once: a second call does nothing."""
        if self._server_begun:
            return
        self._server_begun = True
        if self.on_demand and self.server.listener is None and not self.server.started:
            try:
                listener = self.server.listen()
            except OSError as exc:
                self.log(f"audio unavailable: cannot listen on {self.server.socket_path}: {exc}")
                return
            self.loop.add_reader(listener.fileno(), self._activate)
            return
        self._activate()

    def _activate(self) -> None:
        """Start the server now (idempotent): something connected, or a client opened audio."""
        if self.server.listener is not None:
            self.loop.remove_reader(self.server.listener.fileno())
        if self.server.started:
            return
        try:
            self.server.start(self.env)
        except (OSError, SoundServerError) as exc:
            self.log(f"audio unavailable: {exc}")

    async def ready_for_apps(self) -> None:
        """Wait (briefly) until apps can connect to the sound server; never fails:
        an app started without sound is better than an app not started. On
        demand the socket already listens: an app's connection starts the server."""
        if self.server.listener is not None and not self.server.started:
            return
        with contextlib.suppress(SoundServerError):
            await self.server.wait_ready_async(timeout=APP_WAIT_SECONDS)

    def handles(self, kind: ChannelKind) -> bool:
        """True for the kinds this service serves."""
        return kind in (ChannelKind.AUDIO_OUT, ChannelKind.AUDIO_IN)

    def channel_opened(self, link: Link, channel: int, kind: ChannelKind) -> None:
        """A client opened audio-out or audio-in: start capturing or accepting the mic."""
        self._spawn(self._open(link, channel, kind))

    async def _open(self, link: Link, channel: int, kind: ChannelKind) -> None:
        try:
            if self.server.listener is not None:
                self._activate()
            await self.server.wait_ready_async()
            if kind is ChannelKind.AUDIO_OUT:
                await self._open_out(link, channel)
            else:
                self._open_mic(channel)
        except (OSError, SoundServerError, ImportError) as exc:
            self.log(f"audio channel {channel}: {exc}")
            with contextlib.suppress(Exception):
                why = f"audio is unavailable: {exc}"
                link.conn.close_channel(channel, ReasonCode.CHANNEL_KIND_UNAVAILABLE, why)
                link.flush()

    async def _open_out(self, link: Link, channel: int) -> None:
        from media.opus import OpusEncoder  # noqa: PLC0415 - lazy: PyAV

        self.stop_out()
        self.out = AudioOut(link, channel, OpusEncoder(), cap=TokenBucket(self.max_kbps))
        argv = ["parec", "--raw", "--format=s16le", f"--rate={SAMPLE_RATE}", f"--channels={CHANNELS}",
                f"--latency-msec={CAPTURE_LATENCY_MS}", f"--device={SINK_NAME}.monitor"]  # fmt: skip
        pipe, devnull = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
        process = await asyncio.create_subprocess_exec(*argv, env=self.env, stdin=devnull, stdout=pipe,
                                                       start_new_session=True)  # fmt: skip
        self._capture = process
        self._spawn(self._pump(process, self.out))

    async def _pump(self, process: asyncio.subprocess.Process, out: AudioOut) -> None:
        if process.stdout is None:
            return
        while True:
            data = await process.stdout.read(READ_CHUNK)
            if not data:
                break
            if self.out is not out:
                return
            out.feed(data)
        if self.out is out:
            self.log(f"sound capture ended (status {await process.wait()})")

    def _open_mic(self, channel: int) -> None:
        from media.opus import OpusDecoder  # noqa: PLC0415 - lazy: PyAV

        self.stop_mic()
        fd = os.open(self.server.mic_fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self.mic = MicIn(fd, OpusDecoder())
        self._mic_channel = channel

    def message(self, link: Link, channel: int, message: Message) -> None:
        """A message on an audio channel (audio-in data; audio-out has nothing from the client)."""
        if self.mic is not None and isinstance(message, (MicFormat, MicData)):
            try:
                self.mic.message(message)
                if isinstance(message, MicFormat):
                    self.mic_switch.set(True)  # a client sends: the session sees the mic on
            except ValueError as exc:
                link.conn.close_channel(channel, ReasonCode.MALFORMED_MESSAGE, str(exc))
                self.stop_mic()
            except OSError as exc:
                if exc.errno != errno.EPIPE:  # the FIFO broke: this mic channel is over, the session is not
                    link.conn.close_channel(channel, ReasonCode.INTERNAL_ERROR, f"microphone: {exc.strerror}")
                self.stop_mic()

    def channel_closed(self, channel: int) -> None:
        """The client closed an audio channel (or went away): stop that direction."""
        if self.out is not None and self.out.channel == channel:
            self.stop_out()
        if self.mic is not None and self._mic_channel == channel:
            self.stop_mic()

    def stop_out(self) -> None:
        """Stop capturing: parec gets SIGINT (it loses output on SIGTERM), then SIGKILL."""
        self.out = None
        process, self._capture = self._capture, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
            self.loop.call_later(CAPTURE_STOP_GRACE, _kill_if_running, process)

    def stop_mic(self) -> None:
        """Stop the microphone (and show it off in the session)."""
        if self.mic is not None:
            self.mic.close()
            self.mic = None
        self.mic_switch.set(False)

    def link_lost(self) -> None:
        """No client any more: nothing is captured or decoded."""
        self.stop_out()
        self.stop_mic()

    def stop(self) -> None:
        """Session shutdown: channels and the sound server."""
        self.link_lost()
        for task in list(self._tasks):
            task.cancel()
        if self.server.listener is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.server.listener.fileno())
        self.server.stop()

    def _spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _kill_if_running(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()

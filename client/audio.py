# The client side of the audio channels: turn the session's Opus packets
# back into PCM (a WAV file, or the local sound device), and turn a sound
# file into microphone packets.
#
# Why packets are placed by pts, not by arrival: the agent does not send
# silence, so arrival order alone cannot tell how long a gap was; the pts
# (samples since the stream's AUDIO_FORMAT) can. Arrival times only feed the
# jitter estimate (RFC 3550's interarrival jitter), which sizes the playout
# delay of `svclient audio play`.
"""Recorder, JitterEstimator, Player and microphone source for svclient."""

from __future__ import annotations

import shutil
import subprocess
import wave
from typing import Any

from protocol.audio import AudioData, AudioFormat
from protocol.base import Message
from protocol.connection import frame_cost
from media.opus import CHANNELS, FRAME_SAMPLES, SAMPLE_BYTES, SAMPLE_RATE, OpusDecoder, frame_bytes

# Longest `audio record` / `audio mic` file: bounds the client's memory (~55 MiB of PCM).
MAX_AUDIO_SECONDS = 300
# Playout delay bounds of `audio play`: never below one frame plus scheduling
# slack, never above what still feels live.
MIN_PLAYOUT_SECONDS = 0.03
MAX_PLAYOUT_SECONDS = 0.3
# Playout delay = JITTER_FACTOR x measured jitter + one frame.
JITTER_FACTOR = 4
# RFC 3550 smoothing of the jitter estimate (1/16).
JITTER_GAIN = 1 / 16


class AudioStreamError(ValueError):
    """The session's audio stream is unusable (bad format, undecodable packet)."""


class JitterEstimator:
    """RFC 3550 interarrival jitter of packets stamped with pts at `rate`."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.jitter = 0.0
        self._last: tuple[float, int] | None = None

    def arrived(self, now: float, pts: int) -> None:
        """Record a packet with `pts` arriving at `now` (seconds)."""
        if self._last is not None:
            last_now, last_pts = self._last
            transit_change = (now - last_now) - (pts - last_pts) / self.rate
            self.jitter += (abs(transit_change) - self.jitter) * JITTER_GAIN
        self._last = (now, pts)

    def playout_delay(self, frame_seconds: float) -> float:
        """How long to hold packets before playing them, from the jitter so far."""
        wanted = JITTER_FACTOR * self.jitter + frame_seconds
        return min(MAX_PLAYOUT_SECONDS, max(MIN_PLAYOUT_SECONDS, wanted))


class StreamDecoder:
    """Follows one audio-out stream: format, decoder, statistics."""

    def __init__(self) -> None:
        self.format: AudioFormat | None = None
        self.decoder: OpusDecoder | None = None
        self.jitter = JitterEstimator(SAMPLE_RATE)
        self.packets = 0
        self.wire_bytes = 0
        self.first_packet_at: float | None = None
        self.first_loud_pts: int | None = None

    def handle(self, message: Message, now: float) -> tuple[int, bytes] | None:
        """Returns (pts, pcm) for data, None for the format; AudioStreamError if unusable."""
        self.wire_bytes += frame_cost(message)
        if isinstance(message, AudioFormat):
            self.format = message
            self.decoder = OpusDecoder(sample_rate=message.sample_rate, channels=message.channels)
            self.jitter = JitterEstimator(message.sample_rate)
            return None
        if not isinstance(message, AudioData):
            return None
        if self.decoder is None:
            raise AudioStreamError("audio data before AUDIO_FORMAT")
        try:
            pcm = self.decoder.decode(message.packet)
        except ValueError as exc:
            raise AudioStreamError(str(exc)) from exc
        self.packets += 1
        if self.first_packet_at is None:
            self.first_packet_at = now
        self.jitter.arrived(now, message.pts)
        return message.pts, pcm


class Recorder:
    """Records `seconds` of the session's sound, placed by pts, into memory; writes WAV."""

    def __init__(self, seconds: float) -> None:
        if not 0 < seconds <= MAX_AUDIO_SECONDS:
            raise ValueError(f"seconds must be in (0, {MAX_AUDIO_SECONDS}]")
        self.seconds = seconds
        self.stream = StreamDecoder()
        self.pcm = bytearray()
        self.started_at: float | None = None

    @property
    def rate(self) -> int:
        return self.stream.format.sample_rate if self.stream.format else SAMPLE_RATE

    @property
    def channels(self) -> int:
        return self.stream.format.channels if self.stream.format else CHANNELS

    def handle(self, message: Message, now: float) -> None:
        """Feed one audio-out message received at `now`."""
        decoded = self.stream.handle(message, now)
        if isinstance(message, AudioFormat):
            self.started_at = now
            self.pcm = bytearray(int(self.seconds * self.rate) * self.channels * SAMPLE_BYTES)
            return
        if decoded is None:
            return
        pts, pcm = decoded
        start = pts * self.channels * SAMPLE_BYTES
        if start >= len(self.pcm):
            return
        chunk = pcm[: len(self.pcm) - start]
        self.pcm[start : start + len(chunk)] = chunk

    def write_wav(self, path: str) -> None:
        """Write what was recorded as 16-bit PCM WAV."""
        with wave.open(path, "wb") as out:
            out.setnchannels(self.channels)
            out.setsampwidth(SAMPLE_BYTES)
            out.setframerate(self.rate)
            out.writeframes(bytes(self.pcm))


class Player:
    """Plays the session's sound on the local sound device through `pacat`."""

    def __init__(self) -> None:
        self.stream = StreamDecoder()
        self.process: subprocess.Popen[bytes] | None = None
        self.next_pts = 0

    @staticmethod
    def available() -> str | None:
        """None if a local sound server answers, else why not."""
        if shutil.which("pacat") is None or shutil.which("pactl") is None:
            return "no local sound output: install pulseaudio-utils (pacat) and run a sound server"
        probe = subprocess.run(["pactl", "info"], capture_output=True, timeout=10)
        if probe.returncode != 0:
            return "no local sound server answers (pactl info failed); use `audio record FILE.wav` instead"
        return None

    def handle(self, message: Message, now: float) -> None:
        """Feed one audio-out message; PCM goes to pacat with a jitter-sized delay."""
        decoded = self.stream.handle(message, now)
        if isinstance(message, AudioFormat):
            self._restart(message)
            return
        if decoded is None or self.process is None or self.process.stdin is None:
            return
        pts, pcm = decoded
        if pts > self.next_pts:  # a silent stretch the agent did not send
            gap = min(pts - self.next_pts, int(MAX_PLAYOUT_SECONDS * message_rate(self.stream)))
            self.process.stdin.write(bytes(gap * CHANNELS * SAMPLE_BYTES))
        self.process.stdin.write(pcm)
        self.process.stdin.flush()
        self.next_pts = pts + len(pcm) // (CHANNELS * SAMPLE_BYTES)

    def _restart(self, fmt: AudioFormat) -> None:
        self.close()
        delay_ms = int(self.stream.jitter.playout_delay(FRAME_SAMPLES / SAMPLE_RATE) * 1000)
        argv = ["pacat", "--playback", "--raw", "--format=s16le", f"--rate={fmt.sample_rate}",
                f"--channels={fmt.channels}", f"--latency-msec={delay_ms}", "--client-name=svclient"]  # fmt: skip
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE)
        self.next_pts = 0

    def close(self) -> None:
        """Stop playing."""
        process, self.process = self.process, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            process.terminate()
            process.wait()


def message_rate(stream: StreamDecoder) -> int:
    """Sample rate of the stream so far."""
    return stream.format.sample_rate if stream.format else SAMPLE_RATE


def load_sound_file(path: str, *, rate: int = SAMPLE_RATE, channels: int = CHANNELS) -> bytes:
    """Decode any sound file ffmpeg reads (WAV, FLAC, Ogg...) to s16le PCM at rate/channels.

    Raises ValueError for unreadable files or files longer than MAX_AUDIO_SECONDS.
    """
    import av  # noqa: PLC0415 - lazy: only audio commands need PyAV

    limit = MAX_AUDIO_SECONDS * rate * channels * SAMPLE_BYTES
    out = bytearray()
    layout = "mono" if channels == 1 else "stereo"
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise ValueError(f"{path} has no audio stream")
            resampler: Any = av.AudioResampler(format="s16", layout=layout, rate=rate)
            for frame in container.decode(container.streams.audio[0]):
                for pcm in resampler.resample(frame):
                    out += bytes(pcm.planes[0])[: pcm.samples * channels * SAMPLE_BYTES]
                if len(out) > limit:
                    raise ValueError(f"{path} is longer than {MAX_AUDIO_SECONDS} s")
            for pcm in resampler.resample(None):
                out += bytes(pcm.planes[0])[: pcm.samples * channels * SAMPLE_BYTES]
    except (av.FFmpegError, OSError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    return bytes(out)


def mic_frames(pcm: bytes, frame_samples: int = FRAME_SAMPLES, channels: int = CHANNELS) -> list[bytes]:
    """Cut PCM into whole frames, the last one padded with silence."""
    size = frame_bytes(frame_samples, channels)
    frames = [pcm[i : i + size] for i in range(0, len(pcm), size)]
    if frames and len(frames[-1]) < size:
        frames[-1] = frames[-1] + bytes(size - len(frames[-1]))
    return frames

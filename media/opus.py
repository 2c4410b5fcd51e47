# Opus encoding and decoding of 16-bit PCM through PyAV (whose wheels bundle
# libopus), shared by the session agent and svclient.
#
# Why a wrapper: PyAV is heavy to import (~20 MiB of shared libraries), so it
# is imported here, lazily, only when an audio channel opens; everything else
# handles plain bytes of interleaved s16le PCM. Why PyAV over opuslib: see
# docs/audio.md (wheels with libopus inside, maintained, and the same library
# the display pipeline will use for video).
"""OpusEncoder / OpusDecoder over interleaved s16le PCM bytes."""

from __future__ import annotations

from typing import Any

# The stream format used throughout: Opus's native rate, stereo, 16-bit.
SAMPLE_RATE = 48000
CHANNELS = 2
SAMPLE_BYTES = 2
# 20 ms frames: Opus's sweet spot for quality per byte; 10 ms halves the
# packetisation delay at ~15% more bytes (docs/audio.md has the figures).
FRAME_SAMPLES = 960
# Bits per second of the encoder: transparent for speech and tones, ~8 kB/s.
DEFAULT_BITRATE = 64000


def frame_bytes(samples: int = FRAME_SAMPLES, channels: int = CHANNELS) -> int:
    """Bytes of `samples` interleaved s16le samples per channel."""
    return samples * channels * SAMPLE_BYTES


def _layout(channels: int) -> str:
    return "mono" if channels == 1 else "stereo"


class OpusEncoder:
    """Encodes frames of exactly `frame_samples` samples into Opus packets."""

    def __init__(self, *, sample_rate: int = SAMPLE_RATE, channels: int = CHANNELS,
                 frame_samples: int = FRAME_SAMPLES, bitrate: int = DEFAULT_BITRATE) -> None:  # fmt: skip
        import av  # noqa: PLC0415 - lazy: only sessions with audio pay for it

        self.sample_rate = sample_rate
        self.channels = channels
        self.frame_samples = frame_samples
        self._frame_ms = frame_samples * 1000 // sample_rate
        ctx: Any = av.codec.CodecContext.create("libopus", "w")
        ctx.sample_rate = sample_rate
        ctx.layout = _layout(channels)
        ctx.format = "s16"
        ctx.bit_rate = bitrate
        # lowdelay: CELT only, 5 ms less algorithmic delay than "audio";
        # dtx: near-silent frames shrink to a few bytes.
        ctx.options = {"application": "lowdelay", "frame_duration": str(self._frame_ms), "dtx": "1"}
        ctx.open()
        self._ctx = ctx
        self._av = av
        self._pts = 0

    def encode(self, pcm: bytes) -> list[bytes]:
        """Encode one frame of PCM; returns the packets the codec produced."""
        if len(pcm) != frame_bytes(self.frame_samples, self.channels):
            raise ValueError(f"a frame is {frame_bytes(self.frame_samples, self.channels)} bytes, got {len(pcm)}")
        frame = self._av.AudioFrame(format="s16", layout=_layout(self.channels), samples=self.frame_samples)
        frame.sample_rate = self.sample_rate
        frame.pts = self._pts
        self._pts += self.frame_samples
        frame.planes[0].update(pcm)
        return [bytes(packet) for packet in self._ctx.encode(frame)]


class OpusDecoder:
    """Decodes Opus packets into interleaved s16le PCM at `sample_rate`, `channels`."""

    def __init__(self, *, sample_rate: int = SAMPLE_RATE, channels: int = CHANNELS) -> None:
        import av  # noqa: PLC0415 - lazy, as above

        self.sample_rate = sample_rate
        self.channels = channels
        ctx: Any = av.codec.CodecContext.create("libopus", "r")
        ctx.sample_rate = sample_rate
        ctx.layout = _layout(channels)
        ctx.format = "s16"
        self._ctx = ctx
        self._av = av
        self._resampler_ctx: Any = None

    def decode(self, packet: bytes) -> bytes:
        """PCM of one packet (empty if the codec produced none); ValueError if corrupt."""
        try:
            frames = self._ctx.decode(self._av.Packet(packet))
        except self._av.FFmpegError as exc:
            raise ValueError(f"undecodable Opus packet: {exc}") from exc
        out = bytearray()
        for frame in frames:
            if frame.format.name == "s16" and not frame.format.is_planar and frame.layout.nb_channels == self.channels:
                converted = [frame]
            else:
                converted = self._resampler().resample(frame)
            for pcm in converted:
                out += bytes(pcm.planes[0])[: pcm.samples * self.channels * SAMPLE_BYTES]
        return bytes(out)

    def _resampler(self) -> Any:
        if self._resampler_ctx is None:
            self._resampler_ctx = self._av.AudioResampler(format="s16", layout=_layout(self.channels),
                                                          rate=self.sample_rate)  # fmt: skip
        return self._resampler_ctx

# Binary messages of the audio-out (session sound -> client) and audio-in
# (client microphone -> session) channels.
#
# Why this shape: audio is a steady stream of small packets (one Opus packet
# per 10-20 ms), so every message is a fixed big-endian header plus, for
# data, the opaque codec packet. A FORMAT message starts a stream and fixes
# its clock; each DATA message carries its position on that clock (pts, in
# samples) so the receiver can place packets exactly, fill gaps the sender
# left silent on purpose, and measure jitter; and the sender's capture time
# (its monotonic clock) so audio/video drift can be measured. Packet sizes
# are bounded here, before any decoder sees them.
"""AUDIO_FORMAT/AUDIO_DATA (audio-out) and MIC_FORMAT/MIC_DATA (audio-in)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Self

from protocol.base import ChannelKind, Message, Sender, check_int

# Largest codec packet in one DATA message: libopus's recommended output
# buffer (a 120 ms packet at the highest bitrate fits).
MAX_AUDIO_PACKET = 4000
# Opus decodes at these rates only (RFC 6716 section 2).
OPUS_RATES = frozenset({8000, 12000, 16000, 24000, 48000})
# Mono or stereo: what svclient and the session's sound server exchange.
MAX_AUDIO_CHANNELS = 2
# Samples per channel in one frame: at most 120 ms at 48 kHz (Opus's longest packet).
MAX_FRAME_SAMPLES = 5760
# pts and capture times are u64 on the wire (a sample counter never wraps in practice).
U64_MAX = 2**64 - 1

_FORMAT = struct.Struct(">BBHI")
_DATA = struct.Struct(">QQ")


class AudioCodec(IntEnum):
    """Codec of a stream's packets."""

    OPUS = 1


@dataclass(frozen=True)
class _Format(Message):
    """Codec, channels, frame size and sample rate of the stream that follows."""

    MAX_PAYLOAD: ClassVar[int] = _FORMAT.size
    codec: AudioCodec
    channels: int
    frame_samples: int
    sample_rate: int

    def __post_init__(self) -> None:
        check_int("codec", self.codec, 0, 255)
        object.__setattr__(self, "codec", AudioCodec(self.codec))
        check_int("channels", self.channels, 1, MAX_AUDIO_CHANNELS)
        check_int("frame_samples", self.frame_samples, 1, MAX_FRAME_SAMPLES)
        check_int("sample_rate", self.sample_rate, 1, 2**32 - 1)
        if self.codec is AudioCodec.OPUS and self.sample_rate not in OPUS_RATES:
            raise ValueError(f"sample_rate={self.sample_rate} is not an Opus rate {sorted(OPUS_RATES)}")

    def encode(self) -> bytes:
        return _FORMAT.pack(self.codec, self.channels, self.frame_samples, self.sample_rate)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Parse an 8-byte payload; ValueError if invalid."""
        if len(payload) != _FORMAT.size:
            raise ValueError(f"{cls.__name__} payload must be {_FORMAT.size} bytes, got {len(payload)}")
        return cls(*_FORMAT.unpack(payload))


@dataclass(frozen=True)
class _Data(Message):
    """One codec packet at stream position `pts` (samples since the FORMAT)."""

    MAX_PAYLOAD: ClassVar[int] = _DATA.size + MAX_AUDIO_PACKET
    pts: int
    capture_us: int
    packet: bytes

    def __post_init__(self) -> None:
        check_int("pts", self.pts, 0, U64_MAX)
        check_int("capture_us", self.capture_us, 0, U64_MAX)
        if not isinstance(self.packet, (bytes, bytearray, memoryview)):
            raise ValueError("packet must be bytes")
        object.__setattr__(self, "packet", bytes(self.packet))
        if not 1 <= len(self.packet) <= MAX_AUDIO_PACKET:
            raise ValueError(f"packet of {len(self.packet)} bytes outside [1, {MAX_AUDIO_PACKET}]")

    def encode(self) -> bytes:
        return _DATA.pack(self.pts, self.capture_us) + self.packet

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Parse the payload; ValueError if invalid."""
        if len(payload) < _DATA.size:
            raise ValueError(f"{cls.__name__} payload shorter than its {_DATA.size}-byte header")
        if len(payload) > _DATA.size + MAX_AUDIO_PACKET:
            raise ValueError(f"{cls.__name__} packet longer than MAX_AUDIO_PACKET")
        pts, capture_us = _DATA.unpack_from(payload)
        return cls(pts, capture_us, payload[_DATA.size :])


@dataclass(frozen=True)
class AudioFormat(_Format):
    """The session's sound stream starts now, in this format (server -> client)."""

    TYPE: ClassVar[int] = 0x01
    KIND: ClassVar[ChannelKind | None] = ChannelKind.AUDIO_OUT
    SENDER: ClassVar[Sender] = Sender.SERVER


@dataclass(frozen=True)
class AudioData(_Data):
    """A packet of the session's sound; silent stretches are not sent (server -> client)."""

    TYPE: ClassVar[int] = 0x02
    KIND: ClassVar[ChannelKind | None] = ChannelKind.AUDIO_OUT
    SENDER: ClassVar[Sender] = Sender.SERVER


@dataclass(frozen=True)
class MicFormat(_Format):
    """The client's microphone stream starts now, in this format (client -> server)."""

    TYPE: ClassVar[int] = 0x01
    KIND: ClassVar[ChannelKind | None] = ChannelKind.AUDIO_IN
    SENDER: ClassVar[Sender] = Sender.CLIENT


@dataclass(frozen=True)
class MicData(_Data):
    """A packet of the client's microphone (client -> server)."""

    TYPE: ClassVar[int] = 0x02
    KIND: ClassVar[ChannelKind | None] = ChannelKind.AUDIO_IN
    SENDER: ClassVar[Sender] = Sender.CLIENT


AUDIO_OUT_MESSAGES: tuple[type[Message], ...] = (AudioFormat, AudioData)
AUDIO_IN_MESSAGES: tuple[type[Message], ...] = (MicFormat, MicData)

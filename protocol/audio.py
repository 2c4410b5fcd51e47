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

import dataclasses
from enum import IntEnum
from typing import Final

from protocol.base import ChannelKind, Message, Sender
from protocol.schema import BYTES, U8, U16, U32, U64, Declared, message, shared, wire

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

OUT: Final = ChannelKind.AUDIO_OUT
IN: Final = ChannelKind.AUDIO_IN


class AudioCodec(IntEnum):
    """Codec of a stream's packets."""

    OPUS = 1


@shared
class _Format(Declared):
    """Codec, channels, frame size and sample rate of the stream that follows."""

    codec: AudioCodec = wire(dataclasses.replace(U8, enum=AudioCodec))
    channels: int = wire(U8.within(1, MAX_AUDIO_CHANNELS))
    frame_samples: int = wire(U16.within(1, MAX_FRAME_SAMPLES))
    sample_rate: int = wire(U32.within(1, U32.high))

    def check(self) -> None:
        """Opus streams use one of the Opus rates."""
        if self.codec is AudioCodec.OPUS and self.sample_rate not in OPUS_RATES:
            raise ValueError(f"sample_rate={self.sample_rate} is not an Opus rate {sorted(OPUS_RATES)}")


@shared
class _Data(Declared):
    """One codec packet at stream position `pts` (samples since the FORMAT)."""

    pts: int = wire(U64)
    capture_us: int = wire(U64)
    packet: bytes = wire(BYTES(MAX_AUDIO_PACKET, 1))


@message(0x01, "AUDIO_FORMAT", kind=OUT, sender=Sender.SERVER)
class AudioFormat(_Format):
    """The session's sound stream starts now, in this format (server -> client)."""


@message(0x02, "AUDIO_DATA", kind=OUT, sender=Sender.SERVER)
class AudioData(_Data):
    """A packet of the session's sound; silent stretches are not sent (server -> client)."""


@message(0x01, "MIC_FORMAT", kind=IN, sender=Sender.CLIENT)
class MicFormat(_Format):
    """The client's microphone stream starts now, in this format (client -> server)."""


@message(0x02, "MIC_DATA", kind=IN, sender=Sender.CLIENT)
class MicData(_Data):
    """A packet of the client's microphone (client -> server)."""


AUDIO_OUT_MESSAGES: tuple[type[Message], ...] = (AudioFormat, AudioData)
AUDIO_IN_MESSAGES: tuple[type[Message], ...] = (MicFormat, MicData)

"""Audio units: the audio-out/audio-in messages and their bounds, the agent's
silence gate, pts and drop-instead-of-queue policy, the microphone FIFO
writer, and the client's jitter estimate and pts-placed recording. Real Opus
(PyAV) where the codec matters; in-memory Connections; no sockets, no sleeps."""

from __future__ import annotations

import math
import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.audio import MAX_PLAYOUT_SECONDS, MIN_PLAYOUT_SECONDS, JitterEstimator, Recorder, mic_frames
from protocol.audio import MAX_AUDIO_PACKET, AudioCodec, AudioData, AudioFormat, MicData, MicFormat
from protocol.base import ChannelKind
from protocol.connection import ConnectionClosed, MessageReceived, frame_cost
from protocol.errors import ProtocolError, ProtocolStateError, ReasonCode
from protocol.frames import encode_frame
from protocol.messages import decode_message
from protocol.testing import handshaken_pair, open_pair_channel, pump
from sessiond.agent.audio import HANGOVER_FRAMES, AudioOut, MicIn, is_silent
from media.opus import FRAME_SAMPLES, OpusDecoder, OpusEncoder, frame_bytes

FRAME = frame_bytes()


def tone_frame(index: int, freq: float = 440.0, amplitude: int = 12000) -> bytes:
    base = index * FRAME_SAMPLES
    values = (int(amplitude * math.sin(2 * math.pi * freq * (base + k) / 48000)) for k in range(FRAME_SAMPLES))
    return b"".join(struct.pack("<hh", v, v) for v in values)


SILENT = bytes(FRAME)


# -- messages -------------------------------------------------------------------


def test_messages_round_trip_on_their_kinds() -> None:
    for kind, message in [
        (ChannelKind.AUDIO_OUT, AudioFormat(AudioCodec.OPUS, 2, 960, 48000)),
        (ChannelKind.AUDIO_OUT, AudioData(pts=2**40, capture_us=7, packet=b"\xfc\x01")),
        (ChannelKind.AUDIO_IN, MicFormat(AudioCodec.OPUS, 1, 480, 24000)),
        (ChannelKind.AUDIO_IN, MicData(pts=0, capture_us=0, packet=b"x" * MAX_AUDIO_PACKET)),
    ]:
        assert decode_message(kind, message.TYPE, message.encode()) == message


@pytest.mark.parametrize(
    "make",
    [
        lambda: AudioData(pts=0, capture_us=0, packet=b""),
        lambda: AudioData(pts=0, capture_us=0, packet=b"x" * (MAX_AUDIO_PACKET + 1)),
        lambda: AudioData(pts=-1, capture_us=0, packet=b"x"),
        lambda: AudioFormat(AudioCodec.OPUS, 3, 960, 48000),
        lambda: AudioFormat(AudioCodec.OPUS, 2, 0, 48000),
        lambda: AudioFormat(AudioCodec.OPUS, 2, 960, 44100),
        lambda: AudioFormat(9, 2, 960, 48000),
        lambda: MicFormat(AudioCodec.OPUS, 2, 5761, 48000),
    ],
)
def test_out_of_bounds_messages_cannot_be_built(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_oversize_packet_is_refused_before_decoding() -> None:
    payload = bytes(16) + b"x" * (MAX_AUDIO_PACKET + 1)
    with pytest.raises(ProtocolError) as caught:
        decode_message(ChannelKind.AUDIO_OUT, AudioData.TYPE, payload)
    assert caught.value.code == ReasonCode.MALFORMED_MESSAGE


@given(st.integers(0, 255), st.binary(max_size=64))
def test_decoding_arbitrary_payloads_only_raises_protocol_errors(type_: int, payload: bytes) -> None:
    for kind in (ChannelKind.AUDIO_OUT, ChannelKind.AUDIO_IN):
        try:
            decode_message(kind, type_, payload)
        except ProtocolError as exc:
            assert exc.code in (ReasonCode.MALFORMED_MESSAGE, ReasonCode.UNKNOWN_MESSAGE_TYPE)


def test_audio_channels_open_and_carry_data_in_their_direction_only() -> None:
    client, server = handshaken_pair()
    open_pair_channel(client, server, 3, ChannelKind.AUDIO_OUT)
    open_pair_channel(client, server, 4, ChannelKind.AUDIO_IN)
    data = AudioData(pts=960, capture_us=5, packet=b"\x01\x02")
    server.send(3, data)
    assert pump(server, client) == [MessageReceived(3, ChannelKind.AUDIO_OUT, data)]
    mic = MicData(pts=0, capture_us=1, packet=b"\x03")
    client.send(4, mic)
    assert pump(client, server) == [MessageReceived(4, ChannelKind.AUDIO_IN, mic)]
    with pytest.raises(ProtocolStateError):
        server.send(4, mic)  # only a client sends MIC_DATA
    with pytest.raises(ProtocolStateError):
        client.send(4, data)  # AUDIO_DATA does not go on audio-in
    # A peer that sends microphone data the wrong way is closed.
    events = client.receive_data(encode_frame(4, MicData.TYPE, mic.encode()))
    assert isinstance(events[-1], ConnectionClosed) and events[-1].code == ReasonCode.UNEXPECTED_MESSAGE


# -- agent: audio-out -------------------------------------------------------------


class FakeConn:
    def __init__(self, window: int) -> None:
        self.window = window
        self.sent: list[object] = []

    def send_window(self, channel: int) -> int:
        return self.window

    def send(self, channel: int, message: object) -> None:
        self.sent.append(message)
        self.window -= frame_cost(message)  # type: ignore[arg-type]


class FakeLink:
    def __init__(self, window: int = 1 << 20) -> None:
        self.conn = FakeConn(window)
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1


def test_is_silent_threshold() -> None:
    assert is_silent(SILENT)
    assert is_silent(struct.pack("<hh", 16, -16) * FRAME_SAMPLES)
    assert not is_silent(struct.pack("<hh", 0, -17) + bytes(FRAME - 4))


def test_audio_out_sends_format_then_only_loud_frames_with_hangover() -> None:
    link = FakeLink()
    out = AudioOut(link, 3, OpusEncoder(), clock=lambda: 42)
    loud = [tone_frame(i) for i in range(3)]
    # 2 silent, 3 loud, then 20 silent frames, fed in uneven chunks.
    stream = SILENT * 2 + b"".join(loud) + SILENT * 20
    for start in range(0, len(stream), 1000):
        out.feed(stream[start : start + 1000])
    sent = link.conn.sent
    assert sent[0] == AudioFormat(AudioCodec.OPUS, 2, FRAME_SAMPLES, 48000)
    data = [m for m in sent[1:] if isinstance(m, AudioData)]
    assert [m.pts // FRAME_SAMPLES for m in data] == list(range(2, 5 + HANGOVER_FRAMES))
    assert all(m.capture_us == 42 for m in data)
    assert out.frames_in == 25 and out.packets_sent == 3 + HANGOVER_FRAMES
    # The packets decode back to the tone.
    decoder = OpusDecoder()
    pcm = b"".join(decoder.decode(m.packet) for m in data[:3])
    assert len(pcm) == 3 * FRAME and not is_silent(pcm[FRAME:])


def test_audio_out_silence_alone_sends_only_the_format() -> None:
    link = FakeLink()
    out = AudioOut(link, 3, OpusEncoder())
    out.feed(SILENT * 50)  # one second
    assert len(link.conn.sent) == 1 and isinstance(link.conn.sent[0], AudioFormat)
    assert out.bytes_sent == 0


def test_audio_out_drops_instead_of_queueing_when_the_client_is_behind() -> None:
    link = FakeLink(window=200)  # room for the format and about one packet
    out = AudioOut(link, 3, OpusEncoder())
    out.feed(b"".join(tone_frame(i) for i in range(10)))
    assert isinstance(link.conn.sent[0], AudioFormat)
    assert out.dropped >= 8 and out.packets_sent + out.dropped == 10
    assert link.conn.window >= 0


# -- agent: audio-in ----------------------------------------------------------------


class FakeDecoder:
    def __init__(self, pcm: bytes) -> None:
        self.pcm = pcm
        self.packets: list[bytes] = []

    def decode(self, packet: bytes) -> bytes:
        self.packets.append(packet)
        if packet == b"bad":
            raise ValueError("undecodable")
        return self.pcm


def test_mic_writes_decoded_pcm_to_the_fifo_and_drops_when_full() -> None:
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        mic = MicIn(write_fd, FakeDecoder(b"\x01\x02" * 1920))  # type: ignore[arg-type]
        mic.message(MicFormat(AudioCodec.OPUS, 2, 960, 48000))
        mic.message(MicData(pts=0, capture_us=0, packet=b"p"))
        assert os.read(read_fd, 10000) == b"\x01\x02" * 1920
        for pts in range(100):  # ~380 kB into a 64 kB pipe nobody reads
            mic.message(MicData(pts=pts, capture_us=0, packet=b"p"))
        assert mic.dropped > 0 and mic.bytes_written <= 3840 + 65536
        with pytest.raises(ValueError):
            mic.message(MicData(pts=0, capture_us=0, packet=b"bad"))
    finally:
        os.close(read_fd)
        mic.close()


# -- client ---------------------------------------------------------------------------


def test_jitter_is_zero_for_a_steady_stream_and_grows_with_jitter() -> None:
    steady = JitterEstimator(48000)
    for i in range(50):
        steady.arrived(i * 0.02, i * 960)
    assert steady.jitter == pytest.approx(0, abs=1e-9)
    assert steady.playout_delay(0.02) == pytest.approx(max(MIN_PLAYOUT_SECONDS, 0.02))
    shaky = JitterEstimator(48000)
    for i in range(200):
        shaky.arrived(i * 0.02 + (0.01 if i % 2 else 0.0), i * 960)
    assert 0.005 < shaky.jitter < 0.011
    assert shaky.playout_delay(0.02) > steady.playout_delay(0.02)
    wild = JitterEstimator(48000)
    for i in range(200):
        wild.arrived(i * 0.02 + (1.0 if i % 2 else 0.0), i * 960)
    assert wild.playout_delay(0.02) == MAX_PLAYOUT_SECONDS


def test_recorder_places_packets_by_pts_and_fills_gaps_with_silence() -> None:
    encoder = OpusEncoder()
    recorder = Recorder(seconds=0.2)  # 10 frames
    recorder.handle(AudioFormat(AudioCodec.OPUS, 2, 960, 48000), now=0.0)
    for index in (2, 3, 4, 12):  # frame 12 lies beyond the 0.2 s asked for
        for packet in encoder.encode(tone_frame(index)):
            recorder.handle(AudioData(pts=index * 960, capture_us=0, packet=packet), now=index * 0.02)
    pcm = bytes(recorder.pcm)
    assert len(pcm) == 10 * FRAME
    assert is_silent(pcm[: 2 * FRAME]) and is_silent(pcm[5 * FRAME :])
    assert not is_silent(pcm[3 * FRAME : 5 * FRAME])
    assert recorder.stream.packets == 4


def test_recorder_bounds_its_length() -> None:
    with pytest.raises(ValueError):
        Recorder(seconds=10_000)
    with pytest.raises(ValueError):
        Recorder(seconds=0)


def test_mic_frames_pads_the_last_frame() -> None:
    frames = mic_frames(b"\x01" * (FRAME + 10))
    assert [len(f) for f in frames] == [FRAME, FRAME]
    assert frames[1] == b"\x01" * 10 + bytes(FRAME - 10)
    assert mic_frames(b"") == []

# svclient's `audio` commands: record what the session plays, play it on the
# local sound device, or send a sound file as the session's microphone.
#
# Why a module of its own: the commands are long-running streams (paced
# sending, timed recording) rather than one request and one answer, and they
# pull in PyAV lazily; cli.py only registers them and dispatches here.
"""`svclient audio play|record|mic`."""

from __future__ import annotations

import argparse
import time
from typing import Any

from twisted.internet import defer, task

from client.audio import MAX_AUDIO_SECONDS, Player, Recorder, load_sound_file, mic_frames
from client.session import SessionClient, with_timeout
from protocol.audio import AudioCodec, AudioFormat, MicData, MicFormat
from protocol.base import ChannelKind, Message
from media.opus import CHANNELS, FRAME_SAMPLES, SAMPLE_RATE, OpusEncoder

# Seconds of microphone audio sent ahead of real time, absorbing scheduling
# hiccups on either side without adding noticeable delay.
MIC_PREBUFFER_SECONDS = 0.04
# Seconds to keep receiving after a recording's end: packets still in flight.
RECORD_TAIL_SECONDS = 0.3
# Seconds to wait after the last microphone packet so it leaves before we disconnect.
MIC_TAIL_SECONDS = 0.3


class AudioCommandError(Exception):
    """An audio command cannot run (bad file, no local sound device); printed without traceback."""


def add_audio_parser(sub: Any) -> None:
    """Register `audio play|record|mic` on svclient's sub-command parser."""
    audio = sub.add_parser("audio", help="the session's sound: play, record, or send a microphone")
    verbs = audio.add_subparsers(dest="audio_command", required=True)
    play = verbs.add_parser("play", help="play the session's sound on the local sound device")
    play.add_argument("--seconds", type=float, default=0.0, help="stop after this long (default: until Ctrl-C)")
    record = verbs.add_parser("record", help="record what the session plays into a WAV file")
    record.add_argument("file")
    record.add_argument("--seconds", type=float, required=True, help=f"length (at most {MAX_AUDIO_SECONDS})")
    record.add_argument("--display", action="store_true",
                        help="also receive the display and print its frame rate meanwhile")
    mic = verbs.add_parser("mic", help="send a sound file (WAV, FLAC, Ogg...) as the session's microphone")
    mic.add_argument("file")


async def run_audio(reactor: Any, client: SessionClient, args: argparse.Namespace) -> int:
    """Run one audio command on a logged-in client."""
    if args.audio_command == "record":
        return await record(reactor, client, args.file, args.seconds, args.timeout, display=args.display)
    if args.audio_command == "mic":
        return await send_mic(reactor, client, args.file, args.timeout)
    return await play(reactor, client, args.seconds, args.timeout)


async def _open_stream(reactor: Any, client: SessionClient, sink: Recorder | Player, timeout: float) -> None:
    started: defer.Deferred[None] = defer.Deferred()

    def handler(message: Message | None) -> None:
        if message is None:
            if not started.called:
                started.errback(AudioCommandError("the session closed its audio channel (audio unavailable)"))
            return
        sink.handle(message, time.monotonic())
        if isinstance(message, AudioFormat) and not started.called:
            started.callback(None)

    await with_timeout(reactor, client.open_audio(handler), timeout, "the audio channel")
    await with_timeout(reactor, started, timeout, "the session's sound capture to start")


class FrameCounter:
    """Counts the display frames the client completes while it runs."""

    def __init__(self, client: SessionClient) -> None:
        self.client = client
        self.frames = 0
        self.running = False

    def start(self) -> None:
        """Count every frame from now on."""
        self.running = True
        self._wait()

    def _wait(self) -> None:
        self.client.next_frame().addCallbacks(self._frame, lambda _failure: None)

    def _frame(self, _seq: int) -> None:
        if self.running:
            self.frames += 1
            self._wait()


async def record(reactor: Any, client: SessionClient, path: str, seconds: float, timeout: float,
                 display: bool = False) -> int:  # fmt: skip
    """`audio record FILE --seconds N [--display]`: N seconds of the session's sound into a WAV
    file; with --display, the display's frame rate over the same seconds too."""
    try:
        recorder = Recorder(seconds)
    except ValueError as exc:
        raise AudioCommandError(str(exc)) from exc
    counter = FrameCounter(client)
    if display:  # the first (full) frame is not counted: only the steady state
        await with_timeout(reactor, client.open_channel(ChannelKind.DISPLAY), timeout, "the display")
        await with_timeout(reactor, client.next_frame(), timeout, "the first frame")
    await _open_stream(reactor, client, recorder, timeout)
    if display:
        counter.start()
    await task.deferLater(reactor, seconds + RECORD_TAIL_SECONDS, lambda: None)
    counter.running = False
    try:
        recorder.write_wav(path)
    except OSError as exc:
        raise AudioCommandError(f"cannot write {path}: {exc.strerror}") from exc
    stream = recorder.stream
    print(f"recorded {seconds:g} s to {path} ({stream.packets} packets, {stream.wire_bytes} bytes on the wire, "
          f"jitter {stream.jitter.jitter * 1000:.1f} ms)")  # fmt: skip
    if display:
        window = seconds + RECORD_TAIL_SECONDS
        print(f"display: {counter.frames} frames in {window:g} s ({counter.frames / window:.1f} fps)")
    drift = clock_drift(client.clock_reports)
    if drift is not None:
        print(drift)
    return 0


def clock_drift(reports: list[Any]) -> str | None:
    """Audio and video clocks against the session's clock, from CLOCK_REPORTs."""
    if len(reports) < 2:
        return None
    first, last = reports[0], reports[-1]
    agent_s = (last.agent_us - first.agent_us) / 1e6
    if agent_s <= 0 or last.audio_rate <= 0:
        return None
    audio_s = (last.audio_pts - first.audio_pts) / last.audio_rate
    video_age_ms = (last.agent_us - last.frame_us) / 1000 if last.frame_us else float("nan")
    return (f"clocks: audio drift {(audio_s - agent_s) * 1000:+.1f} ms over {agent_s:.1f} s of session time "
            f"({len(reports)} reports); latest frame {last.frame_seq}, captured {video_age_ms:.1f} ms before the "
            f"last report")


async def play(reactor: Any, client: SessionClient, seconds: float, timeout: float) -> int:
    """`audio play`: the session's sound on the local sound device."""
    why = Player.available()
    if why is not None:
        raise AudioCommandError(why)
    player = Player()
    try:
        await _open_stream(reactor, client, player, timeout)
        print("playing the session's sound (Ctrl-C stops)", flush=True)
        if seconds > 0:
            await task.deferLater(reactor, seconds, lambda: None)
        else:
            await client.ended
    finally:
        player.close()
    return 0


async def send_mic(reactor: Any, client: SessionClient, path: str, timeout: float) -> int:
    """`audio mic FILE`: FILE as the session's microphone, in real time."""
    try:
        frames = mic_frames(load_sound_file(path))
    except ValueError as exc:
        raise AudioCommandError(str(exc)) from exc
    encoder = OpusEncoder()
    await with_timeout(reactor, client.open_channel(ChannelKind.AUDIO_IN), timeout, "the microphone channel")
    client.send_mic(MicFormat(AudioCodec.OPUS, CHANNELS, FRAME_SAMPLES, SAMPLE_RATE))
    frame_seconds = FRAME_SAMPLES / SAMPLE_RATE
    start = time.monotonic()
    sent = dropped = wire = 0
    for index, frame in enumerate(frames):
        due = start + index * frame_seconds - MIC_PREBUFFER_SECONDS
        delay = due - time.monotonic()
        if delay > 0:
            await task.deferLater(reactor, delay, lambda: None)
        for packet in encoder.encode(frame):
            message = MicData(pts=index * FRAME_SAMPLES, capture_us=time.monotonic_ns() // 1000, packet=packet)
            if client.send_mic(message):
                sent += 1
                wire += len(message.encode()) + 8
            else:
                dropped += 1
    await task.deferLater(reactor, MIC_TAIL_SECONDS, lambda: None)
    print(f"sent {len(frames) * frame_seconds:.2f} s of {path} as the microphone ({sent} packets, {wire} bytes, "
          f"{dropped} dropped)")  # fmt: skip
    return 0

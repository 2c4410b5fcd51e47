# Benchmark of audio both ways through the real stack: sessiond (TLS, PAM),
# the sandboxed agent with its own PulseAudio, an app in the session, and a
# thin client in this process.
#
#   1. audio-out latency: an app in the session (pacat, 10 ms buffer, fed
#      through a 4 KiB pipe) plays 50 clicks; for each, the time from the app
#      writing the click to the client decoding the first loud sample;
#   2. audio-in latency: the client sends 50 clicks as its microphone (20 ms
#      Opus frames in real time); for each, the time from the client sending
#      the frame to an app in the session (parec on the default source)
#      reading the first loud sample;
#   3. bytes/s on the wire (frame headers included) for speech-like sound
#      (voiced syllables with pauses) and for silence, against raw PCM
#      (48 kHz stereo s16, what a naive server would send) in the same run.
#
# The session and this process share CLOCK_MONOTONIC (no time namespace), so
# times taken on either side compare directly. Nothing here gates anything;
# it prints a table. Run as root (it creates a user):
#   /opt/sessiond/venv/bin/python bench/bench_audio.py
"""Audio benchmark: latency both ways (median, p95) and bytes/s vs raw PCM."""

from __future__ import annotations

import os
import pwd
import statistics
import sys
import tempfile
import time
from typing import Any

from twisted.internet import defer, task

import spine_server  # noqa: F401 - puts tests/ on sys.path for svtest
from client.audio import StreamDecoder
from client.keysyms import keysym_for_char, keysym_from_name
from client.known_hosts import KnownHosts
from protocol.audio import AudioCodec, AudioData, MicData, MicFormat
from protocol.base import ChannelKind, Message
from protocol.connection import frame_cost
from media.opus import FRAME_SAMPLES, SAMPLE_RATE, OpusEncoder, frame_bytes
from spine_server import BenchUsers, start_sessiond
from spine_workloads import open_session, within

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
CLICKS = 50
CLICK_PERIOD = 0.2
# A sample above this (about -10 dBFS) after LOUD_GAP seconds of quiet is a click onset.
LOUD = 10000
LOUD_GAP = 0.1
# A click not seen within this long counts as lost.
MATCH_WINDOW = 0.5
SPEECH_SECONDS = 5.0
SILENCE_SECONDS = 3.0
# Seconds the in-session scripts wait before playing, so the client's audio-out is open.
START_DELAY = 3.0
RAW_PCM_BYTES_PER_SECOND = SAMPLE_RATE * 2 * 2

# Runs inside the session with Debian's python3 (no dependencies): plays
# clicks, then speech-like sound, then silence, through pacat; logs times.
PLAYER = r'''
import fcntl, math, os, random, struct, subprocess, sys, time
clicks, period, log = int(sys.argv[1]), float(sys.argv[2]), sys.argv[6]
speech, silence, delay = float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
argv = ["pacat", "--playback", "--raw", "--format=s16le", "--rate=48000", "--channels=2", "--latency-msec=10"]
p = subprocess.Popen(argv, stdin=subprocess.PIPE)
fcntl.fcntl(p.stdin.fileno(), 1031, 4096)  # F_SETPIPE_SZ: no 64 KiB of hidden latency
CH = 480
def chunk(values): return b"".join(struct.pack("<hh", v, v) for v in values)
silent = bytes(CH * 4)
click = chunk(int(30000 * math.sin(2 * math.pi * 1000 * k / 48000)) for k in range(CH))
events = []
start = time.monotonic() + delay
n = 0
def put(data, label=None):
    global n
    due = start + n * 0.01
    while time.monotonic() < due: time.sleep(max(0, min(0.002, due - time.monotonic())))
    if label: events.append(f"{label} {time.monotonic():.6f}")
    p.stdin.write(data); p.stdin.flush(); n += 1
per = int(round(period / 0.01))
for c in range(clicks):
    put(click, "click")
    for _ in range(per - 1): put(silent)
rnd = random.Random(7); k = 0
events.append(f"speech_start {start + n * 0.01:.6f}")
while n * 0.01 < clicks * period + speech:
    syl = (k // 9600) % 5 != 4  # 200 ms syllables, every fifth a pause
    f0 = 140 + 20 * math.sin(k / 48000 * 3)
    vals = []
    for _ in range(CH):
        env = 0.5 - 0.5 * math.cos(2 * math.pi * (k % 9600) / 9600) if syl else 0.0
        s = sum(math.sin(2 * math.pi * h * f0 * k / 48000) / h for h in range(1, 8))
        s += 0.2 * (rnd.random() - 0.5)
        vals.append(int(6000 * env * s)); k += 1
    put(chunk(vals))
events.append(f"speech_end {start + n * 0.01:.6f}")
for _ in range(int(silence / 0.01)): put(silent)
events.append(f"silence_end {start + n * 0.01:.6f}")
p.stdin.close(); p.wait()
open(log, "w").write("\n".join(events) + "\n")
'''

# Runs inside the session: records the default source (the client's
# microphone) and logs when each click onset is read.
DETECTOR = r'''
import array, os, select, subprocess, sys, time
seconds, log, loud, gap = float(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
argv = ["parec", "--raw", "--format=s16le", "--rate=48000", "--channels=1", "--latency-msec=10"]
p = subprocess.Popen(argv, stdout=subprocess.PIPE)
end = time.monotonic() + seconds; quiet_since = 0; seen = []; pos = 0; last_loud = -10**9
os.set_blocking(p.stdout.fileno(), True)
while time.monotonic() < end:
    if not select.select([p.stdout], [], [], 0.2)[0]: continue
    data = os.read(p.stdout.fileno(), 4096)
    now = time.monotonic()
    if not data: break
    a = array.array("h"); a.frombytes(data[: len(data) // 2 * 2])
    for i, v in enumerate(a):
        if abs(v) > loud:
            if pos + i - last_loud > gap * 48000: seen.append(f"{now:.6f}")
            last_loud = pos + i
    pos += len(a)
p.send_signal(2); p.wait()
open(log, "w").write("\n".join(seen) + "\n")
'''


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def match(sent: list[float], seen: list[float]) -> list[float]:
    """Latency of each sent click to the first onset seen after it (lost clicks omitted)."""
    out = []
    for t in sent:
        later = [s - t for s in seen if 0 <= s - t <= MATCH_WINDOW]
        if later:
            out.append(min(later))
    return out


class OutMonitor:
    """Client side of audio-out: decodes, timestamps onsets, counts bytes per second."""

    def __init__(self) -> None:
        self.stream = StreamDecoder()
        self.onsets: list[float] = []
        self.bytes_at: list[tuple[float, int]] = []
        self._last_loud = -(10**9)

    def __call__(self, message: Message | None) -> None:
        if message is None:
            return
        now = time.monotonic()
        decoded = self.stream.handle(message, now)
        if isinstance(message, AudioData):
            self.bytes_at.append((now, frame_cost(message)))
        if decoded is None:
            return
        pts, pcm = decoded
        import array

        samples = array.array("h")
        samples.frombytes(pcm)
        for i in range(0, len(samples), 2):
            if abs(samples[i]) > LOUD:
                position = pts + i // 2
                if position - self._last_loud > LOUD_GAP * SAMPLE_RATE:
                    self.onsets.append(now)
                self._last_loud = position

    def rate(self, start: float, end: float) -> float:
        """Wire bytes/s of audio-out packets that arrived in [start, end)."""
        return sum(n for t, n in self.bytes_at if start <= t < end) / (end - start)


async def run(reactor: Any, tmp: str, users: BenchUsers) -> None:
    user = users.create("svb-audio")
    home = pwd.getpwnam(user.name).pw_dir
    entry = pwd.getpwnam(user.name)
    for name, text in (("player.py", PLAYER), ("detector.py", DETECTOR)):
        path = os.path.join(home, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    server = await start_sessiond(reactor, tmp, 1024, 768, [os.path.join(REPO, "conf", "apps")])
    client = None
    try:
        known = KnownHosts(os.path.join(tmp, "known_hosts"))
        client = await open_session(reactor, server.host, server.port, known, user, "xterm", lambda c: True)
        out_seconds = CLICKS * CLICK_PERIOD + SPEECH_SECONDS + SILENCE_SECONDS
        mic_seconds = START_DELAY + out_seconds + CLICKS * CLICK_PERIOD + 3
        command = (f"python3 ~/detector.py {mic_seconds} ~/detect.log {LOUD} {LOUD_GAP} & "
                   f"python3 ~/player.py {CLICKS} {CLICK_PERIOD} {SPEECH_SECONDS} {SILENCE_SECONDS} {START_DELAY} "
                   "~/play.log\n")  # fmt: skip
        for char in command:
            keysym = keysym_from_name("Return") if char == "\n" else keysym_for_char(char)
            client.key(keysym, True)
            client.key(keysym, False)
        await within(reactor, client.sync(), "typing the command")
        monitor = OutMonitor()
        opened = time.monotonic()
        await within(reactor, client.open_audio(monitor), "audio-out")
        await within(reactor, client.open_channel(ChannelKind.AUDIO_IN), "audio-in")
        play_log = os.path.join(home, "play.log")
        while not os.path.exists(play_log) and time.monotonic() - opened < START_DELAY + out_seconds + 20:
            await task.deferLater(reactor, 0.2, lambda: None)
        events = [line.split() for line in open(play_log, encoding="utf-8").read().splitlines()]
        clicks = [float(t) for label, t in events if label == "click"]
        marks = {label: float(t) for label, t in events if label != "click"}
        # Microphone: continuous 20 ms frames in real time, a click every CLICK_PERIOD.
        encoder = OpusEncoder()
        client.send_mic(MicFormat(AudioCodec.OPUS, 2, FRAME_SAMPLES, SAMPLE_RATE))
        import math
        import struct

        click = b"".join(struct.pack("<hh", v, v) for v in (int(30000 * math.sin(2 * math.pi * 1000 * k / SAMPLE_RATE))
                                                             for k in range(FRAME_SAMPLES)))  # fmt: skip
        silent = bytes(frame_bytes())
        per = int(round(CLICK_PERIOD * SAMPLE_RATE / FRAME_SAMPLES))
        mic_sent: list[float] = []
        mic_bytes = 0
        start = time.monotonic() + 0.5
        for index in range(CLICKS * per):
            due = start + index * FRAME_SAMPLES / SAMPLE_RATE
            if due > time.monotonic():
                await task.deferLater(reactor, due - time.monotonic(), lambda: None)
            is_click = index % per == per // 2
            for packet in encoder.encode(click if is_click else silent):
                message = MicData(pts=index * FRAME_SAMPLES, capture_us=0, packet=packet)
                if is_click:
                    mic_sent.append(time.monotonic())
                client.send_mic(message)
                mic_bytes += frame_cost(message)
        detect_log = os.path.join(home, "detect.log")
        while not os.path.exists(detect_log) and time.monotonic() - start < mic_seconds + 20:
            await task.deferLater(reactor, 0.2, lambda: None)
        await task.deferLater(reactor, 0.3, lambda: None)
        seen = [float(t) for t in open(detect_log, encoding="utf-8").read().split()]
        report(monitor, clicks, marks, mic_sent, seen, mic_bytes, CLICKS * per * FRAME_SAMPLES / SAMPLE_RATE)
    finally:
        if client is not None:
            client.disconnect()
        await server.stop(reactor)


def report(monitor: OutMonitor, clicks: list[float], marks: dict[str, float], mic_sent: list[float],
           seen: list[float], mic_bytes: int, mic_seconds: float) -> None:  # fmt: skip
    out_lat = match(clicks, monitor.onsets)
    in_lat = match(mic_sent, seen)
    speech = monitor.rate(marks["speech_start"] + 0.1, marks["speech_end"])
    silence = monitor.rate(marks["speech_end"] + 0.3, marks["silence_end"])
    print(f"\naudio bench ({CLICKS} clicks each way, 20 ms Opus frames, 64 kbit/s, parec at 10 ms)\n")
    print("| measure | median | p95 | clicks seen |")
    print("|---|---|---|---|")
    rows = [("audio-out: app writes click -> client decodes it", out_lat, len(clicks)),
            ("audio-in: client sends click -> app in session reads it", in_lat, len(mic_sent))]
    for name, lat, total in rows:
        if lat:
            print(f"| {name} | {statistics.median(lat) * 1000:.1f} ms | {percentile(lat, 0.95) * 1000:.1f} ms "
                  f"| {len(lat)}/{total} |")  # fmt: skip
        else:
            print(f"| {name} | - | - | 0/{total} |")
    print("\n| stream | bytes/s on the wire | vs raw PCM 48 kHz stereo s16 |")
    print("|---|---|---|")
    print(f"| raw PCM baseline | {RAW_PCM_BYTES_PER_SECOND} | 1.00 |")
    print(f"| speech-like, audio-out | {speech:.0f} | {speech / RAW_PCM_BYTES_PER_SECOND:.3f} |")
    print(f"| silence, audio-out | {silence:.0f} | {silence / RAW_PCM_BYTES_PER_SECOND:.4f} |")
    mic_rate = mic_bytes / mic_seconds
    print(f"| clicks + silence, audio-in (no gating) | {mic_rate:.0f} | {mic_rate / RAW_PCM_BYTES_PER_SECOND:.3f} |")
    print(f"\nclient-side jitter estimate (RFC 3550): {monitor.stream.jitter.jitter * 1000:.2f} ms")


def main() -> int:
    if os.geteuid() != 0:
        print("bench_audio: run as root (it creates a user)", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="bench-audio-")
    users = BenchUsers(tmp)

    async def body(reactor: Any) -> None:
        try:
            await run(reactor, tmp, users)
        finally:
            for problem in users.remove_all():
                print(problem, file=sys.stderr)

    task.react(lambda reactor: defer.ensureDeferred(body(reactor)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

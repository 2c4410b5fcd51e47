# Audio both ways through the real thing: sessiond from the installed venv,
# the sandboxed agent with its own PulseAudio, apps typed into a real xterm
# (paplay, parec), and the installed svclient. Assertions are on what a user
# hears: the dominant frequency and level of the WAV svclient recorded, the
# frequency parec recorded inside the session from svclient's microphone,
# the bytes a silent session sends, and whether another user can reach the
# session's sound server.
"""Integration: svclient audio record / mic against a real session."""

from __future__ import annotations

import array
import math
import os
import pwd
import re
import struct
import subprocess
import time
import wave
from collections.abc import Iterator

import pytest

from svtest import VENV_BIN, Server, TestUser, start_sessiond, stop_sessiond, svclient

pytestmark = [pytest.mark.integration, pytest.mark.root]

RATE = 48000
# -6 dBFS peak: loud, far from clipping.
TONE_AMPLITUDE = 16384
# Samples louder than this belong to the tone (it is -9 dBFS RMS).
LOUD = 2000
# Seconds trimmed from both ends of the loud part before measuring (onset/offset).
TRIM = 0.2


def write_tone(path: str, owner: str, freq: float, seconds: float, channels: int = 2) -> None:
    """A 16-bit 48 kHz sine WAV owned by OWNER (the session reads it from the home directory)."""
    frame = "<" + "h" * channels
    with wave.open(path, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(b"".join(struct.pack(frame, *([int(TONE_AMPLITUDE * math.sin(2 * math.pi * freq * k / RATE))]
                                                       * channels)) for k in range(int(seconds * RATE))))  # fmt: skip
    entry = pwd.getpwnam(owner)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def first_channel(pcm: bytes, channels: int) -> list[int]:
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % (2 * channels)])
    return list(samples[::channels])


def read_wav(path: str) -> list[int]:
    with wave.open(path) as wav:
        assert wav.getframerate() == RATE and wav.getsampwidth() == 2
        return first_channel(wav.readframes(wav.getnframes()), wav.getnchannels())


def loud_part(samples: list[int]) -> list[int]:
    loud = [i for i, v in enumerate(samples) if abs(v) > LOUD]
    assert loud, "no sound at all in the recording"
    trim = int(TRIM * RATE)
    part = samples[loud[0] + trim : loud[-1] - trim]
    assert len(part) > RATE // 2, f"only {len(part) / RATE:.2f} s of sound"
    return part


def frequency(samples: list[int]) -> float:
    """Frequency from interpolated upward zero crossings (exact for a clean tone)."""
    crossings = [i - 1 + -samples[i - 1] / (samples[i] - samples[i - 1])
                 for i in range(1, len(samples)) if samples[i - 1] < 0 <= samples[i]]  # fmt: skip
    return (len(crossings) - 1) * RATE / (crossings[-1] - crossings[0])


def purity(samples: list[int], freq: float) -> float:
    """Share of the signal's energy at FREQ (Goertzel): 1.0 for a pure tone."""
    coeff = 2 * math.cos(2 * math.pi * freq / RATE)
    s1 = s2 = 0.0
    for v in samples:
        s1, s2 = v + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    energy = sum(v * v for v in samples)
    return 2 * power / (len(samples) * energy)


def level_db(samples: list[int]) -> float:
    return 20 * math.log10(math.sqrt(sum(v * v for v in samples) / len(samples)) / 32768)


def session_pid(user: str, pattern: str) -> int:
    out = subprocess.run(["pgrep", "-u", user, "-f", pattern], capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 1, f"expected one {pattern} of {user}, found {pids}"
    return pids[0]


def as_user_in(pid: int, user: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ARGV as USER inside the mount namespace of PID (a session's process)."""
    return subprocess.run(["nsenter", "-t", str(pid), "-m", "--", "setpriv", "--reuid", user, "--regid", user,
                           "--init-groups", "--", *argv], capture_output=True, text=True, timeout=30)  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_sessiond(str(tmp_path_factory.mktemp("sessiond-audio")))
    yield started
    stop_sessiond(started)


@pytest.fixture(scope="module")
def alice(user_factory: object, server: Server) -> TestUser:
    user: TestUser = user_factory("svt-aud-a")  # type: ignore[operator]
    launched = svclient(server, user, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + server.log()
    return user


@pytest.fixture(scope="module")
def bob(user_factory: object) -> TestUser:
    return user_factory("svt-aud-b")  # type: ignore[operator, no-any-return]


def test_record_hears_a_tone_played_in_the_session(server: Server, alice: TestUser) -> None:
    home = pwd.getpwnam(alice.name).pw_dir
    tone = os.path.join(home, "tone440.wav")
    write_tone(tone, alice.name, 440, 2.5)
    typed = svclient(server, alice, "type", f"sleep 1.5; paplay {tone}\n")
    assert typed.returncode == 0, typed.stderr
    out = os.path.join(home, "recorded.wav")
    recorded = svclient(server, alice, "audio", "record", out, "--seconds", "5")
    assert recorded.returncode == 0, recorded.stderr + server.log()
    part = loud_part(read_wav(out))
    assert abs(frequency(part) - 440) <= 2, frequency(part)
    assert purity(part, frequency(part)) > 0.9
    source = level_db([int(TONE_AMPLITUDE * math.sin(2 * math.pi * 440 * k / RATE)) for k in range(RATE)])
    assert abs(level_db(part) - source) <= 3, (level_db(part), source)
    # CLOCK_REPORTs: the audio clock against the session's, so drift is measurable.
    clocks = re.search(r"clocks: audio drift ([-+]\d+\.\d) ms over (\d+\.\d) s of session time \((\d+) reports\)",
                       recorded.stdout)  # fmt: skip
    assert clocks is not None, recorded.stdout
    assert int(clocks.group(3)) >= 3 and float(clocks.group(2)) >= 2.0
    assert abs(float(clocks.group(1))) < 200, recorded.stdout


def test_silence_sends_almost_nothing(server: Server, alice: TestUser, tmp_path: object) -> None:
    out = os.path.join(str(tmp_path), "silence.wav")
    recorded = svclient(server, alice, "audio", "record", out, "--seconds", "2")
    assert recorded.returncode == 0, recorded.stderr
    packets = int(re.search(r"\((\d+) packets", recorded.stdout).group(1))  # type: ignore[union-attr]
    wire = int(re.search(r"(\d+) bytes on the wire", recorded.stdout).group(1))  # type: ignore[union-attr]
    assert packets == 0 and wire < 100, recorded.stdout  # only the AUDIO_FORMAT (16 bytes)
    assert max(abs(v) for v in read_wav(out)) == 0
    # svclient has gone: the session captures nothing any more (parec stopped).
    deadline = time.monotonic() + 3
    while subprocess.run(["pgrep", "-u", alice.name, "-x", "parec"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "sound capture still runs with no client connected"
        time.sleep(0.1)


def test_mic_reaches_an_app_recording_in_the_session(server: Server, alice: TestUser) -> None:
    home = pwd.getpwnam(alice.name).pw_dir
    tone = os.path.join(home, "tone660.wav")
    write_tone(tone, alice.name, 660, 2.0, channels=1)
    raw = os.path.join(home, "mic.raw")
    command = f"timeout -s INT 6 parec --raw --format=s16le --rate={RATE} --channels=1 > {raw}\n"
    typed = svclient(server, alice, "type", command)
    assert typed.returncode == 0, typed.stderr
    sent = svclient(server, alice, "audio", "mic", tone)
    assert sent.returncode == 0, sent.stderr + server.log()
    assert "0 dropped" in sent.stdout
    deadline = time.monotonic() + 15
    size = -1
    while time.monotonic() < deadline:  # parec stops after 6 s and the file stops growing
        time.sleep(0.5)
        if os.path.exists(raw) and os.path.getsize(raw) == size and size > 0:
            break
        size = os.path.getsize(raw) if os.path.exists(raw) else -1
    with open(raw, "rb") as handle:
        part = loud_part(first_channel(handle.read(), 1))
    assert abs(frequency(part) - 660) <= 2, frequency(part)
    assert purity(part, frequency(part)) > 0.9


def test_another_users_session_cannot_reach_the_sound_server(server: Server, alice: TestUser, bob: TestUser) -> None:
    assert svclient(server, bob, "login").returncode == 0
    uid = pwd.getpwnam(alice.name).pw_uid
    socket_path = f"/run/user/{uid}/pulse/native"
    alice_agent = session_pid(alice.name, "sessiond.agent")
    bob_agent = session_pid(bob.name, "sessiond.agent")
    # Control: inside alice's session, as alice, the server answers.
    own = as_user_in(alice_agent, alice.name, "pactl", "-s", f"unix:{socket_path}", "info")
    assert own.returncode == 0 and "Default Sink: sessiond_out" in own.stdout, own.stderr
    # From bob's session the socket does not even exist (private runtime dir).
    other = as_user_in(bob_agent, bob.name, "pactl", "-s", f"unix:{socket_path}", "info")
    assert other.returncode != 0 and "Default Sink" not in other.stdout
    # From the host, bob cannot reach into alice's namespace through /proc.
    pulse = session_pid(alice.name, "pulseaudio")
    via_proc = subprocess.run(["setpriv", "--reuid", bob.name, "--regid", bob.name, "--init-groups", "--",
                               "pactl", "-s", f"unix:/proc/{pulse}/root{socket_path}", "info"],
                              capture_output=True, text=True, timeout=30)  # fmt: skip
    assert via_proc.returncode != 0 and "Default Sink" not in via_proc.stdout
    # Bob's own session has its own server, with its own sink.
    bobs = as_user_in(bob_agent, bob.name, "pactl", "-s", f"unix:/run/user/{pwd.getpwnam(bob.name).pw_uid}"
                      "/pulse/native", "info")  # fmt: skip
    assert bobs.returncode == 0 and "Default Sink: sessiond_out" in bobs.stdout, bobs.stderr


def pactl_in_session(user: TestUser, *argv: str) -> subprocess.CompletedProcess[str]:
    """pactl ARGV as the session's user, inside the session, against its sound server."""
    socket_path = f"/run/user/{pwd.getpwnam(user.name).pw_uid}/pulse/native"
    return as_user_in(session_pid(user.name, "sessiond.agent"), user.name, "pactl", "-s", f"unix:{socket_path}", *argv)


def mic_muted(user: TestUser) -> str:
    """`pactl get-source-mute sessiond_mic` in USER's session: "Mute: yes" or "Mute: no"."""
    got = pactl_in_session(user, "get-source-mute", "sessiond_mic")
    assert got.returncode == 0, got.stderr
    return got.stdout.strip()


def wait_for_mute(user: TestUser, state: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (now := mic_muted(user)) != state:
        assert time.monotonic() < deadline, f"mic still {now!r}, expected {state!r}"
        time.sleep(0.1)


def test_session_sees_the_mic_muted_unless_a_client_sends(server: Server, alice: TestUser) -> None:
    home = pwd.getpwnam(alice.name).pw_dir
    tone = os.path.join(home, "tone-privacy.wav")
    write_tone(tone, alice.name, 500, 4.0, channels=1)
    assert mic_muted(alice) == "Mute: yes"
    argv = [os.path.join(VENV_BIN, "svclient"), "--server", server.address, "--user", alice.name,
            "--password-file", alice.password_file, "--known-hosts", server.known_hosts,
            "--token-dir", os.path.join(os.path.dirname(server.known_hosts), "tokens"),
            "audio", "mic", tone]  # fmt: skip
    sender = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_mute(alice, "Mute: no", 3.0)
        # Apps see it the usual way too.
        listed = pactl_in_session(alice, "list", "sources")
        mic_block = listed.stdout.split("Name: sessiond_mic", 1)[1].split("\nSource #", 1)[0]
        assert "Mute: no" in mic_block, listed.stdout
        assert sender.poll() is None, "the check ran after svclient had finished: not while it sent"
        out, err = sender.communicate(timeout=30)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    assert sender.returncode == 0, err + server.log()
    wait_for_mute(alice, "Mute: yes", 3.0)


def test_an_app_that_plays_before_any_client_listens_starts_the_sound_server(server: Server,
                                                                            user_factory: object) -> None:
    """[audio] sound_server = on_demand (the default): no PulseAudio until something uses it,
    and an app's connection, before any audio channel, starts it and is served."""
    carol: TestUser = user_factory("svt-aud-c")  # type: ignore[operator]
    launched = svclient(server, carol, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + server.log()
    assert subprocess.run(["pgrep", "-u", carol.name, "-x", "pulseaudio"], capture_output=True).returncode == 1, \
        "the sound server runs although nothing used it"
    home = pwd.getpwnam(carol.name).pw_dir
    tone = os.path.join(home, "tone660.wav")
    write_tone(tone, carol.name, 660, 8.0)
    typed = svclient(server, carol, "type", f"paplay {tone}\n")
    assert typed.returncode == 0, typed.stderr
    deadline = time.monotonic() + 15
    while subprocess.run(["pgrep", "-u", carol.name, "-x", "pulseaudio"], capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, "paplay's connection did not start the sound server\n" + server.log()
        time.sleep(0.1)
    out = os.path.join(home, "recorded660.wav")
    recorded = svclient(server, carol, "audio", "record", out, "--seconds", "3")
    assert recorded.returncode == 0, recorded.stderr + server.log()
    part = loud_part(read_wav(out))
    assert abs(frequency(part) - 660) <= 3, frequency(part)

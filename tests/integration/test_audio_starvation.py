# Audio and display share one connection; neither may starve the other,
# with the per-channel caps of sessiond.conf in force. The real thing: a
# sessiond with [display] max_kbps and [audio] max_kbps set, a scrolling
# xterm keeping the display busy, paplay playing a tone in the session, and
# `svclient audio record --display` receiving both. Assertions are on what a
# user gets: the tone arrives whole (no gap, right frequency, every packet)
# while the screen scrolls, and the screen's frame rate while sound plays
# stays close to the one without sound.
"""Integration: audio and display under load, with bandwidth caps from config."""

from __future__ import annotations

import os
import pwd
import re
from collections.abc import Iterator

import pytest
from test_audio import frequency, loud_part, purity, read_wav, write_tone

from svtest import Server, TestUser, start_sessiond, stop_sessiond, svclient

pytestmark = [pytest.mark.integration, pytest.mark.root]

# Audio cap under test: above one 64 kbit/s Opus stream (~90 kbit/s with
# headers here) with little room to spare.
AUDIO_CAP_KBPS = 128
# Display caps under test: none (the display runs at max_fps, ~58 fps here,
# so CPU or connection starvation would show), and one that binds (the
# scrolling xterm drops to ~21 fps: frames wait for the bucket).
DISPLAY_CAPS_KBPS = (0, 200)
# The screen scrolls a line every ~5 ms for this long, then stops by itself.
SCROLL_SECONDS = 40
# Samples in a row with |v| this small inside the tone mean a lost packet
# (a clean tone crosses zero in well under a sample; a lost 20 ms packet is
# 960 samples of digital silence).
NEAR_ZERO = 50
MAX_QUIET_RUN = 48
# Frame rate with sound playing, as a share of the rate without: "close".
MIN_FPS_RATIO = 0.75
# The display must really be busy for the comparison to mean anything.
MIN_BUSY_FPS = 10.0


@pytest.fixture(scope="module", params=DISPLAY_CAPS_KBPS, ids=lambda kbps: f"display-cap-{kbps}")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    extra = f"[display]\nmax_kbps = {request.param}\n[audio]\nmax_kbps = {AUDIO_CAP_KBPS}\n"
    started = start_sessiond(str(tmp_path_factory.mktemp("sessiond-audio-load")), extra=extra)
    yield started
    stop_sessiond(started)


@pytest.fixture(scope="module")
def carol(user_factory: object, server: Server) -> TestUser:
    user: TestUser = user_factory(f"svt-aud-{server.runtime_dir[-4:]}")  # type: ignore[operator]
    launched = svclient(server, user, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + server.log()
    return user


def longest_quiet_run(samples: list[int]) -> int:
    longest = run = 0
    for v in samples:
        run = run + 1 if abs(v) < NEAR_ZERO else 0
        longest = max(longest, run)
    return longest


def record(server: Server, user: TestUser, path: str, seconds: float) -> tuple[int, float]:
    """`svclient audio record --display`: (audio packets, display fps)."""
    done = svclient(server, user, "audio", "record", path, "--seconds", str(seconds), "--display")
    assert done.returncode == 0, done.stderr + server.log()
    packets = int(re.search(r"\((\d+) packets", done.stdout).group(1))  # type: ignore[union-attr]
    shown = re.search(r"display: \d+ frames in [\d.]+ s \(([\d.]+) fps\)", done.stdout)
    assert shown, done.stdout
    fps = float(shown.group(1))
    print(done.stdout)
    return packets, fps


def test_audio_and_display_do_not_starve_each_other(server: Server, carol: TestUser) -> None:
    home = pwd.getpwnam(carol.name).pw_dir
    tone = os.path.join(home, "tone523.wav")
    write_tone(tone, carol.name, 523, 2.0)
    scroll = (f"timeout {SCROLL_SECONDS} sh -c 'i=0; while :; do i=$((i+1)); "
              "echo \"scrolling line $i abcdefghijklmnopqrstuvwxyz 0123456789\"; sleep 0.005; done' &\n")  # fmt: skip
    assert svclient(server, carol, "type", scroll).returncode == 0
    # Without sound: the display's own rate under the scroll.
    silent_packets, base_fps = record(server, carol, os.path.join(home, "quiet.wav"), 3)
    assert silent_packets == 0
    assert base_fps >= MIN_BUSY_FPS, f"the display was not busy ({base_fps} fps)"
    # With sound: a 2 s tone starts ~1.5 s in, inside a 5 s recording.
    assert svclient(server, carol, "type", f"sleep 1.5; paplay {tone}\n").returncode == 0
    out = os.path.join(home, "loaded.wav")
    packets, loaded_fps = record(server, carol, out, 5)
    # (a) the display did not starve audio: the whole tone, no gap, right pitch.
    part = loud_part(read_wav(out))
    assert longest_quiet_run(part) <= MAX_QUIET_RUN, f"a gap of {longest_quiet_run(part)} samples in the tone"
    assert abs(frequency(part) - 523) <= 2 and purity(part, frequency(part)) > 0.9
    assert 100 <= packets <= 100 + 8, packets  # 2 s in 20 ms packets, plus hangover and frame edges
    # (b) audio did not starve the display.
    assert loaded_fps >= MIN_FPS_RATIO * base_fps, (loaded_fps, base_fps)

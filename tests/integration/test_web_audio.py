# Audio in the web client through the real thing: Debian's chromium (headless,
# Playwright) logged in to the installed sessiond, xterm in a real session
# with its own PulseAudio. The page decodes the session's Opus with WebCodecs
# and plays it through WebAudio; assertions are on what the page decoded (its
# debug window on decoded samples) and what its AnalyserNode hears, against
# the tone paplay played in the session. For the microphone, chromium's fake
# capture device (a periodic beep) goes through getUserMedia, AudioEncoder and
# audio-in, and parec inside the session must record it.
"""Web client: hear a tone played in the session; the browser's microphone reaches parec in the session."""

from __future__ import annotations

import os
import pwd
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest

from svtest import Server, TestUser, start_sessiond, stop_sessiond
from test_audio import LOUD, RATE, first_channel, frequency, purity, write_tone
from test_web_client import CHROMIUM, CHROMIUM_ARGS, UI_TIMEOUT_MS, log_in

pytestmark = [pytest.mark.integration, pytest.mark.root]

from playwright import sync_api as playwright_sync  # noqa: E402 - pinned in requirements-test.txt

# Sound may start without a gesture in tests; the fake capture device answers getUserMedia without a prompt.
AUDIO_ARGS = ["--autoplay-policy=no-user-gesture-required", "--use-fake-ui-for-media-stream",
              "--use-fake-device-for-media-stream"]  # fmt: skip
TONE_HZ = 440
TONE_SECONDS = 2.0
# The analyser's bins are 48000/8192 = 5.9 Hz wide; interpolation gets well inside one bin.
ANALYSER_TOLERANCE_HZ = 6
# A sample louder than this (of 32767) in the session's mic recording is the browser's beep, not silence.
MIC_LOUD = 1000


@pytest.fixture(scope="module")
def sessiond_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Desktop mode: these tests drive xterm through the one-canvas page (seamless: test_web_windows.py)."""
    server = start_sessiond(str(tmp_path_factory.mktemp("sessiond")), session="mode = desktop\n")
    yield server
    stop_sessiond(server)


@pytest.fixture(scope="module")
def user(user_factory: Any) -> TestUser:
    return user_factory("svt-wau-a")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def page(sessiond_server: Server, user: TestUser) -> Iterator[Any]:
    """A logged-in page showing xterm, ready for typing."""
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS + AUDIO_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        log_in(page, sessiond_server, user)
        page.locator('#apps button[data-app="xterm"]').click(timeout=UI_TIMEOUT_MS)
        page.wait_for_selector("#screen[data-frames]", timeout=UI_TIMEOUT_MS)
        page.wait_for_timeout(1500)  # xterm maps its window
        yield page
        browser.close()


def type_in_xterm(page: Any, command: str) -> None:
    page.locator("#screen").click(position={"x": 100, "y": 100})
    page.keyboard.type(command)
    page.keyboard.press("Enter")


def stats(page: Any) -> dict[str, Any]:
    return page.evaluate("window.sessiondAudio.stats()")  # type: ignore[no-any-return]


def decoding_settled(page: Any) -> bool:
    """True once no packet was decoded for half a second (the session went silent)."""
    before = stats(page)["player"]["decoded"]
    time.sleep(0.5)
    return bool(stats(page)["player"]["decoded"] == before)


def bursts(loud: list[int], gap: int) -> list[tuple[int, int]]:
    """Runs of loud sample indexes, split where more than GAP samples lie between two."""
    runs: list[tuple[int, int]] = []
    for i in loud:
        if runs and i - runs[-1][1] <= gap:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def wait_js(page: Any, expression: str) -> None:
    """Poll a page expression from here (the page's CSP forbids the eval wait_for_function polls with)."""
    wait_until(expression, lambda: page.evaluate(expression), timeout=UI_TIMEOUT_MS / 1000)


def wait_until(what: str, check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_page_plays_a_tone_from_the_session(page: Any, user: TestUser, sessiond_server: Server) -> None:
    home = pwd.getpwnam(user.name).pw_dir
    tone = os.path.join(home, "webtone.wav")
    write_tone(tone, user.name, TONE_HZ, TONE_SECONDS)
    speaker = page.locator("#speaker")
    assert speaker.get_attribute("aria-pressed") == "false" and speaker.text_content() == "Sound off"
    speaker.click()
    assert speaker.get_attribute("aria-pressed") == "true" and speaker.text_content() == "Sound on"
    wait_js(page, "window.sessiondAudio.conn.isOpen(3)")
    assert stats(page)["context"]["state"] == "running"
    page.wait_for_timeout(800)  # the session's capture (parec) starts when the channel opens
    type_in_xterm(page, f"paplay {tone}")

    # While the tone plays, the AnalyserNode between the decoded buffers and the speakers hears it.
    heard: list[float] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(heard) < 10:
        player = stats(page)["player"]
        if player and player["decoded"] > 25:
            f = page.evaluate("window.sessiondAudio.dominantFrequency()")
            if f > 0:
                heard.append(f)
        page.wait_for_timeout(100)
    assert len(heard) >= 5, f"the analyser heard nothing: {stats(page)}\n{sessiond_server.log()[-2000:]}"
    assert abs(statistics.median(heard) - TONE_HZ) <= ANALYSER_TOLERANCE_HZ, heard

    # After the tone, the decoded samples hold all of it: measure it as test_audio.py measures svclient's WAV.
    wait_until("the tone to end", lambda: decoding_settled(page))
    decoded = page.evaluate("window.sessiondAudio.recentSamples()")
    assert decoded["rate"] == RATE
    samples = [int(v * 32767) for v in decoded["samples"]]
    loud = [i for i, v in enumerate(samples) if abs(v) > LOUD]
    assert loud, f"no sound decoded: {stats(page)}"
    part = samples[loud[0] + RATE // 10 : loud[-1] - RATE // 10]
    assert len(part) > RATE, f"only {len(part) / RATE:.2f} s of tone decoded"
    assert abs(frequency(part) - TONE_HZ) <= 2, frequency(part)
    assert purity(part, frequency(part)) > 0.9
    player = stats(page)["player"]
    # The tone was measured whole above; a rare dropped packet on a loaded machine is not a gap.
    assert player["errors"] == 0 and player["dropped"] <= max(1, player["decoded"] // 100), player
    assert 0.03 <= player["delay"] <= 0.3, player

    # Switching the sound off closes audio-out: the session stops capturing.
    speaker.click()
    assert speaker.text_content() == "Sound off"
    wait_js(page, "!window.sessiondAudio.conn.channels.has(3)")


def test_the_browser_microphone_reaches_an_app_in_the_session(page: Any, user: TestUser,
                                                              sessiond_server: Server) -> None:  # fmt: skip
    home = pwd.getpwnam(user.name).pw_dir
    raw = os.path.join(home, "webmic.raw")
    mic = page.locator("#mic")
    assert mic.text_content() == "Mic off"
    mic.click()
    wait_js(page, "window.sessiondAudio.conn.isOpen(4) && window.sessiondAudio.stats().mic_stats.sent > 10")
    assert mic.text_content() == "● Mic on" and "live" in (mic.get_attribute("class") or "")
    type_in_xterm(page, f"timeout -s INT 4 parec --raw --format=s16le --rate={RATE} --channels=1 > {raw}")

    size = -1

    def recording_done() -> bool:  # parec stops after 4 s and the file stops growing
        nonlocal size
        time.sleep(0.5)
        now = os.path.getsize(raw) if os.path.exists(raw) else -1
        done = now == size and now > 0
        size = now
        return done

    wait_until("parec's recording", recording_done, timeout=20)
    with open(raw, "rb") as handle:
        samples = first_channel(handle.read(), 1)
    assert len(samples) > 2 * RATE, f"parec recorded {len(samples) / RATE:.2f} s"
    peak = max(abs(v) for v in samples)
    log = sessiond_server.log()[-2000:]
    assert peak > MIC_LOUD, f"the session heard silence (peak {peak}); page: {stats(page)}\n{log}"
    beeps = bursts([i for i, v in enumerate(samples) if abs(v) > MIC_LOUD], gap=RATE // 10)
    assert len(beeps) >= 4, f"expected the fake device's periodic beeps, got loud stretches {beeps}"
    # They arrive as regularly as the device beeps (every 0.5 s in chromium 156): no gaps, no bunching.
    # The first is left out: parec may start in the middle of it, which moves its start (a CI run saw
    # 0.452 s, then 0.505, 0.509, 0.491, ...).
    spacings = [(b[0] - a[0]) / RATE for a, b in zip(beeps[1:], beeps[2:])]
    assert max(spacings) - min(spacings) < 0.05, spacings
    # A loaded machine may drop a packet now and then (each is 20 ms, not audible as a gap
    # on its own); the beeps above arrived regularly, so what is asserted here is only that
    # drops stay rare: at most one packet in a hundred.
    mic_stats = stats(page)["mic_stats"]
    assert mic_stats["dropped"] <= max(1, mic_stats["sent"] // 100), mic_stats
    print(f"browser mic: {mic_stats['sent']} packets sent, {mic_stats['dropped']} dropped")

    # Mic off: the indicator goes out, the capture stops and audio-in closes.
    mic.click()
    assert mic.text_content() == "Mic off" and "live" not in (mic.get_attribute("class") or "")
    wait_js(page, "!window.sessiondAudio.conn.channels.has(4)")

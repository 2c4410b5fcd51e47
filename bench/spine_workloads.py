# The three workloads of DESIGN.md's budget table that the spine can run
# today, each measured at the client through the real client library
# (client/session.py), exactly as svclient drives a session: TLS 1.3, PAM
# login, the display channel with per-frame acknowledgements, the input
# channel. Each workload also measures its baseline in the same run, so the
# report prints ratios, never comparisons with numbers from another day.
#
# Synchronisation is by events only: a FrameEnd (client.next_frame), a
# LaunchResult, a Deferred. The few timed waits are part of the workload
# itself (a typist's pause between keys, a fixed measurement window, and
# "no frame for QUIET_SECONDS" as the definition of an idle screen).
"""Start-up, keystroke echo and full-screen redraw workloads."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from PIL import ImageChops
from twisted.internet import defer, task

from baselines import PngFrame, bare_xterm_start, naive_png
from byte_proxy import ByteCount, CountingProxy
from client.framebuffer import Framebuffer
from client.keysyms import keysym_for_char
from client.known_hosts import KnownHosts
from client.session import SessionClient, connect
from protocol.messages import ChannelKind
from session_pids import session_pids
from spine_server import TestUser

# Longest wait for any single server answer before the bench gives up.
STEP_TIMEOUT_SECONDS = 30.0
# A screen with no new frame for this long is idle (xterm's cursor does not blink).
QUIET_SECONDS = 0.3
# Pause after each echo (with the echo and the naive encode, ~10 keys/s, a
# fast typist); it also lets any trailing frame of one echo arrive before
# the next key's bytes are counted.
TYPING_GAP_SECONDS = 0.05
# An echo later than this counts as missed (far beyond any latency budget).
ECHO_TIMEOUT_SECONDS = 1.0
# xterm's size in DESIGN.md's budget table; the baseline xterm gets the same.
XTERM_ARGS = ("-geometry", "180x50")
# Interior of xterm's window at the screen's top-left corner
# (there is no window manager): all background white once xterm has drawn.
XTERM_PROBE_BOX = (100, 100, 400, 250)
XTERM_BACKGROUND = (255, 255, 255)
# Screens sampled for the naive baseline of the redraw workload.
NAIVE_REDRAW_SAMPLES = 10
# Frames skipped after the redraw app's window maps, before measuring.
REDRAW_WARMUP_SECONDS = 1.0
# Characters typed in the echo workload (letters only: one keysym each).
ECHO_ALPHABET = "abcdefghijklmnopqrstuvwxyz"


# The bench's own programs inside a session, by script name, and their labels.
BENCH_SCRIPTS = {b"redraw_app.py": "redraw app", b"scroll_feed.py": "scroll feeder"}
# Clock ticks per second of /proc/PID/stat's utime and stime.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# /proc/PID/stat fields (0-based, after the ")" of comm) of utime and stime.
STAT_UTIME, STAT_STIME = 11, 12


class BenchError(RuntimeError):
    """A workload could not run; the message says which step failed."""


async def within(reactor: Any, awaitable: Any, what: str, seconds: float = STEP_TIMEOUT_SECONDS) -> Any:
    """Await AWAITABLE, failing with BenchError after SECONDS."""
    d = awaitable if isinstance(awaitable, defer.Deferred) else defer.ensureDeferred(awaitable)
    d.addTimeout(seconds, reactor)
    try:
        return await d
    except defer.TimeoutError as exc:
        raise BenchError(f"timed out after {seconds:.0f} s waiting for {what}") from exc


def xterm_visible(fb: Framebuffer | None) -> bool:
    """True once the client's framebuffer shows xterm's (empty) interior."""
    if fb is None:
        return False
    left, top, right, bottom = XTERM_PROBE_BOX  # only the box is copied: the whole screen's copy took ~10 ms
    colours = fb.crop(left, top, right - left, bottom - top).getcolors(1)
    return colours is not None and colours[0][1] == XTERM_BACKGROUND


async def _first_frame_where(client: SessionClient, predicate: Callable[[], bool]) -> float:
    while True:
        await client.next_frame()
        at = time.perf_counter()
        if predicate():
            return at


async def frame_where(reactor: Any, client: SessionClient, predicate: Callable[[], bool], what: str,
                      seconds: float = STEP_TIMEOUT_SECONDS) -> float:  # fmt: skip
    """perf_counter() at the FrameEnd of the first frame after which
    PREDICATE holds (checked after each complete, applied frame); BenchError
    if none comes within SECONDS."""
    return float(await within(reactor, _first_frame_where(client, predicate), what, seconds))


async def wait_quiet(reactor: Any, client: SessionClient) -> None:
    """Return once no frame has arrived for QUIET_SECONDS."""
    deadline = time.monotonic() + STEP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        d = client.next_frame()
        d.addTimeout(QUIET_SECONDS, reactor)
        try:
            await d
        except defer.TimeoutError:
            return
    raise BenchError(f"the screen never went idle for {QUIET_SECONDS} s")


async def open_session(reactor: Any, host: str, port: int, known: KnownHosts, user: TestUser,
                       app: str | None, ready: Callable[[SessionClient], bool]) -> SessionClient:  # fmt: skip
    """Connect, log in, open display and input, launch APP (None: attach to
    what the session already runs), wait for READY."""
    client: SessionClient = await within(reactor, connect(reactor, host, port, known), "the server")
    try:
        await within(reactor, client.login(user.name, user.password), f"login of {user.name}")
        await within(reactor, client.open_channel(ChannelKind.DISPLAY), "the display channel")
        await within(reactor, client.open_channel(ChannelKind.INPUT), "the input channel")
        what = f"{app or 'the session'} on screen"
        shown = defer.ensureDeferred(frame_where(reactor, client, lambda: ready(client), what))
        if app is not None:
            await within(reactor, client.launch(app), f"launch of {app}")
        await shown
    except BaseException:
        client.disconnect()
        raise
    return client


# -- 1. start-up ----------------------------------------------------------------
@dataclass
class StartupRun:
    """One new session: seconds from connect() to each milestone, and the
    start-up floor (bare Xvfb + xterm + capture) measured just before it."""

    connected: float
    logged_in: float
    launched: float
    first_frame: float
    baseline: float


async def startup_once(reactor: Any, host: str, port: int, known: KnownHosts, user: TestUser, app: str,
                       width: int, height: int, with_baseline: bool = True) -> StartupRun:  # fmt: skip
    """Baseline (bare Xvfb + xterm + capture; skipped, 0.0, without WITH_BASELINE),
    then one new session of ours launching APP (an xterm started with XTERM_ARGS)."""
    baseline = bare_xterm_start(width, height, XTERM_ARGS) if with_baseline else 0.0
    start = time.perf_counter()
    client: SessionClient = await within(reactor, connect(reactor, host, port, known), "the server")
    try:
        connected = time.perf_counter()
        await within(reactor, client.login(user.name, user.password), f"login of {user.name}")
        logged_in = time.perf_counter()
        await within(reactor, client.open_channel(ChannelKind.DISPLAY), "the display channel")
        shown = defer.ensureDeferred(frame_where(reactor, client, lambda: xterm_visible(client.framebuffer),
                                                 "xterm's first frame"))  # fmt: skip
        await within(reactor, client.launch(app), f"launch of {app}")
        launched = time.perf_counter()
        first = await shown
    finally:
        client.disconnect()
    return StartupRun(connected - start, logged_in - start, launched - start, first - start, baseline)


# -- 2. keystroke echo ----------------------------------------------------------------
@dataclass
class EchoResult:
    """Per keystroke: bytes both ways, latency (None: no echo within
    ECHO_TIMEOUT_SECONDS), and the naive server's cost at that moment."""

    bytes_up: list[int] = field(default_factory=list)
    bytes_down: list[int] = field(default_factory=list)
    records_up: list[int] = field(default_factory=list)
    records_down: list[int] = field(default_factory=list)
    latency: list[float | None] = field(default_factory=list)
    naive_png: list[PngFrame] = field(default_factory=list)
    changed_area: list[int] = field(default_factory=list)

    @property
    def missed(self) -> int:
        """Keystrokes whose echo did not arrive in time."""
        return sum(1 for value in self.latency if value is None)


class ScreenChange:
    """Did the client's framebuffer change since this probe was made?"""

    def __init__(self, fb: Framebuffer) -> None:
        self.fb = fb
        self.before = fb.image()
        self.box: tuple[int, int, int, int] | None = None

    def __call__(self) -> bool:
        self.box = ImageChops.difference(self.before, self.fb.image()).getbbox()
        return self.box is not None

    @property
    def area(self) -> int:
        """Pixels in the bounding box of the change (0 if none)."""
        x0, y0, x1, y1 = self.box or (0, 0, 0, 0)
        return (x1 - x0) * (y1 - y0)


async def echo(reactor: Any, client: SessionClient, proxy: CountingProxy, keystrokes: int,
               tally: Any = None) -> EchoResult:  # fmt: skip
    """Type KEYSTROKES letters at xterm's prompt; measure each echo: the
    first frame after the key that changes the screen (nothing else moves:
    xterm's cursor does not blink). TALLY (keystroke_tally.MessageTally):
    the frames of each keystroke by name."""
    result = EchoResult()
    await wait_quiet(reactor, client)
    fb = client.framebuffer
    if fb is None:
        raise BenchError("no framebuffer after the xterm launch")
    if tally is not None:
        tally.take()  # what came before the first key is not a keystroke's
        tally.samples.clear()
    for index in range(keystrokes):
        keysym = keysym_for_char(ECHO_ALPHABET[index % len(ECHO_ALPHABET)])
        changed = ScreenChange(fb)
        counted: ByteCount = proxy.count()
        sent = time.perf_counter()
        if hasattr(client, "tap"):
            client.tap(keysym)  # one KEY_TAP where the client has it (issue 15)
        else:
            client.key(keysym, True)
            client.key(keysym, False)
        try:
            shown: float | None = await frame_where(reactor, client, changed, f"the echo of keystroke {index}",
                                                    ECHO_TIMEOUT_SECONDS)  # fmt: skip
        except BenchError:
            shown = None  # reported as missed; the next key's frame usually carries it
        result.latency.append(None if shown is None else shown - sent)
        result.naive_png.append(naive_png(fb.image()))
        result.changed_area.append(changed.area)
        await task.deferLater(reactor, TYPING_GAP_SECONDS, lambda: None)
        used = proxy.count() - counted
        result.bytes_up.append(used.up)
        result.bytes_down.append(used.down)
        result.records_up.append(used.up_records)
        result.records_down.append(used.down_records)
        if tally is not None:
            tally.take()
    return result


# -- CPU accounting ------------------------------------------------------------------
def process_label(pid: int) -> str:
    """A short name for PID: client, agent, redraw app, or its command name."""
    if pid == os.getpid():
        return "client"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
        with open(f"/proc/{pid}/comm", encoding="utf-8") as handle:
            comm = handle.read().strip()
    except OSError:
        return "gone"
    if b"sessiond.agent" in argv:
        return "agent"
    if any(arg.endswith(b"isolation/init.py") for arg in argv):
        return "sandbox init"
    for script, label in BENCH_SCRIPTS.items():  # a python running it, not an xterm -e naming it
        if comm.startswith("python") and any(arg.endswith(script) for arg in argv):
            return label
    if any(arg.endswith(b"/sessiond") for arg in argv):
        return "sessiond"
    return comm


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds PID has used so far (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[STAT_UTIME]) + int(fields[STAT_STIME])) / CLOCK_TICKS


def user_pids(user: str) -> list[int]:
    """Pids of USER's session (agent, Xvfb, apps; session_pids.py)."""
    return session_pids(user)


def cpu_used(pids: list[int], before: dict[int, float]) -> dict[str, float]:
    """CPU seconds per process label since BEFORE (pid -> cpu_seconds then)."""
    used: dict[str, float] = {}
    for pid in pids:
        label = process_label(pid)
        used[label] = used.get(label, 0.0) + cpu_seconds(pid) - before.get(pid, 0.0)
    return used


def cpu_shares(pids: list[int], before: dict[int, float], seconds: float) -> dict[str, float]:
    """CPU use per process label over SECONDS, in % of one core."""
    return {label: 100.0 * used / seconds for label, used in cpu_used(pids, before).items()}


class FrameCounter:
    """Counts the client's complete frames (FrameEnds) from now until stop()."""

    def __init__(self, client: SessionClient) -> None:
        self.frames = 0
        self._counting = True
        self._task = defer.ensureDeferred(self._count(client))
        self._task.addErrback(lambda f: f.trap(defer.CancelledError))

    async def _count(self, client: SessionClient) -> None:
        while self._counting:
            await client.next_frame()
            self.frames += 1

    def stop(self) -> int:
        """Stop counting; returns the frames counted."""
        self._counting = False
        self._task.cancel()
        return self.frames


# -- 3. full-screen redraw ----------------------------------------------------------
@dataclass
class RedrawResult:
    """Frames and bytes received over the window, and naive PNG samples."""

    seconds: float
    frames: int
    bytes: ByteCount
    naive_png: list[PngFrame]
    cpu: dict[str, float]

    @property
    def fps(self) -> float:
        """Complete frames per second at the client."""
        return self.frames / self.seconds


async def redraw(reactor: Any, client: SessionClient, proxy: CountingProxy, seconds: float,
                 watched: list[int]) -> RedrawResult:  # fmt: skip
    """Count frames and bytes for SECONDS while the redraw app scrolls, and
    the CPU the WATCHED processes use meanwhile."""
    await task.deferLater(reactor, REDRAW_WARMUP_SECONDS, lambda: None)
    counter = FrameCounter(client)
    cpu_before = {pid: cpu_seconds(pid) for pid in watched}
    start_bytes, start = proxy.count(), time.perf_counter()
    await task.deferLater(reactor, seconds, lambda: None)
    used, elapsed, counted = proxy.count() - start_bytes, time.perf_counter() - start, counter.stop()
    cpu = cpu_shares(watched, cpu_before, elapsed)
    samples = []
    for index in range(NAIVE_REDRAW_SAMPLES):
        await within(reactor, client.next_frame(), f"naive sample frame {index}")
        if client.framebuffer is None:
            raise BenchError("no framebuffer during the redraw")
        samples.append(client.framebuffer.image())
    client.disconnect()  # the naive encoder gets the CPU our pipeline was using
    return RedrawResult(elapsed, counted, used, [naive_png(image) for image in samples], cpu)

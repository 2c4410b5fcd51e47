# The client side of the slow-link test and bench, run inside the emulated
# link's namespace (tests/netem_link.py) as its own process, so every byte
# between it and sessiond crosses the 40 ms / 10 Mbit/s / 1% loss link.
#
# What it does is what a user does: log in, launch xterm, type letters at the
# prompt and wait for each echo on screen; start a flood of output (seq),
# let it scroll, press Ctrl+C and type a command that paints a red block, and
# wait until the red is on screen. It prints one JSON object: echo latencies,
# frames received during the flood, and how long the red took. Synchronisation
# is by frames only (client.next_frame), never by sleeping on the server.
"""Slow-link client: typing echo and a flood scroll, measured at the client (prints JSON)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable

from twisted.internet import defer, task

from client.keysyms import keysym_for_char
from client.known_hosts import KnownHosts
from client.session import SessionClient, connect
from protocol.messages import ChannelKind, Encoding, FrameAck, Region

# Seconds any one step may take before the run fails (generous: a loaded machine).
STEP_SECONDS = 60.0
# An echo slower than this counts as missed (reported as None).
ECHO_TIMEOUT = 5.0
# The screen is idle once no frame came for this long.
QUIET_SECONDS = 0.5
# Gap between typed letters (a fast typist), so each echo is its own frame.
TYPING_GAP = 0.1
# xterm's colour 1 (red3) as the ANSI background 41, and the command painting 600 cells of it.
RED = (205, 0, 0)
PAINT = "printf '\\033[41m%600s\\033[0m\\n' ''\n"
MIN_RED_PIXELS = 600 * 6 * 13 // 2
FLOOD = "seq 100000000\n"
# A video beside xterm (ffplay's test pattern with temporal noise: every
# pixel changes every frame, many colours, so JPEG at ~tens of kB a frame,
# more than the 10 Mbit/s link carries at 30 fps), in the right part of the 1024x768 screen; xterm's 80x24 cells
# (484x316 px) stay uncovered, so typed letters can be seen while it plays.
VIDEO = ("ffplay -loglevel quiet -an -noborder -left 520 -top 0 -f lavfi "
         "-i testsrc=size=480x360:rate=30,noise=alls=30:allf=t &\n")
VIDEO_BOX = (520, 0, 1000, 360)
XTERM_BOX = (0, 0, 484, 316)
CONTROL_L = 0xFFE3
# Lines printed a few milliseconds apart, so most frames move the text by a
# few lines (a COPY) and the frame window is what limits the frame rate.
SCROLL = "for i in $(seq 1 2000); do echo line $i $RANDOM; sleep 0.002; done\n"
SCROLL_SECONDS = 6.0


async def within(reactor: Any, awaitable: Any, what: str, seconds: float = STEP_SECONDS) -> Any:
    """Await AWAITABLE; RuntimeError naming WHAT after SECONDS."""
    d = awaitable if isinstance(awaitable, defer.Deferred) else defer.ensureDeferred(awaitable)
    d.addTimeout(seconds, reactor)
    try:
        return await d
    except defer.TimeoutError as exc:
        raise RuntimeError(f"timed out after {seconds:.0f} s waiting for {what}") from exc


async def frame_where(reactor: Any, client: SessionClient, predicate: Callable[[], bool], what: str,
                      seconds: float = STEP_SECONDS) -> float:  # fmt: skip
    """perf_counter() at the first complete frame after which PREDICATE holds."""

    async def wait() -> float:
        while True:
            await client.next_frame()
            if predicate():
                return time.perf_counter()

    return float(await within(reactor, wait(), what, seconds))


async def wait_quiet(reactor: Any, client: SessionClient, quiet: float = QUIET_SECONDS) -> None:
    """Return once no frame has arrived for `quiet` seconds."""
    deadline = time.monotonic() + STEP_SECONDS
    while time.monotonic() < deadline:
        d = client.next_frame()
        d.addTimeout(quiet, reactor)
        try:
            await d
        except defer.TimeoutError:
            return
    raise RuntimeError("the screen never went idle")


def red_pixels(client: SessionClient) -> int:
    """Pixels of xterm's red on the client's screen."""
    fb = client.framebuffer
    colours = fb.image().getcolors(1 << 20) if fb is not None else None
    return sum(count for count, colour in colours or [] if colour[:3] == RED)


def count_bytes(client: SessionClient) -> None:
    """client.bytes_received: protocol bytes received (after TLS), counted from now."""
    client.bytes_received = 0  # type: ignore[attr-defined]
    original = client.dataReceived

    def counting(data: bytes) -> None:
        client.bytes_received += len(data)  # type: ignore[attr-defined]
        original(data)

    client.dataReceived = counting  # type: ignore[method-assign]


def type_text(client: SessionClient, text: str) -> None:
    """Type TEXT, one KEY_TAP per character."""
    for ch in text:
        client.tap(keysym_for_char(ch))


def screen_of(client: SessionClient, box: tuple[int, int, int, int] | None = None) -> bytes:
    fb = client.framebuffer
    if fb is None:
        return b""
    image = fb.image()
    return (image.crop(box) if box else image).tobytes()


async def typing(reactor: Any, client: SessionClient, keystrokes: int,
                 box: tuple[int, int, int, int] | None = None, quiet: bool = True) -> list[float | None]:  # fmt: skip
    """Seconds from each letter typed at the prompt to the frame showing it
    within BOX (None: missed); QUIET: wait for an idle screen first."""
    latencies: list[float | None] = []
    if quiet:
        await wait_quiet(reactor, client)
    for index in range(keystrokes):
        before = screen_of(client, box)
        sent = time.perf_counter()
        client.tap(keysym_for_char("abcdefghij"[index % 10]))
        try:
            shown = await frame_where(reactor, client,
                                      lambda before=before: screen_of(client, box) != before,  # type: ignore[misc]
                                      "an echo", ECHO_TIMEOUT)  # fmt: skip
            latencies.append(shown - sent)
        except RuntimeError:
            latencies.append(None)
        await task.deferLater(reactor, TYPING_GAP, lambda: None)
    for _ in range(keystrokes):
        client.tap(0xFF08)  # BackSpace: leave the prompt empty for the flood
    if quiet:
        await wait_quiet(reactor, client)
    return latencies


def click(client: SessionClient, x: int, y: int) -> None:
    client.pointer(x, y)
    client.button(x, y, 1, True)
    client.button(x, y, 1, False)


def colours_in(client: SessionClient, box: tuple[int, int, int, int]) -> int:
    fb = client.framebuffer
    colours = fb.image().crop(box).getcolors(1 << 16) if fb is not None else None
    return len(colours) if colours is not None else 1 << 16


async def video(reactor: Any, client: SessionClient, seconds: float, keystrokes: int) -> dict[str, Any]:
    """Play a test video beside xterm for SECONDS: frames and bytes received,
    and the echo of letters typed into xterm meanwhile (the link is busy)."""
    type_text(client, VIDEO)
    await frame_where(reactor, client, lambda: colours_in(client, VIDEO_BOX) > 64, "the video on screen")
    started = time.perf_counter()
    received = client.bytes_received
    frames = 0
    while time.perf_counter() - started < seconds:
        await within(reactor, client.next_frame(), "a frame of the video", STEP_SECONDS)
        frames += 1
    elapsed = time.perf_counter() - started
    received = client.bytes_received - received
    click(client, 100, 100)  # the keyboard follows the click to xterm (ffplay's window may have taken it)
    echoes = await typing(reactor, client, keystrokes, box=XTERM_BOX, quiet=False)
    type_text(client, "kill %1\n")
    await wait_quiet(reactor, client)
    return {"video_frames": frames, "video_seconds": elapsed, "video_bytes": received, "video_echo_seconds": echoes}


async def flood(reactor: Any, client: SessionClient, seconds: float) -> dict[str, float]:
    """Scroll a flood of output for SECONDS, then Ctrl+C and paint red: frames
    received meanwhile and seconds from Ctrl+C to the red on screen."""
    type_text(client, FLOOD)
    started = time.perf_counter()
    started_at = time.monotonic()  # the bench samples the link's queue meanwhile (same clock)
    frames = 0
    received = client.bytes_received
    while time.perf_counter() - started < seconds:
        await within(reactor, client.next_frame(), "a frame of the flood", STEP_SECONDS)
        frames += 1
    elapsed = time.perf_counter() - started
    ended_at = time.monotonic()
    received = client.bytes_received - received
    interrupted = time.perf_counter()
    client.key(CONTROL_L, True)
    client.tap(keysym_for_char("c"))
    client.key(CONTROL_L, False)
    type_text(client, PAINT)
    shown = await frame_where(reactor, client, lambda: red_pixels(client) >= MIN_RED_PIXELS, "the red block")
    return {"flood_frames": frames, "flood_seconds": elapsed, "flood_bytes": received,
            "flood_started_at": started_at, "flood_ended_at": ended_at, "red_after_seconds": shown - interrupted,
            "red_pixels": red_pixels(client)}  # fmt: skip


async def scroll_check(reactor: Any, client: SessionClient, png: str, link_rtt: float) -> dict[str, Any]:
    """Scroll paced lines (so most frames are a COPY and a few new rows), let
    the screen settle and save it to PNG (the test compares it with the
    session's). Also a lower bound of the server's frame window: a frame that
    arrives at t was sent before t - link_rtt / 2, when the server could know
    at most the acks this client sent before t - link_rtt; the frames between
    that ack and this frame were all unacknowledged at once."""
    acks: list[tuple[float, int]] = []
    send = client.conn.send

    def recording_send(channel: int, message: Any) -> None:
        if isinstance(message, FrameAck):
            acks.append((time.monotonic(), message.seq))
        send(channel, message)

    copies = 0

    def count_copies(message: Any) -> None:
        nonlocal copies
        copies += isinstance(message, Region) and message.encoding == Encoding.COPY

    client.conn.send = recording_send  # type: ignore[method-assign]
    client.display_observers.append(count_copies)
    widest = 0
    type_text(client, SCROLL)
    started = time.perf_counter()
    while time.perf_counter() - started < SCROLL_SECONDS:
        seq = await within(reactor, client.next_frame(), "a frame of the scroll", STEP_SECONDS)
        arrived = time.monotonic()
        known = max((acked for at, acked in acks if at <= arrived - link_rtt), default=0)
        widest = max(widest, seq - known)
    await wait_quiet(reactor, client)
    client.display_observers.remove(count_copies)
    client.conn.send = send  # type: ignore[method-assign]
    if client.framebuffer is not None:
        client.framebuffer.save_png(png)
    return {"scroll_copies": copies, "scroll_window_at_least": widest}


async def logged_in(reactor: Any, args: argparse.Namespace,
                    before: Callable[[SessionClient], None] | None = None) -> SessionClient:  # fmt: skip
    """A client connected to --server, logged in, with display and input open
    (`before` sees the client first: e.g. to change its VIDEO_CAPS)."""
    host, _, port = args.server.rpartition(":")
    with open(args.password_file, encoding="utf-8") as handle:
        password = handle.read().strip()
    client: SessionClient = await within(reactor, connect(reactor, host, int(port), KnownHosts(args.known_hosts)),
                                         "the server")  # fmt: skip
    if before is not None:
        before(client)
    try:
        await within(reactor, client.login(args.user, password), "login")
        await within(reactor, client.open_channel(ChannelKind.DISPLAY), "the display channel")
        await within(reactor, client.open_channel(ChannelKind.INPUT), "the input channel")
    except BaseException:
        client.disconnect()
        raise
    return client


async def run(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    client = await logged_in(reactor, args)
    count_bytes(client)
    try:
        client.hold_acks = not args.ack_every_frame
        await within(reactor, client.launch("xterm"), "the launch of xterm")
        await wait_quiet(reactor, client)
        result: dict[str, Any] = {"echo_seconds": await typing(reactor, client, args.keystrokes)}
        if args.video_seconds > 0:
            result.update(await video(reactor, client, args.video_seconds, args.keystrokes))
        if args.flood_seconds > 0:
            result.update(await flood(reactor, client, args.flood_seconds))
        if args.scroll_screen:
            result.update(await scroll_check(reactor, client, args.scroll_screen, args.link_rtt))
        return result
    except Exception:
        if args.save_screen and client.framebuffer is not None:
            client.framebuffer.save_png(args.save_screen)
        raise
    finally:
        client.disconnect()


def login_parser(description: str | None) -> argparse.ArgumentParser:
    """A parser with the login arguments: --server HOST:PORT, --user, --password-file, --known-hosts."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--server", required=True, help="HOST:PORT")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--known-hosts", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = login_parser(__doc__)
    parser.add_argument("--keystrokes", type=int, default=10)
    parser.add_argument("--flood-seconds", type=float, default=10.0)
    parser.add_argument("--video-seconds", type=float, default=0.0)
    parser.add_argument("--save-screen", metavar="PNG", help="save the client's screen here if the run fails")
    parser.add_argument("--ack-every-frame", action="store_true", help="ack every frame at once (baseline)")
    parser.add_argument("--scroll-screen", metavar="PNG", help="scroll paced lines, then save the screen here")
    parser.add_argument("--link-rtt", type=float, default=0.040, help="the link's least round trip, seconds")
    return react_json(run, parser.parse_args(argv))


def react_json(run_fn: Callable[[Any, argparse.Namespace], Any], args: argparse.Namespace) -> int:
    """Run RUN_FN(reactor, args) in a reactor and print its dict (or {"error": ...}) as one JSON line."""
    out: dict[str, Any] = {}

    async def body(reactor: Any) -> None:
        try:
            out.update(await run_fn(reactor, args))
        except Exception as exc:  # noqa: BLE001 - reported as JSON to the test
            out["error"] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(out), flush=True)

    task.react(lambda reactor: defer.ensureDeferred(body(reactor)))
    return 0  # not reached: react() exits


if __name__ == "__main__":
    sys.exit(main())

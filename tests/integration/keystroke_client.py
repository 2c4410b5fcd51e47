# The client side of the keystroke-path test (test_typed_tiles.py), as
# its own process with its own reactor: the real client library
# (client/session.py) logs in over TLS, launches xterm, types a few letters
# one at a time and waits for each echo, as a user does. It counts the
# TILE frames it received and the KEY_TAP_ACKs it sent (the compact
# keystroke path of issue 15), saves its framebuffer -- built only from
# what this connection received, never refreshed -- as a PNG and prints
# one JSON object. Synchronisation is by frames only, and with --wait-for
# by a file the test creates: after the xterm is shown, the client stays
# attached and idle until it exists (test_idle_release_seamless.py checks
# the agent's idle release meanwhile).
"""Keystroke path client: type letters, count TILE / KEY_TAP_ACK, save the screen (prints JSON)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from PIL import Image
from twisted.internet import task

from client.keysyms import keysym_for_char
from client.session import SessionClient
from netem_client import (
    ECHO_TIMEOUT,
    TYPING_GAP,
    frame_where,
    logged_in,
    login_parser,
    react_json,
    wait_quiet,
    within,
)
from protocol.connection import MessageReceived
from protocol.messages import KeyTapAck, Message, Tile

# --wait-for: how long the client idles for the file at most, and how often it looks.
WAIT_FOR_SECONDS = 180.0
WAIT_FOR_POLL = 0.1


def count_compact(client: SessionClient, counts: dict[str, int]) -> None:
    """counts["tiles"]: TILEs received; counts["key_tap_acks"]: KEY_TAP_ACKs sent."""
    event, send = client._event, client.conn.send

    def on_event(ev: object) -> None:
        if isinstance(ev, MessageReceived) and isinstance(ev.message, Tile):
            counts["tiles"] += 1
        event(ev)

    def on_send(channel: int, message: Message) -> None:
        if isinstance(message, KeyTapAck):
            counts["key_tap_acks"] += 1
        send(channel, message)

    client._event = on_event  # type: ignore[method-assign]
    client.conn.send = on_send  # type: ignore[method-assign]


def screen(client: SessionClient, seamless: bool) -> Image.Image | None:
    """What the client shows: its framebuffer, or (seamless) its windows composed on the screen."""
    fb = client.framebuffer
    if fb is None:
        return None
    return client.windows.compose(fb.width, fb.height) if seamless else fb.image()


async def wait_for_file(reactor: Any, path: str) -> None:
    """Idle (the connection stays open) until PATH exists; RuntimeError after WAIT_FOR_SECONDS."""
    for _ in range(int(WAIT_FOR_SECONDS / WAIT_FOR_POLL)):
        if os.path.exists(path):
            return
        await task.deferLater(reactor, WAIT_FOR_POLL, lambda: None)
    raise RuntimeError(f"{path} did not appear within {WAIT_FOR_SECONDS:.0f} s")


async def run(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    client = await logged_in(reactor, args)
    counts = {"tiles": 0, "key_tap_acks": 0}
    try:
        if args.seamless:
            await within(reactor, client.open_windows(), "the windows channel")
        await within(reactor, client.launch("xterm"), "the launch of xterm")
        await wait_quiet(reactor, client)
        if args.wait_for:
            print("shown", flush=True)
            await wait_for_file(reactor, args.wait_for)
        count_compact(client, counts)
        echoed = 0

        def shown() -> bytes:
            image = screen(client, args.seamless)
            return image.tobytes() if image is not None else b""

        for char in args.text:
            before = shown()
            client.tap(keysym_for_char(char))
            try:
                await frame_where(reactor, client, lambda before=before: shown() != before,  # type: ignore[misc]
                                  f"the echo of {char!r}", ECHO_TIMEOUT)  # fmt: skip
                echoed += 1
            except RuntimeError:
                pass
            await task.deferLater(reactor, TYPING_GAP, lambda: None)
        await wait_quiet(reactor, client)
        final = screen(client, args.seamless)
        if final is not None:
            final.save(args.save_screen, "PNG")
        return {**counts, "echoed": echoed}
    finally:
        client.disconnect()


def main(argv: list[str] | None = None) -> int:
    parser = login_parser(__doc__)
    parser.add_argument("--text", default="typed")
    parser.add_argument("--seamless", action="store_true", help="open the windows channel; the screen is the windows")
    parser.add_argument("--save-screen", required=True, metavar="PNG", help="the client's screen at the end")
    parser.add_argument("--wait-for", metavar="FILE", default="", help="once xterm is shown, print 'shown' and "
                        "idle until FILE exists, then type")  # fmt: skip
    return react_json(run, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

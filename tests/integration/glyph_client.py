# The client side of the GLYPHS test (test_glyph_scroll.py), as its own
# process with its own reactor: the real client library logs in over TLS
# (announcing GLYPHS in VIDEO_CAPS, or not with --no-glyphs), launches
# xterm, types a command that scrolls a few thousand lines of log-like text
# and waits for the screen to go idle.  It counts the REGIONs it received
# by encoding (messages and bytes) while the text scrolled, saves its
# screen -- built only from what this connection received, never refreshed
# -- and prints one JSON object.  Synchronisation is by frames only.
"""GLYPHS client: scroll text in xterm, count regions by encoding, save the screen (prints JSON)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from client.session import SessionClient
from netem_client import logged_in, login_parser, react_json, type_text, wait_quiet, within
from protocol.connection import MessageReceived, frame_cost
from protocol.media import CAPS_GLYPHS
from protocol.messages import Encoding, FrameEnd, Region

# The scroll is over once no frame came for this long (longer than
# wait_quiet's: a loaded machine may pause xterm for half a second).
DONE_SECONDS = 2.0
# Log-like lines, all distinct, the same every run, printed a screenful
# (25 lines) at a time with a pause between: about one frame of new text per
# batch whatever the encoder's speed, so runs with and without GLYPHS send
# about the same frames and their bytes compare.
SCROLL = ('for b in $(seq 1 30); do for i in $(seq 1 25); do echo "log $b.$i: GET /api/v1/items?page=$((b * i * 7))'
          ' served in $(((b + i) % 97)) ms, status=ok"; done; sleep 0.1; done\n')


# counts' key for the frames (FRAME_END) received while counting.
FRAMES_KEY = "frames"


def no_glyphs(client: SessionClient) -> None:
    """Do not announce GLYPHS (VIDEO_CAPS bit 2): the server sends PALETTE/PNG."""
    client.video_codecs &= ~CAPS_GLYPHS


def count_regions(client: SessionClient, counts: dict[str, int], sizes: dict[str, int]) -> None:
    """Count every REGION received from now on by encoding name (messages and frame bytes),
    and the frames (FRAME_END) under FRAMES_KEY."""
    event = client._event

    def on_event(ev: object) -> None:
        if isinstance(ev, MessageReceived) and isinstance(ev.message, FrameEnd):
            counts[FRAMES_KEY] = counts.get(FRAMES_KEY, 0) + 1
        if isinstance(ev, MessageReceived) and isinstance(ev.message, Region):
            name = Encoding(ev.message.encoding).name
            counts[name] = counts.get(name, 0) + 1
            sizes[name] = sizes.get(name, 0) + frame_cost(ev.message)
        event(ev)

    client._event = on_event  # type: ignore[method-assign]


async def run(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    client = await logged_in(reactor, args, no_glyphs if args.no_glyphs else None)
    counts: dict[str, int] = {}
    sizes: dict[str, int] = {}
    try:
        if args.seamless:
            await within(reactor, client.open_windows(), "the windows channel")
            client.refresh()  # windows of an earlier run: their pixels came before the client knew them
        await within(reactor, client.launch("xterm"), "the launch of xterm")
        await wait_quiet(reactor, client)
        count_regions(client, counts, sizes)
        type_text(client, SCROLL)
        await within(reactor, client.next_frame(), "the first frame of the scroll")
        await wait_quiet(reactor, client, DONE_SECONDS)
        fb = client.framebuffer
        if fb is not None:
            screen = client.windows.compose(fb.width, fb.height) if args.seamless else fb.image()
            screen.save(args.save_screen, "PNG")
        return {"counts": counts, "bytes": sizes, "total": sum(sizes.values())}
    finally:
        client.disconnect()


def main(argv: list[str] | None = None) -> int:
    parser = login_parser(__doc__)
    parser.add_argument("--seamless", action="store_true", help="open the windows channel; the screen is the windows")
    parser.add_argument("--no-glyphs", action="store_true", help="do not announce GLYPHS (VIDEO_CAPS bit 2)")
    parser.add_argument("--save-screen", required=True, metavar="PNG", help="the client's screen at the end")
    return react_json(run, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

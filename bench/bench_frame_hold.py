# What holding a frame's display messages until its FRAME_END costs the
# client library (client/frame_hold.py, SessionClient.hold_frames, on in the
# native viewer): the same scroll frames (bench_viewer_paint.frames: a new
# xterm screen a frame, as the agent's RegionEncoder encodes it) go through
# SessionClient's display path (decode into the framebuffer, FRAME_ACK) with
# the hold off and on, alternating rounds in one process; prints the median
# CPU ms per frame of each and their ratio. A second line does the same for
# a keystroke's echo (one small region and its FRAME_END), where the hold's
# bookkeeping is the largest share.
#
# Why in-process: the viewer A/B (bench_viewer_ab.py) measures the whole
# viewer, whose run-to-run noise on the shared machine (~5 %) is larger than
# this path's difference; here the two differ only in hold_frames.
#   /opt/sv-x/venv/bin/python bench/bench_frame_hold.py [--frames 40] [--rounds 7]
"""Client display path per frame with hold_frames off and on, alternating rounds (medians, ratio)."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [BENCH_DIR, os.path.join(os.path.dirname(BENCH_DIR), "tests", "unit")]

from bench_viewer_paint import frames  # noqa: E402
from client.session import SessionClient  # noqa: E402
from protocol.connection import MessageReceived  # noqa: E402
from protocol.messages import ChannelKind, DesktopSize, Encoding, FrameEnd, Message, Region  # noqa: E402
from test_client_held_ack import paired_client  # noqa: E402

DISPLAY = int(ChannelKind.DISPLAY)
ECHOES = 2000


def run(client: SessionClient, encoded: list[list[Message]], seq: int) -> tuple[float, int]:
    """CPU seconds per frame for ENCODED through CLIENT; the last seq used."""
    start = time.process_time()
    for regions in encoded:
        seq += 1
        for message in [*regions, FrameEnd(seq=seq, ack_now=True)]:
            client.event_received(MessageReceived(DISPLAY, ChannelKind.DISPLAY, message))
    return (time.process_time() - start) / len(encoded), seq


def client_for(tmp: str, hold: bool, width: int, height: int) -> SessionClient:
    os.makedirs(tmp)
    client, _server, transport = paired_client(_Path(tmp))
    client.hold_frames = hold
    client.event_received(MessageReceived(DISPLAY, ChannelKind.DISPLAY, DesktopSize(width, height)))
    client.event_received(MessageReceived(DISPLAY, ChannelKind.DISPLAY, FrameEnd(seq=1, ack_now=True)))
    transport.clear()
    return client


class _Path(str):
    """The `tmp_path / name` paired_client uses."""

    def __truediv__(self, name: str) -> str:
        return os.path.join(self, name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    width, height, encoded = frames(args.frames)
    echo = [[Region(x=8 * (k % 80), y=16, w=8, h=16, encoding=Encoding.FILL, data=b"\x10\x20\x30")]
            for k in range(ECHOES)]  # fmt: skip
    results: dict[tuple[str, bool], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        clients = {hold: client_for(os.path.join(tmp, str(hold)), hold, width, height) for hold in (False, True)}
        seqs = {False: 1, True: 1}
        for round_ in range(args.rounds):
            for hold in (False, True) if round_ % 2 == 0 else (True, False):
                for name, workload in (("scroll frame", encoded), ("key echo", echo)):
                    per_frame, seqs[hold] = run(clients[hold], workload, seqs[hold])
                    results.setdefault((name, hold), []).append(per_frame)
        for hold, client in clients.items():
            assert client._end is None, f"hold={hold}: {client._end}"
    print(f"client display path, CPU per frame, {args.rounds} rounds alternating; load {os.getloadavg()[0]:.1f}")
    for name in ("scroll frame", "key echo"):
        off = statistics.median(results[(name, False)]) * 1000
        on = statistics.median(results[(name, True)]) * 1000
        print(f"  {name:13s} hold off {off:8.4f} ms   hold on {on:8.4f} ms   on/off {on / off:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

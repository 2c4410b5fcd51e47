# Benchmark of video regions: a 1080p test video (ffmpeg's lavfi testsrc,
# played by ffplay, full screen or --size) in a real session, watched by the
# native client library (client.framebuffer decodes every region, H.264
# through client.video), once announcing H264 (VIDEO_CAPS) and once not (the
# stills path: JPEG/PNG/lossless), and with --baseline-prefix the H.264
# variant once more on another installation (the previous path), in the
# same run, on the same machine; --rounds repeats them in rotating order.
# --load N runs N CPU-burning processes (normal priority) through each
# variant, so "under load" is the same load in every run; --variants picks
# variants.  The baseline variant's client converts and pastes every row
# (client.video's banded path off), as the previous client did.
#
# Why these figures: the goal is >= 30 fps at <= 4 Mbit/s for the
# video workload. Frames per second are the frames (FRAME_END with at least
# one region) the client received and drew; Mbit/s is every byte of the
# display channel's payloads over the same seconds; the player's own rate
# (frames shown, from ffplay -stats) is the ceiling. Where the time goes:
# CPU per process (video_cpu.py) and the agent's per-stage report lines
# (sessiond/agent/video_stats.py). Run as root (it creates users):
#   make install && SESSIOND_PREFIX=/opt/sessiond /opt/sessiond/venv/bin/python bench/bench_video.py
#   ... bench/bench_video.py --baseline-prefix /opt/main --variants h264-base,h264 --rounds 5 --load 3
"""Video bench: fps and Mbit/s of a 1080p test video, H.264 against stills."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass, field

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
import spine_server  # noqa: E402  (also puts tests/ on sys.path)
import svtest  # noqa: E402
import video_codecs  # noqa: E402
from cpu_load import start_load, stop_load  # noqa: E402
from video_cpu import AgentLogs, CpuSample, PlayerStatus, agent_stages, shown_ratio  # noqa: E402
from svtest import HELLO, Server, frame, start_sessiond, stop_sessiond, tls_connect, wait_auth  # noqa: E402

from client.framebuffer import Framebuffer  # noqa: E402
from protocol.frames import FrameDecoder  # noqa: E402
from protocol.messages import (  # noqa: E402
    Auth,
    ChannelKind,
    ChannelOpen,
    DesktopSize,
    Encoding,
    FrameAck,
    FrameEnd,
    Key,
    Launch,
    Pointer,
    Region,
    ResizeRequest,
    VideoCaps,
    WindowUpdate,
    decode_message,
)

SCREEN = (1920, 1080)
VIDEO_FPS = 30
DEFAULT_SECONDS = 10.0
# Seconds of playing before the measurement starts (ffplay's window maps, the stream starts).
WARMUP_SECONDS = 3.0
DISPLAY = int(ChannelKind.DISPLAY)
INPUT = int(ChannelKind.INPUT)
DISPLAY_WINDOW = 8 << 20
START_TIMEOUT = 60.0
# ffplay's -stats status lines go here, in the session's private /tmp.
PLAYER_STATUS = "/tmp/bench-video-ffplay.log"
# lavfi sources: testsrc (the workload: bars, a counter and a moving
# gradient; most rows stay the same from frame to frame) and motion (the same
# pattern with its hue turning, so every pixel changes every frame, as in a
# film or a game).
SOURCES = {
    "testsrc": "testsrc=size={w}x{h}:rate={fps}:duration={seconds}",
    "motion": "testsrc=size={w}x{h}:rate={fps}:duration={seconds},hue=H=t*3",
}


@dataclass
class Watch:
    """What one connection received while measuring."""

    frames: int = 0
    bytes: int = 0
    by_encoding: dict[str, int] = field(default_factory=dict)
    video_units: int = 0
    decode_seconds: float = 0.0  # the client's H264 decode + paste
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process group (video_cpu)
    stages: dict[str, float] = field(default_factory=dict)  # the agent's ms/frame per stage (its log)
    shown: tuple[float, int] | None = None  # frames the player showed and dropped meanwhile


class Viewer:
    """A raw connection that draws every region (client.framebuffer), acks
    frames and returns credit, counting frames and bytes when asked to."""

    def __init__(self, sock: ssl.SSLSocket, decode_video: bool = True, banded: bool = True) -> None:
        self.sock = sock
        self.decode_video = decode_video
        self.banded = banded  # client.video converts and pastes only changed rows (off: the previous client)
        self.decoder = FrameDecoder()
        self.fb: Framebuffer | None = None
        self.counting: Watch | None = None
        self.launched = False
        self.size: tuple[int, int] | None = None
        self.video_seen = False
        self._regions = 0

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 20)
            except (socket.timeout, TimeoutError):
                return
            if not data:
                raise ConnectionError("sessiond closed the connection")
            replies, credit = b"", 0
            for item in self.decoder.feed(data):
                if item.channel == 0:
                    self.launched = self.launched or item.type == 0x07
                    continue
                if item.channel != DISPLAY:
                    continue
                credit += len(item.payload) + 8
                message = decode_message(ChannelKind.DISPLAY, item.type, item.payload)
                if self.counting is not None:
                    self.counting.bytes += len(item.payload) + 8
                if isinstance(message, DesktopSize):
                    self.size = (message.width, message.height)
                    self.fb = Framebuffer(message.width, message.height)
                    self.fb.video.banded = self.banded
                elif isinstance(message, Region) and self.fb is not None:
                    started = time.perf_counter()
                    if self.decode_video or message.encoding is not Encoding.H264:
                        self.fb.apply(message)
                    if self.counting is not None and message.encoding is Encoding.H264:
                        self.counting.decode_seconds += time.perf_counter() - started
                    self._regions += 1
                    encoding = Encoding(message.encoding)
                    # JPEG stripes of a photo, or a stream: the test pattern is on screen.
                    self.video_seen = self.video_seen or encoding in (Encoding.H264, Encoding.JPEG)
                    if self.counting is not None:
                        name = encoding.name
                        self.counting.by_encoding[name] = self.counting.by_encoding.get(name, 0) + len(item.payload)
                        self.counting.video_units += encoding is Encoding.H264
                elif isinstance(message, FrameEnd):
                    if self.counting is not None and self._regions:
                        self.counting.frames += 1
                    self._regions = 0
                    replies += frame(DISPLAY, FrameAck(seq=message.seq))
            if credit:
                replies += frame(DISPLAY, WindowUpdate(increment=credit))
            if replies:
                self.sock.sendall(replies)


def keys(text: str) -> bytes:
    out = b""
    for char in text:
        keysym = 0xFF0D if char == "\n" else ord(char)
        out += frame(INPUT, Key(keysym=keysym, down=True)) + frame(INPUT, Key(keysym=keysym, down=False))
    return out


def measure(server: Server, user: spine_server.TestUser, h264: bool, seconds: float, source: str,
            decode_video: bool = True, size: tuple[int, int] = SCREEN, banded: bool = True) -> Watch:  # fmt: skip
    """Play the video in user's session and watch it for `seconds`."""
    sock = tls_connect(server)
    try:
        sock.sendall(HELLO + frame(0, Auth(method="password", user=user.name, password=user.password)))
        if not wait_auth(sock, FrameDecoder()):
            raise RuntimeError(f"login of {user.name} failed:\n{server.log()[-2000:]}")
        opening = (frame(0, ChannelOpen(channel=DISPLAY, kind=DISPLAY, window=DISPLAY_WINDOW))
                   + frame(0, ChannelOpen(channel=INPUT, kind=INPUT, window=1 << 16)))  # fmt: skip
        if h264:
            opening += frame(DISPLAY, VideoCaps(codecs=1))
        launch = frame(0, Launch(request=1, app="xterm", args=()))
        sock.sendall(opening + frame(DISPLAY, ResizeRequest(*SCREEN)) + launch)
        viewer = Viewer(sock, decode_video, banded)
        deadline = time.monotonic() + START_TIMEOUT
        while (not viewer.launched or viewer.size != SCREEN) and time.monotonic() < deadline:
            viewer.pump(0.5)
        viewer.pump(2.0)  # xterm maps
        duration = int(WARMUP_SECONDS + seconds + 30)
        graph = SOURCES[source].format(w=size[0], h=size[1], fps=VIDEO_FPS, seconds=duration)
        sock.sendall(
            frame(INPUT, Pointer(40, 40))
            + keys(f"exec ffplay -stats -loglevel error -an -noborder -left 0 -top 0 -f lavfi '{graph}'"
                   f" 2>{PLAYER_STATUS}\n")
        )
        while not viewer.video_seen and time.monotonic() < deadline:
            viewer.pump(0.5)
        if not viewer.video_seen:
            raise RuntimeError("the video never showed up")
        viewer.pump(WARMUP_SECONDS)
        viewer.counting = watch = Watch()
        cpu, logs = CpuSample(user.name, server.process.pid), AgentLogs(server.runtime_dir)
        player = PlayerStatus(user.name, PLAYER_STATUS, VIDEO_FPS)
        logs.mark()
        player.mark()
        cpu.start()
        viewer.pump(seconds)
        watch.cpu = cpu.stop()
        watch.shown = player.shown()
        watch.stages = agent_stages(logs.since_mark())[0]
        return watch
    finally:
        sock.close()


def codec_table(count: int) -> None:
    """The codecs alone, in this process (bench/video_codecs.py), for each
    source: stills, H.264 through the first path's copies (h264-copy, the
    baseline) and in place (h264)."""
    print(
        f"# codecs alone, {count} frames of {SCREEN[0]}x{SCREEN[1]} per source, medians, load={os.getloadavg()[0]:.2f}"
    )
    print(f"{'source':<8} {'path':<9} {'agent ms':>9} {'convert':>8} {'encode':>7} {'client ms':>10} {'max fps':>8} "
          f"{'kB/frame':>9} {'Mbit/s@30':>10}")  # fmt: skip
    for source, graph in SOURCES.items():
        frames = video_codecs.lavfi_frames(graph.format(w=SCREEN[0], h=SCREEN[1], fps=VIDEO_FPS, seconds=60), count)
        figures = {
            "stills": video_codecs.stills_figures(frames, *SCREEN),
            "h264-copy": video_codecs.h264_figures(frames, *SCREEN, in_place=False),
            "h264": video_codecs.h264_figures(frames, *SCREEN),
        }
        for path, fig in figures.items():
            split = " ".join(f"{fig.stages[name]:{wide}.1f}" if name in fig.stages else f"{'':>{wide}}"
                             for name, wide in (("convert", 8), ("encode", 7)))  # fmt: skip
            print(f"{source:<8} {path:<9} {fig.encode_ms:9.1f} {split} {fig.decode_ms:10.1f} {fig.fps():8.1f} "
                  f"{fig.frame_bytes / 1000:9.1f} {fig.mbit(VIDEO_FPS):10.2f}")  # fmt: skip
        s, c, h = figures["stills"], figures["h264-copy"], figures["h264"]
        print(f"{source:<8} ratio h264/h264-copy: agent ms {h.encode_ms / c.encode_ms:.2f}x, client ms "
              f"{h.decode_ms / c.decode_ms:.2f}x, max fps {h.fps() / c.fps():.2f}x; h264/stills: max fps "
              f"{h.fps() / s.fps():.2f}x, bytes {h.frame_bytes / s.frame_bytes:.3f}x")  # fmt: skip


def run_variant(tmp: str, users: spine_server.BenchUsers, index: int, prefix: str, h264: bool,
                args: argparse.Namespace, size: tuple[int, ...]) -> Watch:  # fmt: skip
    """One live measurement on a sessiond of the installation at `prefix`."""
    directory = os.path.join(tmp, str(index))
    os.makedirs(directory)
    burners = start_load(args.load, args.load_in_sessions)
    try:
        return _run_variant(directory, users, index, prefix, h264, args, size)
    finally:
        stop_load(burners)


def _run_variant(directory: str, users: spine_server.BenchUsers, index: int, prefix: str, h264: bool,
                 args: argparse.Namespace, size: tuple[int, ...]) -> Watch:  # fmt: skip
    installed = svtest.VENV_BIN
    svtest.VENV_BIN = os.path.join(prefix, "venv", "bin")  # start_sessiond runs sessiond from here
    try:
        server = start_sessiond(directory, session="mode = desktop\n",
                                extra="[display]\nadaptive = false\n" if args.no_adaptive else "")  # fmt: skip
    finally:
        svtest.VENV_BIN = installed
    try:
        user = users.create(f"svb-video-{index}")
        return measure(server, user, h264, args.seconds, args.source, not args.no_decode, (size[0], size[1]),
                       banded=prefix != args.baseline_prefix)  # the baseline's client: every row, as before
    finally:
        stop_sessiond(server)


def print_cpu(results: dict[str, Watch], seconds: float) -> None:
    """CPU per process group (% of one core, and ms per received frame), and the agent's stages."""
    groups = ["Xvfb", "ffplay", "agent", "sessiond", "client", "other", "idle"]
    extra = sorted({name for w in results.values() for name in w.cpu} - set(groups))
    names = groups[:-2] + extra + groups[-2:]
    print("\n# CPU, % of one core (2 cores: 200%) / ms per received frame; 'other': the rest of the machine")
    print(f"{'path':<10} " + " ".join(f"{name[:11]:>11}" for name in names))
    for variant, watch in results.items():
        frames = max(1, watch.frames)
        cells = (f"{watch.cpu.get(name, 0.0) * 100 / seconds:4.0f}%/{watch.cpu.get(name, 0.0) * 1000 / frames:5.1f}"
                 for name in names)  # fmt: skip
        print(f"{variant:<10} " + " ".join(f"{cell:>11}" for cell in cells))
    print("\n# wall ms per encoded frame: the agent's stages (its 'video stream' reports; cpu: the agent's CPU per"
          " frame, all threads), the client's H264 decode")
    stages = ["capture", "detect", "convert", "encode", "send", "cpu"]
    print(f"{'path':<10} " + " ".join(f"{name:>8}" for name in stages) + f" {'decode':>8} {'kbit/s':>7} {'keys':>5}  "
          "(kbit/s: the encoder's lowest target: adaptive quality lowers it when acks come slowly)")  # fmt: skip
    for variant, watch in results.items():
        if not watch.video_units:
            continue
        agent = " ".join(f"{watch.stages[name]:8.2f}" if name in watch.stages else f"{'n/a':>8}" for name in stages)
        kbps = f"{watch.stages['kbps']:7.0f} {watch.stages['keys']:5.0f}" if "kbps" in watch.stages else f"{'n/a':>13}"
        print(f"{variant:<10} {agent} {watch.decode_seconds * 1000 / watch.video_units:8.2f} {kbps}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="measured seconds per variant")
    parser.add_argument("--source", choices=sorted(SOURCES), default="testsrc", help="the lavfi video played")
    parser.add_argument(
        "--no-decode",
        action="store_true",
        help="the client does not decode H264 regions (what the agent sends when the client keeps up)",
    )
    parser.add_argument("--codec-frames", type=int, default=40, help="frames of the in-process codec table (0: skip)")
    parser.add_argument(
        "--no-adaptive",
        action="store_true",
        help="[display] adaptive = false: the encoder keeps its bitrate whatever the acks say",
    )
    parser.add_argument("--rounds", type=int, default=1, help="measure each variant this many times (median)")
    parser.add_argument("--load", type=int, default=0,
                        help="run N CPU-burning processes (normal priority) during each variant: a loaded machine")
    parser.add_argument("--load-in-sessions", action="store_true",
                        help="the --load processes run in a cgroup beside the sessions' (another session's work)")
    parser.add_argument("--variants", default="stills,h264-base,h264",
                        help="comma-separated variants to run (stills, h264-base, h264)")
    parser.add_argument("--size", default=f"{SCREEN[0]}x{SCREEN[1]}", help="WxH of the video (a window on the desktop)")
    parser.add_argument(
        "--baseline-prefix",
        help="also run the h264 variant on this installation (the previous path, e.g. main installed there)",
    )
    args = parser.parse_args()
    if shutil.which("ffplay") is None:
        print("ffplay is missing: apt-get install ffmpeg (the Makefile's DEB_PACKAGES)", file=sys.stderr)
        return 2
    size = tuple(int(side) for side in args.size.split("x"))
    variants = [("stills", False, svtest.PREFIX), ("h264", True, svtest.PREFIX)]
    if args.baseline_prefix:
        variants.insert(1, ("h264-base", True, args.baseline_prefix))
    variants = [v for v in variants if v[0] in args.variants.split(",")]
    tmp = tempfile.mkdtemp(prefix="bench-video-")
    users = spine_server.BenchUsers(tmp)
    rounds: dict[str, list[Watch]] = {variant: [] for variant, _, _ in variants}
    try:
        for turn in range(args.rounds):  # each round in another order: a load that comes and goes hits all alike
            for step in range(len(variants)):
                variant, h264, prefix = variants[(step + turn) % len(variants)]
                index = turn * len(variants) + step
                rounds[variant].append(run_variant(tmp, users, index, prefix, h264, args, size))
    finally:
        for problem in users.remove_all():
            print("cleanup:", problem, file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"# bench_video  {time.strftime('%Y-%m-%d %H:%M:%S')}  nproc={os.cpu_count()}  "
          f"kernel={platform.release()}  load={os.getloadavg()[0]:.2f}  screen={SCREEN[0]}x{SCREEN[1]}  "
          f"source={args.source} {args.size} {VIDEO_FPS} fps, {args.seconds:.0f} s measured, "
          f"median of {args.rounds} round(s), load +{args.load} burners"
          + (" (in a cgroup beside the sessions)" if args.load_in_sessions and args.load else "")
          + (", [display] adaptive = false" if args.no_adaptive else "")
          + (", H264 not decoded by the client" if args.no_decode else ""))  # fmt: skip
    # Each variant's median round by frames received (the lower one of an even count; all figures from it).
    results = {variant: sorted(runs, key=lambda w: w.frames)[(len(runs) - 1) // 2] for variant, runs in rounds.items()}
    if args.rounds > 1:
        print("fps per round: " + "; ".join(f"{variant} " + " ".join(f"{w.frames / args.seconds:.1f}" for w in watches)
                                            for variant, watches in rounds.items()))  # fmt: skip
    print(f"{'path':<10} {'fps':>6} {'shown/s':>8} {'Mbit/s':>8} {'kB/frame':>9}  bytes by encoding"
          "   (shown/s: frames the player showed, not dropped)")  # fmt: skip
    rows = {}
    for variant, watch in results.items():
        fps = watch.frames / args.seconds
        mbit = watch.bytes * 8 / args.seconds / 1e6
        rows[variant] = (fps, mbit)
        per = watch.bytes / max(1, watch.frames) / 1000
        shown = f"{watch.shown[0] / args.seconds:8.1f}" if watch.shown is not None else f"{'n/a':>8}"
        print(f"{variant:<10} {fps:6.1f} {shown} {mbit:8.2f} {per:9.1f}  {dict(sorted(watch.by_encoding.items()))}")
    if "h264-base" in rows and "h264" in rows:
        (bf, bm), (hf, hm) = rows["h264-base"], rows["h264"]
        print(f"ratio h264/h264-base: fps {hf / bf if bf else float('inf'):.2f}x, Mbit/s {hm / bm if bm else 0:.3f}x")
    if "stills" in rows and "h264" in rows:
        print_stills_ratio(rows, results, args.seconds)
    print_cpu(results, args.seconds)
    if args.codec_frames:  # after the live run: PyAV's lavfi in this process upset the logins that follow it
        print()
        codec_table(args.codec_frames)
    return 0


def print_stills_ratio(rows: dict[str, tuple[float, float]], results: dict[str, Watch], seconds: float) -> None:
    """H.264 against stills, and the issue's goal."""
    (sf, sm), (hf, hm) = rows["stills"], rows["h264"]
    fps_ratio, mbit_ratio = (hf / sf if sf else float("inf")), (hm / sm if sm else float("inf"))
    print(f"ratio h264/stills: fps {fps_ratio:.2f}x, Mbit/s {mbit_ratio:.3f}x;"
          f" h264 fps / source fps {hf / VIDEO_FPS:.2f}{shown_ratio(results.get('h264'), hf, seconds)};"
          " goal >= 30 fps at <= 4 Mbit/s: "
          f"{'met' if hf >= 30 and hm <= 4 else 'not met'}")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())

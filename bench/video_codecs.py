# The codec half of bench_video.py, in one process and without X: the same
# 1080p lavfi frames (made by PyAV's bundled FFmpeg) through the agent's
# encoders and the native client's decoders, H.264 (sessiond.agent.h264 +
# client.video) against the stills path (RegionEncoder with its row history
# + client.framebuffer), so the figures say what the codecs cost per frame
# apart from the player, Xvfb and the capture, which dominate the live run
# on a loaded machine.
"""Per-frame encode/decode cost and bytes of H.264 vs stills on 1080p lavfi frames."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import av
from PIL import Image

from client.framebuffer import Framebuffer
from client.video import VideoDecoders
from protocol.video import pack
from sessiond.agent.encoder import RegionEncoder
from sessiond.agent.h264 import H264Encoder

HEADER = 8  # frame header bytes per message


@dataclass
class CodecFigures:
    """Medians per frame: agent ms, client ms, bytes on the wire."""

    encode_ms: float
    decode_ms: float
    frame_bytes: float
    stages: dict[str, float] = field(default_factory=dict)  # the encoder's own split (H.264)

    def fps(self) -> float:
        """Frames a second the slower side sustains (agent and client run in parallel)."""
        return 1000.0 / max(self.encode_ms, self.decode_ms, 1e-6)

    def mbit(self, fps: float) -> float:
        """Mbit/s at `fps` frames a second."""
        return self.frame_bytes * 8 * fps / 1e6


def lavfi_frames(graph: str, count: int) -> list[bytes]:
    """`count` frames of a lavfi graph as BGRX bytes (rows without padding)."""
    frames: list[bytes] = []
    with av.open(graph, format="lavfi") as container:
        for frame in container.decode(video=0):
            bgrx = frame.reformat(format="bgr0")
            plane = bgrx.planes[0]
            row = bgrx.width * 4
            data = bytes(plane)
            if plane.line_size != row:
                data = b"".join(data[y * plane.line_size : y * plane.line_size + row] for y in range(bgrx.height))
            frames.append(data)
            if len(frames) == count:
                break
    return frames


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def h264_figures(frames: list[bytes], width: int, height: int, in_place: bool = True) -> CodecFigures:
    """H.264 through the agent's encoder and the client's decoder; in_place:
    the conversions of media/swscale.py, else the first path's copies
    (Image.tobytes + plane.update + reformat, and VideoFrame.to_image)."""
    encoder, decoders = H264Encoder(width, height, direct=in_place), VideoDecoders()
    decoders.in_place = in_place
    screen = Image.new("RGB", (width, height))
    enc, dec, sizes, stages = [], [], [], {"convert": [], "encode": []}
    for index, data in enumerate(frames):
        t0 = time.perf_counter()
        if in_place:
            unit = encoder.encode_pixels(data, width * 4, 0, 0)
        else:
            unit = encoder.encode(Image.frombuffer("RGBX", (width, height), data, "raw", "RGBX", 0, 1))
        unit = pack(0, unit, key=index == 0)
        t1 = time.perf_counter()
        picture = decoders.decode(unit, width, height)
        if picture is not None:
            screen.paste(picture, (0, 0))
        t2 = time.perf_counter()
        if index:  # the keyframe is a one-off
            enc.append((t1 - t0) * 1000)
            dec.append((t2 - t1) * 1000)
            sizes.append(len(unit) + 9 + HEADER)
            for stage, seconds in encoder.stages.items():
                stages[stage].append(seconds * 1000)
        encoder.stages.clear()
    return CodecFigures(_median(enc), _median(dec), sum(sizes) / len(sizes),
                        {stage: _median(values) for stage, values in stages.items()})  # fmt: skip


def stills_figures(frames: list[bytes], width: int, height: int, jpeg_quality: int = 75) -> CodecFigures:
    """The previous path: RegionEncoder (JPEG for photos, exact otherwise, unchanged rows skipped)."""
    encoder, screen = RegionEncoder(jpeg_quality=jpeg_quality), Framebuffer(width, height)
    enc, dec, sizes = [], [], []
    for index, data in enumerate(frames):
        t0 = time.perf_counter()
        regions = encoder.encode(data, width * 4, [(0, 0, width, height)], width=width, height=height,
                                 surface="desktop")  # fmt: skip
        t1 = time.perf_counter()
        for region in regions:
            screen.apply(region)
        t2 = time.perf_counter()
        if index:
            enc.append((t1 - t0) * 1000)
            dec.append((t2 - t1) * 1000)
            sizes.append(sum(len(r.data) + 9 + HEADER for r in regions))
    return CodecFigures(_median(enc), _median(dec), sum(sizes) / len(sizes))

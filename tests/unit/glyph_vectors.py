"""Builds tests/vectors/glyphs.json, the shared GLYPHS decoding vectors
(docs/protocol.md sections 7c and 11), written straight from the spec's
layout (not through media.glyphs), with each region's pixels drawn by a
slow per-pixel reference.  `python -m unit.glyph_vectors` (from tests/)
rewrites the file; test_glyphs_codec.py checks it is current and that
media.glyphs decodes it."""

from __future__ import annotations

import json
import random
import struct
import zlib
from pathlib import Path
from typing import Any

PATH = Path(__file__).parent.parent / "vectors" / "glyphs.json"
BLACK_WHITE = bytes((0, 0, 0, 255, 255, 255))


def bits_of(rows: list[str]) -> bytes:
    """Wire bits of a glyph drawn as rows of '.' and '#' (MSB first, zero pad)."""
    digits = "".join(rows).replace(".", "0").replace("#", "1")
    size = (len(digits) + 7) // 8
    return (int(digits, 2) << (size * 8 - len(digits))).to_bytes(size, "big")


def stream(defs: list[tuple[int, bytes]], used: list[int], indices: list[int], *, new_count: int | None = None,
           used_count: int | None = None) -> bytes:  # fmt: skip
    """The inflated stream of a region (counts overridable to lie)."""
    out = struct.pack(">H", len(defs) if new_count is None else new_count)
    for slot, bits in defs:
        out += struct.pack(">H", slot) + bits
    out += struct.pack(">H", len(used) if used_count is None else used_count)
    out += b"".join(struct.pack(">H", slot) for slot in used)
    return out + bytes(indices)


def data(cell_w: int, cell_h: int, body: bytes, colours: bytes = BLACK_WHITE, *, deflated: bytes | None = None) -> str:
    """Hex GLYPHS data: header, colours, the deflated body (or `deflated` as is)."""
    return (bytes((cell_w, cell_h)) + colours + (zlib.compress(body, 9) if deflated is None else deflated)).hex()


def reference(w: int, h: int, cell: tuple[int, int], colours: bytes, cache: dict[int, tuple[int, int, bytes]],
              used: list[int], indices: list[int]) -> str:  # fmt: skip
    """Hex RGB rows of a region drawn pixel by pixel from the spec."""
    cell_w, cell_h = cell
    columns = w // cell_w
    out = bytearray()
    for y in range(h):
        for x in range(w):
            index = indices[(y // cell_h) * columns + x // cell_w]
            bits = cache[used[index]][2]
            bit = (y % cell_h) * cell_w + x % cell_w
            on = bits[bit // 8] >> (7 - bit % 8) & 1
            out += colours[3 * on : 3 * on + 3]
    return out.hex()


class Case:
    """A sequence of regions on one fresh display channel."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cache: dict[int, tuple[int, int, bytes]] = {}
        self.steps: list[dict[str, Any]] = []

    def good(self, w: int, h: int, cell: tuple[int, int], defs: list[tuple[int, bytes]], used: list[int],
             indices: list[int], colours: bytes = BLACK_WHITE) -> Case:  # fmt: skip
        """A valid region; its expected pixels from the reference."""
        for slot, bits in defs:
            self.cache[slot] = (cell[0], cell[1], bits)
        rgb = reference(w, h, cell, colours, self.cache, used, indices)
        body = stream(defs, used, indices)
        self.steps.append({"w": w, "h": h, "data_hex": data(*cell, body, colours), "rgb_hex": rgb})
        return self

    def bad(self, w: int, h: int, hex_data: str, why: str) -> Case:
        """A malformed region: the client must close with MALFORMED_MESSAGE."""
        self.steps.append({"w": w, "h": h, "data_hex": hex_data, "error": why})
        return self


A = bits_of([".#.", "#.#"])  # 3x2: 6 bits, 2 pad bits
B = bits_of(["###", "..#"])
FOUR = bits_of(["#..#", ".##.", ".##.", "#..#"])  # 4x4: no pad


def _random_glyphs(rng: random.Random, count: int, cell_w: int, cell_h: int) -> list[bytes]:
    return [bits_of(["".join(rng.choice(".#") for _ in range(cell_w)) for _ in range(cell_h)]) for _ in range(count)]


def cases() -> list[Case]:
    """Every vector: valid sequences first, then malformed regions."""
    rng = random.Random(15)
    text = _random_glyphs(rng, 5, 6, 13)
    out = [
        Case("define_and_use").good(6, 4, (3, 2), [(7, A), (4095, B)], [4095, 7], [0, 1, 1, 0]),
        Case("reuse_across_regions_new_colours")
        .good(6, 2, (3, 2), [(7, A), (8, B)], [7, 8], [0, 1])
        .good(9, 2, (3, 2), [], [8, 7], [1, 0, 0], bytes((16, 32, 48, 200, 100, 50)))
        .good(3, 4, (3, 2), [(8, A)], [8], [0, 0]),
        Case("redefine_slot_other_size")
        .good(3, 2, (3, 2), [(0, A)], [0], [0])
        .good(8, 4, (4, 4), [(0, FOUR)], [0], [0, 0]),
        Case("text_6x13").good(30, 26, (6, 13), [(i, g) for i, g in enumerate(text)], [4, 3, 2, 1, 0],
                                [rng.randrange(5) for _ in range(10)], bytes((255, 255, 255, 0, 0, 0))),
        Case("cells_1x1_and_32x32")
        .good(2, 1, (1, 1), [(1, b"\x80"), (2, b"\x00")], [2, 1], [1, 0])
        .good(32, 32, (32, 32), [(3, bytes(range(128)))], [3], [0]),
    ]
    body = stream([(0, A)], [0], [0])
    out += [
        Case("short_header").bad(3, 2, "0302000000", "shorter than its header"),
        Case("cell_w_0").bad(3, 2, data(0, 2, body), "cell side 0"),
        Case("cell_h_33").bad(33, 33, data(33, 33, stream([], [0], [0])), "cell side past GLYPH_MAX_SIDE"),
        Case("cell_not_dividing").bad(4, 2, data(3, 2, body), "w not a multiple of cell_w"),
        Case("corrupt_zlib").bad(3, 2, data(3, 2, b"", deflated=b"\x78\x9c\xff\xff\xff\xff"), "corrupt stream"),
        Case("stream_too_short").bad(3, 2, data(3, 2, body[:-1]), "stream ends before the indices"),
        Case("stream_too_long").bad(3, 2, data(3, 2, body + b"\x00"), "inflates past the last index"),
        Case("bytes_after_stream").bad(3, 2, data(3, 2, b"", deflated=zlib.compress(body) + b"\x00"),
                                       "bytes after the zlib stream"),
        Case("new_count_past_cells").bad(3, 2, data(3, 2, stream([(0, A), (1, B)], [0], [0])), "2 defs, 1 cell"),
        Case("defined_slot_4096").bad(3, 2, data(3, 2, stream([(4096, A)], [4096], [0])), "slot past GLYPH_SLOTS"),
        Case("used_count_0").bad(3, 2, data(3, 2, stream([(0, A)], [], [0])), "used_count 0"),
        Case("used_count_257").bad(3, 2, data(3, 2, stream([(0, A)], [0] * 257, [0])), "past GLYPH_MAX_USED"),
        Case("used_slot_empty").bad(3, 2, data(3, 2, stream([(0, A)], [1], [0])), "slot never defined"),
        Case("used_slot_4096").bad(3, 2, data(3, 2, stream([], [4096], [0])), "used slot past GLYPH_SLOTS"),
        Case("used_slot_other_size").good(3, 2, (3, 2), [(0, A)], [0], [0])
        .bad(4, 4, data(4, 4, stream([], [0], [0])), "slot holds a 3x2 glyph, region cells are 4x4"),
        Case("index_past_used").bad(3, 4, data(3, 2, stream([(0, A)], [0], [0, 1])), "index 1 of 1 used slot"),
        Case("pad_bits_set").bad(3, 2, data(3, 2, stream([(0, bytes([A[0] | 1]))], [0], [0])), "pad bit 1"),
        Case("deflate_bomb").bad(3, 2, data(3, 2, body + bytes(1 << 20)), "1 MiB past the counts"),
    ]
    return out


def render() -> str:
    """The vectors file's text: one case per line."""
    lines = [json.dumps({"name": case.name, "steps": case.steps}, separators=(", ", ": ")) for case in cases()]
    return "[\n" + ",\n".join(lines) + "\n]\n"


if __name__ == "__main__":
    PATH.write_text(render())

"""The agent's side of GLYPHS (docs/protocol.md 7c): grid detection on text
rendered with a real bitmap font, cutting along the grid, the mirror of the
client's glyph cache, and the encoder's regions decoded by the real client
framebuffer, byte-identical."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageFont, ImageOps

from client.framebuffer import Framebuffer
from protocol.limits import MAX_REGION_RAW_BYTES
from protocol.media import CAPS_GLYPHS, GLYPH_MAX_USED, VideoCaps
from protocol.messages import Encoding, Region
from sessiond.agent.display import DisplayPipeline
from sessiond.agent.encoder import RegionEncoder
from sessiond.agent.glyph_encoder import GLYPH_MIN_CELLS, GlyphEncoder, SlotMirror
from sessiond.agent.glyph_grid import Grid, cut, detect, margins
from sessiond.agent.settings import AgentSettings
from unit.test_seamless_wiring import EmptySource

WORDS = ("error", "info", "connection", "GET", "/api/v1/items", "200", "404", "ms", "user=alice", "took", "[ok]")
WHITE, BLACK = (255, 255, 255), (0, 0, 0)


def terminal(columns: int, rows: int, at: tuple[int, int] = (2, 2), seed: int = 3,
             back: tuple[int, int, int] = WHITE, ink: tuple[int, int, int] = BLACK) -> Image.Image:  # fmt: skip
    """Log-like text in Pillow's bitmap font (6x11 glyphs) on 6x13 cells, like an xterm."""
    font = ImageFont.load_default_imagefont()
    image = Image.new("RGB", (at[0] * 2 + columns * 6, at[1] * 2 + rows * 13), back)
    draw = ImageDraw.Draw(image)
    rng = random.Random(seed)
    for row in range(rows):
        line = f"{row:05d} " + " ".join(rng.choice(WORDS) for _ in range(columns // 4))
        draw.text((at[0], at[1] + row * 13), line[:columns], font=font, fill=ink)
    return image


def bgrx(image: Image.Image) -> bytes:
    return image.convert("RGBX").tobytes("raw", "BGRX")


def index_of(image: Image.Image) -> Image.Image:
    """The 0/1 image of black text on white: 1 where the ink is."""
    return image.convert("L").point(lambda v: 1 if v == 0 else 0)


# -- the grid ---------------------------------------------------------------------------
@pytest.mark.parametrize("at", [(2, 2), (3, 4), (0, 0), (11, 7)])
def test_detect_finds_the_cells_of_rendered_text(at: tuple[int, int]) -> None:
    image = terminal(80, 24, at)
    grid = detect(index_of(image), (100, 50))
    assert grid is not None and (grid.cell_w, grid.cell_h) == (6, 13)
    # Each cell holds one glyph: the grid goes through the text's corner (shifted by the origin).
    cells = cut(index_of(image).crop((at[0], at[1], at[0] + 80 * 6, at[1] + 24 * 13)), 6, 13)
    assert len(set(cells)) < 80
    assert (grid.phase_x - 100 - at[0]) % 6 in (0, 5) and (grid.phase_y - 50 - at[1]) % 13 in (0, 12, 1)


def test_detect_refuses_what_is_not_text() -> None:
    rng = random.Random(1)
    noise = Image.new("L", (300, 200))
    noise.putdata([rng.getrandbits(1) for _ in range(300 * 200)])
    assert detect(noise, (0, 0)) is None
    assert detect(Image.new("L", (300, 200)), (0, 0)) is None  # no ink at all
    assert detect(index_of(terminal(80, 2)), (0, 0)) is None  # two lines: any long row period fits


def test_snap_grow_and_margins() -> None:
    grid = Grid(6, 13, 2, 3)
    assert grid.snap((0, 0, 100, 100)) == (2, 3, 96, 91)
    assert grid.snap((2, 3, 5, 13)) is None  # less than one cell wide
    assert grid.grow((5, 5, 10, 10), 1000, 1000) == (2, 3, 18, 13)
    assert grid.grow((0, 0, 3, 3), 4, 4) == (0, 0, 4, 3)  # clipped to the surface
    outer, inner = (0, 0, 100, 100), (2, 3, 96, 91)
    parts = margins(outer, inner)
    assert sum(w * h for _x, _y, w, h in parts) + 96 * 91 == 100 * 100
    assert margins(inner, inner) == []


# -- the mirror of the client's cache --------------------------------------------------------
def test_mirror_reuses_known_glyphs_and_commits_only_what_was_sent() -> None:
    mirror = SlotMirror()
    first = mirror.assign(6, 13, [b"a", b"b"])
    assert first.slots == [0, 1] and [slot for slot, _key in first.new] == [0, 1]
    dropped = mirror.assign(6, 13, [b"c"])  # the region that would carry it was not sent
    assert dropped.slots == [0] and len(mirror) == 0
    mirror.commit(first)
    again = mirror.assign(6, 13, [b"b", b"c", b"a"])
    assert again.slots == [1, 2, 0] and again.new == [(2, (6, 13, b"c"))]
    assert mirror.assign(5, 13, [b"a"]).new  # another cell size is another glyph
    mirror.reset()
    assert mirror.slot((6, 13, b"a")) is None and mirror.assign(6, 13, [b"z"]).slots == [0]


def test_mirror_evicts_the_least_recently_used_never_a_glyph_of_the_same_region() -> None:
    mirror = SlotMirror(GLYPH_MAX_USED)
    mirror.commit(mirror.assign(1, 1, [bytes([i]) for i in range(GLYPH_MAX_USED)]))  # full
    mirror.commit(mirror.assign(1, 1, [bytes([0])]))  # glyph 0 is now the most recent
    region = [bytes([1]), b"new"]  # glyph 1 is the least recent, but this region uses it
    out = mirror.assign(1, 1, region)
    assert out.evicted == [(1, 1, bytes([2]))] and out.new == [(2, (1, 1, b"new"))]
    mirror.commit(out)
    assert mirror.slot((1, 1, bytes([2]))) is None and mirror.slot((1, 1, bytes([1]))) == 1
    assert len(mirror) == GLYPH_MAX_USED
    with pytest.raises(ValueError):
        mirror.assign(1, 1, [bytes([i % 256, i // 256]) for i in range(GLYPH_MAX_USED + 1)])
    with pytest.raises(ValueError):
        SlotMirror(GLYPH_MAX_USED - 1)


# -- the encoder, decoded by the client ------------------------------------------------------
def _encode(encoder: RegionEncoder, image: Image.Image, rects: list[tuple[int, int, int, int]] | None = None,
            surface: Any = "desktop") -> list[Region]:  # fmt: skip
    encoder.forget()  # no COPY: every frame is sent
    w, h = image.size
    return encoder.encode(bgrx(image), w * 4, rects or [(0, 0, w, h)], surface=surface)


def _glyph_encoder() -> RegionEncoder:
    encoder = RegionEncoder()
    encoder.glyphs.enabled = True
    return encoder


def test_a_screen_of_text_goes_as_glyphs_and_decodes_byte_identical() -> None:
    encoder, off = _glyph_encoder(), RegionEncoder()
    first, second = terminal(180, 50, seed=1), terminal(180, 50, seed=2)
    fb = Framebuffer(*first.size)
    sizes = []
    for image in (first, second):
        regions = _encode(encoder, image)
        for region in regions:
            fb.apply(region)
        assert fb.image().tobytes() == image.tobytes()
        kinds = Counter(r.encoding for r in regions)
        assert kinds[Encoding.GLYPHS] >= 3  # striped under MAX_REGION_RAW_BYTES
        assert all(r.w * r.h * 3 <= MAX_REGION_RAW_BYTES for r in regions)
        sizes.append(sum(len(r.data) for r in regions))
    palette = sum(len(r.data) for r in _encode(off, second))
    assert sizes[1] < sizes[0] and sizes[1] < palette / 4, (sizes, palette)


def test_an_empty_window_in_its_border_is_no_failed_detection_and_its_first_text_goes_as_glyphs() -> None:
    # A new xterm at its map in desktop mode: white inside its 1-pixel black X border, its
    # cursor's block the only ink; then its prompt. No grid is looked for in either (that cost
    # ~12 ms of the session's first frame and failed), and nothing holds the look back when
    # the first screen of text comes right after.
    text = terminal(180, 50, seed=5)
    empty = Image.new("RGB", text.size, WHITE)
    ImageDraw.Draw(empty).rectangle((0, 0, text.width - 1, text.height - 1), outline=BLACK)
    ImageDraw.Draw(empty).rectangle((2, 2, 7, 14), fill=BLACK)  # the cursor, 6x13
    prompt = empty.copy()
    ImageDraw.Draw(prompt).text((2, 2), "$ ", font=ImageFont.load_default_imagefont(), fill=BLACK)
    ImageDraw.Draw(prompt).rectangle((14, 2, 19, 14), fill=BLACK)
    encoder = _glyph_encoder()
    fb = Framebuffer(*text.size)
    for image in (empty, prompt, text):
        regions = _encode(encoder, image)
        for region in regions:
            fb.apply(region)
        assert fb.image().tobytes() == image.tobytes()
    assert encoder.glyphs.grid("desktop") is not None
    assert Counter(r.encoding for r in regions)[Encoding.GLYPHS] >= 3, "the first text did not go as GLYPHS"


def test_a_cleared_screen_is_no_failed_detection_and_the_text_after_it_goes_as_glyphs() -> None:
    # `clear` in a new terminal, then its first screen of text: one colour holds no text, so it
    # must not keep detection off that text for DETECT_RETRY_SECONDS (it did: the first screen
    # after a cleared one went out as palette PNGs).
    text = terminal(180, 50, seed=7)
    blank = Image.new("RGB", text.size, WHITE)
    encoder = _glyph_encoder()
    fb = Framebuffer(*text.size)
    for region in _encode(encoder, blank):  # FILL stripes, never encode()d
        fb.apply(region)
    regions = _encode(encoder, text)
    for region in regions:
        fb.apply(region)
    assert fb.image().tobytes() == text.tobytes()
    assert Counter(r.encoding for r in regions)[Encoding.GLYPHS] >= 3, "the text after a cleared screen"
    # A one-colour rectangle that does reach the glyph encoder is no failed detection either;
    # three colours that hold no grid are.
    glyphs = GlyphEncoder(clock=lambda: 0.0)
    assert glyphs._detect(blank, (0, 1, 2), (0, 0, *blank.size), "one") is None and "one" not in glyphs._tried
    three = blank.copy()
    ImageDraw.Draw(three).rectangle((10, 10, 500, 300), fill=BLACK)
    ImageDraw.Draw(three).rectangle((600, 10, 900, 300), fill=(255, 0, 0))
    assert glyphs._detect(three, (0, 1, 2), (0, 0, *three.size), "three") is None and "three" in glyphs._tried


def test_glyphs_follow_the_text_on_a_root_of_the_other_colour_and_in_another_colour() -> None:
    screen = Image.new("RGB", (800, 500), BLACK)
    screen.paste(terminal(80, 24, seed=4), (10, 20))
    encoder = _glyph_encoder()
    fb = Framebuffer(*screen.size)
    for region in _encode(encoder, screen):
        fb.apply(region)
    assert fb.image().tobytes() == screen.tobytes() and encoder.glyphs.grid("desktop") is not None
    green = terminal(80, 24, seed=5, back=(0, 40, 0), ink=(120, 255, 120))
    screen.paste(green, (10, 20))
    regions = _encode(encoder, screen, [(10, 20, *green.size)])  # the terminal's damage: two colours
    for region in regions:
        fb.apply(region)
    assert fb.image().tobytes() == screen.tobytes()
    assert any(r.encoding is Encoding.GLYPHS for r in regions)


def test_small_rectangles_and_clients_without_glyphs_get_the_other_encodings() -> None:
    image = terminal(180, 50)
    encoder = _glyph_encoder()
    _encode(encoder, image)  # the grid is found
    echo = _encode(encoder, image, [(8, 2, 12, 13)])  # a keystroke's echo: one PALETTE (a TILE)
    assert [r.encoding for r in echo] == [Encoding.PALETTE]
    assert 12 * 13 < GLYPH_MIN_CELLS * 6 * 13
    off = RegionEncoder()
    assert Encoding.GLYPHS not in {r.encoding for r in _encode(off, image)}
    assert Encoding.GLYPHS not in {r.encoding for r in _encode(encoder, image, surface=None)}


def test_what_glyphs_would_not_shrink_goes_the_old_way_and_leaves_the_mirror_alone() -> None:
    encoder = _glyph_encoder()
    text = terminal(80, 24)
    _encode(encoder, text)
    known = len(encoder.glyphs.mirror)
    rng = random.Random(2)
    noise = Image.new("1", text.size)
    noise.putdata([rng.getrandbits(1) for _ in range(text.size[0] * text.size[1])])
    noisy = noise.convert("RGB")
    regions = _encode(encoder, noisy)
    fb = Framebuffer(*text.size)
    for region in regions:
        fb.apply(region)  # (no GLYPHS here, so the client's empty cache does not matter)
    assert fb.image().tobytes() == noisy.tobytes()
    assert Encoding.GLYPHS not in {r.encoding for r in regions} and len(encoder.glyphs.mirror) == known


def test_a_region_never_names_more_than_glyph_max_used_glyphs() -> None:
    # 2-colour cells of 8x8 random bits: every cell a new glyph, 40 x 20 = 800 distinct ones.
    rng = random.Random(9)
    image = Image.new("1", (4 + 40 * 8, 4 + 20 * 8), 0)
    for cy in range(20):
        for cx in range(40):
            cell = Image.new("1", (7, 7))
            cell.putdata([rng.getrandbits(1) for _ in range(49)])
            image.paste(cell, (2 + cx * 8, 2 + cy * 8))
    rgb = image.convert("RGB")
    encoder = _glyph_encoder()
    encoder.glyphs._grids["desktop"] = Grid(8, 8, 2, 2)  # (too dense for the detector; the grid is given)
    regions = _encode(encoder, rgb)
    fb = Framebuffer(*rgb.size)
    for region in regions:
        fb.apply(region)
    assert fb.image().tobytes() == rgb.tobytes()


# -- the pipeline ------------------------------------------------------------------------------
@pytest.mark.parametrize("configured", [True, False])
def test_video_caps_bit_2_turns_glyphs_on_if_configured_and_a_new_channel_resets(configured: bool) -> None:
    settings = AgentSettings(socket="/x", display_glyphs=configured)
    pipeline = DisplayPipeline(None, settings, EmptySource(), lambda: None, lambda: None)  # type: ignore[arg-type]
    pipeline.opened()
    pipeline.message(VideoCaps(codecs=0x03))
    assert not pipeline.encoder.glyphs.enabled
    pipeline.message(VideoCaps(codecs=CAPS_GLYPHS))
    assert pipeline.encoder.glyphs.enabled is configured
    pipeline.encoder.glyphs.mirror.commit(pipeline.encoder.glyphs.mirror.assign(6, 13, [b"x"]))
    pipeline.opened()
    assert not pipeline.encoder.glyphs.enabled and len(pipeline.encoder.glyphs.mirror) == 0


def test_grow_only_for_large_rectangles_of_a_surface_with_a_grid() -> None:
    glyphs = GlyphEncoder()
    glyphs.enabled = True
    assert glyphs.grow("w", (5, 5, 200, 200), 500, 500) == (5, 5, 200, 200)  # no grid yet
    glyphs._grids["w"] = Grid(6, 13, 2, 2)
    assert glyphs.grow("w", (5, 5, 200, 200), 500, 500) == (2, 2, 204, 208)
    assert glyphs.grow("w", (5, 5, 12, 13), 500, 500) == (5, 5, 12, 13)  # an echo stays as it is
    glyphs.enabled = False
    assert glyphs.grow("w", (5, 5, 200, 200), 500, 500) == (5, 5, 200, 200)


def test_a_row_of_more_than_glyph_max_used_glyphs_goes_the_old_way() -> None:
    rng = random.Random(11)
    columns = GLYPH_MAX_USED + 44
    image = Image.new("1", (columns * 4, 8))
    image.putdata([rng.getrandbits(1) for _ in range(columns * 4 * 8)])
    rgb = image.convert("RGB")
    encoder = _glyph_encoder()
    encoder.glyphs._grids["desktop"] = Grid(4, 4, 0, 0)
    regions = _encode(encoder, rgb)
    assert Encoding.GLYPHS not in {r.encoding for r in regions} and len(encoder.glyphs.mirror) == 0
    fb = Framebuffer(*rgb.size)
    for region in regions:
        fb.apply(region)
    assert fb.image().tobytes() == rgb.tobytes()


def _few_lines_then_screens(native: bool) -> tuple[RegionEncoder, list[Image.Image], list[list[Region]]]:
    """An xterm-like surface that first shows 4 lines (a prompt and a command), then screens of text."""
    encoder = _glyph_encoder()
    if not native:
        encoder.glyphs.native = None
    few = Image.new("RGB", (1086, 660), WHITE)
    few.paste(terminal(180, 4, at=(3, 5)).crop((0, 0, 1086, 5 + 4 * 13)), (0, 0))
    frames = [few, terminal(180, 50, at=(3, 5), seed=8), terminal(180, 50, at=(3, 5), seed=9)]
    fb = Framebuffer(*few.size)
    sent = []
    for number, image in enumerate(frames):
        box = (0, 0, 1086, 5 + 4 * 13 + 3) if number == 0 else (0, 0, *image.size)
        regions = _encode(encoder, image, [box])
        for region in regions:
            fb.apply(region)
        assert fb.image().crop(box).tobytes() == image.crop(box).tobytes()
        sent.append(regions)
        if number == 0:  # the case this is about: 4 lines fit a 12-pixel row as well as a 13-pixel one
            wrong = encoder.glyphs.grid("desktop")
            assert wrong is not None and (wrong.cell_w, wrong.cell_h) == (6, 12), wrong
    return encoder, frames, sent


@pytest.mark.parametrize("native", [True, False])
def test_a_grid_found_on_a_few_lines_is_checked_on_the_first_screen_of_text(native: bool) -> None:
    encoder, frames, sent = _few_lines_then_screens(native)
    grid = encoder.glyphs.grid("desktop")
    assert grid is not None and (grid.cell_w, grid.cell_h) == (6, 13)
    assert (grid.phase_x - 3) % 6 in (0, 5) and (grid.phase_y - 5) % 13 in (0, 12, 1)  # as detect's own test
    # From the first screen on, as small as on an encoder that saw that screen first (the wrong
    # grid cut every glyph in two: ~4x the bytes, ~40x the distinct glyphs).
    reference = _glyph_encoder()
    if not native:
        reference.glyphs.native = None
    expected = [_encode(reference, image) for image in frames[1:]]
    for got, want in zip(sent[1:], expected):
        assert sum(len(r.data) for r in got) <= 1.1 * sum(len(r.data) for r in want)
        assert Counter(r.encoding for r in got)[Encoding.GLYPHS] == Counter(r.encoding for r in want)[Encoding.GLYPHS]


def test_a_grid_is_checked_once_per_doubling_of_area_and_kept_if_none_is_better() -> None:
    screen = terminal(180, 50, at=(3, 5), seed=8)
    encoder = _glyph_encoder()
    glyphs = encoder.glyphs
    right, wrong = Grid(6, 13, 3, 4), Grid(6, 12, 3, 5)  # (detect puts the blank row above a line in its cell)
    half = (0, 0, screen.width, screen.height // 2)
    # A wrong grid already checked on this much: not looked for again on as much ...
    glyphs._grids["desktop"], glyphs._found_on["desktop"] = wrong, half[2] * half[3]
    glyphs._background["desktop"], glyphs._misses["desktop"] = bytes(WHITE), 0
    _encode(encoder, screen, [half])
    assert glyphs.grid("desktop") == wrong
    # ... but on twice as much, and replaced.
    _encode(encoder, screen)
    assert glyphs.grid("desktop") == right and glyphs._found_on["desktop"] == screen.width * screen.height
    # A right grid found on a little text, on two lines of 60 cells (~25% distinct): looked for
    # again, nothing is found on two lines, and the grid is kept.
    glyphs._found_on["desktop"] = 100
    two_lines = (3, 5, 60 * 6, 2 * 13)
    regions = _encode(encoder, screen, [two_lines])
    assert glyphs.grid("desktop") == right and glyphs._found_on["desktop"] == 60 * 6 * 2 * 13
    assert Encoding.GLYPHS in {r.encoding for r in regions}


def test_what_the_encoder_keeps_per_surface_is_bounded() -> None:
    from sessiond.agent import glyph_encoder

    glyphs = GlyphEncoder(clock=lambda: 0.0)
    text = terminal(80, 24)
    noise = Image.effect_noise(text.size, 64).convert("1").convert("RGB")  # two colours, no grid
    for surface in range(glyph_encoder.MAX_GRIDS * 2):
        for image in (text, noise):
            glyphs._detect(image, (0, 1, 2), (0, 0, *image.size), surface)
    assert len(glyphs._grids) == glyph_encoder.MAX_GRIDS
    assert len(glyphs._background) <= glyph_encoder.MAX_GRIDS and len(glyphs._misses) <= glyph_encoder.MAX_GRIDS
    assert len(glyphs._found_on) <= glyph_encoder.MAX_GRIDS
    assert len(glyphs._tried) <= glyph_encoder.MAX_GRIDS + 1


def test_the_mirror_forgets_definitions_of_regions_dropped_unsent() -> None:
    mirror = SlotMirror()
    mirror.commit(mirror.assign(6, 13, [b"kept"]))
    mirror.begin()
    mirror.commit(mirror.assign(6, 13, [b"kept", b"lost"]))
    mirror.undo()
    mirror.end()
    assert mirror.slot((6, 13, b"kept")) == 0 and mirror.slot((6, 13, b"lost")) is None
    assert mirror.assign(6, 13, [b"next"]).slots == [1]  # the undone slot is free again
    mirror.begin()
    mirror.commit(mirror.assign(6, 13, [b"sent"]))
    mirror.end()
    mirror.undo()  # nothing open: nothing undone
    assert mirror.slot((6, 13, b"sent")) == 1


def test_a_window_that_goes_away_mid_frame_leaves_no_glyphs_in_the_mirror() -> None:
    from sessiond.agent.damage import DamageError
    from sessiond.agent.frame_sources import WindowSource

    text = terminal(80, 24)
    raw = bgrx(text)

    class Pixels:
        fail = False

        def size(self, window: int) -> tuple[int, int]:
            return text.size

        def capture(self, window: int, rect: tuple[int, int, int, int]) -> bytes:
            if self.fail and rect[1] > 0:
                raise DamageError("gone")
            x, y, w, h = rect
            return b"".join(raw[(y + row) * text.size[0] * 4 + x * 4:][: w * 4] for row in range(h))

    pixels = Pixels()
    source = WindowSource(pixels, lambda _line: None)  # type: ignore[arg-type]
    encoder = _glyph_encoder()
    whole = [(0, 0, *text.size)]
    assert any(isinstance(m, Region) and m.encoding is Encoding.GLYPHS
               for m in source._window(encoder, 7, whole, False))  # fmt: skip
    known, made = len(encoder.glyphs.mirror), encoder.glyphs.sent
    raw = bgrx(ImageOps.invert(text))  # inverted: every glyph new; the top half is encoded, then the capture fails
    pixels.fail = True
    assert source._window(encoder, 7, [(0, 0, text.size[0], 160), (0, 160, text.size[0], 160)], False) == []
    assert encoder.glyphs.sent > made and len(encoder.glyphs.mirror) == known

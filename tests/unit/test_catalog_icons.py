# Why these tests: the icon a client shows must be the one a desktop would
# show (theme, inherited themes, hicolor, then bare pixmaps, closest size),
# and whatever the server decodes must be bounded.  Each test builds a small
# icon theme in a temporary directory with Pillow-made PNGs whose colour
# says which file was picked.
"""Tests for apps.icons: XDG icon theme lookup and PNG rendering."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

import apps.icons
from apps.icons import MAX_ICON_SIZE, MIN_ICON_SIZE, IconError, IconResolver, render_png

RED, GREEN, BLUE, GREY = (255, 0, 0, 255), (0, 255, 0, 255), (0, 0, 255, 255), (128, 128, 128, 255)


def theme(base: Path, name: str, directories: dict[str, str], inherits: str = "") -> Path:
    """Write THEME/index.theme: directories maps "48x48/apps" to its group body."""
    root = base / name
    root.mkdir(parents=True, exist_ok=True)
    lines = ["[Icon Theme]", f"Name={name}", f"Directories={','.join(directories)}"]
    if inherits:
        lines.append(f"Inherits={inherits}")
    for directory, body in directories.items():
        lines += ["", f"[{directory}]", body]
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "index.theme").write_text("\n".join(lines) + "\n")
    return root


def png(path: Path, size: int, colour: tuple[int, int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGBA", (size, size), colour).save(path)


def colour_of(data: bytes) -> tuple[int, ...]:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGBA").getpixel((image.width // 2, image.height // 2))  # type: ignore[return-value]


@pytest.fixture
def icons(tmp_path: Path) -> Path:
    base = tmp_path / "icons"
    theme(base, "Fancy", {"16x16/apps": "Size=16\nType=Fixed", "48x48/apps": "Size=48\nType=Fixed"},
          inherits="Parent")  # fmt: skip
    theme(base, "Parent", {"32x32/apps": "Size=32\nType=Threshold\nThreshold=4"})
    theme(base, "hicolor", {"48x48/apps": "Size=48\nType=Fixed",
                            "scalable/apps": "Size=64\nMinSize=8\nMaxSize=512\nType=Scalable"})  # fmt: skip
    png(base / "Fancy/16x16/apps/term.png", 16, RED)
    png(base / "Fancy/48x48/apps/term.png", 48, GREEN)
    png(base / "Parent/32x32/apps/calc.png", 32, BLUE)
    png(base / "hicolor/48x48/apps/clock.png", 48, GREY)
    (base / "hicolor/scalable/apps/vector.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    png(tmp_path / "pixmaps/legacy.png", 32, RED)
    return tmp_path


def resolver(root: Path, name: str = "Fancy") -> IconResolver:
    return IconResolver([str(root / "icons"), str(root / "pixmaps")], theme=name)


def test_exact_size_in_the_theme_wins(icons: Path) -> None:
    found = resolver(icons).find("term", 48)
    assert found is not None and found.endswith("Fancy/48x48/apps/term.png")
    found = resolver(icons).find("term", 16)
    assert found is not None and found.endswith("Fancy/16x16/apps/term.png")


def test_closest_size_when_none_matches(icons: Path) -> None:
    found = resolver(icons).find("term", 40)
    assert found is not None and found.endswith("48x48/apps/term.png")  # 8 away, 16x16 is 24 away


def test_inherited_theme_then_hicolor_then_pixmaps(icons: Path) -> None:
    finder = resolver(icons)
    assert str(finder.find("calc", 34)).endswith("Parent/32x32/apps/calc.png")  # within the threshold
    assert str(finder.find("clock", 48)).endswith("hicolor/48x48/apps/clock.png")
    assert str(finder.find("legacy", 48)).endswith("pixmaps/legacy.png")
    assert str(finder.find("legacy.png", 48)).endswith("pixmaps/legacy.png")  # "Icon=x.png" still works
    assert finder.find("missing", 48) is None


def test_svg_is_skipped_and_paths_are_checked(icons: Path) -> None:
    finder = resolver(icons)
    assert finder.find("vector", 48) is None
    legacy = icons / "pixmaps/legacy.png"
    assert finder.find(str(legacy), 48) == str(legacy)
    assert finder.find("../pixmaps/legacy", 48) is None
    assert finder.find("", 48) is None


def test_unknown_theme_falls_back_to_hicolor(icons: Path) -> None:
    assert str(resolver(icons, "NoSuchTheme").find("clock", 48)).endswith("hicolor/48x48/apps/clock.png")


def test_png_is_rendered_at_the_requested_size(icons: Path) -> None:
    finder = resolver(icons)
    for size in (MIN_ICON_SIZE, 48, 100, MAX_ICON_SIZE):
        data = finder.png("term", size)
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG" and image.size == (size, size)
    assert colour_of(finder.png("term", 48)) == GREEN
    assert colour_of(finder.png("calc", 64)) == BLUE  # upscaled from 32


@pytest.mark.parametrize("size", [MIN_ICON_SIZE - 1, MAX_ICON_SIZE + 1, 0])
def test_size_limits(icons: Path, size: int) -> None:
    with pytest.raises(IconError, match="outside"):
        resolver(icons).png("term", size)


def test_non_square_icons_are_centred(tmp_path: Path) -> None:
    wide = tmp_path / "wide.png"
    Image.new("RGBA", (64, 32), RED).save(wide)
    with Image.open(io.BytesIO(render_png(str(wide), 32))) as image:
        rgba = image.convert("RGBA")
        assert rgba.getpixel((16, 16)) == RED and rgba.getpixel((16, 2))[3] == 0


def test_decoding_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.png"
    Image.new("RGBA", (200, 200), RED).save(big)
    monkeypatch.setattr(apps.icons, "MAX_SOURCE_PIXELS", 199 * 199)
    with pytest.raises(IconError, match="at most"):
        render_png(str(big), 48)
    monkeypatch.setattr(apps.icons, "MAX_ICON_FILE_BYTES", 10)
    with pytest.raises(IconError, match="the limit is 10"):
        render_png(str(big), 48)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG not really")
    monkeypatch.setattr(apps.icons, "MAX_ICON_FILE_BYTES", 1 << 20)
    with pytest.raises(IconError, match="cannot decode"):
        render_png(str(garbage), 48)


def test_output_bound_tries_a_palette_then_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    noisy = tmp_path / "noisy.png"
    channels = [Image.effect_noise((96, 96), sigma) for sigma in (60, 90, 120)]
    Image.merge("RGBA", [*channels, Image.new("L", (96, 96), 255)]).save(noisy)
    full = len(render_png(str(noisy), 96))
    monkeypatch.setattr(apps.icons, "MAX_ICON_PNG_BYTES", full - 1)
    assert len(render_png(str(noisy), 96)) < full  # quantized to fit
    monkeypatch.setattr(apps.icons, "MAX_ICON_PNG_BYTES", 100)
    with pytest.raises(IconError, match="the limit is 100"):
        render_png(str(noisy), 96)


def test_clear_forgets_cached_lookups(icons: Path) -> None:
    finder = resolver(icons)
    assert finder.find("late", 48) is None
    png(icons / "icons/Fancy/48x48/apps/late.png", 48, RED)
    assert finder.find("late", 48) is None  # cached
    finder.clear()
    assert str(finder.find("late", 48)).endswith("Fancy/48x48/apps/late.png")


def test_the_demo_icons_resolve_on_this_host() -> None:
    finder = IconResolver(theme="Adwaita")
    for name in ("utilities-terminal", "accessories-calculator", "x-office-calendar"):
        assert finder.find(name, 48) is not None, f"{name}: is adwaita-icon-theme installed (make install)?"


def test_the_largest_icon_answer_fits_one_control_frame() -> None:
    from protocol.control import MAX_ICON_BASE64, Icon
    from protocol.limits import MAX_CONTROL_PAYLOAD

    png_bytes = bytes(range(256)) * (apps.icons.MAX_ICON_PNG_BYTES // 256)
    largest = Icon.with_png(2**53 - 1, "a" * 255, MAX_ICON_SIZE, png_bytes)
    assert len(largest.data) <= MAX_ICON_BASE64
    assert len(largest.encode()) <= MAX_CONTROL_PAYLOAD
    assert largest.png == png_bytes
    with pytest.raises(ValueError, match="exceeds"):
        Icon(request=1, app="a", size=48, ok=True, data="A" * (MAX_ICON_BASE64 + 4))
    with pytest.raises(ValueError, match="not base64"):
        Icon(request=1, app="a", size=48, ok=True, data="not base64!")

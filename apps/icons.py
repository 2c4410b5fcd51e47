# Why this module exists: a client shows each published app with its icon,
# at the size its own screen needs.  The Icon key of a desktop entry names
# an icon in the freedesktop Icon Theme Specification's sense, so the file is
# found the way a desktop would find it: the configured theme, then the
# themes it inherits, then hicolor, then the bare icon directories
# (pixmaps).  pyxdg parses each index.theme; the lookup itself is done here
# rather than through pyxdg's getIconPath, because that function keeps its
# caches and search directories in module globals (and mis-spells
# "Scalable"), while sessiond needs explicit directories per catalog.
#
# Only raster icons are served: PNG and XPM, converted to PNG at the size
# asked for.  SVG is skipped: no pinned pure-Python rasterizer is good enough
# to justify parsing SVG in the root daemon.  Icons come only from the
# admin's icon directories, never from a client or a session.
"""Resolve XDG theme icons and render them as PNG at a requested size."""

from __future__ import annotations

import io
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from xdg.Exceptions import Error as XdgError
from xdg.IconTheme import IconTheme

if TYPE_CHECKING:  # Pillow (~1 MiB in the daemon) loads with the first icon rendered, in render_png
    from PIL import Image

DEFAULT_ICON_DIRS = ("/usr/local/share/icons", "/usr/share/icons", "/usr/share/pixmaps")
DEFAULT_THEME = "hicolor"
FALLBACK_THEME = "hicolor"  # every theme implicitly inherits it (Icon Theme Specification)
RASTER_EXTENSIONS = ("png", "xpm")  # svg is deliberately absent (see the header)
MIN_ICON_SIZE = 8  # smaller than this is not a recognisable icon
MAX_ICON_SIZE = 256  # the largest size the Icon Theme spec's stock themes ship as PNG
MAX_ICON_FILE_BYTES = 4 << 20  # a 512x512 RGBA PNG is ~1 MiB; more is not an icon
MAX_SOURCE_PIXELS = 1024 * 1024  # decode at most 1024x1024 (decompression-bomb guard)
# PNG bytes of one ICON answer: its base64 must fit a 64 KiB control frame with room to spare.
MAX_ICON_PNG_BYTES = 45 * 1024
MAX_INHERIT_DEPTH = 8  # theme inheritance chains are 2-3 deep; deeper is a loop
MAX_CACHED_ICONS = 512  # rendered PNGs kept (icons x sizes); ~5 KiB each
MAX_CACHED_PATHS = 4096  # resolved (name, size) -> path entries


class IconError(Exception):
    """The icon cannot be served (missing, not raster, too large, undecodable)."""


class IconResolver:
    """Finds icon files in explicit icon directories, with per-instance caches.

    ``icon_dirs`` are the base directories of the Icon Theme Specification
    (each holding theme directories and, directly, fallback icons).  Call
    clear() when the directories may have changed (the catalog reloader does).
    """

    def __init__(self, icon_dirs: Sequence[str] = DEFAULT_ICON_DIRS, theme: str = DEFAULT_THEME) -> None:
        if isinstance(icon_dirs, str):
            raise TypeError("icon_dirs must be a sequence of paths, not one string")
        self._icon_dirs = tuple(icon_dirs)
        self._theme = theme
        self._themes: dict[str, IconTheme | None] = {}
        self._listings: dict[str, frozenset[str]] = {}
        self._paths: OrderedDict[tuple[str, int], str | None] = OrderedDict()
        self._rendered: OrderedDict[tuple[str, int], bytes] = OrderedDict()

    def clear(self) -> None:
        """Forget every cached theme, directory listing, path and rendering."""
        self._themes.clear()
        self._listings.clear()
        self._paths.clear()
        self._rendered.clear()

    def find(self, name: str, size: int) -> str | None:
        """Path of the best raster file for icon ``name`` at ``size``, or None."""
        if not name or "\0" in name:
            return None
        key = (name, size)
        if key in self._paths:
            self._paths.move_to_end(key)
            return self._paths[key]
        path = self._find_uncached(name, size)
        self._paths[key] = path
        if len(self._paths) > MAX_CACHED_PATHS:
            self._paths.popitem(last=False)
        return path

    def png(self, name: str, size: int) -> bytes:
        """Icon ``name`` as PNG bytes of ``size`` x ``size``; IconError if it cannot be served."""
        self.check_size(size)
        path = self.find(name, size)
        if path is None:
            raise IconError(f"no PNG or XPM icon named {name!r} in the icon themes")
        cached = self.cached(path, size)
        if cached is None:
            cached = render_png(path, size)
            self.store(path, size, cached)
        return cached

    @staticmethod
    def check_size(size: int) -> None:
        """IconError unless MIN_ICON_SIZE <= size <= MAX_ICON_SIZE."""
        if not MIN_ICON_SIZE <= size <= MAX_ICON_SIZE:
            raise IconError(f"icon size {size} is outside {MIN_ICON_SIZE}..{MAX_ICON_SIZE}")

    def cached(self, path: str, size: int) -> bytes | None:
        """A rendering of ``path`` at ``size`` made earlier, if still cached."""
        data = self._rendered.get((path, size))
        if data is not None:
            self._rendered.move_to_end((path, size))
        return data

    def store(self, path: str, size: int, data: bytes) -> None:
        """Keep a rendering (least recently used ones are dropped past MAX_CACHED_ICONS)."""
        self._rendered[(path, size)] = data
        if len(self._rendered) > MAX_CACHED_ICONS:
            self._rendered.popitem(last=False)

    # -- lookup (Icon Theme Specification, "Icon Lookup") ----------------------
    def _find_uncached(self, name: str, size: int) -> str | None:
        if os.path.isabs(name):
            extension = name.rsplit(".", 1)[-1].lower()
            return name if extension in RASTER_EXTENSIONS and os.path.isfile(name) else None
        if "/" in name:
            return None  # a relative path means nothing here
        stem = name
        if "." in name and name.rsplit(".", 1)[-1].lower() in (*RASTER_EXTENSIONS, "svg"):
            stem = name.rsplit(".", 1)[0]  # "Icon=foo.png" is wrong but common
        for theme in dict.fromkeys((self._theme, FALLBACK_THEME)):
            found = self._find_in_theme(stem, size, theme, depth=0)
            if found is not None:
                return found
        for directory in self._icon_dirs:
            for extension in RASTER_EXTENSIONS:
                if f"{stem}.{extension}" in self._listing(directory):
                    return os.path.join(directory, f"{stem}.{extension}")
        return None

    def _find_in_theme(self, stem: str, size: int, theme_name: str, depth: int) -> str | None:
        theme = self._load_theme(theme_name)
        if theme is None or depth > MAX_INHERIT_DEPTH:
            return None
        found = self._lookup(stem, size, theme_name, theme)
        if found is not None:
            return found
        for parent in theme.getInherits():
            if parent != theme_name:
                found = self._find_in_theme(stem, size, parent, depth + 1)
                if found is not None:
                    return found
        return None

    def _lookup(self, stem: str, size: int, theme_name: str, theme: IconTheme) -> str | None:
        closest: str | None = None
        closest_distance = 1 << 31
        for subdir in theme.getDirectories():
            if not subdir:
                continue
            try:
                distance = _size_distance(theme, subdir, size)
            except (ValueError, TypeError):
                continue  # a directory entry without a usable Size
            for directory in self._icon_dirs:
                where = os.path.join(directory, theme_name, subdir)
                listing = self._listing(where)
                for extension in RASTER_EXTENSIONS:
                    if f"{stem}.{extension}" not in listing:
                        continue
                    path = os.path.join(where, f"{stem}.{extension}")
                    if distance == 0:
                        return path
                    if distance < closest_distance:
                        closest, closest_distance = path, distance
        return closest

    def _load_theme(self, name: str) -> IconTheme | None:
        if name in self._themes:
            return self._themes[name]
        theme: IconTheme | None = None
        for directory in self._icon_dirs:
            index = os.path.join(directory, name, "index.theme")
            if os.path.isfile(index):
                candidate = IconTheme()
                try:
                    candidate.parse(index)
                except (XdgError, OSError, UnicodeError):
                    break
                theme = candidate
                break
        self._themes[name] = theme
        return theme

    def _listing(self, directory: str) -> frozenset[str]:
        listing = self._listings.get(directory)
        if listing is None:
            try:
                listing = frozenset(os.listdir(directory))
            except OSError:
                listing = frozenset()
            self._listings[directory] = listing
        return listing


def _size_distance(theme: IconTheme, subdir: str, size: int) -> int:
    """0 when ``subdir`` matches ``size``, else how far it is (specification's rules)."""
    nominal = int(theme.getSize(subdir))
    kind = theme.getType(subdir)
    if kind == "Fixed":
        return abs(nominal - size)
    if kind == "Scalable":
        low, high = int(theme.getMinSize(subdir)), int(theme.getMaxSize(subdir))
    else:  # Threshold, the default
        threshold = int(theme.getThreshold(subdir))
        low, high = nominal - threshold, nominal + threshold
    if size < low:
        return low - size
    if size > high:
        return size - high
    return 0


def render_png(path: str, size: int) -> bytes:
    """Decode a PNG/XPM file and return it as a ``size`` x ``size`` RGBA PNG, centred."""
    from PIL import Image

    try:
        length = os.stat(path).st_size
    except OSError as error:
        raise IconError(f"cannot read icon {path}: {error.strerror}") from error
    if length > MAX_ICON_FILE_BYTES:
        raise IconError(f"icon {path} is {length} bytes; the limit is {MAX_ICON_FILE_BYTES}")
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width < 1 or height < 1 or width * height > MAX_SOURCE_PIXELS:
                raise IconError(f"icon {path} is {width}x{height}; at most {MAX_SOURCE_PIXELS} pixels")
            rgba = image.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise IconError(f"cannot decode icon {path}: {error}") from error
    if max(width, height) > size:
        rgba.thumbnail((size, size), Image.Resampling.LANCZOS)
    elif max(width, height) < size:
        scale = size / max(width, height)
        rgba = rgba.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    canvas.paste(rgba, ((size - rgba.width) // 2, (size - rgba.height) // 2))
    data = _encode(canvas)
    if len(data) > MAX_ICON_PNG_BYTES:
        data = _encode(canvas.quantize(colors=256, method=Image.Quantize.FASTOCTREE))
    if len(data) > MAX_ICON_PNG_BYTES:
        raise IconError(f"icon {path} at {size}px is {len(data)} bytes as PNG; the limit is {MAX_ICON_PNG_BYTES}")
    return data


def _encode(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()

# The settings sessiond hands a session agent, typed once and shared by
# both ends: sessiond builds them from its config, serializes them to JSON in
# the agent's environment (SESSIOND_AGENT_SETTINGS, carried by the sandbox
# spec like the link token), and the agent parses them back here. One
# definition, so the two sides cannot disagree about names, types or
# defaults the way a hand-built argv and a separate argparse could.
#
# This module imports nothing from the daemon, so the agent may import it.
"""AgentSettings and its JSON form."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any, Final, NamedTuple

from protocol.frozen import frozen_dataclass

# The environment variable that carries the settings to the agent.
SETTINGS_ENV: Final = "SESSIOND_AGENT_SETTINGS"
# The login's first launch, a SPAWN_APP's JSON (sessiond.launching.FirstLaunch): the agent
# runs it as soon as its X server has the session's size, before the rest of its set-up and
# its link (absent: none).
FIRST_LAUNCH_ENV: Final = "SESSIOND_FIRST_LAUNCH"
# Largest serialized settings accepted (the spec bounds env values at 4 KiB).
MAX_SETTINGS_BYTES: Final = 4096
_MAX_SIDE: Final = 8192
_MAX_KBPS: Final = 10_000_000
# [session] mode values.
SESSION_MODES: Final = ("seamless", "desktop")
# [session] display values (sessiond.display_config.DISPLAYS; repeated: the agent imports nothing of the daemon).
SESSION_DISPLAYS: Final = ("native", "xpra")
_MAX_CLIP_BYTES: Final = 64 * 1024 * 1024
_MAX_FILE_BYTES: Final = 2**40
_MAX_STR: Final = 255
# [session] idle_release_seconds bounds: at least a second (below that a pause
# between two keystrokes would drop the buffers the next one needs), at most a
# day (longer is the same as never for a session that someone uses).
IDLE_RELEASE_MIN_SECONDS: Final = 1.0
IDLE_RELEASE_MAX_SECONDS: Final = 86400.0


class SettingsError(ValueError):
    """The serialized settings are malformed or out of range."""


def _int(data: dict[str, Any], name: str, lo: int, hi: int) -> int:
    value = data[name]
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise SettingsError(f"{name} must be an integer between {lo} and {hi}")
    return value


def _float(data: dict[str, Any], name: str, lo: float, hi: float) -> float:
    value = data[name]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
        raise SettingsError(f"{name} must be a number between {lo} and {hi}")
    return float(value)


def _bool(data: dict[str, Any], name: str) -> bool:
    value = data[name]
    if not isinstance(value, bool):
        raise SettingsError(f"{name} must be true or false")
    return value


def _str(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str) or len(value) > _MAX_STR or "\0" in value:
        raise SettingsError(f"{name} must be a string of at most {_MAX_STR} characters")
    return value


def _mode(data: dict[str, Any]) -> str:
    value = data["mode"]
    if value not in SESSION_MODES:
        raise SettingsError(f"mode must be one of {', '.join(SESSION_MODES)}")
    return str(value)


def _display(data: dict[str, Any]) -> str:
    value = data["display"]
    if value not in SESSION_DISPLAYS:
        raise SettingsError(f"display must be one of {', '.join(SESSION_DISPLAYS)}")
    return str(value)


class XScreen(NamedTuple):
    """A session's X screen as Xvfb starts it (and as a warm slot's X server must have it)."""

    width: int
    height: int
    depth: int
    root_shown: bool


# The depth every session's screen has.
X_DEPTH: Final = 24
# Smallest screen side a session gets: below this, apps cannot show anything useful, and a
# client minimised to nothing must not shrink the session's apps to nothing.
MIN_SIDE: Final = 64


def clamp_size(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int]:
    """Clamp a requested screen size to [MIN_SIDE, max] on each side (a client's RESIZE_REQUEST,
    AUTH's screen)."""
    return (max(MIN_SIDE, min(width, max_width)), max(MIN_SIDE, min(height, max_height)))


@frozen_dataclass
class AgentSettings:
    """What one session agent runs with (from [session], [display], [audio], [apps])."""

    socket: str  # the link's Unix socket, in the session directory
    width: int = 1280
    height: int = 800
    max_width: int = 3840  # the largest size a client may resize the screen to (Xvfb starts at it)
    max_height: int = 2160
    jpeg_quality: int = 75
    max_fps: int = 60
    frames_in_flight: int = 2
    launch_timeout: float = 20.0
    display_max_kbps: int = 0  # 0: no cap
    display_adaptive: bool = True  # [display] adaptive: pace and set quality from the link estimate
    display_glyphs: bool = True  # [display] glyphs: text as GLYPHS regions for clients that take them
    audio_max_kbps: int = 0
    sound_server_on_demand: bool = True  # [audio] sound_server = on_demand (sessiond.agent.audio_server)
    mode: str = "seamless"  # [session] mode: "seamless" (the agent is the WM) or "desktop"
    idle_release_seconds: float = 15.0  # [session] idle_release_seconds (agent/idle_release.py)
    # [clipboard] and [files] as sessiond resolved them for this user (sessiond
    # enforces them in the relay; the agent applies them again).
    clip_to_client: bool = True
    clip_from_client: bool = True
    clip_primary_to_client: bool = False
    clip_primary_from_client: bool = True
    clip_max_text_bytes: int = 4 * 1024 * 1024
    clip_max_image_bytes: int = 32 * 1024 * 1024
    clip_types: str = "text/plain;charset=utf-8 image/png"
    files_to_client: bool = True
    files_from_client: bool = True
    files_max_bytes: int = 4 * 1024 * 1024 * 1024
    files_downloads_dir: str = "Downloads"
    files_outbox_dir: str = "Outbox"
    display: str = "native"  # [session] display as resolved for this user: "native" or "xpra"
    xpra: str = ""  # the xpra executable (display = xpra)

    def x_screen(self) -> XScreen:
        """The X server this session runs: started at the largest size a client may ask for (RandR
        sets the real size); in seamless mode the root is never shown (windows are redirected), so
        Xvfb paints no background and no cursor. With xpra, xpra is the window manager."""
        seamless = self.mode == "seamless" and self.display != "xpra"
        return XScreen(max(self.width, self.max_width), max(self.height, self.max_height), X_DEPTH, not seamless)

    def to_json(self) -> str:
        """The compact JSON form sessiond puts in the agent's environment."""
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AgentSettings:
        """Parse and check TEXT; SettingsError naming the bad field otherwise."""
        if len(text.encode()) > MAX_SETTINGS_BYTES:
            raise SettingsError(f"agent settings exceed {MAX_SETTINGS_BYTES} bytes")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise SettingsError(f"agent settings are not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise SettingsError("agent settings must be a JSON object")
        names = {f.name for f in fields(cls)}
        unknown, missing = set(data) - names, names - set(data)
        if unknown or missing:
            raise SettingsError(f"agent settings: unknown {sorted(unknown)}, missing {sorted(missing)}")
        socket = data["socket"]
        if not isinstance(socket, str) or not socket.startswith("/") or len(socket) > 4096:
            raise SettingsError("socket must be an absolute path")
        return cls(
            socket=socket,
            width=_int(data, "width", 64, _MAX_SIDE),
            height=_int(data, "height", 64, _MAX_SIDE),
            max_width=_int(data, "max_width", 64, _MAX_SIDE),
            max_height=_int(data, "max_height", 64, _MAX_SIDE),
            jpeg_quality=_int(data, "jpeg_quality", 10, 100),
            max_fps=_int(data, "max_fps", 1, 240),
            frames_in_flight=_int(data, "frames_in_flight", 1, 16),
            launch_timeout=_float(data, "launch_timeout", 1.0, 300.0),
            display_max_kbps=_int(data, "display_max_kbps", 0, _MAX_KBPS),
            display_adaptive=_bool(data, "display_adaptive"),
            display_glyphs=_bool(data, "display_glyphs"),
            audio_max_kbps=_int(data, "audio_max_kbps", 0, _MAX_KBPS),
            sound_server_on_demand=_bool(data, "sound_server_on_demand"),
            mode=_mode(data),
            idle_release_seconds=_float(data, "idle_release_seconds", IDLE_RELEASE_MIN_SECONDS,
                                        IDLE_RELEASE_MAX_SECONDS),  # fmt: skip
            clip_to_client=_bool(data, "clip_to_client"),
            clip_from_client=_bool(data, "clip_from_client"),
            clip_primary_to_client=_bool(data, "clip_primary_to_client"),
            clip_primary_from_client=_bool(data, "clip_primary_from_client"),
            clip_max_text_bytes=_int(data, "clip_max_text_bytes", 0, _MAX_CLIP_BYTES),
            clip_max_image_bytes=_int(data, "clip_max_image_bytes", 0, _MAX_CLIP_BYTES),
            clip_types=_str(data, "clip_types"),
            files_to_client=_bool(data, "files_to_client"),
            files_from_client=_bool(data, "files_from_client"),
            files_max_bytes=_int(data, "files_max_bytes", 0, _MAX_FILE_BYTES),
            files_downloads_dir=_str(data, "files_downloads_dir"),
            files_outbox_dir=_str(data, "files_outbox_dir"),
            display=_display(data),
            xpra=_str(data, "xpra"),
        )

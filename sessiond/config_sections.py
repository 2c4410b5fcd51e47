# The typed sections of sessiond.conf: one frozen dataclass per section,
# field for field the keys of config.SCHEMA (the whitelist with defaults and
# parsers), checked against it when config is imported. Callers read
# `config.session.width` as an int, and mypy checks every read.
"""The section dataclasses of Config and SECTION_TYPES."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apps.entitlements import Rule
from isolation.limits import LimitOverride


@dataclass(frozen=True)
class ServerSection:
    """[server]"""

    listen: tuple[str, int]
    state_dir: str
    runtime_dir: str
    on_stop: str
    login_grace: float
    max_unauthenticated: int
    max_unauthenticated_per_source: int


@dataclass(frozen=True)
class AuthSection:
    """[auth]"""

    pam_service: str
    failure_delay: float
    max_failures: int
    failure_window: float
    min_uid: int
    login_timeout: float
    resume_token_lifetime: float


@dataclass(frozen=True)
class SessionSection:
    """[session]; memory_max, pids_max, cpu_max are None for "max"; cpu_weight 1..10000."""

    width: int
    height: int
    max_width: int
    max_height: int
    python: str
    start_timeout: float
    path: str
    lang: str
    network: str
    hostname: str
    memory_max: int | None
    pids_max: int | None
    cpu_max: int | None
    cpu_weight: int
    mode: str  # "seamless": each app window is a client window; "desktop": one screen
    display: str  # "native" (sessiond's display) or "xpra" (sessiond.display_config)
    display_users: tuple[tuple[str, str], ...]  # per-user overrides of display
    display_groups: tuple[tuple[str, str], ...]
    xpra: str  # the xpra executable sessions run (its own venv under the prefix)
    zygote: bool  # the sandbox entry preloads the agent and runs it without exec (isolation.zygote)
    warm_pool: int  # sandboxes started ahead of logins (sessiond.warm_pool); 0 = none
    warm_x: bool  # warm and early slots start the session's X server before the login (isolation/xslot.py)
    x_uids: tuple[int, int]  # the uids those X servers run as, one per slot (sessiond/x_uids.py)
    compose_cache: bool  # libX11's compose cache for lang made at start if missing (sessiond/compose_cache.py)
    idle_release_seconds: float  # an idle display gives back its rebuildable buffers (agent/idle_release.py)


@dataclass(frozen=True)
class LimitsSection:
    """[limits]: per-user and per-group overrides of the [session] limits."""

    users: tuple[LimitOverride, ...]
    groups: tuple[LimitOverride, ...]


@dataclass(frozen=True)
class AppsSection:
    """[apps]"""

    directories: tuple[str, ...]
    terminal: tuple[str, ...]
    launch_timeout: float
    end_session_with_last_app: bool
    reload_interval: float
    icon_theme: str
    icon_dirs: tuple[str, ...]


@dataclass(frozen=True)
class EntitlementsSection:
    """[entitlements]"""

    default: bool
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class PolicySection:
    """[policy]: idle and disconnect timers in seconds (0: off)."""

    idle_disconnect: float
    idle_logoff: float
    disconnected_logoff: float
    check_interval: float


@dataclass(frozen=True)
class AdminSection:
    """[admin]; both paths absolute once loaded."""

    socket: str
    token_file: str


@dataclass(frozen=True)
class DisplaySection:
    """[display]"""

    jpeg_quality: int
    max_fps: int
    frames_in_flight: int
    max_kbps: int
    adaptive: bool
    glyphs: bool


@dataclass(frozen=True)
class AudioSection:
    """[audio]"""

    max_kbps: int
    sound_server: str  # "on_demand": PulseAudio starts on first use; "eager": at session start


@dataclass(frozen=True)
class UsbSection:
    """[usb]"""

    enabled: bool
    allow: tuple[str, ...]
    deny: tuple[str, ...]
    users: dict[str, tuple[str, ...]]
    groups: dict[str, tuple[str, ...]]
    recheck_interval: float


@dataclass(frozen=True)
class ClipboardSection:
    """[clipboard]: directions, sizes and types of clipboard content; users/groups override them."""

    to_client: bool
    from_client: bool
    primary_to_client: bool
    primary_from_client: bool
    max_text_bytes: int
    max_image_bytes: int
    types: frozenset[str]
    users: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
    groups: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]


@dataclass(frozen=True)
class FilesSection:
    """[files]: directions and size of file transfer, and where files go; users/groups override."""

    to_client: bool
    from_client: bool
    max_file_bytes: int
    downloads_dir: str
    outbox_dir: str
    users: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
    groups: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]


@dataclass(frozen=True)
class FarmSection:
    """[farm] (docs/farm.md); ETCD empty: a single host on its own registry."""

    etcd: tuple[str, ...]
    host_id: str
    advertise: str
    capacity: int
    lease_ttl: int
    etcd_ca: str
    etcd_cert: str
    etcd_key: str
    prefix: str
    ticket_ttl: int

    @property
    def enabled(self) -> bool:
        """Whether this host is part of a farm (any etcd endpoint given)."""
        return bool(self.etcd)


SECTION_TYPES: dict[str, type] = {
    "server": ServerSection, "auth": AuthSection, "session": SessionSection, "limits": LimitsSection,
    "apps": AppsSection, "entitlements": EntitlementsSection, "policy": PolicySection, "admin": AdminSection,
    "display": DisplaySection, "audio": AudioSection, "usb": UsbSection, "clipboard": ClipboardSection,
    "files": FilesSection,
    "farm": FarmSection,
}  # fmt: skip

# Configuration: one INI file with documented sections, over embedded
# defaults. Unknown sections and keys are errors naming file, section and key,
# so a typo never silently falls back to a default. SCHEMA is the whitelist
# (default and parser per key); each section is then a frozen dataclass, so
# callers read `config.session.width` as an int, checked by mypy.
"""Load and validate sessiond.conf."""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, fields
from typing import Callable, TypeVar

from apps.entitlements import parse_default, parse_rules
from isolation.limits import parse_cpu, parse_cpu_weight, parse_memory, parse_overrides, parse_pids
from isolation.sandbox import NETWORK_MODES
from sessiond.config_sections import (
    SECTION_TYPES,
    AdminSection,
    AppsSection,
    AudioSection,
    AuthSection,
    ClipboardSection,
    DisplaySection,
    EntitlementsSection,
    FarmSection,
    FilesSection,
    LimitsSection,
    PolicySection,
    ServerSection,
    SessionSection,
    UsbSection,
)
from sessiond.agent.settings import IDLE_RELEASE_MAX_SECONDS, IDLE_RELEASE_MIN_SECONDS
from sessiond.display_config import parse_display, parse_display_overrides
from sessiond.transfer_config import CLIPBOARD_KEYS, FILES_KEYS, home_dir_name, overrides_of, parse_types
from sessiond.usb_rules import parse_principal_rules as _usb_principals
from sessiond.usb_rules import parse_rules as _usb_rules
from sessiond.x_uids import parse_x_uids

DEFAULT_INSTALL_PREFIX = "/opt/sessiond"
# Warm sandboxes kept ready ([session] warm_pool): each idle one costs a few
# MiB of root memory (docs/admin.md), so a typo cannot pin gigabytes.
MAX_WARM_POOL = 64
_Number = TypeVar("_Number", int, float)


class ConfigError(Exception):
    """The configuration file is unreadable or contains an invalid entry."""


def _ranged(kind: Callable[[str], _Number], lo: _Number, hi: _Number) -> Callable[[str], _Number]:
    def parse(value: str) -> _Number:
        number = kind(value)
        if not lo <= number <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return number

    return parse


def _int(lo: int, hi: int) -> Callable[[str], int]:
    return _ranged(int, lo, hi)


def _float(lo: float, hi: float) -> Callable[[str], float]:
    return _ranged(float, lo, hi)


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    return parse


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError("expected HOST:PORT")
    return host.strip("[]"), _int(0, 65535)(port)


def _path_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(":") if part.strip())


def _words(value: str) -> tuple[str, ...]:
    return tuple(value.split())


def _network(value: str) -> str:
    if value not in NETWORK_MODES:
        raise ValueError(f"want one of {', '.join(NETWORK_MODES)}")
    return value


def _hostname(value: str) -> str:
    from isolation.spec import HOSTNAME_RE, MAX_HOSTNAME_BYTES

    if value and (len(value) > MAX_HOSTNAME_BYTES or not HOSTNAME_RE.fullmatch(value)):
        raise ValueError("not a valid host name")
    return value


def _etcd(value: str) -> tuple[str, ...]:
    if not value:  # no farm: its modules (an HTTP client, TLS endpoints) stay unloaded
        return ()
    from sessiond.farm.etcd_client import parse_endpoints

    return parse_endpoints(value)


def _host_id(value: str) -> str:
    if not value:
        return ""
    from sessiond.farm.records import check_host_id

    return check_host_id(value)


def _advertise(value: str) -> str:
    if value:
        _listen(value)
    return value


def _lease_ttl(value: str) -> int:
    from sessiond.farm.records import MIN_LEASE_TTL  # (not hosts.py: it imports Twisted)

    return _int(MIN_LEASE_TTL, 3600)(value)


def _ticket_ttl(value: str) -> int:
    from sessiond.farm.tickets import MAX_TICKET_TTL, MIN_TICKET_TTL

    return _int(MIN_TICKET_TTL, MAX_TICKET_TTL)(value)


def _prefix(value: str) -> str:
    if not value.startswith("/") or not value.endswith("/") or "//" in value:
        raise ValueError("must start and end with / (e.g. /sessiond/farm/)")
    return value


def _bool(value: str) -> bool:
    if value not in ("true", "false"):
        raise ValueError("must be true or false")
    return value == "true"


# section -> key -> (default, parser). This table is the documentation of
# record; conf/sessiond.conf repeats it with comments.
SCHEMA: dict[str, dict[str, tuple[str, Callable[[str], object]]]] = {
    "server": {
        "listen": ("127.0.0.1:4443", _listen),
        "state_dir": ("/var/lib/sessiond", str),
        "runtime_dir": ("/run/sessiond", str),
        "on_stop": ("keep", _choice("keep", "logoff")),
        # Pre-auth phase (sessiond/preauth.py): seconds from accept to login, and caps.
        "login_grace": ("60", _float(0.1, 3600.0)),
        "max_unauthenticated": ("512", _int(1, 100_000)),
        "max_unauthenticated_per_source": ("64", _int(1, 100_000)),
    },
    "auth": {
        "pam_service": ("sessiond", str),
        "failure_delay": ("1.0", _float(0.0, 30.0)),
        "max_failures": ("5", _int(1, 1000)),
        "failure_window": ("300", _float(1.0, 86400.0)),
        "min_uid": ("1000", _int(1, 2**31 - 1)),
        "login_timeout": ("60", _float(1.0, 3600.0)),
        "resume_token_lifetime": ("604800", _float(1.0, 365 * 86400.0)),
    },
    "session": {
        "width": ("1280", _int(64, 8192)),
        "height": ("800", _int(64, 8192)),
        "max_width": ("2560", _int(64, 8192)),
        "max_height": ("1440", _int(64, 8192)),
        "python": (DEFAULT_INSTALL_PREFIX + "/venv/bin/python", str),
        "start_timeout": ("15", _float(1.0, 300.0)),
        "path": ("/usr/local/bin:/usr/bin:/bin", str),
        "lang": ("C.UTF-8", str),
        "network": ("host", _network),
        "hostname": ("", _hostname),
        "memory_max": ("2G", parse_memory),
        "pids_max": ("1024", parse_pids),
        "cpu_max": ("max", parse_cpu),
        "cpu_weight": ("100", parse_cpu_weight),
        "mode": ("seamless", _choice("seamless", "desktop")),
        # docs/xpra.md: "native" (sessiond's display) or "xpra" (an xpra server in the sandbox).
        "display": ("native", parse_display),
        "display_users": ("", parse_display_overrides),
        "display_groups": ("", parse_display_overrides),
        "xpra": (DEFAULT_INSTALL_PREFIX + "/xpra-venv/bin/xpra", str),
        "zygote": ("true", _bool),
        "warm_pool": ("0", _int(0, MAX_WARM_POOL)),
        # sessiond/x_uids.py, docs/admin.md: warm and early slots start their X server
        # before the login, as a uid of their own from x_uids.
        "warm_x": ("true", _bool),
        "x_uids": ("1900000000-1900009999", parse_x_uids),
        # sessiond/compose_cache.py: libX11's global compose cache for lang, made at start.
        "compose_cache": ("true", _bool),
        "idle_release_seconds": ("15", _float(IDLE_RELEASE_MIN_SECONDS, IDLE_RELEASE_MAX_SECONDS)),
    },
    "limits": {
        "users": ("", parse_overrides),
        "groups": ("", parse_overrides),
    },
    "apps": {
        "directories": ("/etc/sessiond/apps", _path_list),
        "terminal": ("xterm -e", _words),
        "launch_timeout": ("20", _float(1.0, 300.0)),
        "end_session_with_last_app": ("true", _bool),
        "reload_interval": ("2", _float(0.1, 3600.0)),
        "icon_theme": ("Adwaita", str),
        "icon_dirs": ("/usr/local/share/icons:/usr/share/icons:/usr/share/pixmaps", _path_list),
    },
    "entitlements": {
        "default": ("everyone", parse_default),
        "rules": ("", parse_rules),
    },
    "policy": {
        "idle_disconnect": ("0", _float(0.0, 365 * 86400.0)),
        "idle_logoff": ("0", _float(0.0, 365 * 86400.0)),
        "disconnected_logoff": ("0", _float(0.0, 365 * 86400.0)),
        "check_interval": ("5", _float(0.05, 3600.0)),
    },
    "admin": {
        "socket": ("", str),
        "token_file": ("", str),
    },
    "display": {
        "jpeg_quality": ("75", _int(10, 100)),
        "max_fps": ("60", _int(1, 240)),
        "frames_in_flight": ("2", _int(1, 16)),
        "max_kbps": ("0", _int(0, 10_000_000)),
        "adaptive": ("true", _bool),
        "glyphs": ("true", _bool),
    },
    "audio": {
        "max_kbps": ("0", _int(0, 10_000_000)),
        "sound_server": ("on_demand", _choice("on_demand", "eager")),
    },
    "usb": {
        "enabled": ("true", _bool),
        "allow": ("*", _usb_rules),
        "deny": ("", _usb_rules),
        "users": ("", _usb_principals),
        "groups": ("", _usb_principals),
        "recheck_interval": ("2", _float(0.1, 3600.0)),
    },
    "clipboard": {
        "to_client": ("true", _bool),
        "from_client": ("true", _bool),
        "primary_to_client": ("false", _bool),
        "primary_from_client": ("true", _bool),
        "max_text_bytes": ("4194304", CLIPBOARD_KEYS["max_text_bytes"]),
        "max_image_bytes": ("33554432", CLIPBOARD_KEYS["max_image_bytes"]),
        "types": ("text/plain;charset=utf-8 image/png", parse_types),
        "users": ("", overrides_of(CLIPBOARD_KEYS)),
        "groups": ("", overrides_of(CLIPBOARD_KEYS)),
    },
    "files": {
        "to_client": ("true", _bool),
        "from_client": ("true", _bool),
        "max_file_bytes": ("4294967296", FILES_KEYS["max_file_bytes"]),
        "downloads_dir": ("Downloads", home_dir_name),
        "outbox_dir": ("Outbox", home_dir_name),
        "users": ("", overrides_of(FILES_KEYS)),
        "groups": ("", overrides_of(FILES_KEYS)),
    },
    # docs/farm.md: no etcd endpoint, no farm (the single-host registry, as before).
    "farm": {
        "etcd": ("", _etcd),
        "host_id": ("", _host_id),
        "advertise": ("", _advertise),
        "capacity": ("50", _int(1, 100_000)),
        "lease_ttl": ("10", _lease_ttl),
        "etcd_ca": ("", str),
        "etcd_cert": ("", str),
        "etcd_key": ("", str),
        "prefix": ("/sessiond/farm/", _prefix),
        "ticket_ttl": ("30", _ticket_ttl),
    },
}


def _check_sections() -> None:
    """SCHEMA (the whitelist) and the section dataclasses must name the same keys, in order;
    checked at import so a key added to one and not the other fails at once, by name."""
    if list(SECTION_TYPES) != list(SCHEMA):
        raise TypeError(f"config sections {list(SCHEMA)} != section types {list(SECTION_TYPES)}")
    for name, cls in SECTION_TYPES.items():
        keys, names = list(SCHEMA[name]), [f.name for f in fields(cls)]
        if keys != names:
            raise TypeError(f"[{name}] keys {keys} != fields of {cls.__name__} {names}")


_check_sections()


@dataclass(frozen=True)
class Config:
    """Typed view of sessiond.conf; build it with load_config()."""

    server: ServerSection
    auth: AuthSection
    session: SessionSection
    limits: LimitsSection
    apps: AppsSection
    entitlements: EntitlementsSection
    policy: PolicySection
    admin: AdminSection
    display: DisplaySection
    audio: AudioSection
    usb: UsbSection
    clipboard: ClipboardSection
    files: FilesSection
    farm: FarmSection
    source: str

    def get(self, section: str, key: str) -> object:
        """One value by name (for tools and tests; code reads the typed sections)."""
        return getattr(getattr(self, section), key)

    @property
    def values(self) -> dict[str, dict[str, object]]:
        """Every section as a dict (for comparisons)."""
        return {name: {f.name: getattr(getattr(self, name), f.name) for f in fields(cls)}
                for name, cls in SECTION_TYPES.items()}  # fmt: skip

    @property
    def listen(self) -> tuple[str, int]:
        return self.server.listen

    @property
    def state_dir(self) -> str:
        return self.server.state_dir

    @property
    def runtime_dir(self) -> str:
        return self.server.runtime_dir


def _check_farm(source: str, farm: dict[str, object]) -> None:
    """A farm needs an address for clients and a host id (the host name by default); https
    endpoints need the CA; the TLS files become absolute paths."""
    import socket

    from sessiond.farm.records import check_host_id

    if not farm["etcd"]:
        return
    if not farm["advertise"]:
        raise ConfigError(f"{source}: [farm] advertise = HOST:PORT is required with etcd (where clients are sent)")
    if not farm["host_id"]:
        try:
            farm["host_id"] = check_host_id(socket.gethostname())
        except ValueError as exc:
            raise ConfigError(f"{source}: [farm] host_id: not set and {exc}") from exc
    endpoints = farm["etcd"]
    if isinstance(endpoints, tuple) and endpoints[0].startswith("https://") and not farm["etcd_ca"]:
        raise ConfigError(f"{source}: [farm] etcd_ca is required for https etcd endpoints")
    if bool(farm["etcd_cert"]) != bool(farm["etcd_key"]):
        raise ConfigError(f"{source}: [farm] etcd_cert and etcd_key go together")
    for key in ("etcd_ca", "etcd_cert", "etcd_key"):
        if farm[key]:
            farm[key] = os.path.abspath(str(farm[key]))


def load_config(path: str | None = None, overrides: dict[str, dict[str, str]] | None = None) -> Config:
    """Read PATH (or only the defaults when None), then apply OVERRIDES.

    Raises ConfigError naming the file, section and key of any bad entry.
    """
    raw: dict[str, dict[str, str]] = {
        section: {key: default for key, (default, _parser) in keys.items()}
        for section, keys in SCHEMA.items()
    }
    source = "<defaults>"
    if path is not None:
        source = path
        parser = configparser.ConfigParser(interpolation=None, default_section="\0no-default")
        try:
            with open(path, encoding="utf-8") as handle:
                parser.read_file(handle, source=path)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from exc
        except configparser.Error as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        for section in parser.sections():
            if section not in SCHEMA:
                raise ConfigError(f"{path}: unknown section [{section}]")
            for key, value in parser.items(section):
                if key not in SCHEMA[section]:
                    raise ConfigError(f"{path}: [{section}] unknown key {key!r}")
                raw[section][key] = value
    for section, given in (overrides or {}).items():
        for key, value in given.items():
            if section not in SCHEMA or key not in SCHEMA[section]:
                raise ConfigError(f"override: unknown setting [{section}] {key}")
            raw[section][key] = value
    values: dict[str, dict[str, object]] = {}
    for section, keys in SCHEMA.items():
        values[section] = {}
        for key, (_default, parse) in keys.items():
            try:
                values[section][key] = parse(raw[section][key].strip())
            except ValueError as exc:
                raise ConfigError(f"{source}: [{section}] {key} = {raw[section][key]!r}: {exc}") from exc
    for section, key in (("server", "state_dir"), ("server", "runtime_dir")):
        values[section][key] = os.path.abspath(str(values[section][key]))
    admin = values["admin"]
    admin["socket"] = os.path.abspath(str(admin["socket"])) if admin["socket"] else os.path.join(
        str(values["server"]["runtime_dir"]), "control.sock")
    admin["token_file"] = os.path.abspath(str(admin["token_file"])) if admin["token_file"] else os.path.join(
        str(values["server"]["state_dir"]), "admin-token")
    directories = values["apps"]["directories"]
    if isinstance(directories, tuple):
        values["apps"]["directories"] = tuple(os.path.abspath(str(d)) for d in directories)
    _check_farm(source, values["farm"])
    built = {name: cls(**values[name]) for name, cls in SECTION_TYPES.items()}
    return Config(source=source, **built)

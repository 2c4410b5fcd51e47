# The slot line: what a warm sandbox slot learns before its session spec.
#
# Why: a warm or early slot (sessiond/warm_pool.py) may start the session's
# X server before anyone logged in, so that login -> first frame is PAM +
# attach + launch. To do that it must know, before the spec, which
# namespaces to create, which uid owns its X server and the screen to start,
# and which cgroup to wait in (isolation/slot_cgroup.py: the login renames it
# to the session's, so the claim moves no process).
# The daemon writes exactly one JSON line with those typed fields on the
# slot's stdin right after spawning it (`isolation.enter --zygote
# --x-slot`); the spec follows later, as for any slot. Like the spec
# (isolation/spec.py), the line is bounded, strictly decoded and never
# carries an argv, a path or an environment: the Xvfb command line is built
# from these numbers by root-owned code only.
#
# The X parameters the slot started reach the session twice: the spec's env
# must ask for exactly this screen (X_SCREEN_ENV; enter refuses a spec that
# does not), and enter hands the agent the running server's display, pid and
# framebuffer segment (X_DISPLAY_ENV, X_PID_ENV, X_SHMID_ENV), which the
# agent validates before adopting it instead of starting its own.
"""SlotParams, parse_slot_line() / slot_line(), screen_text() and the SESSIOND_X_* names."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final

from isolation.spec import strict_json

# One line of a few dozen bytes; anything longer is not a slot line.
MAX_SLOT_LINE_BYTES = 512
# The uids a slot's X server may run as: never root, below 2^31 (the kernel's
# uid_t is unsigned 32-bit, but 2^32-1 is "no uid" and tools misprint >= 2^31).
MIN_X_UID = 1
MAX_X_UID = 2**31 - 1
# Screen bounds: the agent's own (settings.py: 64..8192 per side) and Xvfb's depths.
MIN_SIDE = 64
MAX_SIDE = 8192
DEPTHS = (16, 24, 32)
# Namespaces a slot with an X server must create (its X server lives in
# them before the session does), and the one it may add (network = loopback).
REQUIRED_NAMESPACES = ("mount", "ipc", "uts", "pid")
OPTIONAL_NAMESPACES = ("net",)

# The cgroup a slot waits in (isolation/slot_cgroup.py): beside the sessions' (a v1 rename
# stays within one parent); session ids are hex, so this prefix never names a session.
SLOT_CGROUP_PREFIX: Final = "slot-"
SLOT_CGROUP_RE: Final = re.compile(r"slot-[0-9a-f]{16}")

# The spec's env variable that asks for the slot's screen (screen_text()).
X_SCREEN_ENV = "SESSIOND_X_SCREEN"
# What enter adds to the agent's env: the adopted server's ":N", pid and framebuffer segment.
X_DISPLAY_ENV = "SESSIOND_X_DISPLAY"
X_PID_ENV = "SESSIOND_X_PID"
X_SHMID_ENV = "SESSIOND_X_SHMID"
# All four: the agent takes them out of its environment (its apps do not see them).
X_SLOT_ENVS = (X_SCREEN_ENV, X_DISPLAY_ENV, X_PID_ENV, X_SHMID_ENV)

_KEYS = frozenset({"x_uid", "namespaces", "width", "height", "depth", "root_shown", "cgroup"})


class SlotLineError(ValueError):
    """The slot line is malformed or out of bounds."""


def screen_text(width: int, height: int, depth: int, root_shown: bool) -> str:
    """The one spelling of a screen shared by the slot, the spec's env and the agent: "WxHxD+root"
    (root window shown) or "WxHxD-root" (seamless: no background, no cursor)."""
    return f"{width}x{height}x{depth}{'+' if root_shown else '-'}root"


@dataclass(frozen=True)
class SlotParams:
    """A slot's X server: its owner uid (gid the same), namespaces and screen; and the slot
    cgroup the slot waits in (isolation/slot_cgroup.py; "": none, it joins the session's at
    the claim)."""

    x_uid: int
    namespaces: tuple[str, ...]
    width: int
    height: int
    depth: int
    root_shown: bool
    cgroup: str = ""

    def __post_init__(self) -> None:
        for name in ("x_uid", "width", "height", "depth"):
            if not _is_int(getattr(self, name)):
                raise SlotLineError(f"{name} must be an integer")
        if not MIN_X_UID <= self.x_uid <= MAX_X_UID:
            raise SlotLineError(f"x_uid {self.x_uid} is not in {MIN_X_UID}..{MAX_X_UID}")
        for name in ("width", "height"):
            if not MIN_SIDE <= getattr(self, name) <= MAX_SIDE:
                raise SlotLineError(f"{name} {getattr(self, name)} is not in {MIN_SIDE}..{MAX_SIDE}")
        if self.depth not in DEPTHS:
            raise SlotLineError(f"depth {self.depth} is not one of {DEPTHS}")
        if not isinstance(self.root_shown, bool):
            raise SlotLineError("root_shown must be true or false")
        if not isinstance(self.namespaces, tuple) or not all(isinstance(n, str) for n in self.namespaces):
            raise SlotLineError("namespaces must be a list of names")
        unknown = set(self.namespaces) - set(REQUIRED_NAMESPACES) - set(OPTIONAL_NAMESPACES)
        if unknown:
            raise SlotLineError(f"namespace(s) {sorted(unknown)} not supported for a slot")
        if len(set(self.namespaces)) != len(self.namespaces):
            raise SlotLineError("namespaces has duplicates")
        missing = set(REQUIRED_NAMESPACES) - set(self.namespaces)
        if missing:
            raise SlotLineError(f"a slot with an X server needs the namespace(s) {sorted(missing)}")
        if not isinstance(self.cgroup, str) or (self.cgroup and not SLOT_CGROUP_RE.fullmatch(self.cgroup)):
            raise SlotLineError(f"cgroup {self.cgroup!r} is not a slot cgroup's name")

    @property
    def screen(self) -> str:
        """This slot's screen_text()."""
        return screen_text(self.width, self.height, self.depth, self.root_shown)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def slot_line(params: SlotParams) -> bytes:
    """The line the daemon writes (JSON, newline-terminated)."""
    doc = {"x_uid": params.x_uid, "namespaces": list(params.namespaces), "width": params.width,
           "height": params.height, "depth": params.depth, "root_shown": params.root_shown,
           "cgroup": params.cgroup}  # fmt: skip
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode("ascii") + b"\n"


def parse_slot_line(data: bytes) -> SlotParams:
    """Decode one slot line (with or without its newline); SlotLineError on any deviation."""
    if len(data) > MAX_SLOT_LINE_BYTES:
        raise SlotLineError(f"slot line is more than {MAX_SLOT_LINE_BYTES} bytes")
    if data.endswith(b"\n"):
        data = data[:-1]
    if b"\n" in data:
        raise SlotLineError("slot line has more than one line")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise SlotLineError(f"slot line is not valid JSON: {exc}") from None
    raw = strict_json(text, SlotLineError, "slot line")
    if not isinstance(raw, dict):
        raise SlotLineError("slot line must be a JSON object")
    unknown, missing = raw.keys() - _KEYS, _KEYS - raw.keys()
    if unknown:
        raise SlotLineError(f"unknown key(s) in slot line: {sorted(unknown)}")
    if missing:
        raise SlotLineError(f"missing key(s) in slot line: {sorted(missing)}")
    if not isinstance(raw["namespaces"], list):
        raise SlotLineError("namespaces must be a list of names")
    return SlotParams(x_uid=raw["x_uid"], namespaces=tuple(raw["namespaces"]), width=raw["width"],
                      height=raw["height"], depth=raw["depth"], root_shown=raw["root_shown"],
                      cgroup=raw["cgroup"])  # fmt: skip

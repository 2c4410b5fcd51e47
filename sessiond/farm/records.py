# The farm's keys in etcd and the JSON stored under them, in one place so the
# layout in docs/farm.md has a single source. Everything a host reads from
# etcd was written by another host of the same farm, but it is still checked
# here (types, sizes) so that a corrupt or foreign record costs one entry of
# a listing, never a crash of the broker.
"""Farm key layout and the host, session and drain records stored under it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sessiond.farm.directory import HostInfo, HostLoad, SessionPlacement
from sessiond.farm.etcd_codec import KeyValue, prefix_end

DEFAULT_PREFIX = "/sessiond/farm/"
# Host ids become key segments and appear in admin listings.
HOST_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# A user name as a key segment: PAM names are short; "/" and NUL would break the layout.
MAX_USER_BYTES = 256
# A record larger than this is ignored as corrupt (real ones are ~200 bytes).
MAX_RECORD_BYTES = 4096
# etcd's own floor on a host's lease TTL (3.4 raises shorter ones to ~1.5 s).
MIN_LEASE_TTL = 2


class BadRecord(ValueError):
    """A value under a farm key that is not a well-formed record."""


def check_host_id(host_id: str) -> str:
    """HOST_ID if it is a valid host id, else ValueError saying what is allowed."""
    if not HOST_ID_PATTERN.match(host_id):
        raise ValueError(f"farm host_id {host_id!r} must be 1-64 of A-Z a-z 0-9 . _ - (not starting with . _ -)")
    return host_id


def check_user(user: str) -> str:
    """USER if it can be a key segment, else ValueError."""
    raw = user.encode("utf-8")
    if not raw or len(raw) > MAX_USER_BYTES or b"/" in raw or b"\0" in raw:
        raise ValueError(f"user name {user!r} cannot be a farm key")
    return user


@dataclass(frozen=True)
class FarmKeys:
    """The key layout under one prefix (several farms may share an etcd)."""

    prefix: str = DEFAULT_PREFIX

    def _k(self, *parts: str) -> bytes:
        return (self.prefix + "/".join(parts)).encode("utf-8")

    def host(self, host_id: str) -> bytes:
        """hosts/<host_id>: the host record, attached to the host's lease."""
        return self._k("hosts", host_id)

    def count(self, host_id: str) -> bytes:
        """counts/<host_id>: sessions placed on the host (decimal), checked by the claim txn."""
        return self._k("counts", host_id)

    def drain(self, host_id: str) -> bytes:
        """drain/<host_id>: present while an admin drains the host (durable, survives restarts)."""
        return self._k("drain", host_id)

    def session(self, user: str) -> bytes:
        """sessions/<user>: the user's one session (durable; names host and lease)."""
        return self._k("sessions", user)

    def lost(self, user: str) -> bytes:
        """lost/<user>: the user's last session that was lost with its host."""
        return self._k("lost", user)

    def dir(self, kind: str) -> tuple[bytes, bytes]:
        """(key, range_end) of every key of KIND (hosts, counts, drain, sessions, lost)."""
        start = self._k(kind, "")
        return start, prefix_end(start)

    def tail(self, key: bytes) -> str:
        """The last segment of KEY (host id or user)."""
        return key.decode("utf-8", "replace").rsplit("/", 1)[-1]


def dump(record: dict[str, Any]) -> bytes:
    """A record as compact JSON bytes."""
    return json.dumps(record, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _load(kv: KeyValue) -> dict[str, Any]:
    if len(kv.value) > MAX_RECORD_BYTES:
        raise BadRecord(f"{kv.key!r}: record over {MAX_RECORD_BYTES} bytes")
    try:
        value = json.loads(kv.value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRecord(f"{kv.key!r}: not JSON") from exc
    if not isinstance(value, dict):
        raise BadRecord(f"{kv.key!r}: not an object")
    return value


def _typed(value: Any, kind: type, key: bytes, name: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise BadRecord(f"{key!r}: field {name} is not {kind.__name__}")
    return value


def host_record(host_id: str, advertise: str, lease: int, load: HostLoad, now: float, fingerprint: str = "",
                adopting: bool = False) -> bytes:  # fmt: skip
    """The value of hosts/<host_id>."""
    return dump({"host_id": host_id, "advertise": advertise, "lease": lease, "fingerprint": fingerprint,
                 "adopting": adopting,
                 "sessions": load.sessions,
                 "mem_available": load.mem_available, "cpu_load": load.cpu_load, "capacity": load.capacity,
                 "updated": now})  # fmt: skip


def parse_host(kv: KeyValue, placed: int, draining: bool) -> HostInfo:
    """A HostInfo from a hosts/ key (PLACED and DRAINING come from counts/ and drain/)."""
    r = _load(kv)
    load = HostLoad(sessions=_typed(r.get("sessions"), int, kv.key, "sessions"),
                    mem_available=_typed(r.get("mem_available"), int, kv.key, "mem_available"),
                    cpu_load=_typed(r.get("cpu_load"), float, kv.key, "cpu_load"),
                    capacity=_typed(r.get("capacity"), int, kv.key, "capacity"))  # fmt: skip
    return HostInfo(host_id=_typed(r.get("host_id"), str, kv.key, "host_id"),
                    advertise=_typed(r.get("advertise"), str, kv.key, "advertise"), lease=kv.lease, load=load,
                    placed=placed, draining=draining, updated=_typed(r.get("updated"), float, kv.key, "updated"),
                    fingerprint=_typed(r.get("fingerprint", ""), str, kv.key, "fingerprint"),
                    adopting=_typed(r.get("adopting", False), bool, kv.key, "adopting"))  # fmt: skip


def session_record(p: SessionPlacement) -> bytes:
    """The value of sessions/<user> (and of lost/<user>)."""
    return dump({"user": p.user, "session_id": p.session_id, "host_id": p.host_id, "advertise": p.advertise,
                 "lease": p.lease, "claimed": p.claimed})  # fmt: skip


def parse_session(kv: KeyValue, live_leases: dict[str, int]) -> SessionPlacement:
    """A SessionPlacement; live iff its host is registered under the lease the record names."""
    r = _load(kv)
    host_id = _typed(r.get("host_id"), str, kv.key, "host_id")
    lease = _typed(r.get("lease"), int, kv.key, "lease")
    return SessionPlacement(user=_typed(r.get("user"), str, kv.key, "user"),
                            session_id=_typed(r.get("session_id"), str, kv.key, "session_id"), host_id=host_id,
                            advertise=_typed(r.get("advertise"), str, kv.key, "advertise"), lease=lease,
                            claimed=_typed(r.get("claimed"), float, kv.key, "claimed"),
                            state="live" if live_leases.get(host_id) == lease else "lost")  # fmt: skip


def parse_count(kv: KeyValue | None) -> int:
    """The decimal value of a counts/ key (0 when absent or corrupt)."""
    if kv is None:
        return 0
    try:
        return max(0, int(kv.value.decode("ascii")))
    except (UnicodeDecodeError, ValueError):
        return 0

# The session registry: SQLite in the state directory (WAL, one transaction
# per change). It records every session and an append-only audit log, and
# holds resume tokens (hashed) so that sessions and logins survive a sessiond
# restart. SQLite calls are short and local, so they run on the reactor
# thread; nothing here blocks on the network.
"""Registry: sessions, audit log and resume tokens in SQLite."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Iterable

DB_FILE = "registry.sqlite3"
# Resume tokens: 256 random bits, URL-safe text.
RESUME_TOKEN_BYTES = 32
# Live resume tokens kept per user; older ones are dropped first, so a client
# that never reuses its token cannot grow the table.
MAX_TOKENS_PER_USER = 16
# Audit rows returned by one query at most.
MAX_AUDIT_ROWS = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    uid INTEGER NOT NULL,
    state TEXT NOT NULL,
    agent_pid INTEGER,
    socket TEXT NOT NULL,
    session_dir TEXT NOT NULL,
    link_token TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    cgroup TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    last_connect REAL,
    last_disconnect REAL,
    client_address TEXT NOT NULL DEFAULT '',
    apps TEXT NOT NULL DEFAULT '{}',
    ended REAL,
    display TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user);
CREATE INDEX IF NOT EXISTS sessions_state ON sessions(state, created);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    event TEXT NOT NULL,
    user TEXT NOT NULL DEFAULT '',
    session TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS resume_tokens (
    hash TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL
);
"""

# Columns of `sessions` that callers may update.
UPDATABLE = frozenset({"state", "agent_pid", "cgroup", "last_connect", "last_disconnect", "client_address",
                       "apps", "ended"})  # fmt: skip


@dataclass(frozen=True)
class SessionRecord:
    """One row of the sessions table."""

    id: str
    user: str
    uid: int
    state: str
    agent_pid: int | None
    socket: str
    session_dir: str
    link_token: str
    width: int
    height: int
    cgroup: str
    created: float
    last_connect: float | None
    last_disconnect: float | None
    client_address: str
    apps: dict[str, str]
    ended: float | None
    display: str = ""  # what the session runs (native, xpra); "" in rows from before it was recorded


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Registry:
    """The registry database at STATE_DIR/registry.sqlite3 (mode 0600)."""

    def __init__(self, state_dir: str, clock: Any = time.time) -> None:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        self.path = os.path.join(state_dir, DB_FILE)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(self.path, 0o600)
        self.clock = clock
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        # A registry from before `display` was recorded: sessions it holds may be re-adopted.
        if "display" not in {row[1] for row in self.db.execute("PRAGMA table_info(sessions)")}:
            self.db.execute("ALTER TABLE sessions ADD COLUMN display TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        self.db.close()

    # -- sessions ---------------------------------------------------------------
    def add_session(self, *, id: str, user: str, uid: int, socket: str, session_dir: str, link_token: str,
                    width: int, height: int, display: str = "") -> None:  # noqa: A002 - column name  # fmt: skip
        with self.db:
            self.db.execute(
                "INSERT INTO sessions (id, user, uid, state, socket, session_dir, link_token, width, height, created,"
                " display) VALUES (?, ?, ?, 'starting', ?, ?, ?, ?, ?, ?, ?)",
                (id, user, uid, socket, session_dir, link_token, width, height, self.clock(), display),
            )

    def update_session(self, session_id: str, **fields: Any) -> None:
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        if "apps" in fields:
            fields["apps"] = json.dumps(fields["apps"], sort_keys=True)
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self.db:
            self.db.execute(f"UPDATE sessions SET {assignments} WHERE id = ?", (*fields.values(), session_id))

    def session(self, session_id: str) -> SessionRecord | None:
        row = self.db.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return _record(row) if row else None

    def live_sessions(self) -> list[SessionRecord]:
        rows = self.db.execute("SELECT * FROM sessions WHERE state != 'ended' ORDER BY created").fetchall()
        return [_record(row) for row in rows]

    def ended_sessions(self, limit: int, user: str | None = None) -> list[dict[str, Any]]:
        """Ended sessions, newest first, as admin listing rows (a plain
        tuple cursor and no dataclass per row: listings may be long)."""
        query = ("SELECT id, user, state, apps, client_address, created, last_connect, last_disconnect, width, "
                 "height, ended FROM sessions WHERE state = 'ended'" + (" AND user = ?" if user is not None else "")
                 + " ORDER BY created DESC LIMIT ?")  # fmt: skip
        cursor = self.db.cursor()
        cursor.row_factory = None
        params: tuple[Any, ...] = (user, limit) if user is not None else (limit,)
        return [
            {"id": sid, "user": name, "state": state, "apps": sorted(set(json.loads(apps).values())) if apps != "{}"
             else [], "client_address": address, "started": created, "last_connect": connect,
             "last_disconnect": disconnect, "idle_seconds": None, "memory_bytes": 0, "cpu_seconds": 0.0,
             "width": width, "height": height, "agent_pid": None, "ended": ended}
            for sid, name, state, apps, address, created, connect, disconnect, width, height, ended
            in cursor.execute(query, params)
        ]  # fmt: skip

    # -- audit ----------------------------------------------------------------------
    def audit(self, event: str, *, user: str = "", session: str = "", address: str = "", detail: str = "") -> None:
        """Append one audit entry (never updated or deleted)."""
        with self.db:
            self.db.execute("INSERT INTO audit (time, event, user, session, address, detail) VALUES (?, ?, ?, ?, ?, ?)",
                            (self.clock(), event, user, session, address, detail))  # fmt: skip

    def audit_entries(self, since: float = 0.0, limit: int = MAX_AUDIT_ROWS) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM audit WHERE time >= ? ORDER BY seq LIMIT ?",
                               (since, min(limit, MAX_AUDIT_ROWS))).fetchall()  # fmt: skip
        return [dict(row) for row in rows]

    # -- resume tokens --------------------------------------------------------------------
    def issue_token(self, user: str, lifetime: float, not_after: float | None = None) -> str:
        """A new random resume token for USER; only its hash is stored.

        It expires LIFETIME seconds from now, or at NOT_AFTER if that is
        sooner: a token issued on a resume inherits the expiry of the token it
        replaces, so a chain of resumes ends LIFETIME after the last password
        login, however often it is renewed.
        """
        token = secrets.token_urlsafe(RESUME_TOKEN_BYTES)
        now = self.clock()
        expires = now + lifetime if not_after is None else min(now + lifetime, not_after)
        with self.db:
            self.db.execute("DELETE FROM resume_tokens WHERE expires < ?", (now,))
            self.db.execute("INSERT INTO resume_tokens (hash, user, created, expires) VALUES (?, ?, ?, ?)",
                            (_hash(token), user, now, expires))  # fmt: skip
            self.db.execute(
                "DELETE FROM resume_tokens WHERE user = ? AND hash NOT IN "
                "(SELECT hash FROM resume_tokens WHERE user = ? ORDER BY created DESC LIMIT ?)",
                (user, user, MAX_TOKENS_PER_USER),
            )
        return token

    def redeem_token(self, user: str, token: str) -> float | None:
        """If TOKEN is a live token of USER, its absolute expiry (to hand on
        to the next token), else None; it is consumed either way."""
        digest = _hash(token)
        with self.db:
            row = self.db.execute("SELECT user, expires FROM resume_tokens WHERE hash = ?", (digest,)).fetchone()
            if row is None:
                return None
            self.db.execute("DELETE FROM resume_tokens WHERE hash = ?", (digest,))
        if row["user"] != user or row["expires"] < self.clock():
            return None
        return float(row["expires"])

    def revoke_tokens(self, user: str) -> int:
        """Delete every resume token of USER (logoff, admin logoff, `sessionctl revoke`); returns how many."""
        with self.db:
            return int(self.db.execute("DELETE FROM resume_tokens WHERE user = ?", (user,)).rowcount)


def _record(row: sqlite3.Row) -> SessionRecord:
    values = dict(row)
    values["apps"] = json.loads(values["apps"] or "{}")
    return SessionRecord(**values)


def rows_as_dicts(records: Iterable[SessionRecord]) -> list[dict[str, Any]]:
    return [dict(r.__dict__) for r in records]

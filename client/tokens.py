# Resume tokens on the client: one file per server and user, mode 0600, in a
# 0700 directory. A token is single use: every login replaces it.
"""TokenStore: the client's resume tokens."""

from __future__ import annotations

import hashlib
import os

# Longest token file read back (tokens are ~43 characters).
MAX_TOKEN_BYTES = 1024


def default_dir() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "sessiond", "tokens")


class TokenStore:
    """Resume tokens keyed by (server, user)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def _path(self, server: str, user: str) -> str:
        key = hashlib.sha256(f"{server}\0{user}".encode()).hexdigest()[:32]
        return os.path.join(self.directory, key)

    def get(self, server: str, user: str) -> str | None:
        try:
            with open(self._path(server, user), encoding="ascii") as handle:
                token = handle.read(MAX_TOKEN_BYTES).strip()
        except (OSError, UnicodeDecodeError):
            return None
        return token or None

    def put(self, server: str, user: str, token: str) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        path = self._path(server, user)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(token + "\n")
        os.replace(tmp, path)

    def delete(self, server: str, user: str) -> None:
        try:
            os.unlink(self._path(server, user))
        except FileNotFoundError:
            pass

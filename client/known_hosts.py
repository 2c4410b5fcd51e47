# Trust on first use, like SSH's known_hosts: the first connection to a
# server pins its certificate's SHA-256 fingerprint; later connections must
# present the same certificate or the client refuses before sending anything.
"""Pinned server certificate fingerprints."""

from __future__ import annotations

import os

# Lines read from a known-hosts file; a bigger file is refused, not loaded.
MAX_KNOWN_HOSTS_LINES = 10_000


class HostKeyMismatch(Exception):
    """The server presented a different certificate than the pinned one."""

    def __init__(self, server: str, expected: str, actual: str, path: str) -> None:
        super().__init__(
            f"the certificate of {server} has CHANGED: pinned sha256 {expected}, presented sha256 {actual}. "
            f"This may be an attack; if the server's certificate was really replaced, remove the line for "
            f"{server} from {path} and connect again."
        )
        self.expected = expected
        self.actual = actual


def default_path() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "sessiond", "known_hosts")


class KnownHosts:
    """A known_hosts file: lines of `HOST:PORT SHA256HEX`."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _read(self) -> dict[str, str]:
        entries: dict[str, str] = {}
        try:
            with open(self.path, encoding="utf-8") as handle:
                for number, line in enumerate(handle):
                    if number >= MAX_KNOWN_HOSTS_LINES:
                        break
                    parts = line.split()
                    if len(parts) == 2 and not parts[0].startswith("#"):
                        entries[parts[0]] = parts[1].lower()
        except FileNotFoundError:
            pass
        return entries

    def check(self, server: str, fingerprint: str) -> bool:
        """True if SERVER was already pinned with FINGERPRINT; pin it if new.

        Raises HostKeyMismatch if SERVER is pinned to another fingerprint.
        Returns False when the fingerprint was pinned just now.
        """
        pinned = self._read().get(server)
        if pinned is None:
            os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(f"{server} {fingerprint}\n")
            return False
        if pinned != fingerprint:
            raise HostKeyMismatch(server, pinned, fingerprint, self.path)
        return True

    def vouch(self, server: str, fingerprint: str) -> None:
        """Pin FINGERPRINT for SERVER on the word of a host already pinned (a farm redirect).

        Raises HostKeyMismatch if SERVER is pinned to another fingerprint: a pin is never
        replaced silently, whoever vouches.
        """
        self.check(server, fingerprint.lower())

# What the admin lets flow through the clipboard and file channels.
#
# Why a module of its own: the selection owner, the file writer, the Outbox
# and sessiond-send all ask the same questions (may this direction flow? is
# this type allowed? is this too big?), and the answers come from config
# ([clipboard] and [files], with per-user/group overrides) that the
# integrator parses.  The agent only ever sees the resolved, frozen result,
# so a policy cannot change under a transfer half-way through.  The hard
# caps below bound memory whatever the config says: a policy value above
# them is clamped, never trusted.
"""Resolved clipboard and file-transfer policy (frozen; filled from config by the caller)."""

from __future__ import annotations

from dataclasses import field

from protocol.frozen import frozen_dataclass

TEXT_MIME = "text/plain;charset=utf-8"
PNG_MIME = "image/png"
# The only clipboard types the agent knows how to carry.
SUPPORTED_MIMES = frozenset({TEXT_MIME, PNG_MIME})

# Hard caps, whatever the config says (memory per transfer is at most this).
# Text: a whole log or source file pasted at once, with room (issue: >= 1 MiB).
HARD_MAX_TEXT_BYTES = 16 * 1024 * 1024
# Images: an uncompressed 4K screenshot as PNG is ~10-25 MiB.
HARD_MAX_IMAGE_BYTES = 64 * 1024 * 1024
# Defaults when the config does not say.
DEFAULT_MAX_TEXT_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_IMAGE_BYTES = 32 * 1024 * 1024
# Files are streamed to disk in chunks, never held whole; this bounds disk use per file.
DEFAULT_MAX_FILE_BYTES = 4 * 1024 * 1024 * 1024


@frozen_dataclass
class ClipboardPolicy:
    """Which clipboard directions and types are allowed, and how big.

    to_client: session -> device (copy in an app, paste on the device).
    from_client: device -> session.
    primary_to_client: the PRIMARY selection (mouse selection) also goes to
    the client; off by default, since every selected word would leave.
    """

    to_client: bool = True
    from_client: bool = True
    primary_to_client: bool = False
    primary_from_client: bool = True
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    allowed_mimes: frozenset[str] = field(default_factory=lambda: SUPPORTED_MIMES)

    def max_bytes(self, mime: str) -> int:
        """The largest content of this type that may flow (0: the type is not allowed)."""
        if mime not in self.allowed_mimes or mime not in SUPPORTED_MIMES:
            return 0
        if mime == TEXT_MIME:
            return max(0, min(self.max_text_bytes, HARD_MAX_TEXT_BYTES))
        return max(0, min(self.max_image_bytes, HARD_MAX_IMAGE_BYTES))

    def selection_to_client(self, selection: str) -> bool:
        """May changes of this selection ("CLIPBOARD" or "PRIMARY") be offered to the client?"""
        if not self.to_client:
            return False
        return selection == "CLIPBOARD" or (selection == "PRIMARY" and self.primary_to_client)

    def selection_from_client(self, selection: str) -> bool:
        """May the client set this selection in the session?"""
        if not self.from_client:
            return False
        return selection == "CLIPBOARD" or (selection == "PRIMARY" and self.primary_from_client)


@frozen_dataclass
class FilePolicy:
    """Which file-transfer directions are allowed, how big, and where files go.

    Directories are relative to the session user's home (the agent runs as
    that user; sessiond never writes there).
    """

    to_client: bool = True
    from_client: bool = True
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    downloads_dir: str = "Downloads"
    outbox_dir: str = "Outbox"

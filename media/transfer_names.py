# File names that arrive from the other side, made safe to create here.
#
# Why: a file dropped on the web client arrives with whatever name the
# user's device (or a hostile client) gives it: "../../.bashrc", "a/b",
# "-rf", names with newlines or bidi overrides that make "gpj.exe" read as
# "exe.jpg", 4 KiB of emoji.  The writer must end up with one plain name in
# ~/Downloads that never escapes it, never hides itself, never reads as an
# option, and never replaces an existing file.  These rules are pure and
# shared: the agent applies them to incoming files, the client to outgoing
# ones (client code may import this module or copy the rules; the rules, not
# the code, are the contract, written out in docs/clipboard.md).
#
# Unicode: names are normalised to NFC.  macOS sends NFD ("e" + combining
# acute), Linux filesystems compare bytes, and nearly every Linux app writes
# NFC; without it the same visible name could be two files.  Characters of
# categories Cc (controls), Cf (format: bidi overrides, zero-width joiners),
# Cs (lone surrogates from undecodable bytes), Zl and Zp (line breaks) are
# dropped.  That breaks the rare emoji ZWJ sequence into its parts -- a
# cosmetic loss we accept for never showing a name that lies about itself.
"""Pure helpers for file transfer: name sanitising, numbered names, chunking."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

# Linux NAME_MAX: the longest name, in bytes, a directory entry can have.
NAME_MAX_BYTES = 255
# Bytes kept free for a " (NNNN)" suffix added to avoid overwriting.
SUFFIX_RESERVE_BYTES = 16
# Longest name sanitise_name returns (in UTF-8 bytes).
MAX_SANITISED_NAME_BYTES = NAME_MAX_BYTES - SUFFIX_RESERVE_BYTES
# An extension up to this long is kept when a name is shortened.
MAX_EXTENSION_BYTES = 32
# How many " (n)" suffixes are tried before giving up on a name.
MAX_NAME_ATTEMPTS = 1000
# A name with nothing usable left.
DEFAULT_NAME = "file"
# Longest name accepted from the peer at all, before sanitising (bounds the work).
MAX_INCOMING_NAME_BYTES = 4096
# Bytes of file data per wire message: at most half the default channel
# window's half (protocol/limits.py DEFAULT_WINDOW = 256 KiB; a frame may cost
# at most half the window), so two chunks are in flight per window.
FILE_CHUNK_BYTES = 64 * 1024

_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SEPARATORS = ("/", "\\")
_STRIPPED_EDGES = " .-\t"


class UnusableName(ValueError):
    """A name cannot be used at all (too long before sanitising)."""


def sanitise_name(name: str) -> str:
    """A safe file name for name: one component, not hidden, not an option, never empty.

    The result has no path separators, is not "." or "..", has no control or
    format characters, does not start with ".", "-" or a space, does not end
    with "." or a space, is NFC, and is at most MAX_SANITISED_NAME_BYTES of
    UTF-8.  Raises UnusableName for names longer than MAX_INCOMING_NAME_BYTES.
    """
    if len(name.encode("utf-8", errors="surrogatepass")) > MAX_INCOMING_NAME_BYTES:
        raise UnusableName(f"file name longer than {MAX_INCOMING_NAME_BYTES} bytes")
    text = "".join(ch for ch in name if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    text = unicodedata.normalize("NFC", text)
    for separator in _SEPARATORS:
        text = text.replace(separator, "_")
    text = text.lstrip(_STRIPPED_EDGES).rstrip(" .\t")
    text = _shorten(text, MAX_SANITISED_NAME_BYTES)
    # Shortening can expose a trailing dot or space again.
    text = text.rstrip(" .\t")
    return text or DEFAULT_NAME


def _shorten(text: str, limit: int) -> str:
    """text cut to limit UTF-8 bytes on a character boundary, keeping a short extension."""
    if len(text.encode()) <= limit:
        return text
    stem, ext = split_extension(text)
    if not ext or len(ext.encode()) > MAX_EXTENSION_BYTES:
        stem, ext = text, ""
    room = limit - len(ext.encode())
    cut = stem.encode()[:room].decode("utf-8", errors="ignore")
    return cut + ext


def split_extension(name: str) -> tuple[str, str]:
    """("report", ".pdf") for "report.pdf"; ("archive", ".tar.gz") for a double archive extension."""
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    stem, ext = name[:dot], name[dot:]
    if stem.lower().endswith(".tar") and len(stem) > 4:
        stem, ext = stem[:-4], stem[-4:] + ext
    return stem, ext


def numbered_name(name: str, number: int) -> str:
    """The number-th alternative to name: "a.txt" -> "a (1).txt"; number 0 is name itself."""
    if number == 0:
        return name
    stem, ext = split_extension(name)
    return f"{stem} ({number}){ext}"


def candidate_names(name: str) -> Iterator[str]:
    """name, then "name (1)" ... up to MAX_NAME_ATTEMPTS names in all."""
    for number in range(MAX_NAME_ATTEMPTS):
        yield numbered_name(name, number)


def chunk_spans(size: int, chunk: int = FILE_CHUNK_BYTES) -> Iterator[tuple[int, int]]:
    """(offset, length) of each chunk of a size-byte file; none for an empty file."""
    if size < 0 or chunk <= 0:
        raise ValueError("size must be >= 0 and chunk > 0")
    for offset in range(0, size, chunk):
        yield offset, min(chunk, size - offset)

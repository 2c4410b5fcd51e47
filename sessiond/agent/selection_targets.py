# Between X selection targets and the two MIME types the clipboard carries.
#
# Why: X apps name clipboard formats by atoms (UTF8_STRING, STRING, TEXT,
# image/png, ...) and offer many; the wire carries MIME types, and only two.
# Which target to serve for which request, which to ask an app for, and how
# to turn Latin-1 STRING into UTF-8 (and back, lossily, only for the rare
# app that asks for STRING) are pure decisions, kept here without any X
# connection so they can be tested exhaustively.
"""Pure mapping between X selection targets and the clipboard's MIME types."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sessiond.agent.clipboard_policy import PNG_MIME, TEXT_MIME

# Targets every owner answers whatever it holds (ICCCM 2.6.2).
META_TARGETS = ("TARGETS", "TIMESTAMP", "MULTIPLE")
# Text targets served, best first.  TEXT lets the owner pick the encoding:
# we answer it with UTF8_STRING.  text/plain without a charset is not
# served: its encoding is undefined and apps disagree on it.
TEXT_TARGETS_SERVED = ("UTF8_STRING", TEXT_MIME, "STRING", "TEXT")
# Text targets fetched from an app, best first (lossless before Latin-1).
TEXT_TARGETS_FETCHED = ("UTF8_STRING", TEXT_MIME, "STRING")
IMAGE_TARGETS = (PNG_MIME,)
# Replacement for characters Latin-1 cannot hold when an app insists on STRING.
LATIN1_REPLACEMENT = "?"


def served_targets(mimes: Iterable[str]) -> list[str]:
    """The target names an owner holding content of these MIME types answers TARGETS with."""
    names = list(META_TARGETS)
    held = set(mimes)
    if TEXT_MIME in held:
        names.extend(TEXT_TARGETS_SERVED)
    if PNG_MIME in held:
        names.extend(IMAGE_TARGETS)
    return names


def convert_for_target(target: str, content: Mapping[str, bytes]) -> tuple[str, bytes] | None:
    """The (property type name, bytes) to answer a request for `target`, or None to refuse.

    content maps MIME type to bytes (text is UTF-8).  STRING is Latin-1:
    characters outside it become LATIN1_REPLACEMENT, the only lossy case.
    """
    text = content.get(TEXT_MIME)
    if text is not None:
        if target in ("UTF8_STRING", "TEXT"):
            return "UTF8_STRING", text
        if target == TEXT_MIME:
            return TEXT_MIME, text
        if target == "STRING":
            return "STRING", utf8_to_latin1(text)
    image = content.get(PNG_MIME)
    if image is not None and target == PNG_MIME:
        return PNG_MIME, image
    return None


def utf8_to_latin1(data: bytes) -> bytes:
    """UTF-8 to Latin-1 (ISO 8859-1), replacing what Latin-1 lacks; invalid UTF-8 is replaced too."""
    text = data.decode("utf-8", errors="replace")
    return "".join(ch if ord(ch) < 256 else LATIN1_REPLACEMENT for ch in text).encode("latin-1")


def latin1_to_utf8(data: bytes) -> bytes:
    """Latin-1 STRING data to UTF-8 (lossless: every byte is a code point)."""
    return data.decode("latin-1").encode("utf-8")


def offered_mimes(target_names: Iterable[str]) -> tuple[str, ...]:
    """The MIME types an app offering these targets can give us, in wire order."""
    names = set(target_names)
    mimes = []
    if names.intersection(TEXT_TARGETS_FETCHED):
        mimes.append(TEXT_MIME)
    if names.intersection(IMAGE_TARGETS):
        mimes.append(PNG_MIME)
    return tuple(mimes)


def target_to_fetch(mime: str, target_names: Iterable[str]) -> str | None:
    """Which of the app's targets to ask for to get `mime` (None if it offers none that fits)."""
    names = set(target_names)
    candidates = TEXT_TARGETS_FETCHED if mime == TEXT_MIME else IMAGE_TARGETS if mime == PNG_MIME else ()
    for target in candidates:
        if target in names:
            return target
    return None


def fetched_to_mime(target: str, data: bytes) -> bytes:
    """Bytes an app gave for `target`, as the MIME type's bytes.

    STRING becomes UTF-8; UTF-8 targets are made valid UTF-8 (an invalid
    sequence becomes U+FFFD), so the client can always decode what it gets.
    """
    if target == "STRING":
        return latin1_to_utf8(data)
    if target in TEXT_TARGETS_FETCHED:
        return data.decode("utf-8", errors="replace").encode("utf-8")
    return data


def is_utf8(data: bytes) -> bool:
    """True if data is valid UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True

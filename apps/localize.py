# Why this module exists: the client, not the server, decides which language
# a user reads, so the catalog cannot localize once at load time with the
# process locale (which is what pyxdg's DesktopEntry.get(locale=True) does,
# from global state).  Instead the catalog keeps every translation of the
# localizable keys, and this module picks one per request following the
# Desktop Entry Specification's "Localized values for keys": for a locale
# lang_COUNTRY.ENCODING@MODIFIER try lang_COUNTRY@MODIFIER, lang_COUNTRY,
# lang@MODIFIER, lang, then the untranslated value.  The encoding part is
# ignored, as the specification says.
"""Locale parsing and matching for localized desktop-entry keys."""

from __future__ import annotations

import re
from collections.abc import Mapping

# Keys of type localestring / iconstring the catalog shows to clients.
LOCALIZED_KEYS = ("Name", "GenericName", "Comment")
MAX_LOCALE_LENGTH = 64  # "sr_RS.UTF-8@latin" is 17; a longer value is junk from the network
# lang_COUNTRY.ENCODING@MODIFIER with every part but lang optional (POSIX locale names).
LOCALE_RE = re.compile(
    r"^(?P<lang>[A-Za-z]{2,8})(?:_(?P<country>[A-Za-z0-9]{2,8}))?"
    r"(?:\.(?P<encoding>[A-Za-z0-9_-]{1,32}))?(?:@(?P<modifier>[A-Za-z0-9_-]{1,32}))?$"
)
# A translated key in the key file: Name[de_DE@euro]
LOCALIZED_KEY_RE = re.compile(r"^(?P<key>[A-Za-z0-9-]+)\[(?P<locale>[^\]]+)\]$")
# Locales that mean "no translation" (the POSIX defaults).
UNTRANSLATED_LOCALES = frozenset({"", "C", "POSIX"})


def locale_candidates(locale: str) -> tuple[str, ...]:
    """The translation keys to try for ``locale``, most specific first.

    Returns () for "", "C", "POSIX", "C.UTF-8" and for anything that is not
    a well-formed POSIX locale name (a client's locale is untrusted input;
    a malformed one simply gets the untranslated values).
    """
    if len(locale) > MAX_LOCALE_LENGTH:
        return ()
    if locale.split(".", 1)[0] in UNTRANSLATED_LOCALES:
        return ()
    match = LOCALE_RE.match(locale)
    if match is None:
        return ()
    lang = match.group("lang")
    country = match.group("country")
    modifier = match.group("modifier")
    candidates: list[str] = []
    if country and modifier:
        candidates.append(f"{lang}_{country}@{modifier}")
    if country:
        candidates.append(f"{lang}_{country}")
    if modifier:
        candidates.append(f"{lang}@{modifier}")
    candidates.append(lang)
    return tuple(candidates)


def pick(default: str, translations: Mapping[str, str], locale: str) -> str:
    """The value of a key for ``locale``: the best translation, else ``default``."""
    for candidate in locale_candidates(locale):
        value = translations.get(candidate)
        if value:
            return value
    return default


def split_localized_key(raw_key: str) -> tuple[str, str] | None:
    """("Name", "de_DE") for "Name[de_DE]"; None for a key without a locale."""
    match = LOCALIZED_KEY_RE.match(raw_key)
    if match is None:
        return None
    return match.group("key"), match.group("locale")

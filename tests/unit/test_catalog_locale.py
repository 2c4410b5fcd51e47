# Why these tests: each client reads the catalog in its own language, chosen
# per request, and the locale name arrives from the network.  The matching
# order is the Desktop Entry Specification's; a malformed locale must fall
# back to the untranslated text rather than fail or match something odd.
"""Tests for apps.localize and localized catalog entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.catalog import Catalog
from apps.entitlements import Entitlements, Principal
from apps.icons import IconResolver
from apps.localize import MAX_LOCALE_LENGTH, locale_candidates, pick, split_localized_key
from apps.publisher import AppPublisher


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("sr_YU@Latn", ("sr_YU@Latn", "sr_YU", "sr@Latn", "sr")),  # the specification's example
        ("de_DE.UTF-8", ("de_DE", "de")),  # the encoding is ignored
        ("de_DE.UTF-8@euro", ("de_DE@euro", "de_DE", "de@euro", "de")),
        ("fr", ("fr",)),
        ("ca@valencia", ("ca@valencia", "ca")),
        ("", ()),
        ("C", ()),
        ("C.UTF-8", ()),
        ("POSIX", ()),
        ("de_DE;rm -rf", ()),  # junk from the network: untranslated
        ("../../etc", ()),
        ("x" * (MAX_LOCALE_LENGTH + 1), ()),
    ],
)
def test_locale_candidates(locale: str, expected: tuple[str, ...]) -> None:
    assert locale_candidates(locale) == expected


def test_pick_prefers_the_most_specific_translation() -> None:
    translations = {"sr": "A", "sr@Latn": "B", "sr_YU": "C"}
    assert pick("default", translations, "sr_YU@Latn") == "C"
    assert pick("default", translations, "sr_RS@Latn") == "B"
    assert pick("default", translations, "sr_RS") == "A"
    assert pick("default", translations, "en_GB") == "default"
    assert pick("default", {"de": ""}, "de") == "default"  # an empty translation is no translation


def test_split_localized_key() -> None:
    assert split_localized_key("Name[de_DE@euro]") == ("Name", "de_DE@euro")
    assert split_localized_key("Name") is None
    assert split_localized_key("Name[de") is None


def test_catalog_keeps_translations_and_publisher_localizes_per_request(tmp_path: Path) -> None:
    (tmp_path / "calc.desktop").write_text(
        "[Desktop Entry]\nType=Application\nExec=calc\n"
        "Name=Calculator\nName[de]=Rechner\nName[fr_CA]=Calculette\nName[fr]=Calculatrice\n"
        "GenericName=Calc\nComment=Adds\\snumbers\nComment[de]=Addiert\\sZahlen\n"
        "Keywords[de]=Mathe;\n",
        encoding="utf-8",
    )
    (tmp_path / "abc.desktop").write_text("[Desktop Entry]\nType=Application\nExec=abc\nName=Zebra\nName[de]=Affe\n")
    entry = Catalog([str(tmp_path)]).get("calc")
    assert entry is not None
    assert entry.localized("Name", "de_AT.UTF-8") == "Rechner"
    assert entry.localized("Comment", "de_AT.UTF-8") == "Addiert Zahlen"  # string escapes applied
    assert entry.localized("Name", "fr_CA") == "Calculette"
    assert entry.localized("Name", "fr_BE") == "Calculatrice"
    assert entry.localized("GenericName", "de") == "Calc"
    assert entry.localized("Name", "") == "Calculator"
    publisher = AppPublisher(
        Catalog([str(tmp_path)]),
        Entitlements(),
        IconResolver([str(tmp_path)]),
        principal_of=lambda user: Principal(user, frozenset()),
    )
    german = publisher.listing("u", "de_DE.UTF-8")
    assert [(app.id, app.name, app.comment) for app in german] == [
        ("abc", "Affe", ""),
        ("calc", "Rechner", "Addiert Zahlen"),
    ]
    assert [app.name for app in publisher.listing("u", "")] == ["Calculator", "Zebra"]

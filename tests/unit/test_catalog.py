# Why these tests: what the catalog lists and launches is decided by files
# an admin writes, and a mistake must leave an app out (with a warning that
# names the file) rather than publish it or run something unintended.  Each
# test builds real directories of .desktop files and checks what the
# catalog exposes and which argv it hands out.
"""Tests for apps.catalog.Catalog, and for the shipped conf/apps entries."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from twisted.logger import Logger, formatEvent

import apps.catalog
from apps.catalog import AppEntry, Catalog, UnknownApp
from apps.exec_line import ExecError

CONF_APPS = Path(__file__).resolve().parents[2] / "conf" / "apps"


def write_entry(directory: Path, relative: str, body: str = "", **keys: str) -> Path:
    """Write a .desktop file: defaults for a valid app, overridden by ``keys``."""
    values = {
        "Type": "Application",
        "Name": relative.rsplit("/", 1)[-1].removesuffix(".desktop"),
        "Exec": "prog",
    }
    values.update(keys)
    lines = ["[Desktop Entry]", *(f"{key}={value}" for key, value in values.items() if value is not None)]
    path = directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n" + body, encoding="utf-8")
    return path


class Recorder:
    """A log observer that keeps events and renders them for assertions."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def messages(self) -> list[str]:
        return [formatEvent(event) for event in self.events]


def make_catalog(*directories: Path, **kwargs: Any) -> tuple[Catalog, Recorder]:
    recorder = Recorder()
    catalog = Catalog([str(d) for d in directories], logger=Logger(observer=recorder), **kwargs)
    return catalog, recorder


def ids(catalog: Catalog) -> list[str]:
    return [entry.id for entry in catalog.entries()]


def test_entry_fields_are_read_and_unescaped(tmp_path: Path) -> None:
    source = write_entry(
        tmp_path,
        "editor.desktop",
        Name="Text\\sEditor",
        GenericName="Editor",
        Comment="Edit\\ttext\\nfiles",
        Icon="accessories-text-editor",
        Exec='editor "--title=a\\\\\\\\b" %F',
        TryExec="",
        Path="/srv/work",
        Terminal="false",
        Categories="Utility;TextEditor;Semi\\;colon;",
        StartupWMClass="Editor",
    )
    catalog, recorder = make_catalog(tmp_path)
    assert catalog.get("editor") == AppEntry(
        id="editor",
        name="Text Editor",
        generic_name="Editor",
        comment="Edit\ttext\nfiles",
        icon="accessories-text-editor",
        exec_value='editor "--title=a\\\\b" %F',
        try_exec="",
        path="/srv/work",
        terminal=False,
        categories=("Utility", "TextEditor", "Semi;colon"),
        startup_wm_class="Editor",
        source=str(source),
    )
    assert catalog.argv_for("editor", ["/tmp/x y"]) == ["editor", "--title=a\\b", "/tmp/x y"]
    assert recorder.events == []


def test_unknown_escape_in_exec_reaches_the_quoting_level(tmp_path: Path) -> None:
    write_entry(tmp_path, "say.desktop", Exec='sh -c "echo \\"hi\\" \\$0"')
    catalog, _ = make_catalog(tmp_path)
    assert catalog.argv_for("say") == ["sh", "-c", 'echo "hi" $0']


def test_hidden_and_nodisplay_are_neither_listed_nor_launchable(tmp_path: Path) -> None:
    write_entry(tmp_path, "shown.desktop")
    write_entry(tmp_path, "hidden.desktop", Hidden="true")
    write_entry(tmp_path, "nodisplay.desktop", NoDisplay="true")
    write_entry(tmp_path, "visible.desktop", Hidden="false", NoDisplay="false")
    catalog, recorder = make_catalog(tmp_path)
    assert ids(catalog) == ["shown", "visible"]
    for app_id in ("hidden", "nodisplay"):
        assert catalog.get(app_id) is None
        with pytest.raises(UnknownApp, match=app_id):
            catalog.argv_for(app_id)
    assert recorder.events == []


def test_hidden_entry_needs_no_other_keys(tmp_path: Path) -> None:
    (tmp_path / "masked.desktop").write_text("[Desktop Entry]\nHidden=true\n")
    catalog, recorder = make_catalog(tmp_path)
    assert ids(catalog) == []
    assert recorder.events == []


def test_malformed_boolean_leaves_the_entry_out(tmp_path: Path) -> None:
    source = write_entry(tmp_path, "typo.desktop", NoDisplay="yes")
    catalog, recorder = make_catalog(tmp_path)
    assert ids(catalog) == []
    (message,) = recorder.messages()
    assert f"{source}:5" in message  # [Desktop Entry], Type, Name, Exec, NoDisplay
    assert "NoDisplay" in message


def test_try_exec(tmp_path: Path) -> None:
    apps_dir, bin_dir = tmp_path / "apps", tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "present-tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    not_executable = bin_dir / "plain-file"
    not_executable.write_text("")
    not_executable.chmod(0o644)
    write_entry(apps_dir, "on-path.desktop", TryExec="present-tool")
    write_entry(apps_dir, "missing.desktop", TryExec="absent-tool")
    write_entry(apps_dir, "absolute.desktop", TryExec=str(tool))
    write_entry(apps_dir, "absolute-missing.desktop", TryExec=str(bin_dir / "nope"))
    write_entry(apps_dir, "not-executable.desktop", TryExec=str(not_executable))
    write_entry(apps_dir, "directory.desktop", TryExec=str(bin_dir))
    write_entry(apps_dir, "relative.desktop", TryExec="bin/present-tool")
    catalog, recorder = make_catalog(apps_dir, path_env=str(bin_dir))
    # 0644 has no x bit, so os.access refuses it even for root.
    assert sorted(ids(catalog)) == ["absolute", "on-path"]
    assert catalog.get("on-path") is not None and catalog.get("on-path").try_exec == "present-tool"  # type: ignore[union-attr]
    assert recorder.events == []
    # The same directory with an empty PATH: only the absolute TryExec remains.
    catalog, _ = make_catalog(apps_dir, path_env=str(tmp_path / "empty"))
    assert ids(catalog) == ["absolute"]


@pytest.mark.parametrize(
    ("keys", "desktop_names", "shown"),
    [
        ({"OnlyShowIn": "GNOME;KDE;"}, ("sessiond",), False),
        ({"OnlyShowIn": "GNOME;sessiond;"}, ("sessiond",), True),
        ({"NotShowIn": "sessiond;"}, ("sessiond",), False),
        ({"NotShowIn": "GNOME;"}, ("sessiond",), True),
        ({"OnlyShowIn": "XFCE;"}, ("sessiond", "XFCE"), True),
        ({"NotShowIn": "XFCE;"}, ("sessiond", "XFCE"), False),
        ({"OnlyShowIn": "sessiond;"}, (), False),
    ],
)
def test_only_and_not_show_in(
    tmp_path: Path, keys: dict[str, str], desktop_names: tuple[str, ...], shown: bool
) -> None:
    write_entry(tmp_path, "app.desktop", **keys)
    catalog, _ = make_catalog(tmp_path, desktop_names=desktop_names)
    assert (catalog.get("app") is not None) is shown


def test_bad_exec_is_left_out_with_a_warning_naming_file_and_line(tmp_path: Path) -> None:
    write_entry(tmp_path, "good.desktop")
    source = tmp_path / "bad.desktop"
    source.write_text("# comment\n[Desktop Entry]\nType=Application\nName=Bad\nExec=prog %x\n")
    catalog, recorder = make_catalog(tmp_path)
    assert ids(catalog) == ["good"]
    assert catalog.get("bad") is None
    (event,) = recorder.events
    assert event["log_level"].name == "warn"
    assert event["source"] == str(source) and event["line"] == 5
    assert f"{source}:5" in formatEvent(event)
    assert "unknown field code %x" in formatEvent(event)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[Desktop Entry]\nType=Link\nName=L\nURL=https://example.org\n", "Type is Link"),
        ("[Desktop Entry]\nName=N\nExec=prog\n", "Type is missing"),
        ("[Desktop Entry]\nType=Application\nExec=prog\n", "Name is missing"),
        ("[Desktop Entry]\nType=Application\nName=N\n", "Exec does not parse"),
        ("[Desktop Entry]\nType=Application\nName=N\nExec=prog | tee\n", "reserved character"),
        ("[Desktop Entry]\nthis is not a key\n", "not a valid desktop entry"),
        ("[Other Group]\nType=Application\n", "not a valid desktop entry"),
        ("Type=Application\n", "not a valid desktop entry"),
    ],
)
def test_invalid_entries_are_left_out_with_a_warning(tmp_path: Path, content: str, reason: str) -> None:
    source = tmp_path / "broken.desktop"
    source.write_text(content)
    catalog, recorder = make_catalog(tmp_path)
    assert ids(catalog) == []
    (message,) = recorder.messages()
    assert str(source) in message and reason in message


def test_first_directory_wins_for_a_duplicate_id(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write_entry(first, "app.desktop", Exec="first-prog")
    write_entry(second, "app.desktop", Exec="second-prog")
    write_entry(second, "other.desktop")
    catalog, recorder = make_catalog(first, second)
    assert ids(catalog) == ["app", "other"]
    assert catalog.argv_for("app") == ["first-prog"]
    assert recorder.events == []


def test_hidden_entry_in_first_directory_masks_the_later_one(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "app.desktop").parent.mkdir()
    (first / "app.desktop").write_text("[Desktop Entry]\nHidden=true\n")
    write_entry(second, "app.desktop")
    catalog, _ = make_catalog(first, second)
    assert catalog.get("app") is None


def test_subdirectory_ids(tmp_path: Path) -> None:
    write_entry(tmp_path, "kde/konsole.desktop")
    write_entry(tmp_path, "a/b/c.desktop")
    write_entry(tmp_path, "top.desktop")
    (tmp_path / "README").write_text("not an entry")
    (tmp_path / "notes.desktop.bak").write_text("[Desktop Entry]\n")
    catalog, _ = make_catalog(tmp_path)
    assert sorted(ids(catalog)) == ["a-b-c", "kde-konsole", "top"]
    assert catalog.get("kde-konsole").source == str(tmp_path / "kde" / "konsole.desktop")  # type: ignore[union-attr]


def test_same_id_twice_in_one_directory_warns(tmp_path: Path) -> None:
    write_entry(tmp_path, "a-b.desktop", Exec="flat")
    write_entry(tmp_path, "a/b.desktop", Exec="nested")
    catalog, recorder = make_catalog(tmp_path)
    assert ids(catalog) == ["a-b"]
    assert catalog.argv_for("a-b") == ["flat"]
    (message,) = recorder.messages()
    assert str(tmp_path / "a" / "b.desktop") in message and "same id" in message


def test_missing_directory_warns_and_others_still_load(tmp_path: Path) -> None:
    write_entry(tmp_path / "real", "app.desktop")
    catalog, recorder = make_catalog(tmp_path / "absent", tmp_path / "real")
    assert ids(catalog) == ["app"]
    (message,) = recorder.messages()
    assert str(tmp_path / "absent") in message


def test_entries_are_sorted_by_name(tmp_path: Path) -> None:
    write_entry(tmp_path, "z.desktop", Name="alpha")
    write_entry(tmp_path, "a.desktop", Name="Charlie")
    write_entry(tmp_path, "m.desktop", Name="Bravo")
    catalog, _ = make_catalog(tmp_path)
    assert [entry.name for entry in catalog.entries()] == ["alpha", "Bravo", "Charlie"]


def test_reload_picks_up_changes(tmp_path: Path) -> None:
    first = write_entry(tmp_path, "one.desktop")
    catalog, _ = make_catalog(tmp_path)
    assert ids(catalog) == ["one"]
    write_entry(tmp_path, "two.desktop")
    first.unlink()
    assert ids(catalog) == ["one"]  # nothing changes until reload
    catalog.reload()
    assert ids(catalog) == ["two"]
    with pytest.raises(UnknownApp):
        catalog.argv_for("one")


def test_argv_for(tmp_path: Path) -> None:
    write_entry(tmp_path, "many.desktop", Exec="viewer %F", Icon="viewer-icon", Name="Viewer")
    write_entry(tmp_path, "single.desktop", Exec="opener --open=%u")
    write_entry(tmp_path, "plain.desktop", Exec="clock")
    write_entry(tmp_path, "meta.desktop", Exec="meta %i %c %k", Icon="meta-icon", Name="Meta App")
    write_entry(tmp_path, "term.desktop", Exec="top -d 1", Terminal="true")
    catalog, _ = make_catalog(tmp_path)
    assert catalog.argv_for("many", ["/a", "/b c"]) == ["viewer", "/a", "/b c"]
    assert catalog.argv_for("many") == ["viewer"]
    assert catalog.argv_for("single", ["https://x.org/"]) == ["opener", "--open=https://x.org/"]
    assert catalog.argv_for("plain") == ["clock"]
    assert catalog.argv_for("meta") == [
        "meta",
        "--icon",
        "meta-icon",
        "Meta App",
        str(tmp_path / "meta.desktop"),
    ]
    assert catalog.argv_for("term") == ["xterm", "-e", "top", "-d", "1"]
    with pytest.raises(ExecError, match="one file"):
        catalog.argv_for("single", ["/a", "/b"])
    with pytest.raises(ExecError, match="does not open files"):
        catalog.argv_for("plain", ["/a"])
    with pytest.raises(ExecError, match="starts with '-'"):
        catalog.argv_for("many", ["/a", "--evil"])
    with pytest.raises(UnknownApp, match="no published application"):
        catalog.argv_for("nope")


def test_custom_terminal_argv(tmp_path: Path) -> None:
    write_entry(tmp_path, "term.desktop", Exec="htop", Terminal="true")
    catalog, _ = make_catalog(tmp_path, terminal_argv=["/opt/term", "--exec"])
    assert catalog.argv_for("term") == ["/opt/term", "--exec", "htop"]


def test_file_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apps.catalog, "MAX_DESKTOP_FILE_BYTES", 200)
    write_entry(tmp_path, "small.desktop", body="#" * 100 + "\n")
    write_entry(tmp_path, "large.desktop", body="#" * 200 + "\n")
    catalog, recorder = make_catalog(tmp_path)
    assert ids(catalog) == ["small"]
    (message,) = recorder.messages()
    assert "large.desktop" in message and "limit is 200" in message


def test_entry_count_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apps.catalog, "MAX_CATALOG_ENTRIES", 2)
    for name in ("a", "b", "c"):
        write_entry(tmp_path, f"{name}.desktop")
    catalog, recorder = make_catalog(tmp_path)
    assert ids(catalog) == ["a", "b"]
    (message,) = recorder.messages()
    assert "c.desktop" in message and "limit of 2" in message


def test_directory_depth_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apps.catalog, "MAX_DIRECTORY_DEPTH", 2)
    write_entry(tmp_path, "d1/one.desktop")
    write_entry(tmp_path, "d1/d2/two.desktop")
    write_entry(tmp_path, "d1/d2/d3/three.desktop")
    catalog, _ = make_catalog(tmp_path)
    assert sorted(ids(catalog)) == ["d1-d2-two", "d1-one"]


# --- the entries shipped in conf/apps ---


def test_shipped_entries_pass_desktop_file_validate() -> None:
    validator = shutil.which("desktop-file-validate")
    if validator is None:
        pytest.fail("desktop-file-validate is missing: apt-get install desktop-file-utils (make deps-debian)")
    files = sorted(CONF_APPS.glob("*.desktop"))
    assert {path.name for path in files} >= {"xterm.desktop", "xclock.desktop"}
    result = subprocess.run([validator, *map(str, files)], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_shipped_entries_load(tmp_path: Path) -> None:
    for program in ("xterm", "xclock"):
        fake = tmp_path / program
        fake.write_text("#!/bin/sh\n")
        fake.chmod(0o755)
    catalog, recorder = make_catalog(CONF_APPS, path_env=str(tmp_path))
    assert recorder.events == []
    xterm = catalog.get("xterm")
    assert xterm is not None
    assert (xterm.name, xterm.icon, xterm.categories) == (
        "XTerm",
        "utilities-terminal",
        ("System", "TerminalEmulator"),
    )
    assert catalog.argv_for("xterm") == ["xterm"]
    assert catalog.argv_for("xclock") == ["xclock"]
    # Without the programs on PATH, TryExec hides both.
    catalog, _ = make_catalog(CONF_APPS, path_env=str(tmp_path / "empty"))
    assert ids(catalog) == []

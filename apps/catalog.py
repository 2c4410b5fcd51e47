# Why this module exists: the applications a user may launch are whatever
# the admin published as freedesktop .desktop entries.  sessiond (root) must
# decide, from those files alone, what to list and what argv to hand the
# session agent.  Anything doubtful (a Hidden or NoDisplay entry, a TryExec
# that is not installed, an Exec that does not parse, a non-Application
# type, a malformed boolean) leaves the entry out, with a warning naming the
# file, so a broken file can never turn into a launchable command line.
# pyxdg reads the key file; the escaping it leaves undone is applied here
# through apps/keyfile_values.py (see apps/exec_line.py for the layers).
"""The published-application catalog built from .desktop directories."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from twisted.logger import Logger
from xdg.DesktopEntry import DesktopEntry
from xdg.Exceptions import Error as XdgError

from apps.exec_line import ExecError, expand_exec, file_field_code, parse_exec
from apps.keyfile_values import parse_boolean, split_list, unescape_string
from apps.localize import LOCALIZED_KEYS, pick, split_localized_key

DESKTOP_SUFFIX = ".desktop"
DESKTOP_GROUP = "Desktop Entry"
DEFAULT_TERMINAL_ARGV = ("xterm", "-e")
MAX_DESKTOP_FILE_BYTES = 1 << 20  # stock entries with every translation stay under 100 KiB
MAX_CATALOG_ENTRIES = 10_000  # more files than this means a wrongly configured directory
MAX_DIRECTORY_DEPTH = 16  # subdirectories only namespace ids; deeper is a mistake or a loop


class UnknownApp(LookupError):  # noqa: N818 -- name fixed by the apps API
    """No launchable application has this id (absent, hidden or filtered out)."""

    def __init__(self, app_id: str) -> None:
        super().__init__(f"no published application with id {app_id!r}; list the apps to see valid ids")
        self.app_id = app_id


class EntryRejectedError(Exception):
    """A desktop file that is left out of the catalog, and why."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


@dataclass(frozen=True)
class AppEntry:
    """One launchable application, values unescaped and unlocalized."""

    id: str
    name: str
    generic_name: str
    comment: str
    icon: str
    exec_value: str
    try_exec: str
    path: str
    terminal: bool
    categories: tuple[str, ...]
    startup_wm_class: str
    source: str
    # key -> locale -> value, for the keys in LOCALIZED_KEYS that have translations
    translations: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def localized(self, key: str, locale: str) -> str:
        """Name, GenericName or Comment in ``locale`` (untranslated when none fits)."""
        default = {"Name": self.name, "GenericName": self.generic_name, "Comment": self.comment}[key]
        return pick(default, self.translations.get(key, {}), locale)


class Catalog:
    """Applications published from a list of directories, first one winning.

    ``directories`` are searched recursively; an entry's id is its path
    relative to its directory with "/" replaced by "-" and the ".desktop"
    suffix removed.  When several directories provide an id, the first
    directory's file decides, even if it hides the app (that is how an admin
    masks a system entry).  ``desktop_names`` are matched against OnlyShowIn
    and NotShowIn; ``path_env`` is the PATH used for TryExec (None: this
    process's PATH).  The catalog is read on construction and on reload().
    """

    def __init__(
        self,
        directories: Sequence[str],
        *,
        desktop_names: Sequence[str] = ("sessiond",),
        path_env: str | None = None,
        terminal_argv: Sequence[str] = DEFAULT_TERMINAL_ARGV,
        logger: Logger | None = None,
    ) -> None:
        if isinstance(directories, str):
            raise TypeError("directories must be a sequence of paths, not one string")
        if not terminal_argv:
            raise ValueError("terminal_argv must name a terminal program")
        self._directories = tuple(directories)
        self._desktop_names = frozenset(desktop_names)
        self._path_env = path_env
        self._terminal_argv = tuple(terminal_argv)
        self._log = logger if logger is not None else Logger(namespace="apps.catalog")
        self._entries: dict[str, AppEntry] = {}
        self.reload()

    def reload(self) -> None:
        """Re-read every directory and replace the catalog in one step."""
        claimed: set[str] = set()
        entries: dict[str, AppEntry] = {}
        for directory in self._directories:
            for app_id, source in self._desktop_files(directory):
                if app_id in claimed:
                    continue
                if len(claimed) >= MAX_CATALOG_ENTRIES:
                    self._log.warn(
                        "Catalog limit of {limit} entries reached; ignoring {source} and the rest",
                        limit=MAX_CATALOG_ENTRIES,
                        source=source,
                    )
                    self._entries = entries
                    return
                claimed.add(app_id)
                try:
                    entry = self._load(app_id, source)
                except EntryRejectedError as rejected:
                    where = source if rejected.line is None else f"{source}:{rejected.line}"
                    self._log.warn(
                        "Leaving out application {app_id} ({where}): {reason}",
                        app_id=app_id,
                        where=where,
                        source=source,
                        line=rejected.line,
                        reason=rejected.reason,
                    )
                    continue
                if entry is not None:
                    entries[app_id] = entry
        self._entries = entries

    def entries(self) -> list[AppEntry]:
        """The launchable applications, sorted by name (then id)."""
        return sorted(self._entries.values(), key=lambda entry: (entry.name.casefold(), entry.id))

    def get(self, app_id: str) -> AppEntry | None:
        """The application with this id, or None if it is not launchable."""
        return self._entries.get(app_id)

    def argv_for(self, app_id: str, args: Sequence[str] = ()) -> list[str]:
        """The argv that launches ``app_id`` with ``args`` as its files/URLs.

        ``args`` go to whichever of %f %F %u %U the entry's Exec uses; an
        entry without one refuses args, one with %f or %u refuses more than
        one (ExecError, a message for the user).  Terminal=true entries are
        wrapped in ``terminal_argv``.  Raises UnknownApp for unknown ids.
        """
        entry = self._entries.get(app_id)
        if entry is None:
            raise UnknownApp(app_id)
        values = list(args)
        code = file_field_code(entry.exec_value)
        if values and code is None:
            raise ExecError(f"{entry.name} does not open files or URLs; launch it without arguments")
        if len(values) > 1 and code in ("f", "u"):
            raise ExecError(f"{entry.name} opens one file or URL at a time; got {len(values)}")
        argv = expand_exec(
            entry.exec_value,
            files=values,
            urls=values,
            icon=entry.icon,
            name=entry.name,
            desktop_file=entry.source,
        )
        if entry.terminal:
            return [*self._terminal_argv, *argv]
        return argv

    def _desktop_files(self, directory: str) -> list[tuple[str, str]]:
        """(id, path) of every .desktop file under ``directory``, in a stable order."""
        if not os.path.isdir(directory):
            self._log.warn("Application directory {directory} does not exist", directory=directory)
            return []
        found: list[tuple[str, str]] = []
        seen: dict[str, str] = {}

        def report(error: OSError) -> None:
            self._log.warn("Cannot read application directory: {error}", error=error)

        for root, dirnames, filenames in os.walk(directory, onerror=report):
            relative_root = os.path.relpath(root, directory)
            depth = 0 if relative_root == "." else relative_root.count(os.sep) + 1
            if depth >= MAX_DIRECTORY_DEPTH:
                dirnames.clear()
            dirnames.sort()
            for filename in sorted(filenames):
                if not filename.endswith(DESKTOP_SUFFIX):
                    continue
                relative = os.path.normpath(os.path.join(relative_root, filename))
                app_id = relative[: -len(DESKTOP_SUFFIX)].replace(os.sep, "-")
                source = os.path.join(root, filename)
                if app_id in seen:
                    self._log.warn(
                        "{source} has the same id {app_id} as {first}; using {first}",
                        source=source,
                        app_id=app_id,
                        first=seen[app_id],
                    )
                    continue
                seen[app_id] = source
                found.append((app_id, source))
        return found

    def _load(self, app_id: str, source: str) -> AppEntry | None:
        """Read one file: the entry, None when deliberately not shown, or EntryRejectedError."""
        try:
            size = os.stat(source).st_size
        except OSError as error:
            raise EntryRejectedError(f"cannot read it: {error.strerror}") from error
        if size > MAX_DESKTOP_FILE_BYTES:
            raise EntryRejectedError(f"file is {size} bytes; the limit is {MAX_DESKTOP_FILE_BYTES}")
        desktop = DesktopEntry()
        try:
            desktop.parse(source)
        except (XdgError, OSError, UnicodeError) as error:
            raise EntryRejectedError(f"not a valid desktop entry: {error}") from error
        if desktop.defaultGroup != DESKTOP_GROUP:
            raise EntryRejectedError(f"no [{DESKTOP_GROUP}] group (legacy KDE entries are not supported)")

        def text(key: str) -> str:
            return unescape_string(desktop.get(key, group=DESKTOP_GROUP))

        def flag(key: str) -> bool:
            try:
                return parse_boolean(desktop.get(key, group=DESKTOP_GROUP))
            except ValueError as error:
                raise EntryRejectedError(f"{key}: {error}", _key_line(source, key)) from error

        def items(key: str) -> tuple[str, ...]:
            return tuple(split_list(desktop.get(key, group=DESKTOP_GROUP)))

        if flag("Hidden"):
            return None  # "treated as deleted": may mask a same-id entry in a later directory
        kind = text("Type")
        if kind != "Application":
            raise EntryRejectedError(f"Type is {kind or 'missing'}; only Type=Application is published")
        if flag("NoDisplay"):
            return None
        only_show_in = items("OnlyShowIn")
        if only_show_in and self._desktop_names.isdisjoint(only_show_in):
            return None
        if not self._desktop_names.isdisjoint(items("NotShowIn")):
            return None
        name = text("Name")
        if not name:
            raise EntryRejectedError("Name is missing")
        exec_value = text("Exec")
        try:
            parse_exec(exec_value)
        except ExecError as error:
            raise EntryRejectedError(f"Exec does not parse: {error}", _key_line(source, "Exec")) from error
        try_exec = text("TryExec")
        if try_exec and not self._try_exec_found(try_exec):
            return None
        return AppEntry(
            id=app_id,
            name=name,
            generic_name=text("GenericName"),
            comment=text("Comment"),
            icon=text("Icon"),
            exec_value=exec_value,
            try_exec=try_exec,
            path=text("Path"),
            terminal=flag("Terminal"),
            categories=items("Categories"),
            startup_wm_class=text("StartupWMClass"),
            source=source,
            translations=_translations(desktop.content.get(DESKTOP_GROUP, {})),
        )

    def _try_exec_found(self, try_exec: str) -> bool:
        """TryExec: an absolute path must be an executable file; a name is looked up on PATH."""
        if os.path.isabs(try_exec):
            return os.path.isfile(try_exec) and os.access(try_exec, os.X_OK)
        if os.sep in try_exec:
            return False  # relative to what? sessiond's cwd means nothing here
        return shutil.which(try_exec, path=self._path_env) is not None


def _translations(group: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The translated values of LOCALIZED_KEYS in a raw key-file group."""
    found: dict[str, dict[str, str]] = {}
    for raw_key, raw_value in group.items():
        split = split_localized_key(raw_key)
        if split is not None and split[0] in LOCALIZED_KEYS:
            found.setdefault(split[0], {})[split[1]] = unescape_string(raw_value)
    return found


def _key_line(source: str, key: str) -> int | None:
    """1-based line of ``key=`` in the [Desktop Entry] group of ``source``, if found."""
    try:
        with open(source, encoding="utf-8", errors="replace") as handle:
            group = ""
            for number, line in enumerate(handle, start=1):
                stripped = line.strip()
                if stripped.startswith("["):
                    group = stripped.lstrip("[").rstrip("]")
                elif group == DESKTOP_GROUP and stripped.split("=", 1)[0].strip() == key:
                    return number
    except OSError:
        return None
    return None

# libX11's global compose cache, made as root for the sessions' locale.
#
# Why: an Xlib app that opens an input method (xterm; every Xt, Motif and Tk
# app) in a UTF-8 locale parses the locale's Compose file (en_US.UTF-8's has
# ~6000 sequences) at each start: 5.5 ms of xterm's ~45 ms from exec to its
# first map here, on every launch, login or not. libX11 maps a ready table
# instead from its global cache directory (GLOBAL_DIR) when a file there is
# root's, not group- or world-writable, newer than the Compose file, and made
# for that file and codeset. libX11 writes such caches only for a non-root
# process, into a directory of that process's own uid ($XCOMPOSECACHE), and
# never the global one; Debian ships none.
#
# How (sessiond/compose_cache.py runs `python -m isolation.compose_cache UID
# LANG` as root when the cache is missing or stale): a child drops to UID, a
# uid of [session] x_uids that the daemon holds for the build (no other
# process runs as it, so nothing else can write its directory), with no
# supplementary groups and no_new_privs, and execs the unprivileged half
# (sessiond/compose_cache.py: its own tiny Xvfb, XOpenIM with XCOMPOSECACHE
# set to a fresh directory owned by UID). libX11 writes its cache file there.
# Root then checks the one file (a regular file of UID with a libX11 cache
# name, at most MAX_CACHE_BYTES, checked before reading, naming the Compose
# file and codeset in its header) and installs a copy, root's and mode 0644,
# into GLOBAL_DIR by rename: a session never sees half a file. Only the
# admin's [session] lang reaches this; nothing from the network does.
"""build_cache(): make and install libX11's compose cache for one locale (run as root)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
import tempfile
import time
from typing import Final, NoReturn

from isolation import linux
from isolation.enter import X11_SOCKET_DIR
from isolation.launcher import enter_env

# libX11's XIM_GLOBAL_CACHE_DIR (compiled in; Debian's libX11 1.8).
GLOBAL_DIR: Final = "/var/cache/libx11/compose"
# Where libX11 looks up a locale's Compose file (compose.dir) and its aliases.
X_LOCALE_DIR: Final = "/usr/share/X11/locale"
# A cache file's name as libX11 makes it: endianness, format version, sizeof(DefTree), two hashes.
CACHE_NAME_RE: Final = re.compile(r"[lb][0-9]{1,4}_[0-9a-f]{3}_[0-9a-f]{8}_[0-9a-f]{8}")
# en_US.UTF-8's cache is ~400 KiB; a file larger than this is refused before it is read.
MAX_CACHE_BYTES: Final = 16 * 1024 * 1024
# libX11 writes the Compose file's name and the codeset after a header of a few dozen bytes.
HEADER_BYTES: Final = 4096
# Lines read from compose.dir or locale.alias at most (Debian's have ~1000).
MAX_TABLE_LINES: Final = 20000
# The unprivileged half's time to start its Xvfb and open the input method (~0.1 s here).
BUILD_TIMEOUT_SECONDS: Final = 30.0
# Exit status of the child when it could not drop to UID (its one line on stderr says why).
EXIT_DROP_FAILED: Final = 75
# Largest uid accepted (sessiond passes one of [session] x_uids).
MAX_UID: Final = 2**31 - 2


class CacheError(Exception):
    """The cache could not be made or installed (the message says why)."""


def _table(path: str) -> list[tuple[str, str]]:
    """(first, second) of each line of a libX11 locale table ("first:  second" or "first second")."""
    pairs = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle):
            if number >= MAX_TABLE_LINES:
                break
            fields = line.split("#", 1)[0].split()
            if len(fields) >= 2:
                pairs.append((fields[0].rstrip(":"), fields[1]))
    return pairs


def compose_file(lang: str, locale_dir: str = X_LOCALE_DIR) -> str | None:
    """The Compose file libX11 reads in locale LANG (through locale.alias, then compose.dir), or None."""
    try:
        names = {lang, *(target for alias, target in _table(os.path.join(locale_dir, "locale.alias"))
                         if alias == lang)}  # fmt: skip
        for path, name in _table(os.path.join(locale_dir, "compose.dir")):
            if name in names:
                return os.path.join(locale_dir, path)
    except OSError:
        return None
    return None


def codeset(lang: str) -> str | None:
    """The codeset nl_langinfo(CODESET) names in LANG, for the codesets sessions use; None if unknown."""
    charset = lang.partition(".")[2].partition("@")[0]
    return "UTF-8" if charset.lower().replace("-", "") == "utf8" else None


def header_names(compose: str, charset: str) -> bytes:
    """What a cache made for COMPOSE in CHARSET holds in its header: both names, each NUL-ended."""
    return compose.encode() + b"\0" + charset.encode() + b"\0"


def _open_file(path: str) -> int:
    """A read-only descriptor of PATH, never through a symbolic link nor blocking on a FIFO
    (the caller fstat()s it: a regular file of the expected owner); OSError otherwise."""
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)


def is_current(lang: str, cache_dir: str = GLOBAL_DIR, locale_dir: str = X_LOCALE_DIR, owner: int = 0) -> bool:
    """True if CACHE_DIR holds a cache libX11 would use for LANG's Compose file (see the header):
    the directory and the file OWNER's (libX11: root's) and writable by nobody else."""
    compose, charset = compose_file(lang, locale_dir), codeset(lang)
    if compose is None or charset is None:
        return False
    try:
        made = os.stat(compose).st_mtime
        folder = os.lstat(cache_dir)
        names = os.listdir(cache_dir)
    except OSError:
        return False
    if not stat.S_ISDIR(folder.st_mode) or folder.st_uid != owner or folder.st_mode & 0o022:
        return False
    wanted = header_names(compose, charset)
    for name in names:
        if CACHE_NAME_RE.fullmatch(name) is None:
            continue
        try:
            fd = _open_file(os.path.join(cache_dir, name))
        except OSError:
            continue
        try:
            info = os.fstat(fd)
            usable = stat.S_ISREG(info.st_mode) and info.st_uid == owner and not info.st_mode & 0o022
            if usable and info.st_mtime > made and wanted in os.read(fd, HEADER_BYTES):
                return True
        finally:
            os.close(fd)
    return False


def read_built(folder: str, uid: int, compose: str, charset: str) -> tuple[str, bytes]:
    """(name, bytes) of the one cache file the unprivileged half left in FOLDER; CacheError if
    FOLDER holds anything else or the file is not UID's regular file, too large, or not made for
    COMPOSE in CHARSET."""
    names = os.listdir(folder)
    if len(names) != 1 or CACHE_NAME_RE.fullmatch(names[0]) is None:
        raise CacheError(f"libX11 left {names!r} instead of one cache file")
    try:
        fd = _open_file(os.path.join(folder, names[0]))
    except OSError as exc:  # (a symbolic link: ELOOP)
        raise CacheError(f"{names[0]} cannot be opened as a file: {exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != uid:
            raise CacheError(f"{names[0]} is not a regular file of uid {uid}")
        if info.st_size > MAX_CACHE_BYTES:
            raise CacheError(f"{names[0]} has {info.st_size} bytes, more than {MAX_CACHE_BYTES}")
        chunks, left = [], info.st_size
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if header_names(compose, charset) not in data[:HEADER_BYTES]:
        raise CacheError(f"{names[0]} was not made for {compose} in {charset}")
    return names[0], data


def _make_dirs(path: str) -> None:
    """PATH and its missing parents, made mode 0755 whatever the umask: every user's apps
    must reach the cache (libX11 stats the directory as the user)."""
    parent = os.path.dirname(path)
    if parent != path and not os.path.isdir(parent):
        _make_dirs(parent)
    try:
        os.mkdir(path)
    except FileExistsError:
        return
    os.chmod(path, 0o755)


def install(name: str, data: bytes, cache_dir: str = GLOBAL_DIR) -> str:
    """Write DATA as CACHE_DIR/NAME, this process's (root's) and mode 0644, by rename; the path.
    CACHE_DIR is made (0755) if missing; one that is not this process's or is writable by others
    is refused (libX11 would ignore what it holds)."""
    if CACHE_NAME_RE.fullmatch(name) is None:
        raise CacheError(f"{name!r} is not a libX11 cache file name")
    _make_dirs(cache_dir)
    folder = os.lstat(cache_dir)
    if not stat.S_ISDIR(folder.st_mode) or folder.st_uid != os.geteuid() or folder.st_mode & 0o022:
        raise CacheError(f"{cache_dir} is not a directory of root's that only root may write")
    fd, temporary = tempfile.mkstemp(prefix=".sessiond-", dir=cache_dir)
    try:
        os.fchmod(fd, 0o644)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        target = os.path.join(cache_dir, name)
        os.rename(temporary, target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        os.unlink(temporary)
        raise
    return target


def _drop_and_exec(uid: int, folder: str, lang: str, python: str) -> NoReturn:
    """In the forked child: become UID (no groups, no_new_privs) and exec the unprivileged half."""
    try:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        linux.set_no_new_privs()
        if os.getresuid() != (uid, uid, uid) or os.getresgid() != (uid, uid, uid) or os.getgroups():
            raise OSError("the credentials did not drop")
        env = {**enter_env(), "HOME": folder, "XCOMPOSECACHE": folder, "LANG": lang}
        os.execve(python, [python, "-m", "sessiond.compose_cache"], env)
    except BaseException as exc:  # noqa: BLE001 - anything here ends the child, with one line
        os.write(2, f"compose cache: cannot drop to uid {uid}: {exc}\n".encode(errors="replace"))
    os._exit(EXIT_DROP_FAILED)


def _x11_socket_dir() -> None:
    """X11_SOCKET_DIR (the host's: the unprivileged half's Xvfb puts its socket there), made
    root's with mode 1777 if missing, as X expects; made by the build uid, that uid would own
    the host's X socket directory. An existing one is left as it is."""
    try:
        os.mkdir(X11_SOCKET_DIR, 0o700)
    except FileExistsError:
        return
    os.chmod(X11_SOCKET_DIR, 0o1777)


def _wait(pid: int, seconds: float) -> int:
    """PID's exit status; killed (and CacheError) past SECONDS."""
    deadline = time.monotonic() + seconds
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise CacheError(f"the input method did not open within {seconds:.0f} s")
        time.sleep(0.01)


def build_cache(uid: int, lang: str, python: str = sys.executable, cache_dir: str = GLOBAL_DIR,
                locale_dir: str = X_LOCALE_DIR) -> str:  # fmt: skip
    """Make LANG's compose cache as UID and install it into CACHE_DIR (see the header); its path.
    CacheError says why not."""
    if os.geteuid() != 0:
        raise CacheError("run as root: the global cache is root's")
    if not 0 < uid <= MAX_UID:
        raise CacheError(f"uid {uid} is not 1..{MAX_UID}")
    compose, charset = compose_file(lang, locale_dir), codeset(lang)
    if compose is None or charset is None:
        raise CacheError(f"libX11 has no Compose file for {lang!r} (or its codeset is not UTF-8)")
    _x11_socket_dir()
    folder = tempfile.mkdtemp(prefix="sessiond-compose-")
    try:
        os.chown(folder, uid, uid)
        pid = os.fork()
        if pid == 0:
            _drop_and_exec(uid, folder, lang, python)
        status = _wait(pid, BUILD_TIMEOUT_SECONDS)
        if status != 0:
            raise CacheError(f"the unprivileged half exited with status {status}")
        name, data = read_built(folder, uid, compose, charset)
        return install(name, data, cache_dir)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m isolation.compose_cache UID LANG`: one line on stdout (made) or stderr (not)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not args[0].isdigit():
        print("usage: python -m isolation.compose_cache UID LANG", file=sys.stderr)
        return 2
    uid, lang = int(args[0]), args[1]
    try:
        if is_current(lang):
            print(f"compose cache for {lang} is current")
            return 0
        path = build_cache(uid, lang)
    except (CacheError, OSError) as exc:
        print(f"compose cache for {lang} not made: {exc}", file=sys.stderr)
        return 1
    print(f"compose cache for {lang} installed: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

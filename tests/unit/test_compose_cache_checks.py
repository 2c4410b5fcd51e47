"""Unit tests for isolation/compose_cache.py: which Compose file a locale reads, when a cache is
current, what the root half accepts from the unprivileged one, and how it installs it."""

from __future__ import annotations

import os
import pathlib

import pytest

from isolation import compose_cache
from isolation.compose_cache import (
    MAX_CACHE_BYTES,
    CacheError,
    build_cache,
    codeset,
    compose_file,
    header_names,
    install,
    is_current,
    read_built,
)

NAME = "l4_030_313cb605_00280cc0"


@pytest.fixture
def locale_dir(tmp_path: pathlib.Path) -> str:
    """A libX11 locale directory: C.UTF-8 is an alias of en_US.UTF-8, whose Compose file exists."""
    folder = tmp_path / "locale"
    (folder / "en_US.UTF-8").mkdir(parents=True)
    (folder / "en_US.UTF-8" / "Compose").write_text("<Multi_key> <a> <e> : \"\u00e6\"\n")
    (folder / "locale.alias").write_text("# comment\nC.UTF-8:\t\t\ten_US.UTF-8\nC.utf8:\t\ten_US.UTF-8\n")
    (folder / "compose.dir").write_text("# comment\nen_US.UTF-8/Compose:\t\ten_US.UTF-8\n"
                                        "pt_BR.UTF-8/Compose:\t\tpt_BR.UTF-8\n")  # fmt: skip
    os.utime(folder / "en_US.UTF-8" / "Compose", (1_000_000, 1_000_000))
    return str(folder)


def cache_of(folder: pathlib.Path, compose: str, name: str = NAME, mode: int = 0o644) -> pathlib.Path:
    folder.mkdir(mode=0o755, exist_ok=True)
    path = folder / name
    path.write_bytes(b"\x00" * 48 + header_names(compose, "UTF-8") + b"\x01" * 1000)
    path.chmod(mode)
    return path


def test_a_locale_reads_the_compose_file_its_alias_names(locale_dir: str) -> None:
    wanted = os.path.join(locale_dir, "en_US.UTF-8/Compose")
    assert compose_file("C.UTF-8", locale_dir) == wanted
    assert compose_file("en_US.UTF-8", locale_dir) == wanted
    assert compose_file("pt_BR.UTF-8", locale_dir) == os.path.join(locale_dir, "pt_BR.UTF-8/Compose")
    assert compose_file("xx_XX.UTF-8", locale_dir) is None
    assert compose_file("C.UTF-8", os.path.join(locale_dir, "missing")) is None


def test_this_hosts_c_utf8_reads_en_us_compose() -> None:
    assert compose_file("C.UTF-8") == "/usr/share/X11/locale/en_US.UTF-8/Compose"


@pytest.mark.parametrize(("lang", "expected"), [("C.UTF-8", "UTF-8"), ("de_DE.utf8", "UTF-8"),
                                                ("en_US.UTF-8@euro", "UTF-8"), ("C", None),
                                                ("en_US.ISO-8859-1", None)])  # fmt: skip
def test_only_utf8_codesets_are_named(lang: str, expected: str | None) -> None:
    assert codeset(lang) == expected


def test_a_cache_for_the_compose_file_newer_than_it_is_current(tmp_path: pathlib.Path, locale_dir: str) -> None:
    folder = tmp_path / "cache"
    cache_of(folder, compose_file("C.UTF-8", locale_dir) or "")
    assert is_current("C.UTF-8", str(folder), locale_dir, owner=os.geteuid())
    assert not is_current("C.UTF-8", str(folder), locale_dir, owner=os.geteuid() + 1), "another owner's"
    assert not is_current("pt_BR.UTF-8", str(folder), locale_dir, owner=os.geteuid()), "another Compose file's"
    assert not is_current("C", str(folder), locale_dir, owner=os.geteuid()), "not a UTF-8 locale"
    assert not is_current("C.UTF-8", str(tmp_path / "none"), locale_dir, owner=os.geteuid())


def test_a_cache_libx11_would_ignore_is_not_current(tmp_path: pathlib.Path, locale_dir: str) -> None:
    compose = compose_file("C.UTF-8", locale_dir) or ""
    folder = tmp_path / "cache"
    path = cache_of(folder, compose)
    os.utime(path, (999_999, 999_999))  # older than the Compose file
    assert not is_current("C.UTF-8", str(folder), locale_dir, owner=os.geteuid())
    os.utime(path)
    path.chmod(0o664)  # group-writable
    assert not is_current("C.UTF-8", str(folder), locale_dir, owner=os.geteuid())
    path.chmod(0o644)
    folder.chmod(0o775)  # the directory group-writable
    assert not is_current("C.UTF-8", str(folder), locale_dir, owner=os.geteuid())
    folder.chmod(0o755)
    path.rename(folder / "not-a-cache-name")
    assert not is_current("C.UTF-8", str(folder), locale_dir, owner=os.geteuid())
    (folder / NAME).symlink_to(folder / "not-a-cache-name")
    assert not is_current("C.UTF-8", str(folder), locale_dir, owner=os.geteuid()), "a symbolic link"


def test_the_root_half_takes_one_cache_file_of_the_build_uid(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "built"
    made = cache_of(folder, "/x/Compose")
    name, data = read_built(str(folder), os.geteuid(), "/x/Compose", "UTF-8")
    assert (name, data) == (NAME, made.read_bytes())
    with pytest.raises(CacheError, match="not made for"):
        read_built(str(folder), os.geteuid(), "/y/Compose", "UTF-8")
    with pytest.raises(CacheError, match="not a regular file of uid"):
        read_built(str(folder), os.geteuid() + 1, "/x/Compose", "UTF-8")
    (folder / "l4_030_00000000_00000000").write_bytes(b"")
    with pytest.raises(CacheError, match="instead of one cache file"):
        read_built(str(folder), os.geteuid(), "/x/Compose", "UTF-8")


def test_the_root_half_refuses_a_link_and_a_file_past_the_bound_before_reading(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "built"
    folder.mkdir()
    target = cache_of(tmp_path / "elsewhere", "/x/Compose")
    (folder / NAME).symlink_to(target)
    with pytest.raises(CacheError, match="cannot be opened as a file"):
        read_built(str(folder), os.geteuid(), "/x/Compose", "UTF-8")
    (folder / NAME).unlink()
    with open(folder / NAME, "wb") as handle:  # sparse: one byte past the bound, nothing to read
        handle.truncate(MAX_CACHE_BYTES + 1)
    with pytest.raises(CacheError, match=f"more than {MAX_CACHE_BYTES}"):
        read_built(str(folder), os.geteuid(), "/x/Compose", "UTF-8")


def test_install_makes_the_directories_readable_by_all_and_replaces_by_rename(tmp_path: pathlib.Path) -> None:
    old = os.umask(0o077)  # a daemon's strict umask must not hide the cache from users
    try:
        path = install(NAME, b"first", str(tmp_path / "libx11" / "compose"))
        assert install(NAME, b"second", str(tmp_path / "libx11" / "compose")) == path
    finally:
        os.umask(old)
    assert pathlib.Path(path).read_bytes() == b"second"
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert os.stat(tmp_path / "libx11").st_mode & 0o777 == 0o755
    assert os.stat(tmp_path / "libx11" / "compose").st_mode & 0o777 == 0o755
    assert sorted(os.listdir(tmp_path / "libx11" / "compose")) == [NAME], "a temporary file was left"
    with pytest.raises(CacheError, match="not a libX11 cache file name"):
        install("../escape", b"x", str(tmp_path / "libx11" / "compose"))
    (tmp_path / "libx11" / "compose").chmod(0o777)
    with pytest.raises(CacheError, match="only root may write"):
        install(NAME, b"third", str(tmp_path / "libx11" / "compose"))


@pytest.mark.root
def test_build_refuses_a_uid_out_of_range_and_a_locale_without_compose(tmp_path: pathlib.Path,
                                                                        locale_dir: str) -> None:  # fmt: skip
    with pytest.raises(CacheError, match="is not 1.."):
        build_cache(0, "C.UTF-8", cache_dir=str(tmp_path), locale_dir=locale_dir)
    with pytest.raises(CacheError, match="no Compose file"):
        build_cache(1900000000, "xx_XX.UTF-8", cache_dir=str(tmp_path), locale_dir=locale_dir)
    with pytest.raises(CacheError, match="no Compose file"):
        build_cache(1900000000, "C", cache_dir=str(tmp_path), locale_dir=locale_dir)


def test_main_says_what_it_did_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert compose_cache.main(["x", "C.UTF-8"]) == 2
    assert "usage" in capsys.readouterr().err


class FakePool:
    def __init__(self, free: list[int]) -> None:
        self.free, self.released = free, []

    def allocate(self) -> int | None:
        return self.free.pop(0) if self.free else None

    def release(self, uid: int) -> None:
        self.released.append(uid)


class FakeReactor:
    def __init__(self, error: OSError | None = None) -> None:
        self.spawned: list[tuple[object, list[str]]] = []
        self.error = error

    def spawnProcess(self, proto: object, python: str, argv: list[str], **_kw: object) -> None:  # noqa: N802
        if self.error is not None:
            raise self.error
        self.spawned.append((proto, argv))


class Ended:
    def __init__(self, code: int) -> None:
        self.value = type("Status", (), {"exitCode": code})()


def test_the_daemon_builds_only_a_missing_cache_and_gives_the_uid_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from sessiond import compose_cache as daemon_side

    monkeypatch.setattr(daemon_side, "is_current", lambda lang: True)
    pool, reactor = FakePool([1900000007]), FakeReactor()
    assert not daemon_side.refresh(reactor, "/py", pool, "C.UTF-8")  # type: ignore[arg-type]
    assert reactor.spawned == [] and pool.free == [1900000007]

    monkeypatch.setattr(daemon_side, "is_current", lambda lang: False)
    assert not daemon_side.refresh(reactor, "/py", None, "C.UTF-8")  # no X uids: no build
    assert not daemon_side.refresh(reactor, "/py", FakePool([]), "C.UTF-8")  # type: ignore[arg-type]
    failing = FakePool([1900000008])
    assert not daemon_side.refresh(FakeReactor(OSError("no python")), "/py", failing, "C.UTF-8")  # type: ignore[arg-type]
    assert failing.released == [1900000008]

    assert daemon_side.refresh(reactor, "/py", pool, "C.UTF-8")  # type: ignore[arg-type]
    (build, argv), = reactor.spawned
    assert argv == ["/py", "-m", "isolation.compose_cache", "1900000007", "C.UTF-8"]
    assert pool.released == []
    build.outReceived(b"x" * 5000)  # type: ignore[attr-defined]
    assert len(build.output) == daemon_side.MAX_OUTPUT_BYTES  # type: ignore[attr-defined]
    build.processEnded(Ended(1))  # type: ignore[attr-defined]
    assert pool.released == [1900000007]


def test_the_x_socket_directory_is_made_as_x_expects_and_an_existing_one_left(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    # The unprivileged half's Xvfb would make it as its own uid where it is missing.
    where = tmp_path / ".X11-unix"
    monkeypatch.setattr(compose_cache, "X11_SOCKET_DIR", str(where))
    compose_cache._x11_socket_dir()
    info = os.stat(where)
    assert (info.st_uid, info.st_mode & 0o7777) == (os.geteuid(), 0o1777)
    where.chmod(0o755)
    compose_cache._x11_socket_dir()
    assert os.stat(where).st_mode & 0o7777 == 0o755

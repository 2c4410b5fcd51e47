# libX11's compose cache (sessiond/compose_cache.py, isolation/compose_cache.py)
# through the real thing: the installed sessiond as root, its x_uids, a real
# Xvfb and libX11, real PAM users and their sessions' xterm. What an admin
# or a user would see: with the cache gone, sessiond's start makes it (one
# log line), root's and mode 0644 in /var/cache/libx11/compose/, and a
# user's xterm in a session maps it instead of parsing the Compose file;
# with compose_cache = false sessiond writes nothing there and the xterm maps
# no cache. The module leaves the cache as a default sessiond makes it.
"""Integration: sessiond makes libX11's compose cache at start, and sessions' apps use it."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Iterator

import pytest

from isolation.compose_cache import CACHE_NAME_RE, GLOBAL_DIR, compose_file, is_current
from sessiond.daemon import COMPOSE_CACHE_DELAY_SECONDS

from svtest import VENV_BIN, Server, TestUser, start_sessiond, stop_sessiond, svclient

pytestmark = [pytest.mark.integration, pytest.mark.root]

LANG = "C.UTF-8"  # [session] lang's default
# From sessiond's start to the cache's log line: an Xvfb and two interpreters, ~0.3 s here.
BUILD_TIMEOUT = 60.0


def remove_caches() -> None:
    """No libX11 cache in the global directory (what a host without one looks like)."""
    if os.path.isdir(GLOBAL_DIR):
        for name in os.listdir(GLOBAL_DIR):
            if CACHE_NAME_RE.fullmatch(name):
                os.unlink(os.path.join(GLOBAL_DIR, name))


def caches() -> list[str]:
    return sorted(name for name in os.listdir(GLOBAL_DIR) if CACHE_NAME_RE.fullmatch(name)) \
        if os.path.isdir(GLOBAL_DIR) else []  # fmt: skip


def wait_log(server: Server, text: str) -> None:
    deadline = time.monotonic() + BUILD_TIMEOUT
    while text not in server.log():
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{server.log()[-3000:]}"
        time.sleep(0.1)


def xterm_maps(server: Server, user: TestUser) -> list[str]:
    """Launch xterm in USER's session; the compose cache files its process maps."""
    launched = svclient(server, user, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + server.log()[-3000:]
    deadline = time.monotonic() + 30
    while True:
        found = subprocess.run(["pgrep", "-u", user.name, "-x", "xterm"], capture_output=True, text=True)
        pids = found.stdout.split()
        if pids:
            time.sleep(0.5)  # xterm opens its input method right after its window; let it get there
            with open(f"/proc/{pids[0]}/maps", encoding="ascii", errors="replace") as handle:
                return sorted({line.split()[-1] for line in handle if GLOBAL_DIR in line})
        assert time.monotonic() < deadline, f"no xterm of {user.name} runs"
        time.sleep(0.1)


@pytest.fixture
def no_cache() -> Iterator[None]:
    remove_caches()
    yield
    # Leave the host as a default sessiond leaves it: with the cache.
    if not is_current(LANG):
        made = subprocess.run([os.path.join(VENV_BIN, "python"), "-m", "isolation.compose_cache", "1900009999", LANG],
                              capture_output=True, text=True, timeout=BUILD_TIMEOUT)  # fmt: skip
        assert made.returncode == 0, made.stderr


def test_sessiond_makes_the_compose_cache_at_start_and_a_sessions_xterm_maps_it(
        no_cache: None, tmp_path_factory: pytest.TempPathFactory, user_factory: object) -> None:  # fmt: skip
    alice: TestUser = user_factory("svt-cc-a")  # type: ignore[operator]
    server = start_sessiond(str(tmp_path_factory.mktemp("sessiond-compose")))
    try:
        wait_log(server, f"compose cache for {LANG} installed")
        made = caches()
        assert len(made) == 1, made
        path = os.path.join(GLOBAL_DIR, made[0])
        info = os.stat(path)
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o644)
        assert stat.S_IMODE(os.stat(GLOBAL_DIR).st_mode) == 0o755 and os.stat(GLOBAL_DIR).st_uid == 0
        assert info.st_mtime > os.stat(compose_file(LANG) or "").st_mtime
        assert is_current(LANG)
        assert xterm_maps(server, alice) == [path], "the session's xterm does not use the cache"
    finally:
        stop_sessiond(server)
    # A second start finds it current: nothing is built again.
    again = start_sessiond(str(tmp_path_factory.mktemp("sessiond-compose-again")))
    try:
        time.sleep(COMPOSE_CACHE_DELAY_SECONDS + 2.0)  # the check comes that long after the start
        assert "compose cache" not in again.log(), again.log()[-2000:]
        assert caches() == made
    finally:
        stop_sessiond(again)


def test_with_compose_cache_false_sessiond_writes_none_and_the_xterm_maps_none(
        no_cache: None, tmp_path_factory: pytest.TempPathFactory, user_factory: object) -> None:  # fmt: skip
    bob: TestUser = user_factory("svt-cc-b")  # type: ignore[operator]
    server = start_sessiond(str(tmp_path_factory.mktemp("sessiond-no-compose")), session="compose_cache = false\n")
    try:
        assert xterm_maps(server, bob) == []
        assert caches() == []
        assert "compose cache" not in server.log()
    finally:
        stop_sessiond(server)

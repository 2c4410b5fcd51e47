# The sessiond side of starting a sandboxed session program.
#
# Why: sessiond runs as root and must hand exactly one typed request to the
# privileged child (isolation.enter) without leaking its own environment,
# descriptors or working directory into it. This module builds that child's
# argv and clean environment, owns the per-session directory on the host
# (created root-safe: no symlink following, fchown/fchmod on an fd), and
# offers a synchronous spawn for tests and tools. sessiond itself spawns
# enter_argv() through Twisted with enter_env() and writes to_json(spec) on
# the child's stdin, then closes it.
"""Spawn `python -m isolation.enter` with a spec; manage per-session dirs."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
from typing import IO

import isolation
from isolation.accounts import Account
from isolation.spec import SandboxSpec, check_session_id, to_json
from isolation.zygote import X_SLOT_FLAG, ZYGOTE_FLAG

# PATH for the root child; it only needs to find nothing (argv[0] and the
# session program are absolute), so keep it to root-owned system dirs.
ENTER_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
ENTER_LANG = "C.UTF-8"
# Mode of the directory that holds all session dirs: root-owned, traversable.
SESSION_BASE_MODE = 0o755
# Mode of one session's dir: only its user.
SESSION_DIR_MODE = 0o700


# The zygote imports the agent's code without docstrings (-OO: ~0.9 MiB less
# per session; nothing in the agent reads a docstring) from .opt-2.pyc files
# that `make install` compiles into this directory of the venv, root-owned
# like the code itself. Given as -X pycache_prefix, which the agent's apps do
# not inherit (PYTHONPYCACHEPREFIX would be). Where the directory is missing
# (an interpreter outside an installation), the zygote runs as before.
AGENT_PYCACHE = "agent-pycache"


class LauncherError(Exception):
    """The host-side layout for a session cannot be created safely."""


def enter_argv(python: str, zygote: bool = False, x_slot: bool = False) -> list[str]:
    """argv that runs the privileged sandbox entry with interpreter `python`
    (ZYGOTE: with the agent preloaded, see isolation.zygote; X_SLOT: a slot line
    comes before the spec, isolation/slot.py)."""
    if not os.path.isabs(python):
        raise ValueError(f"python interpreter {python!r} must be an absolute path")
    cache = agent_pycache(python)
    optimized = ["-OO", "-X", f"pycache_prefix={cache}"] if zygote and os.path.isdir(cache) else []
    flags = (ZYGOTE_FLAG, *((X_SLOT_FLAG,) if x_slot else ())) if zygote else ()
    return [python, *optimized, "-m", "isolation.enter", *flags]


def agent_pycache(python: str) -> str:
    """The venv's AGENT_PYCACHE for the interpreter PYTHON (<venv>/bin/python)."""
    return os.path.join(os.path.dirname(os.path.dirname(python)), AGENT_PYCACHE)


def package_root() -> str:
    """The directory that contains the isolation package (for PYTHONPATH)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(isolation.__file__)))


def enter_env() -> dict[str, str]:
    """The whole environment of the root child: nothing from the caller's.

    PYTHONPATH points at the directory this package was imported from, so the
    child imports the same code as the parent whether it is installed in the
    venv or run from a checkout.
    """
    return {"PATH": ENTER_PATH, "LANG": ENTER_LANG, "PYTHONPATH": package_root()}


def _check_base(base: str) -> None:
    info = os.lstat(base)
    if not stat.S_ISDIR(info.st_mode):
        raise LauncherError(f"session base {base} is not a directory (or is a symlink)")
    if info.st_uid != 0 or info.st_mode & 0o022:
        raise LauncherError(
            f"session base {base} must be owned by root and not group/other-writable"
        )


def prepare_session_dir(base: str, session_id: str, account: Account) -> str:
    """Create base/session_id (mode 0700, owned by the user); return its path.

    `base` is created root-owned 0755 if missing and must be root-owned and
    not writable by others. An existing session dir is re-owned and re-moded
    (re-adoption after a sessiond restart); a symlink there is refused.
    """
    check_session_id(session_id)
    if not os.path.isabs(base):
        raise LauncherError(f"session base {base!r} must be an absolute path")
    if not os.path.lexists(base):
        os.makedirs(base, SESSION_BASE_MODE, exist_ok=True)
        os.chown(base, 0, 0, follow_symlinks=False)
        os.chmod(base, SESSION_BASE_MODE, follow_symlinks=False)
    _check_base(base)
    path = os.path.join(base, session_id)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, SESSION_DIR_MODE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise LauncherError(f"session dir {path} is not a plain directory: {exc}") from None
    try:
        os.fchown(fd, account.uid, account.gid)
        os.fchmod(fd, SESSION_DIR_MODE)
    finally:
        os.close(fd)
    return path


def remove_session_dir(base: str, session_id: str) -> None:
    """Remove base/session_id and everything in it; missing is fine.

    The tree is user-owned, so removal must not follow symlinks planted in
    it: shutil.rmtree's fd-based walk guarantees that on Linux.
    """
    check_session_id(session_id)
    if not shutil.rmtree.avoids_symlink_attacks:
        raise LauncherError("this platform's rmtree can follow symlinks; refusing")
    path = os.path.join(base, session_id)
    if os.path.islink(path):
        os.unlink(path)
        return
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)


def spawn_sandboxed(spec: SandboxSpec, python: str = sys.executable,
                    stdout: int | IO[bytes] | None = None,
                    stderr: int | IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    """Start spec.argv in a sandbox; return the running isolation.enter child.

    The spec is written to the child's stdin, which is then closed. Fds in
    spec.keep_fds are passed through. The exit status tells the outcome
    (see isolation.enter: 70 drop check, 71 bad spec, 72 setup, 127 exec).
    """
    data = to_json(spec)
    proc = subprocess.Popen(
        enter_argv(python),
        stdin=subprocess.PIPE,
        stdout=stdout,
        stderr=stderr,
        env=enter_env(),
        cwd="/",
        close_fds=True,
        pass_fds=spec.keep_fds,
    )
    stdin = proc.stdin
    if stdin is None:  # not possible with stdin=PIPE; keeps the type checker exact
        raise RuntimeError("no stdin pipe to the sandbox child")
    try:
        stdin.write(data)
    except BrokenPipeError:
        pass  # the child died early; its exit status says why
    finally:
        with contextlib.suppress(BrokenPipeError):
            stdin.close()
        proc.stdin = None  # closed: communicate()/wait() must not touch it
    return proc

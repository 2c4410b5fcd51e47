# The agent zygote: the sandbox entry with the agent's code already loaded.
#
# Why: without it, every session starts a fresh `python -m sessiond.agent`
# that imports the whole display pipeline again (a few hundred ms on a busy
# host) after the sandbox entry has already started one interpreter. With
# `isolation.enter --zygote`, the root entry imports the agent's modules
# before it reads its spec, freezes the garbage collector (gc.freeze: the
# collector never writes to those objects, so their pages stay shared with
# the forks), and after the privilege drop the agent runs in the forked
# process instead of being exec'd. (The supervisor and the init then exec a
# minimal wait loop, isolation/init.py, so they keep none of it.) A warm slot
# (sessiond.warm_pool) is such a zygote spawned before any user logged in,
# blocked on reading its spec.
#
# What runs as root in a zygote is the import of root-owned code (from the
# installation sessiond itself runs from) and nothing else: no user, no client and
# no agent code path runs before the drop is verified (isolation.enter), and
# the agent is started only when the spec asks for exactly
# `<this interpreter> -m sessiond.agent`; any other program is exec'd as
# before. The environment is replaced by the session's own (as execve would),
# the forwarded signals get their default handlers back, and the command line
# reads `python -m sessiond.agent`, so ps, pgrep and adoption see the agent.
"""ZYGOTE_FLAG, preload() and run_in_process() for `isolation.enter --zygote`."""

from __future__ import annotations

import ctypes
import gc
import importlib
import os
import runpy
import signal
import sys
from collections.abc import Mapping, Sequence

from isolation.init import FORWARDED_SIGNALS
from isolation.slot import SlotParams
from isolation.xslot import XvfbCommand

# The one option `python -m isolation.enter` accepts, and the one a zygote
# may add: a slot line (isolation/slot.py) comes before the spec.
ZYGOTE_FLAG = "--zygote"
X_SLOT_FLAG = "--x-slot"
# What a zygote imports before reading its spec, and the module it runs.
PRELOAD_MODULE = "sessiond.agent.main"
RUN_MODULE = "sessiond.agent"
# Where the agent builds Xvfb's command line (one place builds it), and the
# PATH it is looked up on: the entry's own (isolation/launcher.py ENTER_PATH).
XSERVER_MODULE = "sessiond.agent.xserver"
XVFB_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# Modules the agent must not load: it speaks no TLS, and asyncio would
# initialise OpenSSL (1-2 MiB per session) if it could import ssl.
REFUSED_MODULES = ("ssl",)
# Fields of /proc/self/stat (1-based, after the command name) holding the
# bounds of the argument area: arg_start is field 48, arg_end 49.
ARG_START_FIELD = 48
ARG_END_FIELD = 49


def preload() -> None:
    """Import the agent's code and freeze what exists, so forks share it."""
    for name in REFUSED_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    importlib.import_module(PRELOAD_MODULE)
    gc.collect()
    gc.freeze()


def xvfb_command(params: SlotParams) -> XvfbCommand:
    """The slot's Xvfb (argv, env) for a -displayfd, from the agent's own builder
    (sessiond.agent.xserver.slot_xvfb_command, root-owned code like the rest of the preload)."""
    xserver = importlib.import_module(XSERVER_MODULE)

    def command(displayfd: int) -> tuple[list[str], dict[str, str]]:
        argv, env = xserver.slot_xvfb_command(params.width, params.height, params.depth, params.root_shown,
                                              displayfd, XVFB_PATH)  # fmt: skip
        return list(argv), dict(env)
    return command


def runs_in_process(argv: Sequence[str]) -> bool:
    """True if ARGV is exactly this interpreter running the agent module."""
    return tuple(argv) == (sys.executable, "-m", RUN_MODULE)


def _argument_area() -> tuple[int, int]:
    with open("/proc/self/stat", encoding="ascii", errors="replace") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state).
    return int(fields[ARG_START_FIELD - 3]), int(fields[ARG_END_FIELD - 3])


def set_command_line(argv: Sequence[str]) -> bool:
    """Rewrite /proc/self/cmdline to ARGV if it fits the original area; False if not."""
    data = b"\0".join(os.fsencode(arg) for arg in argv) + b"\0"
    try:
        start, end = _argument_area()
    except (OSError, ValueError, IndexError):
        return False
    if start <= 0 or len(data) > end - start:
        return False
    ctypes.memmove(start, data.ljust(end - start, b"\0"), end - start)
    return True


def run_in_process(argv: Sequence[str], env: Mapping[str, str]) -> None:
    """Run the agent module here as `execve(argv, env)` would; returns only if it does."""
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    os.environ.clear()
    os.environ.update(env)
    set_command_line(argv)
    sys.argv = [str(argv[0]), *argv[3:]]
    runpy.run_module(RUN_MODULE, run_name="__main__", alter_sys=True)

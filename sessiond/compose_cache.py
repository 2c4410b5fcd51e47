# libX11's compose cache for the sessions' locale: the daemon's side and the
# unprivileged half of the build (the root half and the why are in
# isolation/compose_cache.py).
#
# Two seconds after its start (sessiond/daemon.py: this module's import and
# the check, ~10 ms of CPU, stay off the start and its first logins) sessiond
# checks (a stat and a few reads, no X) whether the global cache libX11
# would use for [session] lang is there and current; if not, it holds a uid
# of [session] x_uids and runs the root half once in the background: no
# login waits for it (an app started meanwhile parses its Compose file, as
# without a cache). The result is one log line. [session] compose_cache =
# false turns it off.
#
# The unprivileged half (`python -m sessiond.compose_cache DIR`, run as that
# uid with XCOMPOSECACHE=DIR): its own Xvfb on a tiny screen, then libX11's
# XOpenIM in the locale, which parses the Compose file and writes its cache
# into DIR; then it stops the Xvfb and exits.
"""refresh(): the global compose cache made at start if it is not current; main(): the unprivileged half."""

from __future__ import annotations

import ctypes
import sys
from typing import Any, Final

from twisted.internet import protocol
from twisted.logger import Logger

from isolation.compose_cache import is_current
from isolation.launcher import enter_env
from sessiond.x_uids import XUidPool

log = Logger()

# Output of the root half kept for the log (it prints one line).
MAX_OUTPUT_BYTES: Final = 2048
# The unprivileged half's X screen: the input method needs a display, nothing on it.
SCREEN_SIDE: Final = 16
LC_ALL: Final = 6  # <locale.h>


class _Build(protocol.ProcessProtocol):
    """The root half's run: its line goes to the log, the uid back to the pool."""

    def __init__(self, uids: XUidPool, uid: int, lang: str) -> None:
        self.uids, self.uid, self.lang = uids, uid, lang
        self.output = b""

    def outReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted name
        self.output = (self.output + data)[:MAX_OUTPUT_BYTES]

    errReceived = outReceived  # noqa: N815 - Twisted name

    def processEnded(self, reason: Any) -> None:  # noqa: N802 - Twisted name
        self.uids.release(self.uid)
        line = self.output.decode(errors="replace").strip() or f"compose cache for {self.lang}: no output"
        if reason.value.exitCode == 0:
            log.info("{line}", line=line)
        else:
            log.warn("{line} (docs/admin.md, compose_cache)", line=line)


def refresh(reactor: Any, python: str, uids: XUidPool | None, lang: str) -> bool:
    """Start the root half if LANG's global compose cache is not current; True if started.
    UIDS: the pool of [session] x_uids (None: slots have no X uids, and there is no build)."""
    if is_current(lang):
        return False
    if uids is None:
        log.info("compose cache for {lang} not made: it is built as a uid of [session] x_uids, and slots "
                 "start without X (warm_x)", lang=lang)  # fmt: skip
        return False
    uid = uids.allocate()
    if uid is None:
        log.warn("compose cache for {lang} not made: no uid of [session] x_uids is free now", lang=lang)
        return False
    build = _Build(uids, uid, lang)
    try:
        reactor.spawnProcess(build, python, [python, "-m", "isolation.compose_cache", str(uid), lang],
                             env=enter_env(), path="/", childFDs={0: "w", 1: "r", 2: "r"})  # fmt: skip
    except OSError as exc:
        uids.release(uid)
        log.warn("compose cache for {lang} not made: {why}", lang=lang, why=str(exc))
        return False
    return True


def open_input_method(display: str) -> None:
    """Open the locale's input method on DISPLAY through libX11 (which reads, and caches, the
    locale's Compose table); OSError if libX11 or the display cannot be opened."""
    libc = ctypes.CDLL(None)
    libc.setlocale.restype = ctypes.c_char_p
    libc.setlocale.argtypes = [ctypes.c_int, ctypes.c_char_p]
    x11 = ctypes.CDLL("libX11.so.6")
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XSetLocaleModifiers.restype = ctypes.c_char_p
    x11.XSetLocaleModifiers.argtypes = [ctypes.c_char_p]
    x11.XOpenIM.restype = ctypes.c_void_p
    x11.XOpenIM.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    x11.XCloseIM.argtypes = [ctypes.c_void_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    if libc.setlocale(LC_ALL, b"") is None:
        raise OSError("the C library does not know the locale in LANG")
    x11.XSetLocaleModifiers(b"@im=none")  # libX11's own compose, not an input method server
    dpy = x11.XOpenDisplay(display.encode())
    if not dpy:
        raise OSError(f"cannot open display {display}")
    try:
        im = x11.XOpenIM(dpy, None, None, None)
        if not im:
            raise OSError("libX11 opened no input method")
        x11.XCloseIM(im)
    finally:
        x11.XCloseDisplay(dpy)


def main() -> int:
    """The unprivileged half (see the header): libX11 writes into $XCOMPOSECACHE."""
    from sessiond.agent.xserver import XServerError, start_xvfb

    try:
        server = start_xvfb(SCREEN_SIDE, SCREEN_SIDE)
    except XServerError as exc:
        print(f"compose cache: {exc}", file=sys.stderr)
        return 1
    try:
        open_input_method(server.display)
    except OSError as exc:
        print(f"compose cache: {exc}", file=sys.stderr)
        return 1
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

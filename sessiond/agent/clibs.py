# Where the agent's C libraries are, without running ldconfig.
#
# Why: ctypes.util.find_library() runs `ldconfig -p` in a subprocess on every
# call. The agent loads six libraries that way while it sets up (X11, Xext,
# Xdamage, Xfixes, Xcomposite, libc), after the zygote fork, on the login's
# critical path: six process spawns from a ~40 MiB process, tens of ms on a
# busy host. The sonames below are the ABI the code's prototypes are written
# for; dlopen() finds them through the loader's own cache. find_library()
# stays the fallback for a system that names them differently, and is
# imported only then: ctypes.util imports shutil and tempfile (with them
# bz2, lzma and random: ~0.4 MiB in every agent, xserver.py).
"""library_path(): a loadable name for a C library, soname first."""

from __future__ import annotations

import ctypes

# The library ABI versions the agent's ctypes prototypes are written for.
SONAMES = {
    "c": "libc.so.6",
    "X11": "libX11.so.6",
    "Xext": "libXext.so.6",
    "Xdamage": "libXdamage.so.1",
    "Xfixes": "libXfixes.so.3",
    "Xcomposite": "libXcomposite.so.1",
}


def library_path(name: str) -> str | None:
    """What ctypes.CDLL should load for library NAME ("X11" for libX11), or None if absent."""
    soname = SONAMES.get(name)
    if soname is not None:
        try:
            ctypes.CDLL(soname)
        except OSError:
            pass
        else:
            return soname
    from ctypes import util  # noqa: PLC0415 - only for a system without the sonames (header)

    return util.find_library(name)

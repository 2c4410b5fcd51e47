# Starting the session's private X server.
#
# Why this module exists: every session gets its own Xvfb, started once by the
# agent.  Readiness is taken from Xvfb's -displayfd pipe: Xvfb writes the
# display number only after it listens and would answer a handshake, so no
# probe connection is needed (a probe that connects and disconnects can race
# a server reset; see MACHINE-NOTES).  -nolisten tcp and -nolisten local keep
# the server off the network and off the abstract socket namespace, so the
# only way in is the Unix socket in the (session-private) /tmp/.X11-unix.
# The display number is chosen by display_number.py (not the first free lock
# file), so that X clients never meet a foreign abstract socket of that name.
# MIT-SHM stays enabled for fast capture; GLX is disabled because it loads
# libLLVM (tens of MiB per session) and slows start-up.
#
# Resizable screens: Xvfb allocates its framebuffer once, for the size it is
# started with, and paints all of it at start; RandR can then show any size
# up to that.  So that a session started at 3840x2160 but shown at 1280x800
# does not keep 28 MiB of pixels nobody sees, Xvfb is asked to put the
# framebuffer in a SysV shared memory segment (-shmem), which the agent
# attaches and punches holes into (madvise MADV_REMOVE) outside the shown
# area after every resize; Xvfb repaints whatever becomes visible again.
#
# No shutil or tempfile here (nor in what the agent imports before its first
# frame): they pull in bz2, lzma and random, ~0.4 MiB per session for a PATH
# search and one scratch file. A missing Xvfb is told by exec's ENOENT, and
# Xvfb's output goes to an anonymous memory file (memfd).

from __future__ import annotations

import ctypes
import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from typing import IO

from isolation.slot import X_DISPLAY_ENV, X_PID_ENV, X_SCREEN_ENV, X_SHMID_ENV, screen_text
from protocol.frozen import plain_dataclass
from sessiond.agent.clibs import library_path
from sessiond.agent.display_number import MAX_DISPLAY_PROBES, bound_abstract_displays, files_taken, free_display_numbers

XVFB_BINARY = "Xvfb"
# Largest display number line we accept from the pipe ("65535\n" fits).
MAX_DISPLAYFD_BYTES = 16
# Xvfb's stderr kept for error messages; the tail is what explains a failure.
MAX_STDERR_REPORT_BYTES = 4096
# Xvfb runs tried when the display number chosen was taken meanwhile (another
# server started in the same /tmp), and what Xvfb says then.
MAX_START_ATTEMPTS = 3
BUSY_MARK = "already active for display"
# Grace period for Xvfb to exit on SIGTERM before it is killed.
STOP_TIMEOUT_SECONDS = 2.0
# Screen limits Xvfb itself enforces (X11 coordinates are 16-bit).
MAX_SCREEN_DIMENSION = 32767
SUPPORTED_DEPTHS = (16, 24, 32)
X11_SOCKET_DIR = "/tmp/.X11-unix"
# prctl(2) option from linux/prctl.h.
PR_SET_PDEATHSIG = 1
# madvise(2) advice that frees shared-memory pages and their backing store;
# shmctl(2) command that removes a segment once nobody has it attached.
MADV_REMOVE = 9
IPC_RMID = 0
# glibc malloc tuning for Xvfb (its environment's GLIBC_TUNABLES): a fixed
# mmap threshold instead of glibc's sliding one. By default the threshold
# rises to the size of the largest mmap'd block freed, after which every
# allocation below it (fonts, glyph caches, pixmaps) comes from the heap and
# stays resident there once freed. Fixed at 1 MiB, blocks of 1 MiB and more
# (large pixmaps) are mapped and unmapped on their own: Xvfb with an xterm
# shown holds 0.6-1.2 MiB less (docs/admin.md). The cost: a pixmap of 1 MiB
# or more allocated over and over takes fresh zero pages each time.
XVFB_MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=1048576"
# Xvfb -shmem prints this on stderr before it is ready.
SHMID_RE = re.compile(rb"screen 0 shmid (\d+)")
# Where Linux lists SysV segments (we need the segment's size).
SYSV_SHM_TABLE = "/proc/sysvipc/shm"
# Bytes per pixel of a 24-bit-depth Xvfb framebuffer (32 bits per pixel).
FRAMEBUFFER_BYTES_PER_PIXEL = 4
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class XServerError(RuntimeError):
    """The X server could not be started; the message says why and what to do."""


class SharedFramebuffer:
    """Xvfb's framebuffer segment (-shmem), attached to release unseen pixels.

    The segment is marked for removal as soon as it is attached, so it goes
    away with the last process using it even if both are killed.
    """

    def __init__(self, shmid: int, width: int, height: int) -> None:
        libc = ctypes.CDLL(library_path("c"), use_errno=True)
        libc.shmat.argtypes, libc.shmat.restype = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int], ctypes.c_void_p
        libc.shmdt.argtypes, libc.shmdt.restype = [ctypes.c_void_p], ctypes.c_int
        libc.shmctl.argtypes, libc.shmctl.restype = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p], ctypes.c_int
        libc.madvise.argtypes, libc.madvise.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
        self._libc = libc
        self.size = _segment_size(shmid)
        self.stride = width * FRAMEBUFFER_BYTES_PER_PIXEL
        self.max_height = height
        # The segment holds an XWD header and colormap, then the pixels.
        self.offset = self.size - self.stride * height
        if self.offset < 0:
            raise XServerError(f"Xvfb's framebuffer segment is {self.size} bytes, too small for {width}x{height}")
        addr = libc.shmat(shmid, None, 0)
        if addr is None or addr == ctypes.c_void_p(-1).value:
            raise XServerError(f"cannot attach Xvfb's framebuffer: {os.strerror(ctypes.get_errno())}")
        libc.shmctl(shmid, IPC_RMID, None)
        self._addr: int | None = addr

    def release_outside(self, width: int, height: int) -> int:
        """Free the framebuffer pages outside the top-left width x height; return the bytes punched."""
        if self._addr is None:
            return 0
        freed = 0
        row_used = min(width, self.stride // FRAMEBUFFER_BYTES_PER_PIXEL) * FRAMEBUFFER_BYTES_PER_PIXEL
        # Right of each row, whatever whole pages lie between its last shown
        # pixel and the next row: with a 3840-pixel maximum shown at 1920, one
        # page of most rows (~3.7 MiB at 1080 rows; docs/admin.md).
        if self.stride - row_used >= PAGE_SIZE:  # else no whole page lies right of a row
            for y in range(min(height, self.max_height)):
                row = self.offset + y * self.stride
                freed += self._punch(row + row_used, row + self.stride)
        freed += self._punch(self.offset + min(height, self.max_height) * self.stride, self.size)
        return freed

    def _punch(self, start: int, end: int) -> int:
        first = -(-start // PAGE_SIZE) * PAGE_SIZE
        last = end // PAGE_SIZE * PAGE_SIZE
        if last <= first or self._addr is None:
            return 0
        if self._libc.madvise(self._addr + first, last - first, MADV_REMOVE) != 0:
            return 0  # best effort: the pixels stay resident, nothing breaks
        return last - first

    def close(self) -> None:
        """Detach the segment; idempotent."""
        if self._addr is not None:
            self._libc.shmdt(self._addr)
            self._addr = None


def _segment_size(shmid: int) -> int:
    try:
        with open(SYSV_SHM_TABLE, encoding="ascii") as table:
            next(table)  # column names
            for line in table:
                fields = line.split()
                if len(fields) > 3 and fields[1] == str(shmid):
                    return int(fields[3])
    except (OSError, ValueError, StopIteration) as exc:
        raise XServerError(f"cannot read {SYSV_SHM_TABLE}: {exc}") from exc
    raise XServerError(f"Xvfb's framebuffer segment {shmid} is not in {SYSV_SHM_TABLE}")


@plain_dataclass
class XServer:
    """A running Xvfb: its process and the display name (":N") it serves. An adopted server
    (a warm slot's, adopt_xvfb) has no process object: it runs as another uid, so the agent
    cannot signal it; it ends with the session's PID namespace when the agent exits."""

    process: subprocess.Popen[bytes] | None
    display: str
    _stderr: IO[bytes] | None = None
    # Set when started with shared_framebuffer=True.
    framebuffer: SharedFramebuffer | None = None
    adopted_pid: int = 0

    def release_outside(self, width: int, height: int) -> int:
        """Free framebuffer memory outside the shown width x height (0 without a shared framebuffer)."""
        return self.framebuffer.release_outside(width, height) if self.framebuffer is not None else 0

    @property
    def number(self) -> int:
        """The display number N of ":N"."""
        return int(self.display[1:])

    @property
    def socket_path(self) -> str:
        """Path of the server's Unix socket, /tmp/.X11-unix/XN."""
        return f"{X11_SOCKET_DIR}/X{self.number}"

    def running(self) -> bool:
        """True while the Xvfb process has not exited."""
        if self.process is None:
            return os.path.exists(f"/proc/{self.adopted_pid}")
        return self.process.poll() is None

    def stop(self) -> None:
        """Terminate Xvfb (SIGTERM, then SIGKILL after a grace period); an adopted server is only
        let go of (the PID namespace ends it). Idempotent: stopping an exited server only releases resources.
        """
        if self.process is not None:
            _terminate(self.process)
        if self.framebuffer is not None:
            self.framebuffer.close()
            self.framebuffer = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


# What a warm slot's entry (isolation/xslot.py) hands the agent, bounded here again.
MAX_ADOPTED_PID = 4_194_304  # PID_MAX_LIMIT
MAX_SHMID = 2**31 - 1
MAX_DISPLAY_NUMBER = 65535


def _bounded_int(environ: Mapping[str, str], name: str, low: int, high: int) -> int:
    text = environ.get(name, "")
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(high))) or not low <= int(text) <= high:
        raise XServerError(f"{name}={text!r} is not a number in {low}..{high}")
    return int(text)


def adopt_xvfb(environ: Mapping[str, str], width: int, height: int, depth: int, root_shown: bool) -> XServer | None:
    """The X server a warm slot started for this session (SESSIOND_X_* in ENVIRON), or None if there
    is none (start one). XServerError if the variables are malformed or ask for another screen."""
    if X_DISPLAY_ENV not in environ:
        return None
    wanted = screen_text(width, height, depth, root_shown)
    if environ.get(X_SCREEN_ENV) != wanted:
        raise XServerError(f"the slot's X server is {environ.get(X_SCREEN_ENV)!r}, this session needs {wanted!r}")
    display = environ[X_DISPLAY_ENV]
    if not display.startswith(":"):
        raise XServerError(f"{X_DISPLAY_ENV}={display!r} is not a display name :N")
    number = _bounded_int({X_DISPLAY_ENV: display[1:]}, X_DISPLAY_ENV, 0, MAX_DISPLAY_NUMBER)
    pid = _bounded_int(environ, X_PID_ENV, 2, MAX_ADOPTED_PID)
    shmid = _bounded_int(environ, X_SHMID_ENV, 0, MAX_SHMID)
    server = XServer(process=None, display=f":{number}", adopted_pid=pid)
    server.framebuffer = SharedFramebuffer(shmid, width, height)
    return server


def _die_with_parent() -> None:
    """In the Xvfb child: get SIGKILL if the agent dies, even by SIGKILL.

    Without it a killed agent would leave its X server (and, through it,
    the apps) running with nobody to stop them.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def xvfb_argv(width: int, height: int, depth: int, displayfd: int, shared_framebuffer: bool = False,
              root_shown: bool = True, number: int | None = None) -> list[str]:  # fmt: skip
    """The Xvfb command line (argv list) for one session screen. Without
    root_shown the root window has no background and the server draws no
    cursor sprite (-background none -nocursor): it never writes the root's
    pixels, so framebuffer pages released once stay free (seamless mode, where
    windows are redirected, the root is never shown and clients draw their
    own cursor). With `number`, Xvfb takes display :number (display_number.py)
    instead of the first one whose lock file is free."""
    shared = ["-shmem"] if shared_framebuffer else []
    display = [] if number is None else [f":{number}"]
    background = [] if root_shown else ["-background", "none", "-nocursor"]
    return [
        XVFB_BINARY,
        *display,
        *shared,
        *background,
        "-displayfd", str(displayfd),
        "-screen", "0", f"{width}x{height}x{depth}",
        "-nolisten", "tcp",
        "-nolisten", "local",
        "-noreset",
        # No server-side key repeat: clients send their own repeated presses
        # (the user's local repeat rate); Xvfb would repeat a held XTEST key too.
        "-r",
        "-extension", "GLX",
        "-dpi", "96",
    ]


def slot_xvfb_command(width: int, height: int, depth: int, root_shown: bool, displayfd: int,
                      path: str) -> tuple[list[str], dict[str, str]]:  # fmt: skip
    """A warm slot's Xvfb (isolation/xslot.py): argv and environment, always with a shared
    framebuffer (-shmem), on the first display number free here (display_number.py; the
    slot's /tmp is fresh; abstract names read from /proc/net/unix, never probed by a connect
    as root), in an environment of PATH only."""
    bound = bound_abstract_displays()
    number = next(iter(free_display_numbers(taken=lambda n: files_taken(n) or n in bound)), None)
    if number is None:
        raise XServerError(f"no free X display number among the first {MAX_DISPLAY_PROBES}")
    argv = xvfb_argv(width, height, depth, displayfd, shared_framebuffer=True, root_shown=root_shown, number=number)
    return argv, xvfb_env({"PATH": path})


def xvfb_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Xvfb's environment: ENVIRON with XVFB_MALLOC_TUNABLES before any GLIBC_TUNABLES it has
    (glibc applies them in order: an administrator's own setting wins)."""
    tunables = ":".join(filter(None, (XVFB_MALLOC_TUNABLES, environ.get("GLIBC_TUNABLES", ""))))
    return {**environ, "GLIBC_TUNABLES": tunables}


def _stderr_tail(stderr: IO[bytes]) -> str:
    stderr.seek(0, os.SEEK_END)
    size = stderr.tell()
    stderr.seek(max(0, size - MAX_STDERR_REPORT_BYTES))
    text = stderr.read().decode("utf-8", "replace").strip()
    return text or "(no output)"


class _NotReady(Exception):
    """Xvfb closed the pipe (eof=True) or timed out before writing a number."""

    def __init__(self, eof: bool) -> None:
        super().__init__("eof" if eof else "timeout")
        self.eof = eof


def _read_display_number(read_fd: int, timeout: float) -> int:
    """Wait for Xvfb to write "N\\n" on the pipe; _NotReady otherwise."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _NotReady(eof=False)
        readable, _, _ = select.select([read_fd], [], [], remaining)
        if not readable:
            raise _NotReady(eof=False)
        chunk = os.read(read_fd, MAX_DISPLAYFD_BYTES)
        if not chunk:  # Xvfb exited (or closed the fd) before writing.
            raise _NotReady(eof=True)
        data += chunk
        if len(data) > MAX_DISPLAYFD_BYTES:
            raise _NotReady(eof=True)
    text = data.split(b"\n", 1)[0].strip()
    if not text.isdigit():
        raise _NotReady(eof=True)
    return int(text)


def start_xvfb(
    width: int, height: int, *, depth: int = 24, timeout: float = 5.0, shared_framebuffer: bool = False,
    root_shown: bool = True,
) -> XServer:
    """Start Xvfb with one screen of width x height x depth and wait until it
    accepts connections.

    With shared_framebuffer, the framebuffer lives in a shared segment that
    the returned XServer can release parts of (release_outside), for screens
    started at a maximum size and shown smaller through RandR.

    Returns the XServer; raises XServerError (naming Xvfb's own output) if
    Xvfb is missing, dies, or does not become ready within `timeout` seconds.
    """
    if not (1 <= width <= MAX_SCREEN_DIMENSION and 1 <= height <= MAX_SCREEN_DIMENSION):
        raise XServerError(
            f"screen size {width}x{height} is out of range "
            f"(1..{MAX_SCREEN_DIMENSION} per side)"
        )
    if depth not in SUPPORTED_DEPTHS:
        raise XServerError(f"screen depth {depth} is not one of {SUPPORTED_DEPTHS}")
    attempts = 0
    for candidate in free_display_numbers():
        attempts += 1
        try:
            process, stderr, number = _run_xvfb(lambda fd, n=candidate: xvfb_argv(
                width, height, depth, fd, shared_framebuffer, root_shown, n), timeout)  # fmt: skip
            break
        except _DisplayBusy as busy:  # taken since free_display_numbers() looked: try the next
            if attempts >= MAX_START_ATTEMPTS:
                raise XServerError(str(busy)) from None
    else:
        raise XServerError(f"no free X display number among the first {MAX_DISPLAY_PROBES}: their lock or "
                           "socket files exist or their abstract socket names are bound on this host")
    server = XServer(process=process, display=f":{number}", _stderr=stderr)
    if shared_framebuffer:
        try:
            server.framebuffer = SharedFramebuffer(_framebuffer_shmid(stderr), width, height)
        except XServerError:
            server.stop()
            raise
    return server


class _DisplayBusy(XServerError):
    """Xvfb exited because its display number was taken after it was chosen."""


def _run_xvfb(argv: Callable[[int], list[str]], timeout: float) -> tuple[subprocess.Popen[bytes], IO[bytes], int]:
    """Run argv(fd) (an xvfb_argv whose -displayfd is fd, a pipe) and wait for
    the display number on the pipe: (process, its stderr file, number)."""
    read_fd, write_fd = os.pipe()
    stderr = open(os.memfd_create("xvfb-stderr", os.MFD_CLOEXEC), "w+b")  # noqa: SIM115 - returned open
    try:
        try:
            process = subprocess.Popen(
                argv(write_fd),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                pass_fds=(write_fd,),
                close_fds=True,
                env=xvfb_env(os.environ),
                preexec_fn=_die_with_parent,
            )
        except FileNotFoundError:
            stderr.close()
            raise XServerError(f"{XVFB_BINARY} was not found on PATH; install it "
                               "(Debian/Ubuntu: apt-get install xvfb)") from None
        except OSError as exc:
            stderr.close()
            raise XServerError(f"could not run {XVFB_BINARY}: {exc}") from exc
        os.close(write_fd)
        write_fd = -1
        try:
            number = _read_display_number(read_fd, timeout)
        except _NotReady as not_ready:
            if not_ready.eof:
                # The pipe closes as Xvfb exits; give it a moment to be reaped.
                try:
                    process.wait(timeout=STOP_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    pass
            exited = process.poll() is not None
            _terminate(process)
            what = (
                f"exited with status {process.returncode}"
                if exited
                else f"did not become ready within {timeout:g} s"
            )
            detail = _stderr_tail(stderr)
            stderr.close()
            message = f"{XVFB_BINARY} {what}; its output: {detail}"
            raise (_DisplayBusy if exited and BUSY_MARK in detail else XServerError)(message) from None
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        os.close(read_fd)
    return process, stderr, number


def _framebuffer_shmid(stderr: IO[bytes]) -> int:
    """The segment id Xvfb -shmem printed (before it became ready)."""
    stderr.seek(0)
    match = SHMID_RE.search(stderr.read(MAX_STDERR_REPORT_BYTES))
    stderr.seek(0, os.SEEK_END)
    if match is None:
        raise XServerError(f"{XVFB_BINARY} -shmem did not name its framebuffer segment")
    return int(match.group(1))

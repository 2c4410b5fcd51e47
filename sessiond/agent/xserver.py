# Starting the session's private X server.
#
# Why this module exists: every session gets its own Xvfb, started once by the
# agent.  Readiness is taken from Xvfb's -displayfd pipe: Xvfb writes the
# display number only after it listens and would answer a handshake, so no
# probe connection is needed (a probe that connects and disconnects can race
# a server reset; see MACHINE-NOTES).  -nolisten tcp and -nolisten local keep
# the server off the network and off the abstract socket namespace, so the
# only way in is the Unix socket in the (session-private) /tmp/.X11-unix.
# MIT-SHM stays enabled for fast capture; GLX is disabled because it loads
# libLLVM (tens of MiB per session) and slows start-up.

from __future__ import annotations

import ctypes
import os
import signal
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import IO

XVFB_BINARY = "Xvfb"
# Largest display number line we accept from the pipe ("65535\n" fits).
MAX_DISPLAYFD_BYTES = 16
# Xvfb's stderr kept for error messages; the tail is what explains a failure.
MAX_STDERR_REPORT_BYTES = 4096
# Grace period for Xvfb to exit on SIGTERM before it is killed.
STOP_TIMEOUT_SECONDS = 2.0
# Screen limits Xvfb itself enforces (X11 coordinates are 16-bit).
MAX_SCREEN_DIMENSION = 32767
SUPPORTED_DEPTHS = (16, 24, 32)
X11_SOCKET_DIR = "/tmp/.X11-unix"
# prctl(2) option from linux/prctl.h.
PR_SET_PDEATHSIG = 1


class XServerError(RuntimeError):
    """The X server could not be started; the message says why and what to do."""


@dataclass
class XServer:
    """A running Xvfb: its process and the display name (":N") it serves."""

    process: subprocess.Popen[bytes]
    display: str
    _stderr: IO[bytes] | None = None

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
        return self.process.poll() is None

    def stop(self) -> None:
        """Terminate Xvfb (SIGTERM, then SIGKILL after a grace period).

        Idempotent: stopping an exited server only releases resources.
        """
        _terminate(self.process)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


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


def xvfb_argv(width: int, height: int, depth: int, displayfd: int) -> list[str]:
    """The Xvfb command line (argv list) for one session screen."""
    return [
        XVFB_BINARY,
        "-displayfd", str(displayfd),
        "-screen", "0", f"{width}x{height}x{depth}",
        "-nolisten", "tcp",
        "-nolisten", "local",
        "-noreset",
        "-extension", "GLX",
        "-dpi", "96",
    ]


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
    width: int, height: int, *, depth: int = 24, timeout: float = 5.0
) -> XServer:
    """Start Xvfb with one screen of width x height x depth and wait until it
    accepts connections.

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
    if shutil.which(XVFB_BINARY) is None:
        raise XServerError(
            f"{XVFB_BINARY} was not found on PATH; install it "
            "(Debian/Ubuntu: apt-get install xvfb)"
        )
    read_fd, write_fd = os.pipe()
    stderr = tempfile.TemporaryFile()
    try:
        try:
            process = subprocess.Popen(
                xvfb_argv(width, height, depth, write_fd),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                pass_fds=(write_fd,),
                close_fds=True,
                preexec_fn=_die_with_parent,
            )
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
            raise XServerError(f"{XVFB_BINARY} {what}; its output: {detail}") from None
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        os.close(read_fd)
    return XServer(process=process, display=f":{number}", _stderr=stderr)

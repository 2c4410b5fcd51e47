# Screen capture through the MIT-SHM extension, via ctypes on libX11/libXext.
#
# Why: python-xlib's get_image copies a 1080p frame through the socket in
# ~23 ms; XShmGetImage makes the server write straight into a shared memory
# segment in well under 1 ms.  python-xlib has no XShm module, so this one
# talks to the C libraries over its own Xlib connection.  The segment is
# marked IPC_RMID right after the server has attached it, so it disappears
# with the last process that maps it and can never leak, even on a crash.
# Xlib's default error handler exits the process; we install one that records
# the error instead, so a failure becomes an exception here.

from __future__ import annotations

import contextlib
import ctypes
import os
import time
from collections.abc import Callable
from typing import Protocol

from sessiond.agent.clibs import library_path
from sessiond.agent.xshm_types import ERROR_HANDLER as _ERROR_HANDLER
from sessiond.agent.xshm_types import XErrorEvent as _XErrorEvent
from sessiond.agent.xshm_types import XImage as _XImage
from sessiond.agent.xshm_types import XShmSegmentInfo as _XShmSegmentInfo

# IPC constants from <sys/ipc.h> / <sys/shm.h> (Linux).
IPC_PRIVATE = 0
IPC_CREAT = 0o1000
IPC_RMID = 0
# madvise(2): free a shared memory range's pages (both processes' mappings read zeros after).
MADV_REMOVE = 9
# Only the session's own user may touch the segment.
SHM_MODE = 0o600
ZPIXMAP = 2
ALL_PLANES = 0xFFFFFFFF
# The capture format the encoder expects: BGRX, 32 bits per pixel, depth 24.
REQUIRED_BITS_PER_PIXEL = 32
REQUIRED_DEPTH = 24
# A capture that read a surface whole (a window new, mapped, resized or
# refreshed; the screen after a mark_all) of at least this many bytes gives
# its pages back once its frame is done: the frames after it are usually small
# updates (an echoed key reads a few KiB), which would otherwise leave the
# whole surface's pages resident, here and in Xvfb, until the idle release.
WHOLE_CAPTURE_RELEASE_BYTES = 256 * 1024
# A capture at least that large that its frame does not release (an app that
# redrew its window whole: an xterm's first paint, landing in the frame after
# the one that read the new window blank; a clear; a video) gives its pages
# back once no capture that large came for this long. A surface redrawn whole
# again and again keeps its pages while it is: releasing after each such frame
# costs 3-6x the capture, every page faulting in again (bench_capture_release.py).
# One redrawn once does not keep them until the idle release, which never
# comes while small frames go on (a clock, a progress bar). Short against the
# 3 s after first pixels at which the peer harness counts memory; long against
# the gap between a stream's frames. Only where the owner passes its loop's
# call_later (seamless windows: composite.WindowPixels; the desktop's screen:
# frame_sources.DesktopSource).
QUIET_RELEASE_SECONDS = 1.0


class XShmError(RuntimeError):
    """MIT-SHM capture is unavailable or failed; the message says why."""


class _Libs:
    """The loaded C libraries with their prototypes, plus the error trap.

    Xlib's error handler is per process, so one _Libs object (created by the
    first ShmCapture and shared through the class attribute) owns it.
    """

    def __init__(self) -> None:
        x11_name = library_path("X11")
        xext_name = library_path("Xext")
        if not x11_name or not xext_name:
            raise XShmError("libX11/libXext not found; install libx11-6 and libxext6")
        self.x11 = ctypes.CDLL(x11_name)
        self.xext = ctypes.CDLL(xext_name)
        self.libc = ctypes.CDLL(library_path("c"), use_errno=True)
        x11, xext, libc = self.x11, self.xext, self.libc
        vp, c_int, c_uint, c_ulong = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint, ctypes.c_ulong
        x11.XOpenDisplay.argtypes, x11.XOpenDisplay.restype = [ctypes.c_char_p], vp
        x11.XCloseDisplay.argtypes, x11.XCloseDisplay.restype = [vp], c_int
        x11.XDefaultScreen.argtypes, x11.XDefaultScreen.restype = [vp], c_int
        x11.XRootWindow.argtypes, x11.XRootWindow.restype = [vp, c_int], c_ulong
        x11.XDefaultVisual.argtypes, x11.XDefaultVisual.restype = [vp, c_int], vp
        x11.XDefaultDepth.argtypes, x11.XDefaultDepth.restype = [vp, c_int], c_int
        x11.XDisplayWidth.argtypes, x11.XDisplayWidth.restype = [vp, c_int], c_int
        x11.XDisplayHeight.argtypes, x11.XDisplayHeight.restype = [vp, c_int], c_int
        x11.XSync.argtypes, x11.XSync.restype = [vp, c_int], c_int
        x11.XFree.argtypes, x11.XFree.restype = [vp], c_int
        x11.XSetErrorHandler.argtypes, x11.XSetErrorHandler.restype = [_ERROR_HANDLER], vp
        x11.XConnectionNumber.argtypes, x11.XConnectionNumber.restype = [vp], c_int
        x11.XPending.argtypes, x11.XPending.restype = [vp], c_int
        x11.XNextEvent.argtypes, x11.XNextEvent.restype = [vp, vp], c_int
        x11.XFlush.argtypes, x11.XFlush.restype = [vp], c_int
        x11.XSelectInput.argtypes, x11.XSelectInput.restype = [vp, c_ulong, ctypes.c_long], c_int
        x11.XFreePixmap.argtypes, x11.XFreePixmap.restype = [vp, c_ulong], c_int
        x11.XGetGeometry.argtypes = [vp, c_ulong, *[ctypes.POINTER(t) for t in (
            c_ulong, c_int, c_int, c_uint, c_uint, c_uint, c_uint)]]  # fmt: skip
        x11.XGetGeometry.restype = c_int
        xext.XShmQueryExtension.argtypes, xext.XShmQueryExtension.restype = [vp], c_int
        info, image = ctypes.POINTER(_XShmSegmentInfo), ctypes.POINTER(_XImage)
        xext.XShmCreateImage.argtypes = [vp, vp, c_uint, c_int, vp, info, c_uint, c_uint]
        xext.XShmCreateImage.restype = image
        xext.XShmAttach.argtypes, xext.XShmAttach.restype = [vp, info], c_int
        xext.XShmDetach.argtypes, xext.XShmDetach.restype = [vp, info], c_int
        xext.XShmGetImage.argtypes, xext.XShmGetImage.restype = [vp, c_ulong, image, c_int, c_int, c_ulong], c_int
        libc.shmget.argtypes, libc.shmget.restype = [c_int, ctypes.c_size_t, c_int], c_int
        libc.shmat.argtypes, libc.shmat.restype = [c_int, vp, c_int], vp
        libc.shmdt.argtypes, libc.shmdt.restype = [vp], c_int
        libc.shmctl.argtypes, libc.shmctl.restype = [c_int, c_int, vp], c_int
        libc.madvise.argtypes, libc.madvise.restype = [vp, ctypes.c_size_t, c_int], c_int
        # Last X error code per Display* address; read and cleared by callers.
        self.errors: dict[int, int] = {}
        self._handler = _ERROR_HANDLER(self._on_error)
        x11.XSetErrorHandler(self._handler)

    def _on_error(self, display: int | None, event: ctypes._Pointer[_XErrorEvent]) -> int:
        self.errors[display or 0] = int(event.contents.error_code)
        return 0

    def take_error(self, display: int) -> int | None:
        """Return and clear the last X error code recorded for `display`."""
        return self.errors.pop(display, None)


def libs() -> _Libs:
    """The process-wide _Libs (loaded, and its error trap installed, on first use)."""
    if ShmCapture._libs is None:
        ShmCapture._libs = _Libs()
    return ShmCapture._libs


class _Segment:
    """An XShm image over a private SysV segment of `size` bytes, attached to
    the server.  The image's width/height are set per request by callers."""

    def __init__(self, lib: _Libs, dpy: int, depth: int, width: int, height: int) -> None:
        self._lib, self._dpy = lib, dpy
        self.info = _XShmSegmentInfo()
        self.image: ctypes._Pointer[_XImage] | None = None
        self.view: memoryview | None = None
        self._attached = False
        x11, xext, libc = lib.x11, lib.xext, lib.libc
        screen = x11.XDefaultScreen(dpy)
        image = xext.XShmCreateImage(dpy, x11.XDefaultVisual(dpy, screen), depth, ZPIXMAP, None,
                                     ctypes.byref(self.info), width, height)  # fmt: skip
        if not image:
            raise XShmError("XShmCreateImage failed")
        self.image = image
        img = image.contents
        if img.bits_per_pixel != REQUIRED_BITS_PER_PIXEL or img.byte_order != 0:
            self.close()
            raise XShmError(
                f"X image format is {img.bits_per_pixel} bpp (byte order {img.byte_order}); "
                f"capture needs {REQUIRED_BITS_PER_PIXEL} bpp little-endian"
            )
        self.size = size = img.bytes_per_line * height
        shmid = libc.shmget(IPC_PRIVATE, size, IPC_CREAT | SHM_MODE)
        if shmid < 0:
            err = ctypes.get_errno()
            self.close()
            raise XShmError(f"shmget of {size} bytes failed: {os.strerror(err)}")
        self.info.shmid = shmid
        addr = libc.shmat(shmid, None, 0)
        if addr is None or addr == ctypes.c_void_p(-1).value:
            err = ctypes.get_errno()
            libc.shmctl(shmid, IPC_RMID, None)
            self.close()
            raise XShmError(f"shmat failed: {os.strerror(err)}")
        self.info.shmaddr = addr
        self.info.readOnly = 0
        img.data = addr
        lib.take_error(dpy)
        ok = xext.XShmAttach(dpy, ctypes.byref(self.info))
        x11.XSync(dpy, 0)
        # The server has attached (or failed to): nothing else needs the id.
        libc.shmctl(shmid, IPC_RMID, None)
        error = lib.take_error(dpy)
        if not ok or error is not None:
            self.close()
            raise XShmError(f"XShmAttach failed (X error {error}); is the X server local?")
        self._attached = True
        self.view = memoryview((ctypes.c_ubyte * size).from_address(addr)).cast("B")

    def get(self, drawable: int, x: int, y: int) -> None:
        """XShmGetImage of the image's current width x height at (x, y)."""
        lib = self._lib
        ok = lib.xext.XShmGetImage(self._dpy, drawable, self.image, x, y, ALL_PLANES)
        error = lib.take_error(self._dpy)
        if not ok or error is not None:
            raise XShmError(f"XShmGetImage failed (X error {error})")

    def release(self) -> None:
        """Give the segment's pages back (here and in the X server); the next
        get() writes what it reads, so nothing is lost but the pages."""
        if self.info.shmaddr and self._lib.libc.madvise(self.info.shmaddr, self.size, MADV_REMOVE) != 0:
            raise XShmError(f"madvise(MADV_REMOVE) failed: {os.strerror(ctypes.get_errno())}")

    def close(self) -> None:
        """Detach and free everything; idempotent."""
        lib = self._lib
        if self.view is not None:
            self.view.release()
            self.view = None
        if self._attached:
            lib.xext.XShmDetach(self._dpy, ctypes.byref(self.info))
            lib.x11.XSync(self._dpy, 0)
            lib.take_error(self._dpy)
            self._attached = False
        if self.info.shmaddr:
            lib.libc.shmdt(self.info.shmaddr)
            self.info.shmaddr = None
        if self.image is not None:
            self.image.contents.data = None
            lib.x11.XFree(ctypes.cast(self.image, ctypes.c_void_p))
            self.image = None


class _Timer(Protocol):
    def cancel(self) -> None: ...


# asyncio's loop.call_later(delay, callback), as the capture uses it.
CallLater = Callable[[float, Callable[[], None]], _Timer]


class _ReleaseAfterWhole:
    """The WHOLE_CAPTURE_RELEASE_BYTES rule, for both capture classes (each has
    its release()); with a `call_later` (the agent's loop), QUIET_RELEASE_SECONDS too."""

    _release_due = False
    call_later: CallLater | None = None  # None: large reads the frame keeps stay until the idle release
    clock: Callable[[], float] = staticmethod(time.monotonic)
    _large_read_at: float | None = None  # the last large read whose pages frame_done() kept
    _quiet_timer: _Timer | None = None

    def release_after_frame(self, nbytes: int) -> None:
        """This frame reads a surface of `nbytes` whole: frame_done() gives the pages back if it is large."""
        self._release_due |= nbytes >= WHOLE_CAPTURE_RELEASE_BYTES

    def _read(self, nbytes: int) -> None:
        """A capture wrote `nbytes` of the segment (from its start)."""
        if nbytes >= WHOLE_CAPTURE_RELEASE_BYTES:
            self._large_read_at = self.clock()

    def frame_done(self) -> None:
        """The frame's pixels are encoded: release the pages if release_after_frame() asked for it;
        else, if the frame read a large area, once no large read came for QUIET_RELEASE_SECONDS."""
        if self._release_due:
            self._release_due = False
            self._release_now()
        elif self._large_read_at is not None and self._quiet_timer is None and self.call_later is not None:
            self._quiet_timer = self.call_later(QUIET_RELEASE_SECONDS, self._quiet_check)

    def _quiet_check(self) -> None:
        self._quiet_timer = None
        if self._large_read_at is None:
            return
        left = self._large_read_at + QUIET_RELEASE_SECONDS - self.clock()
        if left > 0 and self.call_later is not None:  # large reads went on: still in use
            self._quiet_timer = self.call_later(left, self._quiet_check)
        else:
            self._release_now()

    def _release_now(self) -> None:
        self._large_read_at = None
        with contextlib.suppress(XShmError):  # the pages stay until the idle release
            self.release()  # ShmCapture's or ShmRegionCapture's

    def _stop_quiet(self) -> None:
        if self._quiet_timer is not None:
            self._quiet_timer.cancel()
            self._quiet_timer = None


class ShmCapture(_ReleaseAfterWhole):
    """Captures the whole root window of `display` into shared memory.

    The buffer is BGRX (32 bits per pixel, little-endian), `stride` bytes per
    row.  The memoryview returned by capture() stays valid until close().
    """

    _libs: _Libs | None = None

    def __init__(self, display: str) -> None:
        self._lib = libs()
        self._segment: _Segment | None = None
        x11 = self._lib.x11
        dpy = x11.XOpenDisplay(display.encode())
        if not dpy:
            raise XShmError(f"cannot open X display {display!r}")
        self._dpy: int | None = dpy
        try:
            self._setup(display)
        except BaseException:
            self.close()
            raise

    def _setup(self, display: str) -> None:
        x11, xext, dpy = self._lib.x11, self._lib.xext, self._dpy
        if dpy is None:
            raise XShmError("set-up of a closed ShmCapture")
        if not xext.XShmQueryExtension(dpy):
            raise XShmError(f"X display {display} does not offer the MIT-SHM extension")
        screen = x11.XDefaultScreen(dpy)
        self._root = x11.XRootWindow(dpy, screen)
        depth = x11.XDefaultDepth(dpy, screen)
        if depth != REQUIRED_DEPTH:
            raise XShmError(f"X display {display} has depth {depth}; capture needs {REQUIRED_DEPTH}")
        width, height = x11.XDisplayWidth(dpy, screen), x11.XDisplayHeight(dpy, screen)
        self._segment = _Segment(self._lib, dpy, depth, width, height)
        self._shminfo = self._segment.info  # the segment's id stays inspectable (tests check it is removed)
        self.width, self.height = width, height
        self.stride = self._segment.image.contents.bytes_per_line  # type: ignore[union-attr]

    def capture(self) -> memoryview:
        """Fetch the whole root window into the shared buffer and return it."""
        segment = self._segment
        if segment is None or segment.view is None:
            raise XShmError("capture on a closed ShmCapture")
        segment.get(self._root, 0, 0)
        self._read(self.width * self.height * 4)
        return segment.view

    def capture_box(self, x: int, y: int, width: int, height: int) -> memoryview:
        """capture() of just a rectangle of the screen, into the same pages
        (rows packed: stride width * 4); XShmError if it is off the screen."""
        segment = self._segment
        if segment is None or segment.view is None or segment.image is None or x < 0 or y < 0 or width <= 0 \
                or height <= 0 or x + width > self.width or y + height > self.height:  # fmt: skip
            raise XShmError(f"cannot capture {width}x{height} at {x},{y} (closed or off the screen)")
        img = segment.image.contents
        saved = img.width, img.height, img.bytes_per_line
        img.width, img.height, img.bytes_per_line = width, height, width * 4
        try:
            segment.get(self._root, x, y)
        finally:
            img.width, img.height, img.bytes_per_line = saved
        self._read(width * height * 4)
        return segment.view[: width * height * 4]

    def release(self) -> None:
        """Idle: give the shared buffer's pages back (the next capture refills them)."""
        if self._segment is not None:
            self._segment.release()

    def close(self) -> None:
        """Detach the segment and close the X connection; idempotent."""
        self._stop_quiet()
        if self._segment is not None:
            self._segment.close()
            self._segment = None
        if self._dpy is not None:
            self._lib.x11.XCloseDisplay(self._dpy)
            self._lib.errors.pop(self._dpy, None)
            self._dpy = None

    def __enter__(self) -> ShmCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass


# Largest rectangle one ShmRegionCapture fetches: a 4K screen.  The segment is
# this big, but Linux gives shared memory pages only when touched, so what it
# costs is the largest rectangle actually captured.
MAX_CAPTURE_PIXELS = 3840 * 2160


class CDisplay:
    """A C Xlib connection for the pixel path (MIT-SHM, Composite, Damage, XFixes).

    python-xlib has neither MIT-SHM nor XFixes regions, so capture and damage
    live on this connection, with their own events (fileno() for the loop).
    X errors are recorded by the process-wide trap, never fatal.
    """

    def __init__(self, display: str) -> None:
        self.lib = libs()
        dpy = self.lib.x11.XOpenDisplay(display.encode())
        if not dpy:
            raise XShmError(f"cannot open X display {display!r}")
        self.ptr: int = dpy
        self.name = display
        self.root = int(self.lib.x11.XRootWindow(dpy, self.lib.x11.XDefaultScreen(dpy)))

    def fileno(self) -> int:
        """The connection's socket (readable when events arrive)."""
        return int(self.lib.x11.XConnectionNumber(self.ptr))

    def sync(self) -> int | None:
        """Round trip; returns the X error code of a failed request since the last check."""
        self.lib.x11.XSync(self.ptr, 0)
        return self.lib.take_error(self.ptr)

    def flush(self) -> None:
        """Send queued requests."""
        self.lib.x11.XFlush(self.ptr)

    def take_error(self) -> int | None:
        """The X error code recorded since the last call, if any."""
        return self.lib.take_error(self.ptr)

    def geometry(self, drawable: int) -> tuple[int, int, int, int] | None:
        """(width, height, border_width, depth) of a drawable, None if it is gone."""
        root, x, y = ctypes.c_ulong(), ctypes.c_int(), ctypes.c_int()
        w, h, border, depth = ctypes.c_uint(), ctypes.c_uint(), ctypes.c_uint(), ctypes.c_uint()
        ok = self.lib.x11.XGetGeometry(self.ptr, drawable, *map(ctypes.byref, (root, x, y, w, h, border, depth)))
        if not ok or self.take_error() is not None:
            return None
        return w.value, h.value, border.value, depth.value

    def close(self) -> None:
        """Close the connection (server-side objects of it go too); idempotent."""
        if self.ptr:
            self.lib.x11.XCloseDisplay(self.ptr)
            self.lib.errors.pop(self.ptr, None)
            self.ptr = 0


class ShmRegionCapture(_ReleaseAfterWhole):
    """Captures any rectangle of any drawable (a window pixmap, the root) of
    depth 24 or 32 into one shared segment of max_pixels * 4 bytes.

    capture() returns a BGRX memoryview with a stride of width * 4, valid
    until the next capture() or close().
    """

    def __init__(self, display: CDisplay, max_pixels: int = MAX_CAPTURE_PIXELS,
                 call_later: CallLater | None = None) -> None:  # fmt: skip
        """call_later (the agent loop's): large reads that their frame keeps go
        back after QUIET_RELEASE_SECONDS without one (_ReleaseAfterWhole)."""
        self.call_later = call_later
        if not display.lib.xext.XShmQueryExtension(display.ptr):
            raise XShmError(f"X display {display.name} does not offer the MIT-SHM extension")
        self._display = display
        self.max_pixels = max_pixels
        # One column of max_pixels rows: bytes_per_line is 4, the segment max_pixels * 4.
        self._segment: _Segment | None = _Segment(display.lib, display.ptr, REQUIRED_DEPTH, 1, max_pixels)

    def capture(self, drawable: int, x: int, y: int, width: int, height: int) -> memoryview:
        """The width x height pixels at (x, y) of drawable; XShmError if the
        rectangle is empty, larger than max_pixels, or outside the drawable."""
        segment = self._segment
        if segment is None or segment.view is None or segment.image is None:
            raise XShmError("capture on a closed ShmRegionCapture")
        if width <= 0 or height <= 0 or width * height > self.max_pixels:
            raise XShmError(f"cannot capture {width}x{height}: 1..{self.max_pixels} pixels per capture")
        img = segment.image.contents
        img.width, img.height, img.bytes_per_line = width, height, width * 4
        segment.get(drawable, x, y)
        self._read(width * height * 4)
        return segment.view[: width * height * 4]

    def release(self) -> None:
        """Idle: give the segment's touched pages back (the next capture refills them)."""
        if self._segment is not None:
            self._segment.release()

    def close(self) -> None:
        """Free the segment (the CDisplay stays open); idempotent."""
        self._stop_quiet()
        if self._segment is not None:
            self._segment.close()
            self._segment = None

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

import ctypes
import ctypes.util
import os

# IPC constants from <sys/ipc.h> / <sys/shm.h> (Linux).
IPC_PRIVATE = 0
IPC_CREAT = 0o1000
IPC_RMID = 0
# Only the session's own user may touch the segment.
SHM_MODE = 0o600
ZPIXMAP = 2
ALL_PLANES = 0xFFFFFFFF
# The capture format the encoder expects: BGRX, 32 bits per pixel, depth 24.
REQUIRED_BITS_PER_PIXEL = 32
REQUIRED_DEPTH = 24


class XShmError(RuntimeError):
    """MIT-SHM capture is unavailable or failed; the message says why."""


class _XImage(ctypes.Structure):
    _fields_ = [
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("xoffset", ctypes.c_int),
        ("format", ctypes.c_int),
        ("data", ctypes.c_void_p),
        ("byte_order", ctypes.c_int),
        ("bitmap_unit", ctypes.c_int),
        ("bitmap_bit_order", ctypes.c_int),
        ("bitmap_pad", ctypes.c_int),
        ("depth", ctypes.c_int),
        ("bytes_per_line", ctypes.c_int),
        ("bits_per_pixel", ctypes.c_int),
        ("red_mask", ctypes.c_ulong),
        ("green_mask", ctypes.c_ulong),
        ("blue_mask", ctypes.c_ulong),
        ("obdata", ctypes.c_void_p),
        ("funcs", ctypes.c_void_p * 6),
    ]


class _XShmSegmentInfo(ctypes.Structure):
    _fields_ = [
        ("shmseg", ctypes.c_ulong),
        ("shmid", ctypes.c_int),
        ("shmaddr", ctypes.c_void_p),
        ("readOnly", ctypes.c_int),
    ]


class _XErrorEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("resourceid", ctypes.c_ulong),
        ("serial", ctypes.c_ulong),
        ("error_code", ctypes.c_ubyte),
        ("request_code", ctypes.c_ubyte),
        ("minor_code", ctypes.c_ubyte),
    ]


_ERROR_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_XErrorEvent))


class _Libs:
    """The loaded C libraries with their prototypes, plus the error trap.

    Xlib's error handler is per process, so one _Libs object (created by the
    first ShmCapture and shared through the class attribute) owns it.
    """

    def __init__(self) -> None:
        x11_name = ctypes.util.find_library("X11")
        xext_name = ctypes.util.find_library("Xext")
        if not x11_name or not xext_name:
            raise XShmError(
                "libX11/libXext not found; install libx11-6 and libxext6"
            )
        self.x11 = ctypes.CDLL(x11_name)
        self.xext = ctypes.CDLL(xext_name)
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
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
        xext.XShmQueryExtension.argtypes, xext.XShmQueryExtension.restype = [vp], c_int
        xext.XShmCreateImage.argtypes = [
            vp, vp, c_uint, c_int, vp, ctypes.POINTER(_XShmSegmentInfo), c_uint, c_uint,
        ]
        xext.XShmCreateImage.restype = ctypes.POINTER(_XImage)
        xext.XShmAttach.argtypes = [vp, ctypes.POINTER(_XShmSegmentInfo)]
        xext.XShmAttach.restype = c_int
        xext.XShmDetach.argtypes = [vp, ctypes.POINTER(_XShmSegmentInfo)]
        xext.XShmDetach.restype = c_int
        xext.XShmGetImage.argtypes = [vp, c_ulong, ctypes.POINTER(_XImage), c_int, c_int, c_ulong]
        xext.XShmGetImage.restype = c_int
        libc.shmget.argtypes, libc.shmget.restype = [c_int, ctypes.c_size_t, c_int], c_int
        libc.shmat.argtypes, libc.shmat.restype = [c_int, vp, c_int], vp
        libc.shmdt.argtypes, libc.shmdt.restype = [vp], c_int
        libc.shmctl.argtypes, libc.shmctl.restype = [c_int, c_int, vp], c_int
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


class ShmCapture:
    """Captures the whole root window of `display` into shared memory.

    The buffer is BGRX (32 bits per pixel, little-endian), `stride` bytes per
    row.  The memoryview returned by capture() stays valid until close().
    """

    _libs: _Libs | None = None

    def __init__(self, display: str) -> None:
        if ShmCapture._libs is None:
            ShmCapture._libs = _Libs()
        self._lib = ShmCapture._libs
        self._dpy: int | None = None
        self._image: ctypes._Pointer[_XImage] | None = None
        self._shminfo = _XShmSegmentInfo()
        self._attached = False
        self._view: memoryview | None = None
        x11 = self._lib.x11
        dpy = x11.XOpenDisplay(display.encode())
        if not dpy:
            raise XShmError(f"cannot open X display {display!r}")
        self._dpy = dpy
        try:
            self._setup(display)
        except BaseException:
            self.close()
            raise

    def _setup(self, display: str) -> None:
        lib, x11, xext, libc = self._lib, self._lib.x11, self._lib.xext, self._lib.libc
        dpy = self._dpy
        if not xext.XShmQueryExtension(dpy):
            raise XShmError(f"X display {display} does not offer the MIT-SHM extension")
        screen = x11.XDefaultScreen(dpy)
        self._root = x11.XRootWindow(dpy, screen)
        depth = x11.XDefaultDepth(dpy, screen)
        if depth != REQUIRED_DEPTH:
            raise XShmError(f"X display {display} has depth {depth}; capture needs {REQUIRED_DEPTH}")
        width, height = x11.XDisplayWidth(dpy, screen), x11.XDisplayHeight(dpy, screen)
        image = xext.XShmCreateImage(
            dpy, x11.XDefaultVisual(dpy, screen), depth, ZPIXMAP, None,
            ctypes.byref(self._shminfo), width, height,
        )
        if not image:
            raise XShmError("XShmCreateImage failed")
        self._image = image
        img = image.contents
        if img.bits_per_pixel != REQUIRED_BITS_PER_PIXEL or img.byte_order != 0:
            raise XShmError(
                f"X image format is {img.bits_per_pixel} bpp (byte order {img.byte_order}); "
                f"capture needs {REQUIRED_BITS_PER_PIXEL} bpp little-endian"
            )
        self.width, self.height, self.stride = width, height, img.bytes_per_line
        size = img.bytes_per_line * height
        shmid = libc.shmget(IPC_PRIVATE, size, IPC_CREAT | SHM_MODE)
        if shmid < 0:
            err = ctypes.get_errno()
            raise XShmError(f"shmget of {size} bytes failed: {os.strerror(err)}")
        self._shminfo.shmid = shmid
        addr = libc.shmat(shmid, None, 0)
        if addr is None or addr == ctypes.c_void_p(-1).value:
            err = ctypes.get_errno()
            libc.shmctl(shmid, IPC_RMID, None)
            raise XShmError(f"shmat failed: {os.strerror(err)}")
        self._shminfo.shmaddr = addr
        self._shminfo.readOnly = 0
        img.data = addr
        lib.take_error(dpy)
        ok = xext.XShmAttach(dpy, ctypes.byref(self._shminfo))
        x11.XSync(dpy, 0)
        # The server has attached (or failed to): nothing else needs the id.
        libc.shmctl(shmid, IPC_RMID, None)
        error = lib.take_error(dpy)
        if not ok or error is not None:
            raise XShmError(f"XShmAttach failed (X error {error}); is the X server local?")
        self._attached = True
        array = (ctypes.c_ubyte * size).from_address(addr)
        self._view = memoryview(array).cast("B")

    def capture(self) -> memoryview:
        """Fetch the whole root window into the shared buffer and return it."""
        if self._view is None or self._dpy is None or self._image is None:
            raise XShmError("capture on a closed ShmCapture")
        lib = self._lib
        ok = lib.xext.XShmGetImage(self._dpy, self._root, self._image, 0, 0, ALL_PLANES)
        error = lib.take_error(self._dpy)
        if not ok or error is not None:
            raise XShmError(f"XShmGetImage failed (X error {error})")
        return self._view

    def close(self) -> None:
        """Detach the segment and close the X connection; idempotent."""
        lib = self._lib
        if self._view is not None:
            self._view.release()
            self._view = None
        if self._dpy is not None and self._attached:
            lib.xext.XShmDetach(self._dpy, ctypes.byref(self._shminfo))
            lib.x11.XSync(self._dpy, 0)
            lib.take_error(self._dpy)
            self._attached = False
        if self._shminfo.shmaddr:
            lib.libc.shmdt(self._shminfo.shmaddr)
            self._shminfo.shmaddr = None
        if self._image is not None:
            self._image.contents.data = None
            lib.x11.XFree(ctypes.cast(self._image, ctypes.c_void_p))
            self._image = None
        if self._dpy is not None:
            lib.x11.XCloseDisplay(self._dpy)
            lib.errors.pop(self._dpy, None)
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

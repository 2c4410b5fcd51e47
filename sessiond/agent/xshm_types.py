# The C structures of Xlib and MIT-SHM that xshm.py passes through ctypes
# (<X11/Xlib.h> XImage and XErrorEvent, <X11/extensions/XShm.h>
# XShmSegmentInfo), and the error handler's function type.
#
# Why apart from xshm.py: they are layouts copied from C headers that never
# change with the capture logic, and xshm.py is at its size limit.
"""ctypes layouts of XImage, XShmSegmentInfo, XErrorEvent and Xlib's error handler type."""

from __future__ import annotations

import ctypes


class XImage(ctypes.Structure):
    """<X11/Xlib.h> XImage."""

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


class XShmSegmentInfo(ctypes.Structure):
    """<X11/extensions/XShm.h> XShmSegmentInfo."""

    _fields_ = [("shmseg", ctypes.c_ulong), ("shmid", ctypes.c_int), ("shmaddr", ctypes.c_void_p),
                ("readOnly", ctypes.c_int)]  # fmt: skip


class XErrorEvent(ctypes.Structure):
    """<X11/Xlib.h> XErrorEvent."""

    _fields_ = [("type", ctypes.c_int), ("display", ctypes.c_void_p), ("resourceid", ctypes.c_ulong),
                ("serial", ctypes.c_ulong), ("error_code", ctypes.c_ubyte), ("request_code", ctypes.c_ubyte),
                ("minor_code", ctypes.c_ubyte)]  # fmt: skip


# int (*)(Display *, XErrorEvent *): XSetErrorHandler's argument.
ERROR_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(XErrorEvent))

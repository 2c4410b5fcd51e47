# Who may touch the framebuffers' memory (client/fb_memory.py) when: the
# reactor thread writes it (decoding a frame's regions), the GUI thread paints
# straight from it (no copy of the damaged rows: that copy was ~2.8 MB and
# ~11 % of the viewer's CPU per scroll repaint).
#
# The rules, so the GUI only ever shows a framebuffer state that existed (the
# state at a FRAME_END), never a frame half applied:
# - the reactor "opens" a frame before its first write and "closes" it at
#   FRAME_END, when its damage is queued for the GUI;
# - the GUI reads only while no frame is open (begin_read .. end_read), and
#   each read first takes every queued patch, so what it paints is the memory
#   at the last FRAME_END over all the damage since its previous paint;
# - the reactor opens the next frame only once the GUI has painted what was
#   queued ("lent") and is not reading: the two threads alternate during a
#   scroll instead of the reactor copying the rows out for the GUI.
# A frame is open only while it is applied whole: the client library holds a
# frame's messages until its FRAME_END (client/frame_hold.py, hold_frames) and
# then decodes them all at once, so the GUI is kept out for as long as the CPU
# needs to apply one frame, never for as long as a slow link needs to carry it
# (nor for ever, for a server that sends no FRAME_END).
# Both waits are bounded. A reactor that waited WRITER_WAIT_SECONDS (the GUI is
# stuck) detaches: its framebuffers get fresh copies of their memory
# (Framebuffer.detach) and the old ones are frozen for the GUI to read at
# leisure. A GUI paint that waited READER_WAIT_SECONDS (a frame being applied
# still) paints nothing from memory, leaves what is on screen, and tries again
# (client/viewer/window.py).
"""FrameGate: the reactor's frame writes and the GUI's reads of the framebuffer memory, in turn."""

from __future__ import annotations

import threading

# Seconds the reactor waits for the GUI to paint the last frame before it
# detaches the memory instead; a repaint takes ~1-2 ms, a wake-up of the GUI a few more.
WRITER_WAIT_SECONDS = 0.1
# Seconds a GUI paint outside a frame's repaint (an expose, a resize, the
# stale shade) waits for the frame being applied to end.
READER_WAIT_SECONDS = 0.05


class FrameGate:
    """The turn-taking of the framebuffer memory's writer (reactor thread) and reader (GUI thread)."""

    def __init__(self, writer_wait: float = WRITER_WAIT_SECONDS, reader_wait: float = READER_WAIT_SECONDS) -> None:
        self._cond = threading.Condition()
        self.writer_wait = writer_wait
        self.reader_wait = reader_wait
        self.open = False  # the reactor writes a frame (read it only on the reactor thread)
        self._lent = False  # patches over the memory wait for the GUI, or are being painted
        self._readers = 0  # nested reads of the GUI thread
        self.detaches = 0  # writer waits that timed out (tests, benches)
        self.reader_waits = 0  # reads that found a frame open and had to wait (tests, benches)
        self.refused_reads = 0  # reads not granted: the frame stayed open reader_wait (tests, benches)

    def open_frame(self) -> bool:
        """Before the reactor writes pixels: wait until the GUI has painted what
        was lent and reads nothing. False if that took longer than writer_wait:
        the caller must then detach every framebuffer's memory before writing."""
        with self._cond:
            if self.open:
                return True
            free = self._cond.wait_for(lambda: not self._lent and self._readers == 0, self.writer_wait)
            self.open = True
            if not free:
                self._lent = False
                self.detaches += 1
            return free

    def close_frame(self, lent: bool) -> None:
        """FRAME_END (reactor): the memory is a whole frame again; LENT: patches over it were queued."""
        with self._cond:
            self.open = False
            self._lent = self._lent or lent
            self._cond.notify_all()

    def begin_read(self) -> bool:
        """Before the GUI reads the memory: wait (reader_wait at most) until no
        frame is being written. False: not granted (do not read; no end_read)."""
        with self._cond:
            if self._readers == 0 and self.open:
                self.reader_waits += 1
                if not self._cond.wait_for(lambda: not self.open, self.reader_wait):
                    self.refused_reads += 1
                    return False
            self._readers += 1
            return True

    def end_read(self, painted: bool) -> None:
        """The GUI is done reading; PAINTED: it painted every patch it was lent."""
        with self._cond:
            self._readers -= 1
            if painted:
                self._lent = False
            self._cond.notify_all()

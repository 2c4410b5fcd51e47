# One session window's pixels on the GUI side.
#
# Patches over the framebuffer's memory (the viewer's own: DamageCollector)
# are not copied at all: the canvas's image is then a QImage over that memory,
# painted from while the reactor waits its turn (client/viewer/gate.py), and
# a new memory (a resize, a detach) makes the whole window repaint from it.
# The rest of this header is about patches that carry their own bytes (the
# fallback where Pillow would not map the memory, and tests):
#
# A frame's patches are painted straight from their own bytes (rows in Qt's
# Format_RGB32, the backing store's own format: a copy, no conversion;
# client/viewer/damage.py) into Qt's backing store; they are copied into the
# window's QImage only when something else needs that image: an expose, a
# resize, the stale shade, a test reading the pixels. A newer patch that
# covers an older one not yet copied replaces it, so during a scroll (each
# frame one patch over the same rows) nothing is copied at all: ~0.3 ms of
# the viewer's CPU per 1084x654 frame, one pass over the frame's pixels.
#
# Bound: patches not yet copied hold at most one image's worth of bytes
# (MAX_UNMERGED_IMAGES) and are at most MAX_UNMERGED_PATCHES; past either
# they are copied at once.
"""Canvas: a window's QImage plus the patches painted on screen but not yet copied into it."""

from __future__ import annotations

from PySide6.QtCore import QRect
from PySide6.QtGui import QColor, QImage, QPainter, QRegion

from client.fb_memory import SWAP_RB, PixelMemory
from client.viewer.damage import Patch
from client.viewer.gate import FrameGate

# Colour of not-yet-drawn pixels.
UNDRAWN = QColor(48, 48, 48)
# Bytes of patches not yet copied into the image, in images' worth; more are copied at once.
MAX_UNMERGED_IMAGES = 1
# Patches not yet copied, at most; more are copied at once. Each take() compares its patches with every
# one kept, and typing keeps one small patch per keystroke: 82 us of CPU per key after 100 keys, 270 after 300.
MAX_UNMERGED_PATCHES = 16
# The framebuffer's own layout (client/fb_memory.py): B, G, R, pad on a little-endian machine.
FORMAT = QImage.Format.Format_RGB32 if SWAP_RB else QImage.Format.Format_RGBX8888


def _rect(patch: Patch) -> QRect:
    return QRect(patch.x, patch.y, patch.w, patch.h)


def _tile(patch: Patch) -> QImage:
    """A QImage over the patch's bytes (no copy; valid while the patch lives)."""
    return QImage(patch.pixels, patch.w, patch.h, patch.w * 4, FORMAT)


class Canvas:
    """The pixels of a window whose buffer is width x height."""

    def __init__(self, width: int, height: int) -> None:
        self._image = QImage(max(1, width), max(1, height), FORMAT)
        self._image.fill(UNDRAWN)
        self._unmerged: list[Patch] = []
        self._unmerged_bytes = 0
        # The framebuffer memory self._image is over, and the gate to read it under (None: an own image).
        self._memory: PixelMemory | None = None
        self._gate: FrameGate | None = None
        # The last copy of that memory `image` read under the gate (returned while a read is refused).
        self._last_read: QImage | None = None

    @property
    def image(self) -> QImage:
        """The window's pixels, every patch taken so far copied in. Over memory: a copy
        read under the gate; if the gate refuses the read (a frame is being applied), the
        last such copy (an earlier whole frame), else UNDRAWN: never a frame half applied."""
        if self._memory is not None:
            granted, gate = self._begin_read()
            if not granted:
                last = self._last_read
                if last is not None and last.size() == self._image.size():
                    return QImage(last)  # (implicitly shared: a caller's change copies it)
                undrawn = QImage(self._image.size(), FORMAT)
                undrawn.fill(UNDRAWN)
                return undrawn
            try:
                self._last_read = self._image.copy()
                return QImage(self._last_read)
            finally:
                if gate is not None:
                    gate.end_read(False)
        self._merge()
        return self._image

    @property
    def size(self) -> tuple[int, int]:
        """The buffer's width and height."""
        return self._image.width(), self._image.height()

    @property
    def over_memory(self) -> bool:
        """True while the image is the framebuffer's memory (paint it with paint_memory)."""
        return self._memory is not None

    def _begin_read(self) -> tuple[bool, FrameGate | None]:
        """May the image be read now (GUI thread)? (True, None) if it is our own or frozen
        memory; (True, gate) if the gate granted a read (end it there); (False, None) if not."""
        if self._memory is None or self._memory.frozen or self._gate is None:
            return True, None
        gate = self._gate
        return (True, gate) if gate.begin_read() else (False, None)

    def paint_memory(self, painter: QPainter, region: QRegion) -> bool:
        """Paint REGION from the memory (its rectangles, a copy each); False (nothing painted)
        if the memory may not be read now (a frame is being written)."""
        if self._memory is None:
            return False
        granted, gate = self._begin_read()
        if not granted:
            return False
        try:
            bounds = self._image.rect()
            for rect in region:
                part = rect.intersected(bounds)
                if not part.isEmpty():
                    painter.drawImage(part.topLeft(), self._image, part)
        finally:
            if gate is not None:
                gate.end_read(False)
        return True

    def take(self, patches: list[Patch]) -> tuple[QRegion, list[Patch]]:
        """Take a frame's patches: (the region they change, the ones to paint
        from their own bytes). A patch for another buffer size grows or
        shrinks the image first (the whole window changes)."""
        changed, direct = QRegion(), []
        for patch in patches:
            if patch.memory is not None:
                if patch.memory is not self._memory:  # the first, a resized or a detached memory: all of it
                    self._over(patch.memory, patch.gate)
                    changed = QRegion(self._image.rect())
                changed += _rect(patch)
                continue
            if self._memory is not None:  # a patch with its own bytes: back to an image of our own
                self._own()
            if (patch.fb_width, patch.fb_height) != (self._image.width(), self._image.height()):
                self._resize(patch.fb_width, patch.fb_height)
                changed = QRegion(self._image.rect())
            rect = _rect(patch)
            changed += rect
            if not self._image.rect().contains(rect):
                continue  # the collector crops to the buffer it announced; never write past the image
            if len(self._unmerged) >= MAX_UNMERGED_PATCHES:
                self._merge()
            kept = [old for old in self._unmerged if not rect.contains(_rect(old))]
            self._unmerged = [*kept, patch]
            self._unmerged_bytes = sum(len(old.pixels) for old in self._unmerged)
            direct.append(patch)
        if self._unmerged_bytes > MAX_UNMERGED_IMAGES * self._image.sizeInBytes():
            self._merge()
        return changed, direct

    @staticmethod
    def paint_direct(painter: QPainter, region: QRegion, patches: list[Patch]) -> bool:
        """Paint REGION from PATCHES' own bytes if they cover it all; False
        (nothing painted) if they do not."""
        covered = QRegion()
        for patch in patches:
            covered += _rect(patch)
        if not patches or not region.subtracted(covered).isEmpty():
            return False
        for patch in patches:  # opaque, in the backing store's format: a copy
            painter.drawImage(patch.x, patch.y, _tile(patch))
        return True

    def _over(self, memory: PixelMemory, gate: FrameGate | None) -> None:
        """Make the image the one over MEMORY (a QImage on its bytes: no copy)."""
        if memory.buffer is None:  # (DamageCollector sends such memory's rows as bytes)
            raise ValueError("framebuffer memory not mapped")
        self._unmerged, self._unmerged_bytes = [], 0
        self._memory, self._gate = memory, gate
        self._image = QImage(memory.buffer, memory.width, memory.height, memory.width * 4, FORMAT)

    def _own(self) -> None:
        """Make the image an own copy of the memory's (GUI thread, reading)."""
        image = self.image
        self._memory, self._gate = None, None
        self._image = image

    def _resize(self, width: int, height: int) -> None:
        grown = QImage(width, height, FORMAT)
        grown.fill(UNDRAWN)
        with QPainter(grown) as painter:
            painter.drawImage(0, 0, self.image)
        self._image = grown

    def _merge(self) -> None:
        """Copy the patches not yet in the image into it, oldest first."""
        unmerged, self._unmerged, self._unmerged_bytes = self._unmerged, [], 0
        if not unmerged:
            return
        stride = self._image.bytesPerLine()
        painter: QPainter | None = None
        for patch in unmerged:
            if patch.w * 4 == stride:  # whole rows: one slice of the image's memory
                if painter is not None:
                    painter.end()
                    painter = None
                offset = patch.y * stride
                self._image.bits()[offset : offset + patch.h * stride] = patch.pixels
                continue
            if painter is None:
                painter = QPainter(self._image)
            painter.drawImage(patch.x, patch.y, _tile(patch))  # same format: a copy
        if painter is not None:
            painter.end()

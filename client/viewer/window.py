# One session window as one local top-level window. It keeps a QImage of the
# window's pixels at the session's size (client/viewer/canvas.py) and paints
# only what changed (one repaint per frame, from the patches' own bytes); painting maps session pixels 1:1 to logical
# pixels, so with an integer QT_SCALE_FACTOR each session pixel becomes an
# exact N x N block (nearest-neighbour, no blur); docs/viewer.md says why.
#
# Geometry is synchronised both ways without echo: a change the session
# makes (a move it initiates, a size its hints constrain) is applied here; a
# change the local window manager makes is sent as WINDOW_MOVE_RESIZE; the
# session's answer to our own request is recognised (it equals what we sent)
# and not applied again, so a window manager that offsets windows for its
# decorations cannot make the two sides chase each other.
"""SessionWindow: a QWidget showing one session window, forwarding its input."""

from __future__ import annotations

import time
from typing import Protocol

from PySide6.QtCore import QEvent, QRect, QRectF, Qt, QTimer
from PySide6.QtGui import (
    QCloseEvent,
    QColor,
    QFocusEvent,
    QGuiApplication,
    QIcon,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QMoveEvent,
    QPainter,
    QPaintEvent,
    QPixmap,
    QRegion,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QMessageBox, QWidget

from client.viewer.canvas import UNDRAWN, Canvas
from client.viewer.damage import DESKTOP, LatencyTrace, Patch, WindowState
from client.viewer.keymap import KeyTranslator

# Qt mouse buttons -> X button numbers.
BUTTONS = {Qt.MouseButton.LeftButton: 1, Qt.MouseButton.MiddleButton: 2, Qt.MouseButton.RightButton: 3,
           Qt.MouseButton.BackButton: 8, Qt.MouseButton.ForwardButton: 9}  # fmt: skip
# Qt's angle delta per wheel notch.
WHEEL_NOTCH = 120
# Milliseconds local geometry changes are gathered before one request goes out.
GEOMETRY_SETTLE_MS = 40
# Qt's shared-memory backing store waits for the X server (a round trip) before it paints over a
# rectangle flushed since its last wait, and an echo covers the previous echo's cursor cell: every
# echo paid that wait on its way to the screen. So once a small repaint (at most ECHO_SYNC_MAX_PIXELS)
# is ECHO_SYNC_MS old with no repaint since, one pixel of it is painted again (its top-left corner,
# which typing to the right does not paint next): the wait happens then, off the keystroke's path,
# and leaves only that pixel pending. Neither larger repaints nor small ones within ECHO_SYNC_QUIET_SECONDS
# of a larger one (a scroll, whose frames may come 40 ms apart) trigger it: a scroll gets no extra paints.
ECHO_SYNC_MS = 10
ECHO_SYNC_MAX_PIXELS = 128 * 128
ECHO_SYNC_QUIET_SECONDS = 0.5
# Milliseconds before a paint that could not read the framebuffer memory (a frame being applied) is tried again.
UNREAD_RETRY_MS = 20
# Shade over a stale window (connection lost).
STALE_SHADE = QColor(0, 0, 0, 110)
# Seconds the session's window state is not applied locally after the local one changed, unless
# the session answers with the state asked for first (older messages must not undo the change).
STATE_ANSWER_SECONDS = 2.0
# Title of the dialog shown when an app does not answer a close ("... - window title").
NOT_RESPONDING_TITLE = "Not responding"
FORCE_CLOSE_TEXT = ("Force close disconnects the app from the session: unsaved work in it may be lost. "
                    "Wait leaves it open; closing the window again asks the app again.")  # fmt: skip


class Sender(Protocol):
    """Where a window sends input and requests (ViewerLink.call)."""

    def call(self, method: str, *args: object) -> None: ...

    def key(self, window: int, keysym: int, down: bool) -> None: ...

    def close(self, window: int, force: bool) -> None: ...

    def fit_screen(self, width: int, height: int) -> None: ...

    @property
    def trace(self) -> LatencyTrace: ...


class SessionWindow(QWidget):
    """A local top-level window showing session window `state.id`."""

    def __init__(self, link: Sender, state: WindowState, seamless: bool) -> None:
        super().__init__(None, self._flags(state))
        self.link = link
        self.id = state.id
        self.seamless = seamless
        self.state = state
        self.session_focus = 0
        self.stale = False
        # nativeVirtualKey() is the X keysym only on X11 (xcb)
        self.keys = KeyTranslator(native_is_keysym=QGuiApplication.platformName() == "xcb")
        self._sent: tuple[int, int, int, int] | None = None
        self._applying = False
        self._wheel = [0, 0]
        self._icon_png = b""
        self._close_asked = False  # the user closed it and the app has not answered yet
        self._pending_state: tuple[str, float] | None = None  # a state we asked for, until answered
        self.not_responding: QMessageBox | None = None
        self.canvas = Canvas(state.width, state.height)
        self._direct: list[Patch] = []  # the patches of the repaint under way (apply_patches)
        # What the window shows of session pixels painted from the memory since its last resize
        # (Qt's backing store keeps it): a paint refused by the gate leaves that, not UNDRAWN.
        self._shown = QRegion()
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus if state.managed else Qt.FocusPolicy.NoFocus)
        if not state.managed:
            self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(GEOMETRY_SETTLE_MS)
        self._settle.timeout.connect(self._send_geometry)
        self._echo_sync = QTimer(self)  # ECHO_SYNC_MS after a small repaint: one pixel of it again
        self._echo_sync.setSingleShot(True)
        self._echo_sync.setInterval(ECHO_SYNC_MS)
        self._echo_sync.timeout.connect(self._sync_pixel)
        self._echo_sync_at = QRect()
        self._large_painted_at = 0.0  # time.monotonic() of the last repaint larger than ECHO_SYNC_MAX_PIXELS
        self.apply_state(state, first=True)

    @staticmethod
    def _flags(state: WindowState) -> Qt.WindowType:
        # Qt writes WM_TRANSIENT_FOR only for dialog-type windows.
        flags = Qt.WindowType.Dialog if state.transient_for and state.managed else Qt.WindowType.Window
        if not state.managed:  # menus, tooltips: override-redirect, placed by the session
            flags |= Qt.WindowType.FramelessWindowHint | Qt.WindowType.BypassWindowManagerHint
        elif not state.decorated:
            flags |= Qt.WindowType.FramelessWindowHint
        return flags

    # -- session -> local ------------------------------------------------------------
    def apply_state(self, state: WindowState, first: bool = False) -> None:
        """Take the session's record of the window: title, icon, geometry, state."""
        self.state = state
        self.setWindowTitle(state.title or state.app or "session window")
        if state.icon_png and state.icon_png != self._icon_png:
            pixmap = QPixmap()
            if pixmap.loadFromData(state.icon_png, "PNG"):
                self.setWindowIcon(QIcon(pixmap))
            self._icon_png = state.icon_png
        self._applying = True
        try:
            remote = (state.x, state.y, state.width, state.height)
            if first:
                self.setGeometry(*remote)
            elif remote != self._sent and not self.isMaximized() and state.state != "maximized":
                # (a maximized window's local size is the local window manager's: see _send_geometry)
                g = self.geometry()
                if (state.x, state.y) != (g.x(), g.y()) and (self._sent is None or self._sent[:2] != remote[:2]):
                    self.move(state.x, state.y) if not state.managed else self.setGeometry(QRect(*remote))
                if (state.width, state.height) != (g.width(), g.height()):
                    self.resize(state.width, state.height)
            pending = self._pending_state
            if pending is not None and (state.state == pending[0] or time.monotonic() > pending[1]):
                self._pending_state = pending = None
            if pending is not None:
                pass  # the session has not yet answered our own minimize/maximize/restore: no echo
            elif state.state == "minimized" and self.isVisible() and not self.isMinimized():
                self.showMinimized()
            elif state.state == "maximized" and self.isVisible() and not self.isMaximized():
                self.showMaximized()
            elif state.state == "normal" and (self.isMinimized() or self.isMaximized()):
                maximized = self.isMaximized()
                self.showNormal()
                if maximized and state.managed:
                    # The local window manager restores the size it saved, which may be one the session
                    # sent on its way to maximized: the session's restored geometry is the one.
                    self.setGeometry(QRect(*remote))
            if state.close_unanswered and self._close_asked:
                self._close_asked = False
                self._ask_force_close()
        finally:
            self._applying = False

    def apply_patches(self, patches: list[Patch]) -> None:
        """Take PATCHES and paint the rectangles they changed now (repaint, not
        update: no wait for another turn of the event loop), from the patches'
        own bytes when they cover what Qt asks for (client/viewer/canvas.py)."""
        changed, self._direct = self.canvas.take(patches)
        self.link.trace.mark("copied")
        try:
            if self.isVisible() and not self.isMinimized():
                self.repaint(changed)
                box, now = changed.boundingRect(), time.monotonic()
                if box.width() * box.height() > ECHO_SYNC_MAX_PIXELS:
                    self._large_painted_at = now
                    self._echo_sync.stop()
                elif now - self._large_painted_at >= ECHO_SYNC_QUIET_SECONDS:
                    self._echo_sync_at = QRect(box.x(), box.y(), 1, 1)
                    self._echo_sync.start()  # (re)started: only once the window is quiet
        finally:
            self._direct = []

    def _sync_pixel(self) -> None:
        """Paint one pixel of the last small repaint again (ECHO_SYNC_MS): Qt waits for the X server now."""
        if self.isVisible() and not self.isMinimized() and not self._echo_sync_at.isEmpty():
            self.repaint(self._echo_sync_at)

    @property
    def image(self) -> QImage:
        """The window's session pixels (every patch taken so far)."""
        return self.canvas.image

    def set_stale(self, stale: bool) -> None:
        """Shade the window while the connection is lost."""
        if stale != self.stale:
            self.stale = stale
            self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt name
        self.link.trace.mark("paint")
        rect = event.rect()
        with QPainter(self) as painter:
            if self.devicePixelRatioF() % 1:  # a fractional scale: smooth rather than uneven pixels
                painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            if self.canvas.over_memory:
                self._paint_memory(painter, event.region())
            elif not self.canvas.paint_direct(painter, event.region(), self._direct):
                image = self.canvas.image
                if not image.rect().contains(rect):  # only where the session's pixels do not reach
                    painter.fillRect(rect, UNDRAWN)
                painter.drawImage(QRectF(rect), image, QRectF(rect))
            if self.stale:
                painter.fillRect(rect, STALE_SHADE)
        self.link.trace.mark("painted")

    def _paint_memory(self, painter: QPainter, region: QRegion) -> None:
        """REGION from the framebuffer memory; where the memory cannot be read now
        (a frame still being applied after READER_WAIT_SECONDS), nothing: the window
        keeps what it showed (an earlier whole frame), and another try in UNREAD_RETRY_MS."""
        size = self.canvas.size
        inside = region.intersected(QRect(0, 0, size[0], size[1]))
        outside = region.subtracted(inside)
        for rect in outside:  # only where the session's pixels do not reach
            painter.fillRect(rect, UNDRAWN)
        if inside.isEmpty():
            return
        if self.canvas.paint_memory(painter, inside):
            self._shown += inside
            return
        for rect in inside.subtracted(self._shown):  # never painted (a new window, a resize): nothing to keep
            painter.fillRect(rect, UNDRAWN)
        box = inside.boundingRect()
        QTimer.singleShot(UNREAD_RETRY_MS, lambda: self.update(box))

    # -- local -> session ------------------------------------------------------------
    def moveEvent(self, event: QMoveEvent) -> None:  # noqa: N802 - Qt name
        self._geometry_changed()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt name
        self._shown = QRegion()  # a new backing store: nothing of it painted yet
        self._geometry_changed()

    def _geometry_changed(self) -> None:
        if not self._applying and self.isVisible() and self.state.managed:
            self._settle.start()

    def _send_geometry(self) -> None:
        # Maximized: the session sizes the window to its own screen; sending the local size would make
        # it a normal window again (docs/windows.md). The session's screen is asked to take this
        # window's size instead, so the session's maximized window fills the local one.
        if self.isMaximized() and self.seamless and self.state.managed and not self.stale:
            self.link.fit_screen(self.width(), self.height())
        if self.isMinimized() or self.isMaximized() or self.stale:
            return
        g = self.geometry()
        rect = (g.x(), g.y(), g.width(), g.height())
        if rect == (self.state.x, self.state.y, self.state.width, self.state.height):
            return
        self._sent = rect
        if self.seamless:
            self.link.call("move_resize", self.id, *rect)
        else:
            self.link.call("resize", g.width(), g.height())

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt name
        if event.type() == QEvent.Type.WindowStateChange and self.isMaximized():
            self._settle.start()  # maximized here, by either side: fit the session's screen to it
        if event.type() == QEvent.Type.WindowStateChange and self.seamless and not self._applying:
            self._local_state_changed()
        elif event.type() == QEvent.Type.ActivationChange and self.isActiveWindow():
            self._focus_in_session()
        super().changeEvent(event)

    def _local_state_changed(self) -> None:
        local = "minimized" if self.isMinimized() else "maximized" if self.isMaximized() else "normal"
        remote = self.state.state
        if local == remote or not self.state.managed:
            return
        if local == "minimized":
            method = "minimize"
        elif local == "maximized" and remote == "normal":
            method = "maximize"
        else:  # back to normal, or un-minimized (the session restores what it had)
            method = "restore"
        self._pending_state = (local, time.monotonic() + STATE_ANSWER_SECONDS)
        self.link.call(method, self.id)

    def _focus_in_session(self) -> None:
        if self.seamless and self.state.managed and self.session_focus != self.id:
            self.session_focus = self.id
            self.link.call("raise_window", self.id)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt name
        """Closing asks the app (WM_DELETE_WINDOW). If the app does not answer,
        a local dialog offers to force it; closing again meanwhile forces."""
        event.ignore()
        if not self.seamless:
            return
        if self.not_responding is not None and self.not_responding.isVisible():
            self._force_close()
            return
        self._close_asked = True
        self.link.close(self.id, False)

    def _ask_force_close(self) -> None:
        if self.not_responding is None:
            box = QMessageBox(self)
            box.setIcon(QMessageBox.Icon.Warning)
            box.setModal(False)
            force = box.addButton("&Force close", QMessageBox.ButtonRole.DestructiveRole)
            wait = box.addButton("&Wait", QMessageBox.ButtonRole.RejectRole)
            box.setDefaultButton(wait)
            box.setEscapeButton(wait)
            force.clicked.connect(self._force_close)
            self.not_responding = box
        name = self.state.title or self.state.app or "the window"
        self.not_responding.setWindowTitle(f"{NOT_RESPONDING_TITLE} - {name}")
        self.not_responding.setText(f"\u201c{name}\u201d did not close when asked.")
        self.not_responding.setInformativeText(FORCE_CLOSE_TEXT)
        self.not_responding.show()
        self.not_responding.raise_()

    def _force_close(self) -> None:
        if self.not_responding is not None:
            self.not_responding.hide()
        self.link.close(self.id, True)

    def _pos(self, event: QMouseEvent | QWheelEvent) -> tuple[int, int]:
        p = event.position()
        return max(0, int(p.x())), max(0, int(p.y()))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt name
        x, y = self._pos(event)
        if self.id == DESKTOP and not self.seamless:
            self.link.call("pointer", x, y)
        else:
            self.link.call("window_pointer", self.id, x, y)

    def _button(self, event: QMouseEvent, down: bool) -> None:
        button = BUTTONS.get(event.button())
        if button is None:
            return
        x, y = self._pos(event)
        if self.seamless:
            if down:
                self.session_focus = self.id  # a press raises and focuses the window in the session
            self.link.call("window_button", self.id, x, y, button, down)
        else:
            self.link.call("button", x, y, button, down)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt name
        self._button(event, True)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt name
        self._button(event, False)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt name
        self._button(event, True)  # X wants the second press as a press

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt name
        delta = event.angleDelta()
        self._wheel[0] += delta.x()
        self._wheel[1] += delta.y()
        dx, dy = int(self._wheel[0] / WHEEL_NOTCH), int(self._wheel[1] / WHEEL_NOTCH)
        if not dx and not dy:
            return
        self._wheel[0] -= dx * WHEEL_NOTCH
        self._wheel[1] -= dy * WHEEL_NOTCH
        x, y = self._pos(event)
        if self.seamless:  # Qt: positive is away from the user (up); the wire: +dy scrolls down
            self.link.call("window_wheel", self.id, x, y, -dx, -dy)
        else:
            self.link.call("wheel", x, y, -dx, -dy)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt name
        self.link.trace.mark("key")
        self._send_keys(self.keys.press(event.key(), event.nativeVirtualKey(), event.text(),
                                        event.modifiers().value, event.isAutoRepeat(),
                                        scan_code=event.nativeScanCode()))  # fmt: skip

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt name
        self._send_keys(self.keys.release(event.key(), event.nativeVirtualKey(), event.text(),
                                          event.modifiers().value, event.isAutoRepeat(),
                                          scan_code=event.nativeScanCode()))  # fmt: skip

    def focusOutEvent(self, event: QFocusEvent) -> None:  # noqa: N802 - Qt name
        self._send_keys(self.keys.release_all())
        super().focusOutEvent(event)

    def focusNextPrevChild(self, next: bool) -> bool:  # noqa: N802, A002 - Qt names
        return False  # Tab belongs to the session's app, not to Qt's focus chain

    def _send_keys(self, events: list[tuple[int, bool]]) -> None:
        for keysym, down in events:
            self.link.key(self.id, keysym, down)

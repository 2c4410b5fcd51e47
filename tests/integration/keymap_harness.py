# A real Qt window whose key events go through the viewer's KeyTranslator.
#
# Why a separate process: Qt wants its QApplication on the main thread and
# one per process; the test drives this window from outside with xdotool on
# a client-side Xvfb, as a user's keyboard would, and reads one JSON line per
# key event on stdout: what Qt reported and what the translator sent.
"""Key harness: python keymap_harness.py (DISPLAY set); prints JSON lines."""

from __future__ import annotations

import json
import sys

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFocusEvent, QKeyEvent
from PySide6.QtWidgets import QApplication, QWidget

from client.viewer.keymap import KeyTranslator


class KeyWindow(QWidget):
    """Feeds its key events into a KeyTranslator and prints the results."""

    def __init__(self) -> None:
        super().__init__()
        self.translator = KeyTranslator()
        self.setWindowTitle("keymap-harness")
        self.resize(200, 100)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # else it never has focus, nor loses it

    def _report(self, kind: str, event: QKeyEvent | None, sent: list[tuple[int, bool]]) -> None:
        record: dict[str, object] = {"kind": kind, "sent": sent}
        if event is not None:
            record.update(key=event.key(), native=event.nativeVirtualKey(), text=event.text(),
                          modifiers=event.modifiers().value, repeat=event.isAutoRepeat(),
                          scan=event.nativeScanCode())  # fmt: skip
        print(json.dumps(record), flush=True)

    def _args(self, event: QKeyEvent) -> tuple[int, int, str, int, bool]:
        return (event.key(), event.nativeVirtualKey(), event.text(), event.modifiers().value,
                event.isAutoRepeat())  # fmt: skip

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt override)
        self._report("press", event, self.translator.press(*self._args(event)))

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt override)
        self._report("release", event, self.translator.release(*self._args(event)))

    def focusOutEvent(self, event: QFocusEvent) -> None:  # noqa: N802 (Qt override)
        self._report("focus-out", None, self.translator.release_all())
        super().focusOutEvent(event)


def main() -> None:
    """Show the windows; say "ready" with their X ids once the key window has the focus."""
    app = QApplication(sys.argv)
    other = QWidget()  # somewhere for the focus to go (focus-out test)
    other.setWindowTitle("keymap-harness-other")
    # Qt gives a shown window the focus itself when no window manager does;
    # this one must never take it from the key window on its own.
    other.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
    other.resize(100, 100)
    other.move(300, 0)
    other.show()
    window = KeyWindow()
    window.show()
    window.activateWindow()

    def ready() -> None:
        if not window.isActiveWindow():  # Qt's own activation still to come: wait for it
            QTimer.singleShot(50, ready)
            return
        print(json.dumps({"kind": "ready", "window": int(window.winId()), "other": int(other.winId())}), flush=True)

    QTimer.singleShot(0, ready)
    sys.exit(app.exec())


if __name__ == "__main__":
    main()

# The launcher: what `svclient view` shows when no --launch names an app. One
# row per published app (icon, name, comment); activating a row launches it
# in the session. Closing the launcher closes the viewer (the session and
# its apps keep running, as with Ctrl+C). The list follows the server's
# catalog while it is shown (client/viewer/apps.py polls it).
"""Launcher: the published apps, launched with a double click or Enter."""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QCloseEvent, QIcon, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QVBoxLayout, QWidget

ICON_SIDE = 48
LAUNCHER_SIZE = (320, 360)


class Launcher(QWidget):
    """The app list; `launch(app_id)` is called for an activated row."""

    def __init__(self, title: str, launch: Callable[[str], None], closed: Callable[[], None]) -> None:
        super().__init__(None, Qt.WindowType.Window)
        self.setWindowTitle(title)
        self.launch = launch
        self.closed = closed
        self.list = QListWidget(self)
        self.list.setIconSize(QSize(ICON_SIDE, ICON_SIDE))
        self.list.itemActivated.connect(self._activated)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list)
        self.resize(*LAUNCHER_SIZE)

    def set_apps(self, apps: list[tuple[str, str, str, bytes]]) -> None:
        """Show APPS: (id, name, comment, PNG icon or b""); the selected app stays selected."""
        current = self.list.currentItem()
        selected = current.data(Qt.ItemDataRole.UserRole) if current is not None else None
        self.list.clear()
        for app_id, name, comment, png in apps:
            item = QListWidgetItem(name or app_id)
            item.setData(Qt.ItemDataRole.UserRole, app_id)
            item.setToolTip(comment)
            pixmap = QPixmap()
            if png and pixmap.loadFromData(png, "PNG"):
                item.setIcon(QIcon(pixmap))
            self.list.addItem(item)
        ids = [app[0] for app in apps]
        if self.list.count():
            self.list.setCurrentRow(ids.index(selected) if selected in ids else 0)

    def _activated(self, item: QListWidgetItem) -> None:
        self.launch(str(item.data(Qt.ItemDataRole.UserRole)))

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt name
        event.accept()
        self.closed()

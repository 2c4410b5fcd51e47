# The web client's launcher follows the catalog, end to end: Debian's
# chromium (headless, driven by Playwright) logged in to the installed
# sessiond, whose catalog directory this module owns and edits while the page
# is open. The user observes a new app's button appear, launches it from
# there, and sees a withdrawn app's button go, all on one WebSocket (no
# reconnect, no reload). That the page did not poll is checked on the wire:
# APPS_CHANGED came from the server before each new APP_LIST_REQUEST.
"""Web client: the launcher shows apps published, and drops apps withdrawn, while logged in."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from svtest import Server, TestUser, copy_catalog, start_sessiond, stop_sessiond

pytestmark = [pytest.mark.integration, pytest.mark.root]

import test_web_client  # noqa: E402
from test_web_client import UI_TIMEOUT_MS, log_in  # noqa: E402

browser = test_web_client.browser  # the same module-scoped chromium fixture

FRAME_HEADER = struct.Struct(">IHBB")
APP_LIST_REQUEST, APPS_CHANGED = 0x04, 0x14  # control types (docs/protocol.md section 6)
NEWCLOCK = ("[Desktop Entry]\nType=Application\nName=Newclock\nComment=A clock published just now\n"
            "Exec=xclock -title Newclock\nTerminal=false\n")  # fmt: skip


class ControlFrames:
    """('sent'|'received', type) of every control-channel frame on the page's WebSockets, in order."""

    def __init__(self, page: Any) -> None:
        self.frames: list[tuple[str, int]] = []
        self.sockets = 0
        page.on("websocket", self._socket)

    def _socket(self, ws: Any) -> None:
        self.sockets += 1
        ws.on("framesent", lambda payload: self._frames("sent", payload))
        ws.on("framereceived", lambda payload: self._frames("received", payload))

    def _frames(self, way: str, payload: Any) -> None:
        data = payload if isinstance(payload, bytes) else b""
        offset = 0
        while offset + FRAME_HEADER.size <= len(data):
            length, channel, type_, _flags = FRAME_HEADER.unpack_from(data, offset)
            if channel == 0:
                self.frames.append((way, type_))
            offset += FRAME_HEADER.size + length

    def lists_asked(self) -> list[str]:
        """For each APP_LIST_REQUEST, what came just before it from the server: 'notice' or 'login'."""
        why, seen_notice = [], False
        for way, type_ in self.frames:
            if way == "received" and type_ == APPS_CHANGED:
                seen_notice = True
            elif way == "sent" and type_ == APP_LIST_REQUEST:
                why.append("notice" if seen_notice else "login")
                seen_notice = False
        return why


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: Any) -> str:
    """A catalog directory this module may edit (a copy of conf/apps)."""
    return copy_catalog(str(tmp_path_factory.mktemp("apps")))


@pytest.fixture(scope="module")
def server(tmp_path_factory: Any, catalog: str) -> Iterator[Server]:
    started = start_sessiond(str(tmp_path_factory.mktemp("weblaunch")), extra="reload_interval = 0.5\n", apps=catalog,
                             session="mode = seamless\n")  # fmt: skip
    yield started
    stop_sessiond(started)


def test_the_launcher_follows_the_catalog_without_reconnecting(server: Server, catalog: str, browser: Any,
                                                               user_factory: Any) -> None:  # fmt: skip
    user: TestUser = user_factory("svt-web-l")
    page = browser.new_page(viewport={"width": 1024, "height": 700})
    frames = ControlFrames(page)
    try:
        log_in(page, server, user)
        page.locator('#apps button[data-app="xterm"]').wait_for(timeout=UI_TIMEOUT_MS)
        assert page.locator('#apps button[data-app="newclock"]').count() == 0
        with open(os.path.join(catalog, "newclock.desktop"), "w", encoding="utf-8") as entry:
            entry.write(NEWCLOCK)
        newclock = page.locator('#apps button[data-app="newclock"]')
        newclock.wait_for(timeout=UI_TIMEOUT_MS)  # published while logged in: its button appears
        assert "Newclock" in newclock.inner_text()
        newclock.click()
        # Launched from the new button: its window comes on the page (seamless mode).
        page.locator(".sv-window .sv-title", has_text="Newclock").wait_for(timeout=UI_TIMEOUT_MS)
        os.remove(os.path.join(catalog, "newclock.desktop"))
        newclock.wait_for(state="detached", timeout=UI_TIMEOUT_MS)  # withdrawn: its button goes
        assert page.locator('#apps button[data-app="xterm"]').count() == 1
        assert frames.sockets == 1, "the page reconnected"
        assert frames.lists_asked() == ["login", "notice", "notice"], frames.frames
    finally:
        page.close()

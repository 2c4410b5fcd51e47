# Issue 17: the web client as the launcher of an xpra session. The user has
# `svclient xpra` attached (the real xpra client this build makes, on a
# client-side Xvfb) and logs in on the web page in Debian's chromium: the
# page shows the published apps with their icons and says that the windows
# are in the xpra client; xcalc launched from the page appears as a window on
# the xpra client's display and the client stays attached. With no client
# attached the page still launches, and says the app appears once one
# attaches; it does when one does. What is asserted is what the user sees:
# the page's text and buttons, windows on the client's display, the client
# process still running, sessionctl's listing and audit.
"""Web client in an xpra session: a launcher beside the attached xpra client."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from sessiond.agent.xserver import XServer
from svtest import Server, TestUser, sessionctl, start_sessiond, stop_sessiond, svclient
import test_xpra
from test_web_client import UI_TIMEOUT_MS, browser, log_in  # noqa: F401 - browser is a fixture
from test_web_windows import shot
from test_xpra import WAIT_S, XPRA, attach, detach, wait_for, windows_of_class

pytestmark = [pytest.mark.integration, pytest.mark.root]
client_display = test_xpra.client_display  # the client-side Xvfb fixture

# The page's notice and what it says (client/web/js/launches.js).
NOTICE = "#xpra-notice"
XPRA_UI_MS = int(WAIT_S * 1000)  # the xpra client attaching or leaving, on a loaded machine


@pytest.fixture
def xpra_web_server(tmp_path: Any) -> Iterator[Server]:
    if not os.access(XPRA, os.X_OK):
        pytest.fail(f"{XPRA} is missing: `make install` builds xpra (see its output)")
    server = start_sessiond(str(tmp_path), session=f"display = xpra\nxpra = {XPRA}\n")
    yield server
    stop_sessiond(server)


def row_of(server: Server, user: TestUser) -> dict[str, Any]:
    rows = json.loads(sessionctl(server, "list", "--json", "--user", user.name).stdout or "[]")
    return rows[0] if rows else {}


def audit_events(server: Server, user: TestUser) -> list[str]:
    return [e["event"] for e in json.loads(sessionctl(server, "audit", "--json").stdout) if e["user"] == user.name]


def notice_says(page: Any, attached: bool) -> str:
    """Wait until the notice says whether a client is attached; its text."""
    page.wait_for_selector(f'{NOTICE}[data-attached="{str(attached).lower()}"]', state="visible", timeout=XPRA_UI_MS)
    return str(page.locator(NOTICE).inner_text())


def status_line(page: Any, part: str) -> str:
    page.wait_for_function("(part) => document.getElementById('status').textContent.includes(part)", arg=part,
                           timeout=UI_TIMEOUT_MS)  # fmt: skip
    return str(page.locator("#status").inner_text())


def test_the_web_page_launches_xcalc_into_the_attached_xpra_client(
        xpra_web_server: Server, user_factory: Any, client_display: XServer, browser: Any) -> None:  # noqa: F811 # fmt: skip
    server = xpra_web_server
    user: TestUser = user_factory("svt-xw-w")
    display = client_display.display
    process = attach(server, user, display)  # `svclient xpra`, an empty session
    page = browser.new_page()
    try:
        wait_for(lambda: row_of(server, user).get("state") == "active", "the xpra client to attach")
        log_in(page, server, user)
        # The launcher with the published apps and their icons, and where the windows are.
        page.locator('#apps button[data-app="xcalc"] img').wait_for(timeout=UI_TIMEOUT_MS)
        assert page.locator('#apps button[data-app="xcalc"] img').get_attribute("src").startswith("data:image/png")
        text = notice_says(page, True)
        assert "shows its windows in your xpra client" in text and "attached now" in text, text
        assert page.evaluate("document.body.dataset.view") == "launcher"
        assert page.locator("#speaker").is_hidden() and page.locator("#clip-paste").is_hidden()
        shot(page, "xpra-launcher-attached")
        assert process.poll() is None, "logging in on the page detached the xpra client"
        # Launch xcalc from the page: it appears in the xpra client, which stays attached.
        page.click('#apps button[data-app="xcalc"]')
        assert "opens in your xpra client" in status_line(page, "XCalc is running")
        wait_for(lambda: windows_of_class(display, "xcalc"), "xcalc on the xpra client's display")
        assert process.poll() is None, "the xpra client was detached by the launch"
        assert page.evaluate("document.body.dataset.view") == "launcher"
        assert row_of(server, user)["state"] == "active"
        events = audit_events(server, user)
        assert events.count("connect") == 1 and "reconnect" not in events and "launch" in events, events
        # The xpra client leaves: the page says so and keeps launching; the app waits in the session.
        out = detach(process)
        assert "opened from another connection" not in out, out
        text = notice_says(page, False)
        assert "No xpra client is attached now" in text and f"--user {user.name} xpra" in text, text
        page.click('#apps button[data-app="xterm"]')
        assert "appears once you attach an xpra client" in status_line(page, "XTerm is running")
        shot(page, "xpra-launcher-detached")
        assert row_of(server, user)["state"] == "disconnected"
        # Attaching again shows both apps; the page is told, not taken over.
        process = attach(server, user, display)
        wait_for(lambda: windows_of_class(display, "xterm"), "xterm once an xpra client attaches")
        wait_for(lambda: windows_of_class(display, "xcalc"), "xcalc in the new xpra client")
        notice_says(page, True)
        assert process.poll() is None
    finally:
        page.close()
        if process.poll() is None:
            detach(process)
    assert svclient(server, user, "logoff").returncode == 0

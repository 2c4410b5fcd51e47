# The web client's clipboard and file transfer in a real browser: Debian's
# chromium driven by Playwright with the clipboard permissions granted, the
# installed sessiond, a real session with xclip and sessiond-send inside it.
# Asserted: what the session's apps read, what the browser's clipboard
# holds, the bytes that land in ~/Downloads and in the browser's download.
"""Web client: copy/paste both ways, drop a file into the session, download what the session sends."""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
from collections.abc import Iterator
from typing import Any

import pytest

from session_shell import app_copies, give, in_session
from svtest import VENV_BIN, Server, TestUser

pytestmark = [pytest.mark.integration, pytest.mark.root]

from playwright import sync_api as playwright_sync  # noqa: E402 - pinned in requirements-test.txt

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-gpu", "--no-first-run", "--ignore-certificate-errors"]  # fmt: skip
UI_TIMEOUT_MS = 30_000
# Drops a file of the given base64 bytes on the page, as a drag from the desktop would.
DROP_JS = """([name, b64]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name));
  document.body.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
}"""


@pytest.fixture(scope="module")
def wendy(user_factory: Any) -> TestUser:
    return user_factory("svt-cw-w")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def page(sessiond_server: Server, wendy: TestUser) -> Iterator[Any]:
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        origin = f"https://{sessiond_server.host}:{sessiond_server.port}"
        context = browser.new_context(accept_downloads=True, ignore_https_errors=True)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)
        page = context.new_page()
        page.goto(f"{origin}/web/")
        page.fill("#user", wendy.name)
        page.fill("#password", wendy.password)
        page.click("#login-button")
        page.locator("#clip-paste").wait_for(timeout=UI_TIMEOUT_MS)
        page.wait_for_timeout(1000)  # the clipboard and files channels open after login
        yield page
        browser.close()


def status(page: Any) -> str:
    return str(page.locator("#status").text_content())


def test_paste_from_the_browser_into_the_session(page: Any, wendy: TestUser) -> None:
    text = "from the browser: naïve café ✓ 日本"
    page.evaluate("(t) => navigator.clipboard.writeText(t)", text)
    page.click("#clip-paste")
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Pasted')",
                           timeout=UI_TIMEOUT_MS)  # fmt: skip
    read = in_session(wendy, "xclip", "-o", "-selection", "clipboard")
    assert read.stdout.decode() == text  # type: ignore[union-attr]


def test_copy_in_the_session_reaches_the_browser_clipboard(page: Any, wendy: TestUser) -> None:
    text = "from the session: grüße 🚀"
    page.evaluate("() => { delete document.body.dataset.clipboardFromSession; }")
    app_copies(wendy, give(wendy, "copied.txt", text.encode()), "UTF8_STRING")
    page.wait_for_function("() => document.body.dataset.clipboardFromSession !== undefined", timeout=UI_TIMEOUT_MS)
    assert page.evaluate("() => navigator.clipboard.readText()") == text


def test_a_dropped_file_lands_in_downloads(page: Any, wendy: TestUser) -> None:
    data = os.urandom(1024 * 1024 + 3)
    page.evaluate(DROP_JS, ["dropped file.bin", base64.b64encode(data).decode()])
    page.wait_for_function("() => document.body.dataset.lastUpload !== undefined", timeout=UI_TIMEOUT_MS)
    assert "is in the session" in status(page)
    name = page.evaluate("() => document.body.dataset.lastUpload")
    saved = os.path.join(pwd.getpwnam(wendy.name).pw_dir, "Downloads", name)
    with open(saved, "rb") as handle:
        assert hashlib.sha256(handle.read()).digest() == hashlib.sha256(data).digest()


def test_sessiond_send_becomes_a_browser_download(page: Any, wendy: TestUser) -> None:
    data = os.urandom(512 * 1024 + 9)
    path = give(wendy, "made in session.dat", data)
    with page.expect_download(timeout=UI_TIMEOUT_MS) as info:
        sent = in_session(wendy, os.path.join(VENV_BIN, "sessiond-send"), path)
        assert sent.returncode == 0, sent.stderr  # type: ignore[union-attr]
    download = info.value
    assert download.suggested_filename == "made in session.dat"
    with open(download.path(), "rb") as handle:
        assert hashlib.sha256(handle.read()).digest() == hashlib.sha256(data).digest()


def test_a_withheld_clipboard_is_said_and_the_paste_box_works(sessiond_server: Server, user_factory: Any,
                                                              page: Any) -> None:  # fmt: skip
    # A browser context without clipboard permissions, for a user of its own.
    wendy = user_factory("svt-cw-x")
    browser = page.context.browser
    origin = f"https://{sessiond_server.host}:{sessiond_server.port}"
    context = browser.new_context(ignore_https_errors=True)
    try:
        other = context.new_page()
        other.goto(f"{origin}/web/")
        other.fill("#user", wendy.name)
        other.fill("#password", wendy.password)
        other.click("#login-button")
        other.locator("#clip-paste").wait_for(timeout=UI_TIMEOUT_MS)
        other.wait_for_timeout(1000)
        other.click("#clip-paste")
        other.locator("#clip-paste-box").wait_for(timeout=UI_TIMEOUT_MS)
        assert "did not let the page read your clipboard" in status(other)
        text = "typed where the API was withheld ✓"
        other.evaluate("""(t) => {
          const data = new DataTransfer();
          data.setData('text/plain', t);
          const box = document.getElementById('clip-paste-box');
          box.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
        }""", text)  # fmt: skip
        other.wait_for_function("() => document.getElementById('status').textContent.startsWith('Pasted')",
                                timeout=UI_TIMEOUT_MS)  # fmt: skip
        read = in_session(wendy, "xclip", "-o", "-selection", "clipboard")
        assert read.stdout.decode() == text  # type: ignore[union-attr]
    finally:
        context.close()

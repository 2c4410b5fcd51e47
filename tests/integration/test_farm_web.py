# The web client in a farm: Debian's chromium (headless, Playwright) on the
# host side, three real sessiond hosts in their own network namespaces on a
# real etcd. A user opens host a's page and logs in; their session lives on
# host b. The page must land on host b's own page (the ticket taken out of
# the address bar), reach that same session and show its pixels.
# Certificates: each host's is self-signed here and chromium runs with
# --ignore-certificate-errors, which stands for the farm certificate a site
# issues from its CA for every host name (docs/farm.md, "Web client").
"""Integration: a web login through host a reaches the user's session on host b (redirect with ticket)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from etcdtest import start_cluster
from farmtest import HOSTS, Farm, login
from netns import make_farm_net
from svtest import sessionctl
from test_web_client import CHROMIUM, CHROMIUM_ARGS, MIN_RED_PIXELS, PAINT_COMMAND, UI_TIMEOUT_MS, wait_for_red

pytestmark = [pytest.mark.integration, pytest.mark.root]

from playwright import sync_api as playwright_sync  # noqa: E402 - pinned in requirements-test.txt


@pytest.fixture
def farm(tmp_path: object) -> Iterator[Farm]:
    """Three hosts in namespaces on one etcd, desktop mode (one canvas to read pixels from)."""
    net = make_farm_net(HOSTS)
    cluster = None
    f = None
    try:
        cluster = start_cluster(1, address=net.etcd_address)
        f = Farm(str(tmp_path), net, cluster, session="mode = desktop\n")
        f.start()
        yield f
    finally:
        if f is not None:
            f.stop()
        if cluster is not None:
            cluster.close()
        net.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def farm_rows(farm: Farm) -> list[tuple[str, str, str]]:
    rows = json.loads(sessionctl(farm["a"], "list", "--farm", "--json").stdout)
    return [(r["user"], r["session_id"], r["host_id"]) for r in rows]


def test_web_login_through_a_reaches_the_session_on_b(farm: Farm, user_factory: Any, browser: Any) -> None:
    for name in ("a", "c"):  # the user's session goes to b
        assert sessionctl(farm["a"], "drain", name, "--no-wait").returncode == 0
    user = user_factory("farmw")
    session = login(farm["a"], user)  # the session exists on b before the browser comes
    assert farm.holder(session) == ["b"]

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text))
    a, b = farm["a"], farm["b"]
    page.goto(f"https://{a.address}/web/")
    page.fill("#user", user.name)
    page.fill("#password", user.password)
    page.click("#login-button")

    # The page moves to b's own origin and logs in there with the ticket.
    page.wait_for_url(f"https://{b.address}/web/**", timeout=UI_TIMEOUT_MS)
    xterm = page.locator('#apps button[data-app="xterm"]')
    xterm.wait_for(timeout=UI_TIMEOUT_MS)
    assert "ticket" not in page.url and page.url == f"https://{b.address}/web/"  # taken out of the address bar
    assert page.evaluate("sessionStorage.getItem('sessiond.token')")  # b's resume token, for reconnects to b
    assert farm_rows(farm) == [(user.name, session, "b")]  # the same session: no second one anywhere
    assert farm.holder(session) == ["b"]

    # The user sees their session's pixels, drawn by host b.
    xterm.click()
    page.wait_for_selector("#screen[data-frames]", timeout=UI_TIMEOUT_MS)
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Connected as')",
                           timeout=UI_TIMEOUT_MS)  # fmt: skip
    # The page says what the redirecting host said: where the session is.
    assert "on host b" in page.evaluate("document.getElementById('status').textContent")
    page.wait_for_timeout(1500)  # xterm maps
    page.locator("#screen").click(position={"x": 100, "y": 100})
    page.keyboard.type(PAINT_COMMAND)
    page.keyboard.press("Enter")
    red = wait_for_red(page, MIN_RED_PIXELS)
    assert red >= MIN_RED_PIXELS, f"only {red} red pixels; console: {console}\n{b.log()[-3000:]}"
    assert "login ok for " + user.name in b.log() and "redirecting" in a.log()
    assert farm_rows(farm) == [(user.name, session, "b")]
    page.close()
    farm.logoff(user, session)

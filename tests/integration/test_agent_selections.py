# The agent's clipboard service against a real Xvfb and Debian's xclip.
#
# Each test runs its own asyncio loop: the service and xclip must talk while
# the loop runs (xclip -o waits for our answers, our fetch waits for
# xclip's), so xclip runs as an asyncio subprocess, never a blocking one.
# xclip -i runs with -quiet (in the foreground) so the test ends it by pid.
"""Integration tests for sessiond.agent.selections (real Xvfb, real xclip)."""

from __future__ import annotations

import asyncio
import io
import os
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from PIL import Image
from Xlib import X
from Xlib.display import Display

from sessiond.agent import x_selection_fetch
from sessiond.agent.clipboard_policy import PNG_MIME, TEXT_MIME, ClipboardPolicy
from sessiond.agent.selections import ClipboardChanged, ClipboardRefused, SelectionService
from sessiond.agent.x_selection_fetch import SelectionTimeout, SelectionTooLarge
from sessiond.agent.xserver import XServer

pytestmark = [pytest.mark.integration]  # xclip: installed by make (DEB_PACKAGES); missing, these tests fail

# Generous: xclip start-up plus a few round trips on a loaded 2-core machine.
XCLIP_TIMEOUT_SECONDS = 20.0
# Seconds the xterm test waits for PRIMARY to change before it triple-clicks again.
SELECT_RETRY_SECONDS = 2.0
TEXT = "Grüße, Ελληνικά, 日本語, عربى, emoji 🎉👩‍💻 and a tab\tend\n".encode()
ONE_MIB = 1024 * 1024


def big_text(size: int) -> bytes:
    """size bytes of varied UTF-8 text (multi-byte characters included)."""
    rng = random.Random(size)
    alphabet = "abcdefghijklmnopqrstuvwxyz ÄÖÜßéè€漢字😀\n"
    out = bytearray()
    while len(out) < size:
        out += "".join(rng.choice(alphabet) for _ in range(1000)).encode()
    cut = out[:size].decode("utf-8", errors="ignore").encode()
    return cut


def png_bytes() -> bytes:
    """A noisy 256x256 RGB PNG (~190 KiB), so it does not compress away."""
    rng = random.Random(7)
    image = Image.frombytes("RGB", (256, 256), bytes(rng.getrandbits(8) for _ in range(256 * 256 * 3)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


Body = Callable[[SelectionService, "asyncio.Queue[ClipboardChanged]"], Awaitable[None]]


def run_with_service(xvfb: XServer, body: Body, policy: ClipboardPolicy | None = None) -> None:
    """Run body(service, events) in a fresh loop with a SelectionService on xvfb."""

    async def main() -> None:
        events: asyncio.Queue[ClipboardChanged] = asyncio.Queue()
        service = SelectionService(asyncio.get_running_loop(), xvfb.display, policy or ClipboardPolicy(),
                                   events.put_nowait, print)  # fmt: skip
        try:
            await body(service, events)
        finally:
            service.close()

    asyncio.run(main())


async def xclip_out(display: str, *args: str) -> bytes:
    """What `xclip -o ARGS` prints (fails the test on a non-zero exit or a hang)."""
    proc = await asyncio.create_subprocess_exec(
        "xclip", "-o", *args, env={**os.environ, "DISPLAY": display},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), XCLIP_TIMEOUT_SECONDS)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")
    return out


async def xclip_in(display: str, data: bytes, *args: str) -> Any:
    """Start `xclip -i -quiet ARGS` owning a selection with data; the caller kills it."""
    proc = await asyncio.create_subprocess_exec("xclip", "-i", "-quiet", *args, env={**os.environ, "DISPLAY": display},
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)  # fmt: skip
    assert proc.stdin is not None
    proc.stdin.write(data)
    await proc.stdin.drain()
    proc.stdin.close()
    return proc


async def stop(proc: Any) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


async def next_change(events: asyncio.Queue[ClipboardChanged]) -> ClipboardChanged:
    return await asyncio.wait_for(events.get(), XCLIP_TIMEOUT_SECONDS)


def test_text_we_own_is_pasted_byte_exact(xvfb: XServer) -> None:
    async def body(service: SelectionService, events: asyncio.Queue[ClipboardChanged]) -> None:
        service.set_local("CLIPBOARD", {TEXT_MIME: TEXT})
        assert await xclip_out(xvfb.display, "-selection", "clipboard") == TEXT
        assert await xclip_out(xvfb.display, "-selection", "clipboard", "-t", TEXT_MIME) == TEXT
        # Latin-1 STRING: what Latin-1 has survives, the rest becomes "?".
        latin1 = await xclip_out(xvfb.display, "-selection", "clipboard", "-t", "STRING")
        assert latin1.startswith("Grüße, ".encode("latin-1")) and b"?" in latin1
        targets = (await xclip_out(xvfb.display, "-selection", "clipboard", "-t", "TARGETS")).split()
        assert b"UTF8_STRING" in targets and b"TARGETS" in targets and b"image/png" not in targets
        # Our own ownership is never reported as new content.
        await asyncio.sleep(0.2)
        assert events.empty()

    run_with_service(xvfb, body)


@pytest.mark.parametrize("selection", ["clipboard", "primary"])
def test_text_an_app_copies_is_noticed_and_fetched(xvfb: XServer, selection: str) -> None:
    async def body(service: SelectionService, events: asyncio.Queue[ClipboardChanged]) -> None:
        proc = await xclip_in(xvfb.display, TEXT, "-selection", selection)
        try:
            change = await next_change(events)
            assert change == ClipboardChanged(selection.upper(), (TEXT_MIME,))
            assert await service.fetch(selection.upper(), TEXT_MIME) == TEXT
        finally:
            await stop(proc)

    run_with_service(xvfb, body, ClipboardPolicy(primary_to_client=True))


def test_primary_stays_in_the_session_by_default(xvfb: XServer) -> None:
    async def body(service: SelectionService, events: asyncio.Queue[ClipboardChanged]) -> None:
        proc = await xclip_in(xvfb.display, TEXT, "-selection", "primary")
        clip = await xclip_in(xvfb.display, b"clip", "-selection", "clipboard")
        try:
            # CLIPBOARD is announced, PRIMARY (taken first) never is.
            assert (await next_change(events)).selection == "CLIPBOARD"
            with pytest.raises(ClipboardRefused):
                await service.fetch("PRIMARY", TEXT_MIME)
            assert events.empty()
        finally:
            await stop(proc)
            await stop(clip)

    run_with_service(xvfb, body)


def test_png_an_app_copies_comes_back_identical(xvfb: XServer) -> None:
    png = png_bytes()

    async def body(service: SelectionService, events: asyncio.Queue[ClipboardChanged]) -> None:
        proc = await xclip_in(xvfb.display, png, "-selection", "clipboard", "-t", PNG_MIME)
        try:
            change = await next_change(events)
            assert PNG_MIME in change.mimes
            assert await service.fetch("CLIPBOARD", PNG_MIME) == png
        finally:
            await stop(proc)
        # And the other way: a PNG the client sets is what an app reads.
        service.set_local("CLIPBOARD", {PNG_MIME: png})
        assert await xclip_out(xvfb.display, "-selection", "clipboard", "-t", PNG_MIME) == png

    run_with_service(xvfb, body)


def test_one_mib_of_text_round_trips_both_ways(xvfb: XServer) -> None:
    text = big_text(ONE_MIB)

    async def body(service: SelectionService, events: asyncio.Queue[ClipboardChanged]) -> None:
        service.set_local("CLIPBOARD", {TEXT_MIME: text})
        assert await xclip_out(xvfb.display, "-selection", "clipboard") == text
        assert service.server.incr_sent == 1  # larger than one X request: INCR
        proc = await xclip_in(xvfb.display, text, "-selection", "clipboard")
        try:
            await next_change(events)
            assert await service.fetch("CLIPBOARD", TEXT_MIME) == text
        finally:
            await stop(proc)

    run_with_service(xvfb, body)


def test_large_text_from_an_app_arrives_by_incr(xvfb: XServer) -> None:
    # xclip uses BIG-REQUESTS, so it sends by INCR only past ~4 MiB.
    text = big_text(6 * ONE_MIB)

    async def body(service: SelectionService, events: asyncio.Queue[ClipboardChanged]) -> None:
        proc = await xclip_in(xvfb.display, text, "-selection", "clipboard")
        try:
            await next_change(events)
            assert await service.fetch("CLIPBOARD", TEXT_MIME) == text
            assert service.fetcher.incr_received == 1
        finally:
            await stop(proc)

    run_with_service(xvfb, body, ClipboardPolicy(max_text_bytes=8 * ONE_MIB))


@pytest.mark.parametrize("size", [200 * 1024, 6 * ONE_MIB])  # one property; INCR
def test_text_over_the_cap_is_refused(xvfb: XServer, size: int) -> None:
    async def body(service: SelectionService, events: asyncio.Queue[ClipboardChanged]) -> None:
        proc = await xclip_in(xvfb.display, big_text(size), "-selection", "clipboard")
        try:
            await next_change(events)
            with pytest.raises(SelectionTooLarge):
                await service.fetch("CLIPBOARD", TEXT_MIME)
            # The service is still good for the next copy.
            small = await xclip_in(xvfb.display, b"small", "-selection", "clipboard")
            try:
                await next_change(events)
                assert await service.fetch("CLIPBOARD", TEXT_MIME) == b"small"
            finally:
                await stop(small)
        finally:
            await stop(proc)
        with pytest.raises(ClipboardRefused):
            service.set_local("CLIPBOARD", {TEXT_MIME: b"x" * (100 * 1024 + 1)})
        with pytest.raises(ClipboardRefused):
            service.set_local("CLIPBOARD", {TEXT_MIME: b"not utf-8 \xff"})

    run_with_service(xvfb, body, ClipboardPolicy(max_text_bytes=100 * 1024))


def test_an_owner_that_never_answers_costs_a_bounded_wait(xvfb: XServer) -> None:
    silent = Display(xvfb.display)  # owns CLIPBOARD and never reads its events
    window = silent.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent, X.InputOnly, X.CopyFromParent)
    window.set_selection_owner(silent.intern_atom("CLIPBOARD"), X.CurrentTime)
    silent.sync()

    async def body(service: SelectionService, events: asyncio.Queue[ClipboardChanged]) -> None:
        gaps: list[float] = []

        async def ticker() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.05)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        started = time.monotonic()
        with pytest.raises(SelectionTimeout):
            await service.fetch("CLIPBOARD", TEXT_MIME)
        waited = time.monotonic() - started
        tick.cancel()
        assert x_selection_fetch.SELECTION_TIMEOUT_SECONDS <= waited < x_selection_fetch.SELECTION_TIMEOUT_SECONDS + 2
        assert max(gaps) < 1.0  # the loop kept running meanwhile
        assert events.empty()  # no targets, no announcement
        # Our own paste works at once after that.
        service.set_local("CLIPBOARD", {TEXT_MIME: b"after"})
        assert await xclip_out(xvfb.display, "-selection", "clipboard") == b"after"

    try:
        run_with_service(xvfb, body)
    finally:
        silent.close()


# -- a hand-written requestor, for what xclip does not do --------------------------
class RawRequestor:
    """An X client that converts selections itself, polled without blocking the loop."""

    def __init__(self, display_name: str) -> None:
        self.display = Display(display_name)
        self.window = self.display.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent, X.InputOnly,
                                                               X.CopyFromParent,
                                                               event_mask=X.PropertyChangeMask)  # fmt: skip
        self.display.sync()

    def atom(self, name: str) -> int:
        return self.display.intern_atom(name)

    async def next_event(self, type_: int, timeout: float = XCLIP_TIMEOUT_SECONDS) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while self.display.pending_events():
                ev = self.display.next_event()
                if ev.type == type_:
                    return ev
            await asyncio.sleep(0.01)
        raise TimeoutError(f"no event {type_}")

    async def convert(self, target: str, prop: str) -> Any:
        self.window.convert_selection(self.atom("CLIPBOARD"), self.atom(target), self.atom(prop), X.CurrentTime)
        self.display.flush()
        return await self.next_event(X.SelectionNotify)

    def close(self) -> None:
        self.display.close()


def test_multiple_and_timestamp_are_answered(xvfb: XServer) -> None:
    async def body(service: SelectionService, events: asyncio.Queue[ClipboardChanged]) -> None:
        service.set_local("CLIPBOARD", {TEXT_MIME: TEXT})
        req = RawRequestor(xvfb.display)
        try:
            notify = await req.convert("TIMESTAMP", "STAMP")
            stamp = req.window.get_full_property(notify.property, X.AnyPropertyType)
            assert notify.property == req.atom("STAMP") and stamp.value[0] > 0
            pairs = [req.atom("UTF8_STRING"), req.atom("P1"), req.atom("image/png"), req.atom("P2"),
                     req.atom("STRING"), req.atom("P3")]  # fmt: skip
            req.window.change_property(req.atom("PAIRS"), req.atom("ATOM_PAIR"), 32, pairs)
            notify = await req.convert("MULTIPLE", "PAIRS")
            assert notify.property == req.atom("PAIRS")
            answered = list(req.window.get_full_property(req.atom("PAIRS"), X.AnyPropertyType).value)
            assert answered[1] == req.atom("P1") and answered[3] == X.NONE  # no image held
            assert req.window.get_full_property(req.atom("P1"), X.AnyPropertyType).value == TEXT
            assert req.window.get_full_property(req.atom("P3"), X.AnyPropertyType).value.startswith(b"Gr\xfc\xdfe")
            refused = await req.convert("image/png", "P4")
            assert refused.property == X.NONE
        finally:
            req.close()

    run_with_service(xvfb, body)


def test_a_requestor_that_stops_reading_an_incr_transfer_is_dropped(
        xvfb: XServer, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from sessiond.agent import x_selection

    monkeypatch.setattr(x_selection, "INCR_SEND_TIMEOUT_SECONDS", 0.5)
    text = big_text(ONE_MIB)

    async def body(service: SelectionService, events: asyncio.Queue[ClipboardChanged]) -> None:
        service.set_local("CLIPBOARD", {TEXT_MIME: text})
        req = RawRequestor(xvfb.display)
        try:
            notify = await req.convert("UTF8_STRING", "DATA")
            head = req.window.get_property(notify.property, X.AnyPropertyType, 0, 1)
            assert head.property_type == req.atom("INCR") and head.value[0] == len(text)
            # ... and never deletes the property: the agent gives up, and others are served.
            await asyncio.sleep(1.0)
            assert service.server.sends_in_progress() == 0
            assert await xclip_out(xvfb.display, "-selection", "clipboard") == text
        finally:
            req.close()

    run_with_service(xvfb, body)


# -- a real app: xterm ------------------------------------------------------------
def test_xterm_pastes_what_we_own_and_what_it_selects_comes_back(xvfb: XServer, tmp_path: Any) -> None:
    from sessiond.agent.windows import FocusManager
    from sessiond.agent.xinput import InputInjector

    shown = "shown in xterm: Grüße ÄÖÜ €"
    pasted = "pasted: Ελληνικά 日本語 🎉 ok"
    out = tmp_path / "pasted.txt"
    env = {**os.environ, "DISPLAY": xvfb.display, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    script = 'printf "%s\\n" "$1"; stty -echo -icanon; head -c "$3" > "$2"; sleep 30'

    async def body(service: SelectionService, events: asyncio.Queue[ClipboardChanged]) -> None:
        agent = Display(xvfb.display)
        focus = FocusManager(agent)
        injector = InputInjector(agent)
        proc = await asyncio.create_subprocess_exec(
            "xterm",
            "-u8",
            "-geometry",
            "80x10+0+0",
            "-e",
            "sh",
            "-c",
            script,
            "sh",
            shown,
            str(out),
            str(len(pasted.encode())),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + XCLIP_TIMEOUT_SECONDS
            while focus.focused is None and time.monotonic() < deadline:
                agent.sync()
                while agent.pending_events():
                    focus.handle_event(agent.next_event())
                await asyncio.sleep(0.05)
            assert focus.focused is not None, "xterm never mapped a window"
            # Triple-click selects the first line: xterm takes PRIMARY. Clicked again, as a user
            # would, while it has not: under CI load the clicks once came before xterm drew the line.
            deadline, selected = time.monotonic() + XCLIP_TIMEOUT_SECONDS, b""
            while selected != shown.encode():
                assert time.monotonic() < deadline, f"xterm's PRIMARY is {selected!r} after triple-clicks"
                for _ in range(3):
                    injector.button(20, 8, 1, True)
                    injector.button(20, 8, 1, False)
                injector.sync()
                try:
                    change = await asyncio.wait_for(events.get(), SELECT_RETRY_SECONDS)
                except TimeoutError:
                    continue
                assert change.selection == "PRIMARY"
                selected = (await service.fetch("PRIMARY", TEXT_MIME)).rstrip(b"\n")
            # Our PRIMARY, middle-clicked into xterm: the shell writes the bytes that arrived.
            service.set_local("PRIMARY", {TEXT_MIME: pasted.encode()})
            injector.button(20, 60, 2, True)
            injector.button(20, 60, 2, False)
            injector.sync()
            while time.monotonic() < deadline and not (out.exists() and len(out.read_bytes()) >= len(pasted.encode())):
                await asyncio.sleep(0.05)
            assert out.read_text(encoding="utf-8") == pasted
        finally:
            await stop(proc)
            agent.close()

    run_with_service(xvfb, body, ClipboardPolicy(primary_to_client=True))


def test_fetching_what_we_own_ourselves_works_through_incr_and_leaves_us_working(xvfb: XServer) -> None:
    text = big_text(ONE_MIB)

    async def body(service: SelectionService, events: asyncio.Queue[ClipboardChanged]) -> None:
        service.set_local("CLIPBOARD", {TEXT_MIME: text})
        assert await service.fetch("CLIPBOARD", TEXT_MIME) == text  # we are owner and requestor
        assert service.server.incr_sent == 1 and service.fetcher.incr_received == 1
        service.set_local("CLIPBOARD", {TEXT_MIME: b"again"})  # needs our PropertyNotify still
        assert await xclip_out(xvfb.display, "-selection", "clipboard") == b"again"

    run_with_service(xvfb, body)


def test_taking_a_selection_never_waits_long_for_the_server_time(xvfb: XServer) -> None:
    from sessiond.agent.selections import SERVER_TIME_TIMEOUT_SECONDS

    async def body(service: SelectionService, events: asyncio.Queue[ClipboardChanged]) -> None:
        service.window.change_attributes(event_mask=0)  # no PropertyNotify will ever come
        started = time.monotonic()
        service.set_local("CLIPBOARD", {TEXT_MIME: b"anyway"})
        assert time.monotonic() - started < SERVER_TIME_TIMEOUT_SECONDS + 1.0
        assert await xclip_out(xvfb.display, "-selection", "clipboard") == b"anyway"

    run_with_service(xvfb, body)

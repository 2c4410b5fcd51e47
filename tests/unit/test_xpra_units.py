# Issue 17, the parts of an xpra session that need no process: the display
# choice and its overrides, the xpra server's command line (what it must
# never listen on), the agent's bridge flow control with fake transports,
# and svclient's version check.
"""display_config, xpra_argv/xpra_env, the agent's XpraBridge, svclient's compatible()."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from client.xpra_cli import XpraUsageError, check_compatible, compatible, exit_note
from isolation.accounts import Account
from protocol.connection import ChannelOpened, Connection, MessageReceived, Role, WindowUpdated
from protocol.testing import handshaken_pair, open_pair_channel
from protocol.errors import ReasonCode
from protocol.limits import HEADER_SIZE
from protocol.messages import ChannelKind
from protocol.xpra import MAX_XPRA_CHUNK, XpraData
from sessiond.agent.settings import AgentSettings, SettingsError
from sessiond.agent.xpra_channel import XpraBridge, XpraChannels
from sessiond.agent.xpra_server import CONF_ENV, REFRESH_RATE_RANGE, clipboard_direction, xpra_argv, xpra_env
from sessiond.display_config import parse_display, parse_display_overrides, resolve_display

XPRA = int(ChannelKind.XPRA)
ALICE = Account("alice", 1001, 1001, (1001, 50), "/home/alice", "/bin/sh")


# -- [session] display -----------------------------------------------------------------

def test_display_values_and_overrides_parse() -> None:
    assert parse_display("xpra") == "xpra"
    with pytest.raises(ValueError, match="native, xpra"):
        parse_display("vnc")
    assert parse_display_overrides("alice: display=xpra; bob: display=native") == (("alice", "xpra"),
                                                                                    ("bob", "native"))  # fmt: skip
    with pytest.raises(ValueError, match="display=VALUE"):
        parse_display_overrides("alice: mode=xpra")
    with pytest.raises(ValueError, match="must be one of"):
        parse_display_overrides("alice: display=rdp")


def test_a_user_override_beats_a_group_override_which_beats_the_default() -> None:
    gids = {"staff": 50, "other": 77}.get
    assert resolve_display("native", (), (), ALICE, gids) == "native"
    assert resolve_display("native", (), (("staff", "xpra"),), ALICE, gids) == "xpra"
    assert resolve_display("native", (), (("other", "xpra"),), ALICE, gids) == "native"
    assert resolve_display("xpra", (("alice", "native"),), (("staff", "xpra"),), ALICE, gids) == "native"


def test_agent_settings_carry_the_display_and_refuse_others() -> None:
    settings = AgentSettings(socket="/run/s/agent.sock", display="xpra", xpra="/opt/x/bin/xpra")
    assert AgentSettings.from_json(settings.to_json()) == settings
    with pytest.raises(SettingsError, match="display"):
        AgentSettings.from_json(settings.to_json().replace('"display":"xpra"', '"display":"vnc"'))


# -- the xpra server's command line ------------------------------------------------------

def test_xpra_listens_only_on_its_unix_socket_in_the_runtime_dir() -> None:
    argv = xpra_argv("/opt/x/bin/xpra", ":5", "/run/s/abc", to_client=True, from_client=False)
    assert argv[:3] == ["/opt/x/bin/xpra", "seamless", ":5"]
    binds = [a for a in argv if a.startswith("--bind")]
    assert binds == ["--bind=/run/s/abc/xpra/xpra.sock"]  # no tcp, ws, ssl, vsock, quic, rfb listener
    for off in ("--mdns=no", "--dbus=no", "--html=off", "--audio=no", "--pulseaudio=no", "--daemon=no",
                "--use-display=yes", "--start-new-commands=no", "--file-transfer=no", "--printing=no"):  # fmt: skip
        assert off in argv
    assert "--clipboard-direction=to-client" in argv


def test_a_client_screen_reporting_no_refresh_rate_does_not_slow_typing() -> None:
    # xpra paces updates to the client's reported rate; Xvfb-like screens report 0 Hz (5 Hz after clamping).
    argv = xpra_argv("/opt/x/bin/xpra", ":5", "/run/s/abc", to_client=True, from_client=True)
    rates = [a.split("=", 1)[1] for a in argv if a.startswith("--refresh-rate=")]
    assert rates == [REFRESH_RATE_RANGE] and int(REFRESH_RATE_RANGE.split("-")[0]) >= 50  # noqa: PLR2004


@pytest.mark.parametrize(("to_client", "from_client", "direction"), [
    (True, True, "both"), (True, False, "to-client"), (False, True, "to-server"), (False, False, "disabled")])
def test_clipboard_policy_maps_to_xpra(to_client: bool, from_client: bool, direction: str) -> None:
    assert clipboard_direction(to_client, from_client) == direction


def test_xpra_reads_only_its_own_config_dir() -> None:
    env = xpra_env({"HOME": "/home/a", "SESSIOND_LINK_TOKEN": "t", "XPRA_USER_CONF_DIRS": "/home/a/x"},
                   ":5", "/run/s/abc", "/opt/x/etc/xpra")  # fmt: skip
    assert {name: env[name] for name in CONF_ENV} == dict.fromkeys(CONF_ENV, "/opt/x/etc/xpra")
    assert "SESSIOND_LINK_TOKEN" not in env and env["DISPLAY"] == ":5" and env["HOME"] == "/home/a"


# -- the agent's bridge --------------------------------------------------------------------

class FakeLink:
    def __init__(self) -> None:
        self.conn = Connection(Role.SERVER, channel_errors=True)
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.reading = True
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.closed = True


def open_pair(window: int) -> tuple[FakeLink, Connection]:
    """The agent's link and a client Connection (through sessiond in real life) with XPRA open."""
    client, server = handshaken_pair(window_for=lambda kind: window)
    link = FakeLink()
    link.conn = server
    open_pair_channel(client, server, XPRA, ChannelKind.XPRA)
    return link, client


def bridge_on(link: FakeLink) -> tuple[XpraBridge, Any, FakeTransport]:
    bridge = XpraBridge(link, XPRA, log=lambda _t: None)
    side = type("Side", (), {})()
    side.transport, side.write_paused = FakeTransport(), False
    bridge.side = side
    return bridge, side, side.transport


def test_reading_the_server_pauses_without_credit_and_resumes_with_it() -> None:
    link, client = open_pair(window=4 * (HEADER_SIZE + MAX_XPRA_CHUNK))
    bridge, _side, transport = bridge_on(link)
    bridge.from_server(b"a" * (3 * MAX_XPRA_CHUNK + 10))  # 4 frames: the window is spent
    assert not transport.reading
    received = [e for e in client.receive_data(link.conn.data_to_send()) if isinstance(e, MessageReceived)]
    assert b"".join(e.message.data for e in received) == b"a" * (3 * MAX_XPRA_CHUNK + 10)
    for e in received:
        client.consumed(XPRA, e.wire_size)
    events = link.conn.receive_data(client.data_to_send())
    assert any(isinstance(e, WindowUpdated) for e in events)
    bridge.pump()
    assert transport.reading


def test_credit_is_held_while_the_server_socket_is_over_its_high_water_mark() -> None:
    link, client = open_pair(window=2 * (HEADER_SIZE + MAX_XPRA_CHUNK))
    bridge, side, transport = bridge_on(link)
    side.write_paused = True
    chunk = XpraData(b"k" * MAX_XPRA_CHUNK)
    client.send(XPRA, chunk)
    client.send(XPRA, chunk)
    events = [e for e in link.conn.receive_data(client.data_to_send()) if isinstance(e, MessageReceived)]
    for e in events:
        bridge.from_client(e.message.data, e.wire_size)
    assert transport.written == [chunk.data, chunk.data]
    assert client.send_window(XPRA) == 0 and link.conn.data_to_send() == b""  # no credit back yet
    side.write_paused = False
    bridge.release_credit()
    client.receive_data(link.conn.data_to_send())
    assert client.send_window(XPRA) == 2 * (HEADER_SIZE + MAX_XPRA_CHUNK)


def test_an_xpra_channel_is_refused_when_the_display_is_not_xpra() -> None:
    link, client = open_pair(window=1 << 20)
    channels = XpraChannels(None, version=lambda: "", log=lambda _t: None)
    assert channels.handles(link, ChannelOpened(XPRA, ChannelKind.XPRA, by_peer=True))
    closed = [e for e in client.receive_data(link.conn.data_to_send()) if hasattr(e, "code")]
    assert [(e.channel, e.code) for e in closed] == [(XPRA, ReasonCode.CHANNEL_KIND_UNAVAILABLE)]


def test_a_missing_server_closes_the_channel_with_a_reason() -> None:
    link, client = open_pair(window=1 << 20)

    async def scenario() -> None:
        async def gave_up() -> bool:  # XpraServer.wait_ready() after the server failed to start
            return False

        channels = XpraChannels("/nonexistent/xpra.sock", version=lambda: "6.5.5", log=lambda _t: None,
                                ready=gave_up)  # fmt: skip
        channels.handles(link, ChannelOpened(XPRA, ChannelKind.XPRA, by_peer=True))
        for _ in range(20):
            await asyncio.sleep(0)
        assert channels.bridge is not None and channels.bridge.closed

    asyncio.run(scenario())
    closed = [e for e in client.receive_data(link.conn.data_to_send()) if hasattr(e, "code")]
    assert [(e.channel, e.code) for e in closed] == [(XPRA, ReasonCode.INTERNAL_ERROR)]
    assert "not running" in closed[0].message


# -- svclient's version check ----------------------------------------------------------------

def test_version_check_names_what_cannot_attach() -> None:
    assert compatible("6.5.5", "6.5.5-r0")
    assert compatible("4.4.6", "6.5.5")
    assert not compatible("3.1.3", "6.5.5")
    assert compatible("xpra v6.5.5-r0", "")  # unknown server version: xpra's handshake decides


def test_an_incompatible_client_is_refused_naming_both_versions() -> None:
    with pytest.raises(XpraUsageError) as refused:
        check_compatible("/usr/bin/xpra", "3.1.3", "7.0.1-r2")
    assert "3.1.3" in str(refused.value) and "7.0.1-r2" in str(refused.value) and "/usr/bin/xpra" in str(refused.value)
    check_compatible("/x/xpra", "4.0", "6.5.5")  # allowed: xpra's own handshake decides


def test_a_client_that_exits_with_an_error_is_named_with_the_server_version() -> None:
    note = exit_note(1, "5.0.9", "6.5.5-r0")
    assert "5.0.9" in note and "6.5.5-r0" in note and "status 1" in note
    assert exit_note(0, "5.0.9", "6.5.5-r0") == ""

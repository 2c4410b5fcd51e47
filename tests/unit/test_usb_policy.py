"""Server-side USB policy: rules, the per-session gate (recorder fakes), credit bookkeeping, re-check."""

from __future__ import annotations

from typing import Any

import pytest

from isolation.accounts import Account
from protocol.connection import frame_cost
from protocol.messages import ChannelKind
from protocol.usb import (
    ConnClose,
    DeviceAdd,
    DeviceRemove,
    DeviceState,
    DeviceStatus,
    ImportRequest,
    UrbCommand,
    CmdUnlink,
    UsbDevice,
    UsbInterface,
)
from sessiond.config import ConfigError, load_config
from sessiond.registry import Registry
from sessiond.sessions import Session, SessionState, SessionSupervisor
from sessiond.usb_policy import UsbPolicy, parse_principal_rules, parse_rules
from test_session_relay import RecorderClient, RecorderLink

USB = int(ChannelKind.USB)
LOOP = UsbDevice("vusb-1", 0x1209, 1, (UsbInterface(0xFF, 0, 0),))
STORAGE = UsbDevice("vusb-2", 0x1209, 2, (UsbInterface(8, 6, 0x50),))
COMBO = UsbDevice("vusb-3", 0x046D, 0xC52B, (UsbInterface(3, 1, 1), UsbInterface(8, 6, 0x50)))


def test_rule_syntax() -> None:
    assert parse_rules("* class:08 1209:0001 046D:*") == ("*", "class:08", "1209:0001", "046d:*")
    assert parse_principal_rules("alice: class:08; bob: *") == {"alice": ("class:08",), "bob": ("*",)}
    for bad in ("class:8", "12:34", "usb", "1209:00011"):
        with pytest.raises(ValueError):
            parse_rules(bad)
    with pytest.raises(ValueError):
        parse_principal_rules("no colon here")


def test_config_section_is_validated(tmp_path: Any) -> None:
    path = tmp_path / "c.conf"
    path.write_text("[usb]\nallow = class:zz\n")
    with pytest.raises(ConfigError, match=r"\[usb\] allow"):
        load_config(str(path))


def test_decisions() -> None:
    policy = UsbPolicy(allow=("class:03", "class:ff"), deny=("class:08",), users={"alice": ("1209:0002",)})
    assert policy.refusal(LOOP, "bob", ()) is None
    assert "denied" in (policy.refusal(STORAGE, "alice", ()) or "")  # deny beats a user's allow
    assert "not allowed" in (UsbPolicy(allow=("class:03",)).refusal(COMBO, "bob", ()) or "")  # every class counts
    assert UsbPolicy(allow=("class:03",), groups={"staff": ("class:08",)}).refusal(COMBO, "bob", ("staff",)) is None
    assert UsbPolicy(allow=("046d:*",)).refusal(COMBO, "bob", ()) is None
    assert "disabled" in (UsbPolicy(enabled=False).refusal(LOOP, "bob", ()) or "")


@pytest.fixture()
def gated(tmp_path: Any) -> tuple[Session, list[tuple[Any, ...]], dict[str, UsbPolicy]]:
    config = load_config(None, {"server": {"state_dir": str(tmp_path)}, "usb": {"deny": "class:08"}})
    supervisor = SessionSupervisor(config, reactor=None, registry=Registry(str(tmp_path)))
    current = {"policy": supervisor.usb_policy()}
    supervisor.usb_policy = lambda: current["policy"]  # type: ignore[method-assign]
    s = Session(supervisor, Account("alice", 1000, 1000, (1000,), "/home/alice", "/bin/sh"))
    supervisor.registry.add_session(id=s.id, user="alice", uid=1000, socket="x", session_dir="x", link_token="t",
                                    width=1, height=1)  # fmt: skip
    log: list[tuple[Any, ...]] = []
    s.link = RecorderLink(log)  # type: ignore[assignment]
    s.state = SessionState.DISCONNECTED
    s.attach(RecorderClient(log))  # type: ignore[arg-type]
    s.client_channel_opened(USB, ChannelKind.USB)
    s.link_channel_opened(USB)
    log.clear()
    return s, log, current


def test_forbidden_device_never_reaches_the_agent(gated: Any) -> None:
    s, log, _ = gated
    add = DeviceAdd(STORAGE)
    s.from_client(USB, add)
    assert [entry[0] for entry in log] == ["client.grant", "client.send"]
    assert log[0] == ("client.grant", USB, frame_cost(add))  # its credit comes straight back
    status = log[1][2]
    assert isinstance(status, DeviceStatus) and status.status == DeviceState.REFUSED
    assert "class:08" in status.text
    # The client's WINDOW_UPDATE for our injected status is not passed on to the agent...
    s.client_granted(USB, frame_cost(status))
    assert len(log) == 2
    # ...but anything beyond it is.
    s.client_granted(USB, 100)
    assert log[-1] == ("link.grant", USB, 100)
    assert "usb_refused" in [e["event"] for e in s.registry.audit_entries()]


def test_allowed_device_then_policy_change_detaches_it(gated: Any) -> None:
    s, log, current = gated
    s.from_client(USB, DeviceAdd(LOOP))
    s.from_agent(USB, ImportRequest(4, "vusb-1"))
    assert [entry[0] for entry in log] == ["link.send", "client.send"]
    log.clear()
    current["policy"] = UsbPolicy(allow=("class:03",))
    assert s.usb.recheck() == 1
    sent = [(who, type(m).__name__) for who, _ch, m in [(e[0], e[1], e[2]) for e in log]]
    assert sent == [("link.send", "ConnClose"), ("client.send", "ConnClose"), ("link.send", "DeviceRemove"),
                    ("client.send", "DeviceStatus")]  # fmt: skip
    assert log[-1][2].status == DeviceState.REVOKED
    log.clear()
    # Traffic for the detached device is dropped in both directions, credit returned.
    command = UrbCommand(4, CmdUnlink(1, LOOP.devid, 1))
    s.from_agent(USB, command)
    assert log == [("link.grant", USB, frame_cost(command))]
    assert s.usb.recheck() == 0


def test_closing_the_channel_forgets_everything(gated: Any) -> None:
    s, log, _ = gated
    s.from_client(USB, DeviceAdd(LOOP))
    s.from_agent(USB, ImportRequest(4, "vusb-1"))
    s.from_client(USB, DeviceRemove("vusb-1"))
    s.from_agent(USB, ConnClose(4))
    s.client_channel_closed(USB)
    assert s.usb.offered == {} and s.usb.conns == {}

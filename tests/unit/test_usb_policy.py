"""Server-side USB policy: rules, the per-session filter in the relay (recorder fakes), credit, re-check."""

from __future__ import annotations

from typing import Any

import pytest

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
    ImportReply,
    UsbDevice,
    UsbInterface,
    CmdSubmit,
    RetSubmit,
    UrbReturn,
    DIR_IN,
)
from sessiond.config import ConfigError, load_config
from sessiond.registry import Registry
from sessiond.relay import ChannelRelay
from sessiond.usb_policy import UsbFilter
from sessiond.usb_rules import UsbPolicy, parse_principal_rules, parse_rules
from test_session_relay import RecorderEnd

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


class Gated:
    """A relay with a UsbFilter on its usb channel, between recorder ends."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.audits: list[str] = []
        self.shared = 0
        self.policy = UsbPolicy(deny=("class:08",))
        self.relay = ChannelRelay("s1", "alice")
        self.usb = UsbFilter(self.relay, lambda: self.policy, "alice", lambda: (), self._audit, self._shared)
        self.relay.filters[ChannelKind.USB] = self.usb
        self.client, self.link = RecorderEnd("client", self.log), RecorderEnd("link", self.log)
        self.relay.link_up(self.link)  # type: ignore[arg-type]
        self.relay.attach(self.client)  # type: ignore[arg-type]
        self.client.conn.channels[USB] = ChannelKind.USB
        self.relay.client_channel_opened(USB, ChannelKind.USB)
        self.relay.link_channel_opened(USB)
        self.log.clear()

    def _audit(self, event: str, detail: str) -> None:
        self.audits.append(event)

    def _shared(self) -> None:
        self.shared += 1

    def from_client(self, message: Any) -> None:
        self.relay.from_client(USB, message.TYPE, b"", message, 8 + len(message.encode()))

    def from_agent(self, message: Any) -> None:
        self.relay.from_agent(USB, message.TYPE, b"", message, 8 + len(message.encode()))


def cost(message: Any) -> int:
    return 8 + len(message.encode())


def test_forbidden_device_never_reaches_the_agent() -> None:
    g = Gated()
    log = g.log
    add = DeviceAdd(STORAGE)
    g.from_client(add)
    assert [entry[0] for entry in log] == ["client.send", "client.grant"]
    assert log[1] == ("client.grant", USB, cost(add))  # its credit comes straight back
    status = log[0][2]
    assert isinstance(status, DeviceStatus) and status.status == DeviceState.REFUSED
    assert "class:08" in status.text
    # The client's WINDOW_UPDATE for our injected status is not passed on to the agent...
    g.relay.client_granted(USB, cost(status))
    assert len(log) == 2
    # ...but anything beyond it is.
    g.relay.client_granted(USB, 100)
    assert log[-1] == ("link.grant", USB, 100)
    assert g.audits == ["usb_refused"]


def test_allowed_device_then_policy_change_detaches_it() -> None:
    g = Gated()
    log = g.log
    g.from_client(DeviceAdd(LOOP))
    g.from_agent(ImportRequest(4, "vusb-1"))
    assert [entry[0] for entry in log] == ["link.send", "client.send"] and g.shared == 1
    log.clear()
    g.policy = UsbPolicy(allow=("class:03",))
    assert g.usb.recheck() == 1
    sent = [(e[0], type(e[2]).__name__) for e in log]
    assert sent == [("link.send", "ConnClose"), ("client.send", "ConnClose"), ("link.send", "DeviceRemove"),
                    ("client.send", "DeviceStatus")]  # fmt: skip
    assert log[-1][2].status == DeviceState.REVOKED
    log.clear()
    # Traffic for the detached device is dropped in both directions, credit returned; the URB is never decoded.
    command = UrbCommand(4, CmdUnlink(1, LOOP.devid, 1)).encode()
    g.relay.from_agent(USB, UrbCommand.TYPE, command, None, 8 + len(command))
    assert log == [("link.grant", USB, 8 + len(command))]
    assert g.usb.recheck() == 0


def test_urbs_of_a_granted_connection_pass_raw() -> None:
    g = Gated()
    g.from_client(DeviceAdd(LOOP))
    g.from_agent(ImportRequest(4, "vusb-1"))
    g.log.clear()
    command = UrbCommand(4, CmdUnlink(1, LOOP.devid, 1)).encode()
    g.relay.from_agent(USB, UrbCommand.TYPE, command, None, 8 + len(command))
    assert g.log == [("client.raw", USB, UrbCommand.TYPE, command)]
    g.log.clear()
    g.relay.from_agent(USB, UrbCommand.TYPE, b"\0\0", None, 10)  # too short to name a connection: dropped
    assert g.log == [("link.grant", USB, 10)]


def test_a_reply_for_an_unknown_connection_is_dropped() -> None:
    g = Gated()
    reply = ImportReply(9, 0, LOOP)
    g.from_client(reply)
    assert g.log == [("client.grant", USB, cost(reply))]


def test_closing_the_channel_forgets_everything() -> None:
    g = Gated()
    g.from_client(DeviceAdd(LOOP))
    g.from_agent(ImportRequest(4, "vusb-1"))
    g.from_client(DeviceRemove("vusb-1"))
    g.from_agent(ConnClose(4))
    g.relay.client_channel_closed(USB)
    assert g.usb.offered == {} and g.usb.conns == {}


def test_an_injection_that_cannot_be_queued_closes_the_channel_not_the_caller() -> None:
    from protocol.errors import ReasonCode, SendBufferFull

    g = Gated()
    g.from_client(DeviceAdd(LOOP))
    g.client.conn.fail_send = SendBufferFull("client is not reading")
    g.policy = UsbPolicy(allow=("class:03",))
    assert g.usb.recheck() == 1  # the revocation still happens on the agent side; nothing raises
    assert ("client.close", USB, ReasonCode.LIMIT_EXCEEDED) in g.log
    assert ("link.send", USB, DeviceRemove("vusb-1")) in g.log


def test_one_sessions_failing_recheck_does_not_stop_the_others(tmp_path: Any) -> None:
    from sessiond.supervisor import SessionSupervisor

    supervisor = SessionSupervisor(load_config(None, {"server": {"state_dir": str(tmp_path)}}), None,
                                   Registry(str(tmp_path)))  # fmt: skip

    class Broken:
        id, account = "s0", type("A", (), {"name": "mallory"})()

        class usb:  # noqa: N801 - stands in for the attribute
            @staticmethod
            def recheck() -> int:
                raise RuntimeError("bug")

    class Fine:
        id, account = "s1", type("A", (), {"name": "alice"})()

        class usb:  # noqa: N801
            @staticmethod
            def recheck() -> int:
                return 2

    supervisor.sessions = {"mallory": Broken(), "alice": Fine()}  # type: ignore[dict-item]
    assert supervisor.usb_recheck() == 2


def test_revoking_two_devices_when_the_channel_fails_on_the_first() -> None:
    from protocol.errors import SendBufferFull

    g = Gated()
    g.from_client(DeviceAdd(LOOP))
    g.from_client(DeviceAdd(UsbDevice("vusb-4", 0x1209, 4, (UsbInterface(0xFF, 0, 0),))))
    g.client.conn.fail_send = SendBufferFull("client is not reading")
    g.policy = UsbPolicy(allow=("class:03",))
    assert g.usb.recheck() == 1  # the channel closed while revoking the first: the second went with it
    assert g.usb.offered == {}


# -- the device's own descriptors, not the client's word (issue 12 item 9) ----------------

LIAR = UsbDevice("vusb-3", 0x1209, 3, (UsbInterface(0xFF, 0, 0),))  # declared vendor-specific...


def config_descriptor(interface_class: int) -> bytes:
    """A configuration descriptor with one interface of INTERFACE_CLASS and one endpoint."""
    interface = bytes([9, 4, 0, 0, 1, interface_class, 6, 0x50, 0])
    endpoint = bytes([7, 5, 0x81, 2, 0, 2, 0])
    total = 9 + len(interface) + len(endpoint)
    return bytes([9, 2, total & 0xFF, total >> 8, 1, 1, 0, 0x80, 50]) + interface + endpoint


def get_config(seqnum: int) -> bytes:
    setup = bytes([0x80, 6, 0, 2, 0, 0, 255, 0])  # GET_DESCRIPTOR(CONFIGURATION), 255 bytes
    return UrbCommand(4, CmdSubmit(seqnum, LIAR.devid, DIR_IN, 0, 255, setup=setup)).encode()


def answer(seqnum: int, data: bytes) -> bytes:
    return UrbReturn(4, RetSubmit(seqnum, 0, len(data), data)).encode()


def shared_liar(g: Gated) -> None:
    g.from_client(DeviceAdd(LIAR))
    g.from_agent(ImportRequest(4, "vusb-3"))
    g.log.clear()


def test_a_device_whose_descriptors_contradict_its_declaration_is_revoked() -> None:
    g = Gated()  # deny = class:08
    shared_liar(g)
    command = get_config(7)
    g.relay.from_agent(USB, UrbCommand.TYPE, command, None, 8 + len(command))
    assert g.log == [("client.raw", USB, UrbCommand.TYPE, command)]  # the request itself passes, unread
    g.log.clear()
    reply = answer(7, config_descriptor(8))  # ...but it is mass storage
    g.relay.from_client(USB, UrbReturn.TYPE, reply, None, 8 + len(reply))
    sent = [(e[0], type(e[2]).__name__) for e in g.log if e[0].endswith(".send")]
    assert sent == [("link.send", "ConnClose"), ("client.send", "ConnClose"), ("link.send", "DeviceRemove"),
                    ("client.send", "DeviceStatus")]  # fmt: skip
    assert not any(e[0] == "link.raw" for e in g.log)  # the session never saw the descriptor
    status = [e[2] for e in g.log if e[0] == "client.send"][-1]
    assert status.status == DeviceState.REVOKED and "descriptors say 08" in status.text
    assert g.audits[-1] == "usb_revoked"


def test_descriptors_that_match_the_declaration_pass_untouched() -> None:
    g = Gated()
    shared_liar(g)
    command = get_config(8)
    g.relay.from_agent(USB, UrbCommand.TYPE, command, None, 8 + len(command))
    reply = answer(8, config_descriptor(0xFF))
    g.log.clear()
    g.relay.from_client(USB, UrbReturn.TYPE, reply, None, 8 + len(reply))
    assert g.log == [("link.raw", USB, UrbReturn.TYPE, reply)]


def test_a_declared_class_the_policy_denies_is_refused_on_its_descriptors_too() -> None:
    g = Gated()
    g.policy = UsbPolicy(deny=("class:03",))
    shared_liar(g)
    command = get_config(9)
    g.relay.from_agent(USB, UrbCommand.TYPE, command, None, 8 + len(command))
    g.log.clear()
    reply = answer(9, config_descriptor(3))  # HID, hidden behind 0xff
    g.relay.from_client(USB, UrbReturn.TYPE, reply, None, 8 + len(reply))
    assert any(e[0] == "client.send" and type(e[2]).__name__ == "DeviceStatus" for e in g.log)


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x09\x02", b"\x00\x04" * 50, b"\x09\x04\x00\x00\x01",
                                  bytes([2, 4]) * 200])
def test_truncated_or_malformed_descriptors_never_raise(data: bytes) -> None:
    from sessiond.usb_descriptors import DT_CONFIGURATION, declared_classes

    assert isinstance(declared_classes(DT_CONFIGURATION, data), tuple)

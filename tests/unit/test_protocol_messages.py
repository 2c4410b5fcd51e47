"""Message codecs: round trips, strict JSON decoding, range checks, region bounds."""

from __future__ import annotations

import struct

import lz4.block
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import ProtocolError, ReasonCode
from protocol.limits import MAX_JSON_INT, MAX_REGION_RAW_BYTES
from protocol.messages import (
    MESSAGE_NAMES,
    MESSAGE_TYPES,
    AppExited,
    AppInfo,
    AppList,
    Auth,
    AuthResult,
    Button,
    ChannelKind,
    ChannelOpen,
    DesktopSize,
    Encoding,
    Error,
    FrameAck,
    Hello,
    Key,
    Launch,
    Message,
    Ping,
    Pointer,
    Region,
    SessionInfo,
    SpawnApp,
    Wheel,
    WindowUpdate,
    decode_message,
    encode_message,
)

SAMPLES: list[tuple[ChannelKind, Message]] = [
    (ChannelKind.CONTROL, Hello(1, ("a", "b"), "x")),
    (ChannelKind.CONTROL, Auth("password", user="u", password="p")),
    (ChannelKind.CONTROL, Auth("link", token="t")),
    (ChannelKind.CONTROL, Auth("resume", token="t")),
    (ChannelKind.CONTROL, AuthResult(False, code=13, message="no")),
    (
        ChannelKind.CONTROL,
        AppList((AppInfo("a", "A", "", ("X",), "i"), AppInfo("b", "B", "c", (), ""))),
    ),
    (ChannelKind.CONTROL, Launch(1, "a", ("--x",))),
    (ChannelKind.CONTROL, SpawnApp(2, "a", ("/bin/a",), "/")),
    (ChannelKind.CONTROL, AppExited("a", 1, -15)),
    (ChannelKind.CONTROL, SessionInfo("s", "u", 800, 600)),
    (ChannelKind.DISPLAY, DesktopSize(65535, 1)),
    (ChannelKind.DISPLAY, Region(1, 2, 3, 4, Encoding.PNG, b"png")),
    (ChannelKind.DISPLAY, FrameAck(2**32 - 1)),
    (ChannelKind.INPUT, Key(0x1008FF13, True)),
    (ChannelKind.INPUT, Button(0, 0, 255, False)),
    (ChannelKind.INPUT, Wheel(1, 1, -32768, 32767)),
    (ChannelKind.INPUT, WindowUpdate(2**32 - 1)),
]


@pytest.mark.parametrize(("kind", "message"), SAMPLES)
def test_round_trip(kind: ChannelKind, message: Message) -> None:
    type_, payload = encode_message(message)
    assert type_ == message.TYPE
    assert decode_message(kind, type_, payload) == message


def test_every_message_class_is_named_and_dispatchable() -> None:
    classes = {cls for table in MESSAGE_TYPES.values() for cls in table.values()}
    assert classes == set(MESSAGE_NAMES)


def test_two_messages_with_one_type_code_on_one_kind_are_refused() -> None:
    from protocol import messages  # noqa: PLC0415 - the table builder itself

    with pytest.raises(TypeError, match="share type code 0x01"):
        messages._table((Hello, Hello), generic=False)  # noqa: SLF001 - the declaration check
    control = messages._table(messages.CONTROL_MESSAGES, generic=False)  # noqa: SLF001
    assert len(control) == len(messages.CONTROL_MESSAGES)


def test_control_json_is_canonical() -> None:
    assert Hello(1, ("é",), "s").encode() == '{"capabilities":["é"],"software":"s","version":1}'.encode()
    assert Auth("password", user="u", password="p").encode() == b'{"method":"password","password":"p","user":"u"}'


def test_auth_carries_an_optional_launch_as_a_launchs_fields() -> None:
    launch = Launch(request=7, app="xterm", args=("-e", "top"))
    auth = Auth("password", user="u", password="p", launch=launch)
    assert auth.encode() == (b'{"launch":{"app":"xterm","args":["-e","top"],"request":7},"method":"password",'
                             b'"password":"p","user":"u"}')  # fmt: skip
    assert decode_message(ChannelKind.CONTROL, Auth.TYPE, auth.encode()) == auth
    plain = decode_message(ChannelKind.CONTROL, Auth.TYPE, b'{"method":"password","password":"p","user":"u"}')
    assert plain == Auth("password", user="u", password="p") and plain.launch is None
    with pytest.raises(ValueError, match="launch"):
        Auth("password", user="u", password="p", launch="xterm")  # type: ignore[arg-type]


def test_auth_carries_an_optional_screen() -> None:
    auth = Auth("password", user="u", password="p", screen=(1920, 1050))
    assert auth.encode() == b'{"method":"password","password":"p","screen":{"height":1050,"width":1920},"user":"u"}'
    assert decode_message(ChannelKind.CONTROL, Auth.TYPE, auth.encode()) == auth
    both = Auth("resume", user="u", token="t", launch=Launch(request=1, app="xterm"), screen=(1, 65535))
    assert decode_message(ChannelKind.CONTROL, Auth.TYPE, both.encode()) == both
    assert decode_message(ChannelKind.CONTROL, Auth.TYPE, b'{"method":"link","token":"t"}').screen is None
    for bad in ((0, 800), (800, 65536), (True, 800), ("800", 600), (800,), [800, 600]):
        with pytest.raises(ValueError, match="screen"):
            Auth("password", user="u", password="p", screen=bad)  # type: ignore[arg-type]


def test_auth_repr_hides_secrets() -> None:
    text = repr(Auth("password", user="u", password="hunter2")) + repr(Auth("link", token="tok123"))
    assert "hunter2" not in text and "tok123" not in text


def test_lists_are_stored_as_tuples() -> None:
    msg = Hello(1, ["a"], "x")  # type: ignore[arg-type]
    assert msg.capabilities == ("a",)
    assert hash(msg) == hash(Hello(1, ("a",), "x"))


def test_unknown_fields_are_ignored() -> None:
    payload = b'{"token":5,"future":{"x":[1,2]}}'
    assert decode_message(ChannelKind.CONTROL, Ping.TYPE, payload) == Ping(5)


def test_unknown_auth_method_decodes_for_the_application_to_refuse() -> None:
    assert decode_message(ChannelKind.CONTROL, Auth.TYPE, b'{"method":"kerberos"}') == Auth("kerberos")


@pytest.mark.parametrize(
    ("type_", "payload"),
    [
        (Ping.TYPE, b'{"token":true}'),  # bool is not an int
        (Ping.TYPE, b'{"token":1.0}'),
        (Ping.TYPE, b'{"token":-1}'),
        (Ping.TYPE, b'{"token":%d}' % (MAX_JSON_INT + 1)),
        (Ping.TYPE, b'{"token":NaN}'),
        (Ping.TYPE, b'{"token":"1"}'),
        (Ping.TYPE, b'{"token":1,"token":1}'),
        (Ping.TYPE, b"[]"),
        (Ping.TYPE, b""),
        (Ping.TYPE, b"\xef\xbb\xbf{}"),
        (Ping.TYPE, '{"token":1}'.encode("utf-16")),
        (Ping.TYPE, b"[" * 50000 + b"]" * 50000),
        (Hello.TYPE, b'{"version":1,"capabilities":"ab","software":"x"}'),
        (Hello.TYPE, b'{"version":1,"capabilities":[1],"software":"x"}'),
        (Hello.TYPE, b'{"version":1,"capabilities":[],"software":"\\ud800"}'),
        (Auth.TYPE, b'{"method":"password","user":"u"}'),
        (Auth.TYPE, b'{"method":"link"}'),
        (Auth.TYPE, b'{"method":"link","token":"t","launch":"xterm"}'),  # a launch is an object
        (Auth.TYPE, b'{"method":"link","token":"t","launch":{"app":"xterm"}}'),  # its request is required
        (Auth.TYPE, b'{"method":"link","token":"t","launch":{"request":-1,"app":"xterm"}}'),
        (Auth.TYPE, b'{"method":"link","token":"t","launch":{"request":1,"app":"x","args":[1]}}'),
        (Auth.TYPE, b'{"method":"link","token":"t","screen":[800,600]}'),  # a screen is an object
        (Auth.TYPE, b'{"method":"link","token":"t","screen":{"width":800}}'),  # both sides are required
        (Auth.TYPE, b'{"method":"link","token":"t","screen":{"width":0,"height":600}}'),  # at least one pixel
        (Auth.TYPE, b'{"method":"link","token":"t","screen":{"width":800,"height":65536}}'),  # u16
        (Auth.TYPE, b'{"method":"link","token":"t","screen":{"width":800.0,"height":600}}'),
        (AuthResult.TYPE, b'{"ok":1,"user":"","session":"","code":0,"message":""}'),
        (AppList.TYPE, b'{"apps":[{"id":"a"}]}'),
        (AppList.TYPE, b'{"apps":[1]}'),
        (ChannelOpen.TYPE, b'{"channel":65536,"kind":1,"window":1}'),
        (Error.TYPE, b'{"code":1,"message":"m"}'),
    ],
)
def test_malformed_control_payloads(type_: int, payload: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_message(ChannelKind.CONTROL, type_, payload)
    assert info.value.code is ReasonCode.MALFORMED_MESSAGE


@pytest.mark.parametrize(
    ("kind", "type_", "payload"),
    [
        (ChannelKind.DISPLAY, DesktopSize.TYPE, b"\0\1\0"),
        (ChannelKind.DISPLAY, DesktopSize.TYPE, b"\0\0\0\1"),  # width 0
        (ChannelKind.DISPLAY, Region.TYPE, b"\0" * 8),
        (
            ChannelKind.DISPLAY,
            Region.TYPE,
            struct.pack(">HHHHB", 0, 0, 1, 0, 4) + b"abc",
        ),
        (
            ChannelKind.DISPLAY,
            Region.TYPE,
            struct.pack(">HHHHB", 0, 0, 1, 1, 0) + b"abc",
        ),
        (
            ChannelKind.DISPLAY,
            Region.TYPE,
            struct.pack(">HHHHB", 0, 0, 1, 1, 1) + b"\3\0",
        ),
        (ChannelKind.DISPLAY, FrameAck.TYPE, b"\0\0\0\0\0"),
        (ChannelKind.DISPLAY, 0x05, b"x"),  # REFRESH_REQUEST must be empty
        (ChannelKind.INPUT, Key.TYPE, b"\0\0\0\x61\x02"),  # down must be 0/1
        (ChannelKind.INPUT, Button.TYPE, struct.pack(">HHBB", 0, 0, 0, 1)),  # button 0
        (ChannelKind.INPUT, Pointer.TYPE, b"\0\0\0\0\0"),
        (ChannelKind.INPUT, Wheel.TYPE, b"\0" * 7),
        (ChannelKind.INPUT, WindowUpdate.TYPE, b"\0\0\0\0"),
    ],
)
def test_malformed_binary_payloads(kind: ChannelKind, type_: int, payload: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_message(kind, type_, payload)
    assert info.value.code is ReasonCode.MALFORMED_MESSAGE


@pytest.mark.parametrize(
    ("kind", "type_"),
    [
        (ChannelKind.CONTROL, 0x00),
        (ChannelKind.CONTROL, 0xFF),
        (ChannelKind.DISPLAY, 0x10),
        (ChannelKind.USB, 0x09),
    ],
)
def test_unknown_types(kind: ChannelKind, type_: int) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_message(kind, type_, b"")
    assert info.value.code is ReasonCode.UNKNOWN_MESSAGE_TYPE


@pytest.mark.parametrize(
    "build",
    [
        lambda: Pointer(65536, 0),
        lambda: Pointer(-1, 0),
        lambda: Key(2**32, True),
        lambda: Key(1, 1),  # type: ignore[arg-type]
        lambda: Button(0, 0, 256, True),
        lambda: Wheel(0, 0, 0, 32768),
        lambda: DesktopSize(0, 10),
        lambda: WindowUpdate(0),
        lambda: Ping(True),
        lambda: Hello(1, ("a",), 3),  # type: ignore[arg-type]
        lambda: Region(0, 0, 1, 1, Encoding.FILL, b"ab"),
        lambda: Region(0, 0, 1, 1, 9, b"abc"),  # type: ignore[arg-type]
        lambda: AppExited("a", 1, MAX_JSON_INT + 1),
    ],
)
def test_encode_side_validation_raises_value_error(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_region_raw_bound() -> None:
    side = 591  # 591*591*3 = 1047843 <= 1 MiB; 592*592*3 > 1 MiB
    assert side * side * 3 <= MAX_REGION_RAW_BYTES < (side + 1) * (side + 1) * 3
    pixels = bytes(side * side * 3)
    ok = Region(0, 0, side, side, Encoding.RAW_LZ4, lz4.block.compress(pixels, store_size=True))
    assert decode_message(ChannelKind.DISPLAY, Region.TYPE, ok.encode()) == ok
    with pytest.raises(ValueError):
        Region(0, 0, side + 1, side + 1, Encoding.JPEG, b"\xff\xd8")
    # FILL is exempt: a full-screen solid fill needs no decode buffer
    assert Region(0, 0, 1920, 1080, Encoding.FILL, b"\0\0\0").raw_size == 1920 * 1080 * 3


def test_region_lz4_prefix_must_match_size() -> None:
    with pytest.raises(ValueError):
        Region(0, 0, 2, 2, Encoding.RAW_LZ4, lz4.block.compress(bytes(11), store_size=True))
    data = lz4.block.compress(bytes(12), store_size=True)
    assert lz4.block.decompress(Region(0, 0, 2, 2, Encoding.RAW_LZ4, data).data) == bytes(12)


@given(st.binary(max_size=64), st.integers(0, 255), st.sampled_from(list(ChannelKind)))
def test_decode_garbage_raises_only_protocol_error(payload: bytes, type_: int, kind: ChannelKind) -> None:
    try:
        message = decode_message(kind, type_, payload)
    except ProtocolError as exc:
        assert exc.code in (
            ReasonCode.MALFORMED_MESSAGE,
            ReasonCode.UNKNOWN_MESSAGE_TYPE,
        )
    else:
        # whatever decodes re-encodes to a payload that decodes to the same message
        assert decode_message(kind, type_, message.encode()) == message


@given(st.text(), st.lists(st.text(), max_size=5), st.integers(0, MAX_JSON_INT))
def test_hello_round_trips_any_text(software: str, caps: list[str], version: int) -> None:
    try:
        msg = Hello(version, tuple(caps), software)
    except ValueError:  # lone surrogates cannot be UTF-8
        return
    assert decode_message(ChannelKind.CONTROL, Hello.TYPE, msg.encode()) == msg

"""Property tests of the clipboard and files decoders and of sessiond's filters:
any payload either decodes or is MALFORMED/UNKNOWN (ProtocolError), never
anything else; a raw data frame of any bytes is a yes/no for the filter."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import ProtocolError, ReasonCode
from protocol.messages import ChannelKind, decode_message
from protocol.transfer import ClipData, FileData
from sessiond.agent.clipboard_policy import ClipboardPolicy, FilePolicy
from sessiond.transfer_filter import ClipboardFilter, FilesFilter


class _Relay:
    def inject_to_client(self, channel: int, message: object) -> None:
        pass

    def inject_to_agent(self, channel: int, message: object) -> None:
        pass


@settings(max_examples=400)
@given(kind=st.sampled_from([ChannelKind.CLIPBOARD, ChannelKind.FILES]), type_=st.integers(0, 255),
       payload=st.binary(max_size=200))  # fmt: skip
def test_any_payload_decodes_or_is_a_protocol_error(kind: ChannelKind, type_: int, payload: bytes) -> None:
    try:
        decode_message(kind, type_, payload)
    except ProtocolError as exc:
        assert exc.code in (ReasonCode.MALFORMED_MESSAGE, ReasonCode.UNKNOWN_MESSAGE_TYPE)


@settings(max_examples=300)
@given(payload=st.binary(max_size=64), from_client=st.booleans())
def test_raw_data_of_any_bytes_is_a_yes_or_no(payload: bytes, from_client: bool) -> None:
    clip = ClipboardFilter(_Relay(), ClipboardPolicy, "u", lambda e, d: None)
    files = FilesFilter(_Relay(), FilePolicy, "u", lambda e, d: None)
    for f, type_ in ((clip, ClipData.TYPE), (files, FileData.TYPE)):
        hook = f.from_client if from_client else f.from_agent
        assert hook(6, type_, payload, None) is False  # nothing announced it

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


def test_every_transfer_bound_is_refused_one_past_it() -> None:
    import struct

    from protocol.messages import max_payload
    from protocol.transfer import (
        CLIP_CHUNK_BYTES,
        FILE_CHUNK_BYTES,
        MAX_CLIP_BYTES,
        MAX_FILE_BYTES,
        MAX_FILE_NAME_BYTES,
        ClipBegin,
        FileOffer,
    )

    def refused(kind: ChannelKind, type_: int, payload: bytes) -> bool:
        try:
            decode_message(kind, type_, payload)
        except ProtocolError as exc:
            return exc.code == ReasonCode.MALFORMED_MESSAGE
        return False

    clip, files = ChannelKind.CLIPBOARD, ChannelKind.FILES
    assert not refused(clip, ClipBegin.TYPE, struct.pack(">BIBI", 0, 1, 1, MAX_CLIP_BYTES))
    assert refused(clip, ClipBegin.TYPE, struct.pack(">BIBI", 0, 1, 1, MAX_CLIP_BYTES + 1))
    assert not refused(files, FileOffer.TYPE, struct.pack(">IQ", 1, MAX_FILE_BYTES) + b"a" * MAX_FILE_NAME_BYTES)
    assert refused(files, FileOffer.TYPE, struct.pack(">IQ", 1, MAX_FILE_BYTES + 1) + b"a")
    assert refused(files, FileOffer.TYPE, struct.pack(">IQ", 1, 1) + b"a" * (MAX_FILE_NAME_BYTES + 1))
    assert refused(clip, ClipData.TYPE, struct.pack(">I", 1) + b"x" * (CLIP_CHUNK_BYTES + 1))
    assert refused(clip, ClipData.TYPE, struct.pack(">I", 1))  # an empty chunk
    assert refused(files, FileData.TYPE, struct.pack(">IQ", 1, 0) + b"x" * (FILE_CHUNK_BYTES + 1))
    assert max_payload(clip) == 4 + CLIP_CHUNK_BYTES  # frames announcing more are refused from the header
    assert max_payload(files) == 12 + FILE_CHUNK_BYTES

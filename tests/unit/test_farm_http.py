"""The Agent transport's body readers: the response bound is enforced as bytes arrive, and a
streamed line over its bound or a callback error ends that stream only."""

from __future__ import annotations

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone

from sessiond.farm.etcd_codec import EtcdProtocolError
from sessiond.farm.etcd_http import _AgentStream, _BoundedBody, _LineBody


class Producer:
    def __init__(self) -> None:
        self.stopped = False

    def stopProducing(self) -> None:  # noqa: N802 - Twisted's IPushProducer
        self.stopped = True


def test_bounded_body_stops_reading_past_its_limit() -> None:
    done: defer.Deferred[bytes] = defer.Deferred()
    body, transport = _BoundedBody(done, limit=10), Producer()
    body.makeConnection(transport)  # type: ignore[arg-type]
    body.dataReceived(b"0123456789")
    assert not done.called
    body.dataReceived(b"x")
    assert transport.stopped
    failures: list[Failure] = []
    done.addErrback(failures.append)
    assert failures and failures[0].check(EtcdProtocolError)
    body.connectionLost(Failure(ResponseDone()))  # nothing fires twice


def test_bounded_body_delivers_a_complete_body() -> None:
    done: defer.Deferred[bytes] = defer.Deferred()
    body = _BoundedBody(done, limit=10)
    body.makeConnection(Producer())  # type: ignore[arg-type]
    body.dataReceived(b"01234")
    body.dataReceived(b"56789")
    body.connectionLost(Failure(ResponseDone()))
    assert done.result == b"0123456789"


def test_a_failing_line_callback_ends_the_stream_with_its_error() -> None:
    lines: list[bytes] = []

    def on_line(line: bytes) -> None:
        if line == b"bad":
            raise EtcdProtocolError("bad line")
        lines.append(line)

    stream, transport = _AgentStream(on_line), Producer()
    body = _LineBody(stream)
    body.makeConnection(transport)  # type: ignore[arg-type]
    body.dataReceived(b"one\ntw")
    body.dataReceived(b"o\nbad\nthree\n")
    assert lines == [b"one", b"two"] and transport.stopped
    failures: list[Failure] = []
    stream.done.addErrback(failures.append)
    assert failures[0].check(EtcdProtocolError)


def test_a_cancelled_stream_ends_quietly() -> None:
    stream = _AgentStream(lambda line: None)
    body = _LineBody(stream)
    transport = Producer()
    stream.body = body
    body.makeConnection(transport)  # type: ignore[arg-type]
    stream.cancel()
    assert transport.stopped and stream.done.called and stream.done.result is None
    body.connectionLost(Failure(ConnectionResetError()))

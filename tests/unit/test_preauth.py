# The pre-auth tracker with a fake clock (issue 12 item 2): the grace timer
# runs from accept and drops a connection that never logs in; the caps, global
# and per source, are never exceeded; when full, the least advanced and oldest
# connection goes, so a newcomer that speaks survives an idle flood; and the
# gateway's hook finds the ticket through the TLS transport or a WebSocket.
"""sessiond.preauth: grace timer, caps and eviction order."""

from __future__ import annotations

from twisted.internet.task import Clock

from sessiond.config import load_config
from sessiond.preauth import SPOKE, TLS_DONE, PreauthLimits, PreauthTracker, authenticated, limits_from_config


class Conn:
    """A connection as the tracker sees it: something it can drop."""

    def __init__(self, tracker: PreauthTracker, source: str) -> None:
        self.dropped = False
        self.ticket = tracker.admit(source, self.drop)

    def drop(self) -> None:
        self.dropped = True


def tracker(grace: float = 10.0, total: int = 8, per_source: int = 3) -> tuple[PreauthTracker, Clock]:
    clock = Clock()
    return PreauthTracker(clock, PreauthLimits(grace, total, per_source)), clock


def test_grace_runs_from_accept_and_drops_the_silent() -> None:
    t, clock = tracker(grace=10.0)
    silent, talker = Conn(t, "10.0.0.1"), Conn(t, "10.0.0.2")
    talker.ticket.progress(SPOKE)
    clock.advance(9.9)
    assert not silent.dropped
    talker.ticket.authenticated()
    clock.advance(0.2)
    assert silent.dropped and not talker.dropped, "a login stops the timer; silence does not"
    assert len(t) == 0 and t.expired == 1


def test_per_source_cap_is_never_exceeded_and_the_idle_go_first() -> None:
    t, _ = tracker(per_source=3)
    flood = [Conn(t, "127.0.0.1") for _ in range(3)]
    flood[0].ticket.progress(SPOKE)
    user = Conn(t, "127.0.0.1")
    assert t.count("127.0.0.1") == 3
    assert [c.dropped for c in flood] == [False, True, False], "the oldest that never spoke goes"
    assert not user.dropped
    for _ in range(100):
        Conn(t, "127.0.0.1")
        assert t.count("127.0.0.1") <= 3


def test_global_cap_drops_from_the_biggest_source_and_least_progress() -> None:
    t, _ = tracker(total=4, per_source=4)
    a = [Conn(t, "10.0.0.1") for _ in range(3)]
    b = Conn(t, "10.0.0.2")
    for c in a:
        c.ticket.progress(TLS_DONE)
    newcomer = Conn(t, "10.0.0.3")
    assert b.dropped, "no TLS yet goes before TLS done"
    assert len(t) == 4
    a[1].ticket.progress(SPOKE)
    newcomer.ticket.progress(SPOKE)
    Conn(t, "10.0.0.4")
    assert a[0].dropped and not a[1].dropped and not newcomer.dropped


def test_many_sources_flood_then_a_real_user_gets_in() -> None:
    t, clock = tracker(grace=5.0, total=64, per_source=16)
    flood = [Conn(t, f"127.{i // 250}.{i % 250}.1") for i in range(550)]
    assert len(t) == 64
    user = Conn(t, "127.0.0.1")
    user.ticket.progress(TLS_DONE)
    user.ticket.progress(SPOKE)
    clock.advance(1.0)
    user.ticket.authenticated()
    clock.advance(5.0)
    assert not user.dropped and sum(c.dropped for c in flood) == 550 and len(t) == 0


def test_release_is_idempotent_and_closed_connections_free_their_slot() -> None:
    t, clock = tracker(per_source=2)
    c = Conn(t, "x")
    c.ticket.closed()
    c.ticket.closed()
    c.ticket.authenticated()
    assert len(t) == 0 and t.count("x") == 0
    clock.advance(100)
    assert not c.dropped


def test_hook_finds_the_ticket_through_tls_and_websocket_transports() -> None:
    t, clock = tracker()
    conn = Conn(t, "h")

    class Mux:
        preauth = conn.ticket

    class Tls:
        wrappedProtocol = Mux()  # noqa: N815 - Twisted's name

    class Stream:
        underlying = Tls()

    authenticated(Stream())
    authenticated(object())  # unit-test transports: no ticket, no error
    clock.advance(100)
    assert not conn.dropped and len(t) == 0


def test_config_keys_and_defaults() -> None:
    limits = limits_from_config(load_config(None))
    assert limits == PreauthLimits(60.0, 512, 64)
    custom = load_config(None, {"server": {"login_grace": "2.5", "max_unauthenticated": "1000",
                                           "max_unauthenticated_per_source": "20"}})  # fmt: skip
    assert limits_from_config(custom) == PreauthLimits(2.5, 1000, 20)




def test_portmux_takes_a_ticket_at_accept_and_gives_it_back() -> None:
    from twisted.internet.testing import StringTransport  # noqa: PLC0415
    from twisted.internet.address import IPv4Address  # noqa: PLC0415
    from twisted.internet.protocol import Factory, Protocol  # noqa: PLC0415

    from sessiond.portmux import MuxFactory  # noqa: PLC0415

    t, clock = tracker(grace=5.0)
    mux = MuxFactory(Factory.forProtocol(Protocol), Factory.forProtocol(Protocol), t)
    addr = IPv4Address("TCP", "127.0.0.9", 5000)
    proto = mux.buildProtocol(addr)
    transport = StringTransport(peerAddress=addr)
    aborted: list[bool] = []
    transport.abortConnection = lambda: aborted.append(True)  # type: ignore[method-assign]
    proto.makeConnection(transport)
    assert t.count("127.0.0.9") == 1, "counted from accept, before any TLS"
    proto.handshakeCompleted()
    proto.dataReceived(b"GET / HTTP/1.1\r\n")
    assert proto.preauth is not None and proto.preauth.level == SPOKE
    proto.connectionLost()
    assert len(t) == 0
    silent = mux.buildProtocol(addr)
    quiet = StringTransport(peerAddress=addr)
    quiet.abortConnection = lambda: aborted.append(True)  # type: ignore[method-assign]
    silent.makeConnection(quiet)
    clock.advance(5.0)
    assert aborted == [True], "the silent one is aborted by the grace timer"

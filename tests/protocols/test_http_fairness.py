"""Fairness on the memory driver: a client that pipelines and never reads is
answered only as fast as it reads, and one connection's pipeline is answered
a bounded number of requests per turn of the loop, so it cannot starve the
others."""

from __future__ import annotations

import itertools

from tests.support.http import read_replies, request
from weft.drivers.testing import FakeClock, MemoryConnection, connect
from weft.protocols.http import HTTPLimits, HTTPServerProtocol, Request, ResponseWriter, ServerState

HIGH_WATER = 64 * 1024
BODY = b"b" * 8000


def state(conn: MemoryConnection) -> ServerState:
    return conn.protocol.state  # type: ignore[no-any-return]


def test_a_client_that_never_reads_is_answered_only_up_to_the_high_water_mark() -> None:
    """100 pipelined GETs and no reading: the server answers until its buffer
    passes the high-water mark, then stops (no handler call, no CPU) until
    the client reads; as it reads, the rest follow, in order."""
    answered: list[str] = []

    def handler(request: Request, response: ResponseWriter) -> None:
        answered.append(request.path)
        response.send(200, body=BODY)

    conn = connect(HTTPServerProtocol(handler), peer_reads=False)
    conn.deliver(b"".join(request("GET", f"/{n}") for n in range(100)))
    first = len(answered)
    assert first == HIGH_WATER // (len(BODY) + 40) + 1  # the one that went over the mark
    assert conn.transport.get_write_buffer_size() <= HIGH_WATER + len(BODY) + 100
    assert state(conn) is ServerState.DRAINING
    assert not conn.transport.is_reading()
    conn.clock.advance(1)
    assert len(answered) == first  # nothing more while the client reads nothing
    conn.read(HIGH_WATER // 2)  # not yet down to the low-water mark
    assert len(answered) == first
    conn.read()  # all of it: resume_writing
    assert first < len(answered) <= 2 * first
    conn.peer_reads = True
    assert answered == [f"/{n}" for n in range(100)]
    replies = read_replies(conn.written)
    assert len(replies) == 100
    assert state(conn) is ServerState.IDLE


def test_ten_clients_that_never_read_leave_the_server_idle() -> None:
    """Ten such clients cost each at most the high-water mark plus one
    response, and no work at all once they stop reading."""
    calls = [0]

    def handler(request: Request, response: ResponseWriter) -> None:
        calls[0] += 1
        response.send(200, body=BODY)

    clock = FakeClock()
    connections = [connect(HTTPServerProtocol(handler), clock=clock, peer_reads=False) for _ in range(10)]
    for conn in connections:
        conn.deliver(request("GET", "/") * 200)
    settled = calls[0]
    clock.advance(30)
    assert calls[0] == settled
    assert all(conn.transport.get_write_buffer_size() <= HIGH_WATER + len(BODY) + 100 for conn in connections)
    other = connect(HTTPServerProtocol(handler), clock=clock)
    other.deliver(request("GET", "/mine"))
    assert [reply.status for reply in read_replies(other.written)] == [200]


def longest_run(log: list[str], item: str) -> int:
    return max((len(list(group)) for key, group in itertools.groupby(log) if key == item), default=0)


def test_a_pipeline_is_answered_a_bounded_number_of_requests_per_turn() -> None:
    """50 pipelined requests in one packet: at most max_requests_per_turn are
    answered before the loop turns (a timer scheduled meanwhile gets to run),
    and every one is answered, in order."""
    log: list[str] = []
    conn = connect(HTTPServerProtocol(lambda request, response: None))  # replaced below

    def handler(request: Request, response: ResponseWriter) -> None:
        log.append("request")
        # Another connection's work, due at once: it runs at the next turn.
        conn.clock.call_later(0, log.append, "other")
        response.send(200, body=request.path.encode())

    conn = connect(HTTPServerProtocol(handler, limits=HTTPLimits(max_requests_per_turn=8)))
    conn.deliver(b"".join(request("GET", f"/{n}") for n in range(50)))
    assert log.count("request") == 50
    assert longest_run(log, "request") == 8
    assert log[:9] == ["request"] * 8 + ["other"]
    assert [reply.body for reply in read_replies(conn.written)] == [f"/{n}".encode() for n in range(50)]
    assert state(conn) is ServerState.IDLE


def test_requests_that_are_not_pipelined_never_wait_a_turn() -> None:
    """One request per packet (the usual keep-alive client) is answered in the
    call that brought it, however many came before."""
    limits = HTTPLimits(max_requests_per_turn=1)
    conn = connect(HTTPServerProtocol(lambda request, response: response.send(200), limits=limits))
    protocol = conn.transport.get_protocol()
    for count in range(1, 6):
        protocol.data_received(request("GET", "/"))  # as a driver would, with no turn of the loop between
        assert len(read_replies(conn.written)) == count
    assert len(conn.clock.pending()) == 1  # the connection's one deadline timer; no turn was waited for


def test_a_large_read_of_pipelined_requests_is_answered_whole_and_in_order() -> None:
    """One 300 KiB read holding 8,000 pipelined requests (what asyncio's 256 KiB
    reads bring) and the client's EOF right behind it: every request is answered,
    in order, and only then does the connection close (the server hands h11 the
    read a piece at a time, so the EOF must wait for the last piece)."""
    answered: list[str] = []

    def handler(request: Request, response: ResponseWriter) -> None:
        answered.append(request.path)
        response.send(200, body=b"ok")

    conn = connect(HTTPServerProtocol(handler))
    requests = b"".join(request("GET", f"/{n}") for n in range(8000))
    assert len(requests) > 256 * 1024
    conn.deliver(requests)
    conn.deliver_eof()
    for _ in range(1000):
        if conn.closed:
            break
        conn.clock.advance(0)
    assert answered == [f"/{n}" for n in range(8000)]
    assert len(read_replies(conn.written)) == 8000
    assert conn.closed


def test_a_large_read_holds_reading_until_it_is_handed_on() -> None:
    """While part of a large read still waits to be handed to h11, the
    transport does not read more: the server holds at most one read."""
    waiting: list[ResponseWriter] = []
    conn = connect(HTTPServerProtocol(lambda request, response: waiting.append(response)))
    conn.deliver(b"".join(request("GET", f"/{n}") for n in range(2000)))
    answered = 0
    while waiting:
        assert not conn.transport.is_reading()
        waiting.pop().send(200, body=b"ok")
        answered += 1
        conn.clock.advance(0)
    assert answered == 2000
    assert len(read_replies(conn.written)) == 2000
    assert conn.transport.is_reading()

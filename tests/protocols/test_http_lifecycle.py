"""The server connection's states and their deadlines, on the memory driver
with the fake clock: each state's deadline fires, and activity moves it where
it should.  (The head, keep-alive and linger deadlines have their own tests in
tests/protocols/test_http_server.py too.)"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from tests.support.http import read_replies, request
from weft.drivers.testing import MemoryConnection, connect
from weft.protocols.errors import ArgumentError
from weft.protocols.http import (
    HTTPLimits,
    HTTPServerProtocol,
    HTTPStateError,
    HTTPTimeoutError,
    Request,
    ResponseWriter,
)
from weft.protocols.http._lifecycle import DEADLINES, LINGER_TIMEOUT, TRANSITIONS, ServerState

S = ServerState


def serve(handler: object, limits: HTTPLimits | None = None, *, peer_reads: bool = True) -> MemoryConnection:
    return connect(HTTPServerProtocol(handler, limits=limits), peer_reads=peer_reads)  # type: ignore[arg-type]


def state(conn: MemoryConnection) -> ServerState:
    protocol = conn.protocol
    assert isinstance(protocol, HTTPServerProtocol)
    return protocol.state


def statuses(conn: MemoryConnection) -> list[int]:
    return [reply.status for reply in read_replies(conn.written)]


class Held:
    """A handler that keeps each request and answers only when told."""

    def __init__(self, *, read_body: bool = False) -> None:
        self.read_body = read_body
        self.exchanges: list[tuple[Request, ResponseWriter]] = []
        self.errors: list[Exception] = []
        self.chunks: list[bytes] = []

    def __call__(self, request: Request, response: ResponseWriter) -> None:
        self.exchanges.append((request, response))
        if self.read_body:
            request.body.receive(self.chunks.append, lambda: None, self.errors.append)


# ------------------------------------------------------------- the table


def test_every_state_has_its_moves_and_its_deadline_described() -> None:
    """The transition table and the deadline table cover every state; only
    CLOSED is a dead end, and every other state can close."""
    assert set(TRANSITIONS) == set(ServerState) == set(DEADLINES)
    assert TRANSITIONS[S.CLOSED] == frozenset()
    assert all(S.CLOSED in TRANSITIONS[state] for state in ServerState if state is not S.CLOSED)


def test_the_docs_table_lists_every_state() -> None:
    """docs/http.md's table of states names each state of ServerState."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "http.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z]+)` \|", text, re.MULTILINE))
    assert documented == {state.name for state in ServerState}


@pytest.mark.parametrize(
    "bad",
    [
        {"handler_timeout": 0},
        {"body_timeout": -1},
        {"send_timeout": float("inf")},
        {"linger_timeout": float("nan")},
        {"max_discard_size": -1},
        {"max_requests_per_turn": 0},
    ],
)
def test_the_limits_of_each_state_are_checked(bad: dict[str, float]) -> None:
    """Nonsense deadlines and sizes raise ArgumentError (handler_timeout=None is allowed: no limit)."""
    with pytest.raises(ArgumentError):
        HTTPLimits(**bad)  # type: ignore[arg-type]
    assert HTTPLimits(handler_timeout=None).handler_timeout is None


def test_an_illegal_transition_raises() -> None:
    """A move the table does not allow (a bug, never a peer's doing) raises HTTPStateError."""
    conn = serve(Held())
    protocol = conn.protocol
    assert state(conn) is S.FRESH
    with pytest.raises(HTTPStateError, match="FRESH to RESPONDING"):
        protocol._enter(S.RESPONDING, None)
    conn.lose_connection()
    with pytest.raises(HTTPStateError):
        protocol._enter(S.HEAD, None)


def test_a_request_walks_through_its_states() -> None:
    """FRESH, HEAD, HANDLING, RECEIVING, RESPONDING, then IDLE for the next."""
    held = Held()
    conn = serve(held)
    seen = [state(conn)]
    conn.deliver(b"POST / HTTP/1.1\r\n")
    seen.append(state(conn))
    conn.deliver(b"Host: t\r\nContent-Length: 4\r\n\r\n")
    seen.append(state(conn))
    request_, response = held.exchanges[0]
    body: list[bytes] = []
    request_.body.receive(body.append, lambda: None)
    seen.append(state(conn))
    conn.deliver(b"data")
    seen.append(state(conn))  # the body is in: back to waiting on the handler
    response.start(200, {"content-length": "2"})
    seen.append(state(conn))
    response.end(b"ok")
    seen.append(state(conn))
    assert seen == [S.FRESH, S.HEAD, S.HANDLING, S.RECEIVING, S.HANDLING, S.RESPONDING, S.IDLE]


def test_one_timer_serves_every_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadlines share one lazily moved timer: a hundred keep-alive
    requests schedule a handful of timers, not one or two per request."""
    conn = serve(lambda request, response: response.send(200))
    scheduled = [0]
    real = conn.clock.call_later

    def counting(delay: float, callback: object, *args: object) -> object:
        scheduled[0] += 1
        return real(delay, callback, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(conn.clock, "call_later", counting)
    for _ in range(100):
        conn.deliver(request("GET", "/"))
        conn.clock.advance(0.01)
    assert statuses(conn) == [200] * 100
    assert scheduled[0] <= 3


# ----------------------------------------------------------------- FRESH


def test_fresh_closes_silently_at_the_head_timeout() -> None:
    """Nothing at all from a new client: closed at head_timeout, without a word."""
    conn = serve(Held(), HTTPLimits(head_timeout=10))
    conn.clock.advance(9.9)
    assert state(conn) is S.FRESH
    conn.clock.advance(0.1)
    assert conn.closed
    assert conn.written == b""


def test_a_first_byte_leaves_fresh_but_the_head_deadline_stays() -> None:
    """A first byte moves to HEAD, whose deadline still counts from the connection's start."""
    conn = serve(Held(), HTTPLimits(head_timeout=10))
    conn.clock.advance(9)
    conn.deliver(b"G")
    assert state(conn) is S.HEAD
    conn.clock.advance(1)
    assert statuses(conn) == [408]


# -------------------------------------------------------------- HANDLING


def test_a_handler_that_never_answers_gets_503_at_the_handler_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """HANDLING: 503 with Connection: close at handler_timeout; the handler's
    writer is abandoned (a late answer does nothing), and the close lingers."""
    held = Held()
    conn = serve(held, HTTPLimits(handler_timeout=30))
    conn.deliver(request("GET", "/slow"))
    conn.clock.advance(29.9)
    assert conn.written == b""
    with caplog.at_level(logging.WARNING, logger="weft.protocols.http"):
        conn.clock.advance(0.1)
    (reply,) = read_replies(conn.written)
    assert (reply.status, reply.headers["connection"]) == (503, "close")
    assert "/slow" in caplog.text
    _, response = held.exchanges[0]
    assert response.abandoned
    response.send(200, body=b"too late")  # does nothing, raises nothing
    assert b"too late" not in conn.written
    assert state(conn) is S.LINGERING
    conn.clock.advance(LINGER_TIMEOUT)
    assert conn.closed


def test_a_head_request_timed_out_gets_no_body() -> None:
    """The 503 to a HEAD request has its headers only."""
    conn = serve(Held(), HTTPLimits(handler_timeout=1))
    conn.deliver(request("HEAD", "/"))
    conn.clock.advance(1)
    assert conn.written.endswith(b"\r\n\r\n")
    assert b"503" in conn.written


def test_the_handler_deadline_counts_from_the_end_of_the_body_it_read() -> None:
    """While the handler reads its body the body deadline governs; once the body
    is in, the handler has handler_timeout from then (not from its call)."""
    held = Held(read_body=True)
    conn = serve(held, HTTPLimits(handler_timeout=10, body_timeout=60))
    conn.deliver(request("POST", "/", [("Content-Length", "3")]))
    for byte in b"abc":
        conn.clock.advance(7)  # 21 s in all, more than handler_timeout
        assert state(conn) is S.RECEIVING
        conn.deliver(bytes([byte]))
    assert state(conn) is S.HANDLING
    conn.clock.advance(9.9)
    assert conn.written == b""
    conn.clock.advance(0.1)
    assert statuses(conn) == [503]


def test_a_paused_body_is_the_handler_s_wait() -> None:
    """A handler that pauses its body before answering is waited on with
    handler_timeout (from the pause), and its reader hears the timeout."""
    held = Held(read_body=True)
    conn = serve(held, HTTPLimits(handler_timeout=10, body_timeout=5))
    conn.deliver(request("POST", "/", [("Content-Length", "10")]) + b"abc")
    request_, _ = held.exchanges[0]
    conn.clock.advance(2)
    request_.body.pause()
    assert state(conn) is S.HANDLING
    conn.clock.advance(9.9)  # past the body timeout, which no longer applies
    assert conn.written == b""
    conn.clock.advance(0.1)
    assert statuses(conn) == [503]
    assert [type(error) for error in held.errors] == [HTTPTimeoutError]


def test_handler_timeout_none_waits_for_ever() -> None:
    """handler_timeout=None: a long-poll handler may answer after an hour."""
    held = Held()
    conn = serve(held, HTTPLimits(handler_timeout=None))
    conn.deliver(request("GET", "/poll"))
    conn.clock.advance(3600)
    assert state(conn) is S.HANDLING
    held.exchanges[0][1].send(200, body=b"event")
    assert [reply.body for reply in read_replies(conn.written)] == [b"event"]


# ------------------------------------------------------------- RECEIVING


def test_a_body_that_stops_coming_gets_408_at_the_body_timeout() -> None:
    """RECEIVING: body_timeout after the last byte, 408 (no response had
    started) and the reader hears HTTPTimeoutError; each byte moves the deadline."""
    held = Held(read_body=True)
    conn = serve(held, HTTPLimits(body_timeout=10))
    conn.deliver(request("POST", "/", [("Content-Length", "100")]))
    for _ in range(5):
        conn.clock.advance(9)
        conn.deliver(b"x")  # activity: the deadline moves
    assert state(conn) is S.RECEIVING
    conn.clock.advance(9.9)
    assert conn.written == b""
    conn.clock.advance(0.1)
    assert statuses(conn) == [408]
    assert [type(error) for error in held.errors] == [HTTPTimeoutError]
    assert state(conn) is S.LINGERING


def test_a_body_that_stops_once_the_response_started_ends_the_connection() -> None:
    """A streaming echo whose upload stalls: half a response cannot be
    repaired, so the connection is aborted at the body timeout."""

    def echo(request: Request, response: ResponseWriter) -> None:
        response.start(200)
        request.body.receive(response.write, response.end)

    conn = serve(echo, HTTPLimits(body_timeout=10))
    conn.deliver(request("POST", "/", [("Content-Length", "100")]) + b"some")
    assert state(conn) is S.RECEIVING
    conn.clock.advance(10)
    assert conn.closed
    assert b"408" not in conn.written


def test_a_body_read_after_the_response_still_has_a_deadline() -> None:
    """A handler that answers first and reads on: the body deadline still runs, then a close."""
    held = Held(read_body=True)
    conn = serve(held, HTTPLimits(body_timeout=10))
    conn.deliver(request("POST", "/", [("Content-Length", "100")]) + b"some")
    held.exchanges[0][1].send(200, body=b"early")
    assert state(conn) is S.RECEIVING
    conn.clock.advance(10)
    assert [reply.body for reply in read_replies(conn.written)] == [b"early"]
    assert conn.eof_written or conn.closed


# ------------------------------------------------------------ RESPONDING


def test_a_response_being_streamed_has_no_deadline_of_its_own() -> None:
    """RESPONDING: the handler ends its response when it likes (a stream of
    events, say); the connection waits for it while the client keeps reading."""
    held = Held()
    conn = serve(held)
    conn.deliver(request("GET", "/events"))
    response = held.exchanges[0][1]
    response.start(200, {"content-type": "text/event-stream"})
    for _ in range(10):
        conn.clock.advance(100)
        response.write(b"data: tick\n\n")
    assert state(conn) is S.RESPONDING
    response.end()
    assert state(conn) is S.IDLE


# ------------------------------------------------------------ DISCARDING


def ignore_body(request: Request, response: ResponseWriter) -> None:
    response.send(200, body=request.path.encode())


def test_an_unread_body_is_dropped_under_the_body_timeout() -> None:
    """DISCARDING: the body the handler ignored is read and dropped; each
    byte moves the deadline; silence for body_timeout closes."""
    conn = serve(ignore_body, HTTPLimits(body_timeout=10))
    conn.deliver(request("POST", "/", [("Content-Length", "1000")]) + b"x" * 10)
    assert state(conn) is S.DISCARDING
    for _ in range(5):
        conn.clock.advance(9)
        conn.deliver(b"x" * 10)
    assert state(conn) is S.DISCARDING
    conn.clock.advance(10)
    assert conn.eof_written
    assert statuses(conn) == [200]


def test_a_dropped_body_that_ends_in_time_keeps_the_connection() -> None:
    """Once the unread body is all dropped, the next request is served."""
    conn = serve(ignore_body)
    conn.deliver(request("POST", "/1", [("Content-Length", "6")]) + b"abc")
    conn.deliver(b"def" + request("GET", "/2"))
    assert [reply.body for reply in read_replies(conn.written)] == [b"/1", b"/2"]
    assert state(conn) is S.IDLE


def test_dropping_stops_past_max_discard_size() -> None:
    """A chunked body the handler ignored: past max_discard_size bytes the
    server closes instead of dropping more."""
    conn = serve(ignore_body, HTTPLimits(max_discard_size=100))
    conn.deliver(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert b"connection: close" not in conn.written  # the body's size is not known yet
    conn.deliver(b"40\r\n" + b"x" * 64 + b"\r\n")
    assert state(conn) is S.DISCARDING
    conn.deliver(b"40\r\n" + b"x" * 64 + b"\r\n")
    assert state(conn) is S.LINGERING
    assert statuses(conn) == [200]


def test_a_declared_body_over_max_discard_size_gets_connection_close() -> None:
    """A Content-Length larger than max_discard_size left unread: the response
    says Connection: close and the connection closes after it, without reading the body."""
    conn = serve(ignore_body, HTTPLimits(max_discard_size=100))
    conn.deliver(request("POST", "/", [("Content-Length", "101")]) + b"x" * 50)
    (reply,) = read_replies(conn.written)
    assert reply.headers["connection"] == "close"
    assert conn.closed


# -------------------------------------------------------------- DRAINING


def big_answer(request: Request, response: ResponseWriter) -> None:
    response.send(200, body=b"z" * 100_000)


def test_a_client_that_reads_nothing_is_aborted_at_the_send_timeout() -> None:
    """DRAINING: the response is complete but the client takes none of it; the
    next request waits, and send_timeout later the connection is aborted."""
    conn = serve(big_answer, HTTPLimits(send_timeout=20), peer_reads=False)
    conn.deliver(request("GET", "/1") + request("GET", "/2"))
    assert state(conn) is S.DRAINING
    conn.clock.advance(19.9)
    assert not conn.closed
    conn.clock.advance(0.1)
    assert conn.closed


def test_a_client_reading_slowly_moves_the_send_deadline() -> None:
    """A client that takes a little now and then is not aborted: each
    progress restarts send_timeout, and every answer gets through."""
    conn = serve(big_answer, HTTPLimits(send_timeout=20, keep_alive_timeout=1000), peer_reads=False)
    conn.deliver(request("GET", "/1") + request("GET", "/2"))
    received = bytearray()
    for _ in range(200):
        conn.clock.advance(15)
        received += conn.read(4096)
        if len(read_replies(bytes(received))) == 2:
            break
    assert not conn.closed
    assert [reply.status for reply in read_replies(bytes(received))] == [200, 200]
    assert conn.clock.now() > 100  # the whole exchange took many send timeouts


def test_a_handler_writing_to_a_client_that_reads_nothing_is_aborted_too() -> None:
    """The send deadline runs in whatever state writing is paused: here a
    response still being streamed (RESPONDING)."""
    held = Held()
    conn = serve(held, HTTPLimits(send_timeout=20), peer_reads=False)
    conn.deliver(request("GET", "/"))
    response = held.exchanges[0][1]
    response.start(200)
    while response.write(b"y" * 10_000):
        pass
    assert state(conn) is S.RESPONDING
    conn.clock.advance(20)
    assert conn.closed
    assert response.abandoned


# ------------------------------------------------------------- LINGERING


def test_lingering_ends_at_the_linger_timeout_however_much_still_comes() -> None:
    """LINGERING: after an error response, what the client sends is dropped;
    linger_timeout after the response the connection closes, its bytes notwithstanding."""
    conn = serve(Held(), HTTPLimits(max_body_size=10, linger_timeout=5))
    conn.deliver(request("POST", "/", [("Content-Length", "11")]))
    assert state(conn) is S.LINGERING
    for _ in range(4):
        conn.clock.advance(1)
        conn.deliver(b"x" * 1000)  # activity does not move this deadline
    conn.clock.advance(0.9)
    assert not conn.closed
    conn.clock.advance(0.1)
    assert conn.closed
    assert statuses(conn) == [413]


def test_a_refusal_after_the_client_s_eof_closes_at_once() -> None:
    """A body cut short by the client's EOF: 400, and nothing to linger for."""
    held = Held(read_body=True)
    conn = serve(held)
    conn.deliver(request("POST", "/", [("Content-Length", "10")]) + b"half")
    conn.deliver_eof()
    assert statuses(conn) == [400]
    assert conn.closed

"""Fuzzing the HTTP server and client protocols with Hypothesis, on the memory
driver: arbitrary bytes, and valid messages mutated, in arbitrary chunkings.

The memory driver re-raises into the test any exception a protocol callback
lets escape, so every property here also says: nothing escapes.  Beyond
that: every connection ends closed once its peer is gone (or its deadlines
pass), a stream of valid requests leaves the connection idle and kept alive
(or closed when it asked), every client request gets exactly one outcome,
and a valid stream split anywhere gives the same answers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.http import read_replies
from weft.drivers.testing import MemoryConnection, chunkings, connect
from weft.protocols.http import (
    ClientResponse,
    HTTPClientProtocol,
    HTTPError,
    HTTPLimits,
    HTTPServerProtocol,
    Request,
    ResponseWriter,
    ServerState,
)

#: Small enough that the fuzzer reaches every limit.
LIMITS = HTTPLimits(max_head_size=300, max_body_size=40, max_discard_size=20, max_requests_per_turn=3)

#: Long enough for every deadline to pass (the longest default is 60 s).
FOREVER = 1000.0


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Handlers that raise on purpose are logged at ERROR; keep the output short."""
    with caplog.at_level(logging.CRITICAL, logger="weft.protocols.http"):
        yield


# ---------------------------------------------------------------- handlers


def answer_at_once(request: Request, response: ResponseWriter) -> None:
    response.send(200, {"x-path": request.path}, b"at once")


def read_then_answer(request: Request, response: ResponseWriter) -> None:
    request.body.collect(
        lambda body: response.send(200, body=b"read %d" % len(body)), on_error=lambda exc: None
    )


def stream_the_body_back(request: Request, response: ResponseWriter) -> None:
    response.start(201)
    request.body.receive(response.write, response.end, lambda exc: None)


def raise_sometimes(request: Request, response: ResponseWriter) -> None:
    if len(request.path) % 2:
        raise RuntimeError("a handler failing on purpose")
    response.send(204)


def make_later(conn_box: list[MemoryConnection]) -> Callable[[Request, ResponseWriter], None]:
    """Answers a second later, from the clock, after pausing and resuming its body."""

    def later(request: Request, response: ResponseWriter) -> None:
        clock = conn_box[0].clock
        chunks: list[bytes] = []

        def done() -> None:
            clock.call_later(1.0, response.send, 200, (), b"later %d" % sum(map(len, chunks)))

        request.body.receive(chunks.append, done, lambda exc: None)
        request.body.pause()
        clock.call_later(0.5, request.body.resume)

    return later


HANDLERS = ["at once", "read", "stream", "raise", "later"]


def serve(kind: str, limits: HTTPLimits = LIMITS) -> MemoryConnection:
    box: list[MemoryConnection] = []
    handler = {
        "at once": answer_at_once,
        "read": read_then_answer,
        "stream": stream_the_body_back,
        "raise": raise_sometimes,
        "later": make_later(box),
    }[kind]
    conn = connect(HTTPServerProtocol(handler, limits=limits))
    box.append(conn)
    return conn


def state(conn: MemoryConnection) -> ServerState:
    return conn.protocol.state  # type: ignore[no-any-return]


def feed(conn: MemoryConnection, chunks: list[bytes]) -> None:
    for chunk in chunks:
        if conn.closed or conn.transport.is_closing():
            return
        conn.deliver(chunk)


def end_of_peer(conn: MemoryConnection) -> None:
    """The peer sends EOF (if it still can), then time passes: the connection must be closed."""
    conn.clock.advance(2.0)  # handlers answering from the clock answer
    if not conn.closed and not conn.transport.is_closing():
        conn.deliver_eof()
    conn.clock.advance(FOREVER)
    assert conn.closed


# ---------------------------------------------------------------- requests


TOKENS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
PATHS = st.from_regex(r"\A/[a-z0-9/._~%-]{0,12}(\?[a-z0-9=&]{0,8})?\Z")
FIELDS = st.lists(
    st.tuples(
        st.sampled_from(["X-A", "Accept", "Cookie", "User-Agent", "x-b"]),
        st.from_regex(r"\A[ -~]{0,16}\Z").map(str.strip),
    ),
    max_size=3,
)


@st.composite
def valid_requests(draw: st.DrawFn) -> tuple[str, bytes]:
    """One well-formed request, with its method: any method, path, fields and framing."""
    method = draw(TOKENS)
    version = draw(st.sampled_from(["1.1", "1.1", "1.0"]))
    lines = [f"{method} {draw(PATHS)} HTTP/{version}"]
    if version == "1.1":
        lines.append("Host: t")
    lines += [f"{name}: {value}" for name, value in draw(FIELDS)]
    if draw(st.booleans()):
        lines.append(f"Connection: {draw(st.sampled_from(['close', 'keep-alive']))}")
    body = draw(st.binary(max_size=60))
    framing = draw(st.sampled_from(["length", "chunked", "none"] if version == "1.1" else ["length", "none"]))
    if framing == "none" or (framing == "length" and not body and draw(st.booleans())):
        body = b""
        encoded = b""
    elif framing == "length":
        lines.append(f"Content-Length: {len(body)}")
        encoded = body
    else:
        lines.append("Transfer-Encoding: chunked")
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=3)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        encoded = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"
    if body and framing != "none" and draw(st.booleans()):
        lines.append("Expect: 100-continue")
    return method, ("\r\n".join(lines) + "\r\n\r\n").encode() + encoded


#: Lines that make a request ambiguous or malformed when inserted.
POISON = [
    b"Content-Length: 5\r\n",
    b"Content-Length: 99999999999\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip\r\n",
    b" folded\r\n",
    b"\tfolded\r\n",
    b"X: y\r\n z\r\n",
    b"Content-Length: -1\r\n",
    b"\r\n",
    b"ffffffffffffffffff\r\n",
    b"0\r\n\r\n",
    b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
]


@st.composite
def mutated(draw: st.DrawFn, source: st.SearchStrategy[bytes]) -> bytes:
    """``source``'s bytes with a few edits: a byte replaced, bytes inserted or
    deleted, a poisonous line inserted after some line break."""
    data = bytearray(draw(source))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["replace", "insert", "delete", "poison"]))
        at = draw(st.integers(0, len(data)))
        if kind == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 4))]
        else:
            breaks = [i + 1 for i, byte in enumerate(data) if byte == 0x0A] or [len(data)]
            where = draw(st.sampled_from(breaks))
            data[where:where] = draw(st.sampled_from(POISON))
    return bytes(data)


REQUEST_LISTS = st.lists(valid_requests(), min_size=1, max_size=4)
STREAMS = REQUEST_LISTS.map(lambda requests: b"".join(data for _, data in requests))


# ---------------------------------------------------------------- the server


@given(st.binary(max_size=400).flatmap(chunkings), st.sampled_from(HANDLERS))
def test_the_server_survives_any_bytes(chunks: list[bytes], kind: str) -> None:
    """Arbitrary bytes, arbitrarily chunked: nothing escapes, and the connection ends closed."""
    conn = serve(kind)
    feed(conn, chunks)
    end_of_peer(conn)


@given(mutated(STREAMS).flatmap(chunkings), st.sampled_from(HANDLERS))
def test_the_server_survives_mutated_requests(chunks: list[bytes], kind: str) -> None:
    """Valid requests with a few bytes changed or a poisonous line inserted
    (the smuggling tricks among them), arbitrarily chunked: nothing escapes,
    and the connection ends closed."""
    conn = serve(kind)
    feed(conn, chunks)
    end_of_peer(conn)


@given(mutated(STREAMS), st.sampled_from(HANDLERS))
def test_a_silent_peer_is_closed_by_the_deadlines(data: bytes, kind: str) -> None:
    """Without the peer's EOF, the deadlines alone close whatever state the bytes left it in."""
    conn = serve(kind)
    feed(conn, [data])
    conn.clock.advance(FOREVER)
    assert conn.closed


@given(REQUEST_LISTS, st.sampled_from(["at once", "read", "stream", "later"]))
def test_valid_requests_leave_the_connection_idle_or_closed(
    requests: list[tuple[str, bytes]], kind: str
) -> None:
    """A stream of valid requests (within the limits): the connection ends
    idle and kept alive with every request answered, or closed, and then
    only for a reason the requests gave (Connection: close, HTTP/1.0, an
    Expect: 100-continue the handler did not take up)."""
    data = b"".join(data for _, data in requests)
    conn = serve(kind, HTTPLimits(keep_alive_timeout=100))
    conn.deliver(data)
    conn.clock.advance(10.0)
    assert state(conn) in (ServerState.IDLE, ServerState.CLOSED)
    if state(conn) is ServerState.CLOSED:
        assert any(reason in data for reason in (b"Connection: close", b" HTTP/1.0\r\n", b"Expect:"))
    else:
        methods = [method for method, _ in requests]
        replies = read_replies(conn.written, methods=methods)
        assert len([reply for reply in replies if reply.status >= 200]) == len(methods)


def answers(chunks: list[bytes], kind: str, methods: list[str]) -> tuple[list[tuple[int, bytes]], bool]:
    conn = serve(kind)
    feed(conn, chunks)
    conn.clock.advance(2.0)
    replies = read_replies(conn.written, methods=methods, eof=conn.closed)
    return [(reply.status, reply.body) for reply in replies], conn.closed


@given(
    st.tuples(REQUEST_LISTS, st.sampled_from(HANDLERS)).flatmap(
        lambda pair: st.tuples(
            chunkings(b"".join(data for _, data in pair[0])),
            st.just([method for method, _ in pair[0]]),
            st.just(pair[1]),
        )
    )
)
def test_a_valid_stream_split_anywhere_gets_the_same_answers(
    case: tuple[list[bytes], list[str], str],
) -> None:
    """Valid requests split at any points get the answers they get whole (the
    same statuses and bodies; a streamed echo's chunk sizes follow the input's)."""
    chunks, methods, kind = case
    assert answers(chunks, kind, methods) == answers([b"".join(chunks)], kind, methods)


# ---------------------------------------------------------------- the client


STATUS_LINES = st.sampled_from(
    [
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 204 No Content",
        b"HTTP/1.1 304 Not Modified",
        b"HTTP/1.0 200 OK",
        b"HTTP/1.1 404 Not Found",
        b"HTTP/1.1 500 Oops",
    ]
)


@st.composite
def valid_responses(draw: st.DrawFn) -> bytes:
    """One well-formed final response to a GET, maybe after a 100 Continue."""
    status = draw(STATUS_LINES)
    lines = [status.decode()] + [f"{name}: {value}" for name, value in draw(FIELDS)]
    body = draw(st.binary(max_size=30))
    if status.startswith((b"HTTP/1.1 204", b"HTTP/1.1 304")):
        body = encoded = b""  # no body, whatever a framing header would say: so none
    elif status.startswith(b"HTTP/1.1") and draw(st.booleans()):
        lines.append("Transfer-Encoding: chunked")
        encoded = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
        encoded = body
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" if draw(st.booleans()) else b""
    return interim + ("\r\n".join(lines) + "\r\n\r\n").encode() + encoded


RESPONSE_STREAMS = st.lists(valid_responses(), min_size=1, max_size=2)


class Fetching:
    """A client with two GETs queued, on the memory driver."""

    def __init__(self) -> None:
        self.client = HTTPClientProtocol(host="t", limits=HTTPLimits(max_head_size=200, max_body_size=40))
        self.conn = connect(self.client)
        self.outcomes: list[object] = []
        for target in ("/1", "/2"):
            self.client.fetch("GET", target, on_complete=self.complete, on_error=self.failed)

    def complete(self, response: ClientResponse, body: bytes) -> None:
        self.outcomes.append((response.status, body))

    def failed(self, exc: Exception) -> None:
        assert isinstance(exc, HTTPError)
        self.outcomes.append(type(exc))

    def requests_sent(self) -> int:
        return self.conn.written.count(b"GET /")

    def end(self) -> tuple[list[object], bool]:
        """The server's EOF, then time: each request's outcome, and whether the connection closed."""
        if not self.conn.closed and not self.conn.transport.is_closing():
            self.conn.deliver_eof()
        self.conn.clock.advance(1.0)
        return self.outcomes, self.conn.closed


@given(st.binary(max_size=300).flatmap(chunkings))
def test_the_client_survives_any_bytes(chunks: list[bytes]) -> None:
    """Arbitrary response bytes: nothing escapes; after the server's EOF each
    request has exactly one outcome and the connection is closed."""
    fetching = Fetching()
    feed(fetching.conn, chunks)
    outcomes, closed = fetching.end()
    assert len(outcomes) == 2
    assert closed


@given(mutated(RESPONSE_STREAMS.map(b"".join)).flatmap(chunkings))
def test_the_client_survives_mutated_responses(chunks: list[bytes]) -> None:
    """Valid responses with edits or poisonous lines: nothing escapes; one outcome each; closed."""
    fetching = Fetching()
    feed(fetching.conn, chunks)
    outcomes, closed = fetching.end()
    assert len(outcomes) == 2
    assert closed


def answered(answers: list[list[bytes]]) -> tuple[list[object], bool]:
    """Each answer's chunks delivered once its request went out, as a server would."""
    fetching = Fetching()
    for number, chunks in enumerate(answers, start=1):
        if fetching.conn.closed or fetching.requests_sent() < number:
            break
        feed(fetching.conn, chunks)
    return fetching.end()


@given(RESPONSE_STREAMS.flatmap(lambda answers: st.tuples(*map(chunkings, answers))))
def test_valid_responses_split_anywhere_give_the_same_outcomes(chunked: tuple[list[bytes], ...]) -> None:
    """Valid responses split at any points give the outcomes they give whole."""
    assert answered(list(chunked)) == answered([[b"".join(chunks)] for chunks in chunked])

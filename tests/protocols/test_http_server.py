"""The HTTP/1.1 server protocol on the memory driver: keep-alive, pipelining,
streaming both ways, 100-continue, limits, timeouts and handler failures."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.http import Reply, chunked_request, read_replies, request
from weft.drivers.testing import MemoryConnection, chunkings, connect
from weft.protocols.errors import ArgumentError, ProtocolError
from weft.protocols.http import (
    BodyTooLargeError,
    HTTPConnectionClosedError,
    HTTPLimits,
    HTTPServerProtocol,
    HTTPUsageError,
    Request,
    ResponseWriter,
)
from weft.protocols.http._server import LINGER_TIMEOUT

Handler = Callable[[Request, ResponseWriter], object]


def assert_lingering_close(conn: MemoryConnection) -> None:
    """After an error response the server half-closes and discards what the client
    still sends (so a reset cannot destroy the response); the client's EOF ends it."""
    assert conn.eof_written
    assert not conn.closed
    conn.deliver(b"the rest of what the client was sending")
    assert not conn.closed
    conn.deliver_eof()
    assert conn.closed


def echo(request: Request, response: ResponseWriter) -> None:
    """Answers ``METHOD PATH BODY`` once the whole body is in."""

    def done(body: bytes) -> None:
        response.send(
            200, {"content-type": "text/plain"}, f"{request.method} {request.path} ".encode() + body
        )

    request.body.collect(done)


def serve(handler: Handler = echo, *, limits: HTTPLimits | None = None, **kwargs: bool) -> MemoryConnection:
    return connect(HTTPServerProtocol(handler, limits=limits), **kwargs)  # type: ignore[arg-type]


def replies(conn: MemoryConnection, *, methods: list[str] | None = None) -> list[Reply]:
    return read_replies(conn.take_written(), methods=methods, eof=conn.eof_written)


# ------------------------------------------------------------------ basics


def test_a_request_is_answered_and_the_connection_kept() -> None:
    """A GET gets its answer, with Content-Length and the fake clock's Date,
    and the connection stays open for more."""
    conn = serve()
    conn.deliver(request("GET", "/hello"))
    assert replies(conn) == [
        Reply(
            200,
            {"date": "Sun, 09 Sep 2001 01:46:40 GMT", "content-type": "text/plain", "content-length": "11"},
            b"GET /hello ",
        )
    ]
    conn.deliver(request("POST", "/again", body=b"data"))
    assert [reply.body for reply in replies(conn)] == [b"POST /again data"]
    assert not conn.closed


def test_the_request_shows_its_parts() -> None:
    """Method, target, path and query, case-insensitive headers with the raw list, and the version."""
    seen: list[Request] = []

    def keep(request: Request, response: ResponseWriter) -> None:
        seen.append(request)
        response.send(204)

    conn = serve(keep)
    conn.deliver(b"GET /search?q=weft&x=1 HTTP/1.1\r\nHost: test\r\nX-Thing: One\r\nx-thing: two\r\n\r\n")
    (got,) = seen
    assert (got.method, got.target, got.path, got.query) == (
        "GET",
        "/search?q=weft&x=1",
        "/search",
        "q=weft&x=1",
    )
    assert got.headers["HOST"] == "test"
    assert got.headers.get("x-thing") == "One, two"
    assert got.headers.get_all("X-THING") == ["One", "two"]
    assert "x-thing" in got.headers
    assert got.headers.get("missing") is None
    assert got.headers.raw == [(b"Host", b"test"), (b"X-Thing", b"One"), (b"x-thing", b"two")]
    assert got.http_version == "1.1"
    assert replies(conn)[0].status == 204


def test_an_absolute_target_gives_its_path() -> None:
    """A proxy-style absolute target still splits into path and query."""
    seen: list[tuple[str, str]] = []

    def keep(request: Request, response: ResponseWriter) -> None:
        seen.append((request.path, request.query))
        response.send(200)

    conn = serve(keep)
    conn.deliver(request("GET", "http://example.com/a/b?c=d"))
    conn.deliver(request("GET", "http://example.com"))
    assert seen == [("/a/b", "c=d"), ("/", "")]


def test_pipelined_requests_are_answered_in_order_one_at_a_time() -> None:
    """Three requests in one packet: the handler sees the next only after the
    previous response is complete, and the answers come in order."""
    pending: list[tuple[Request, ResponseWriter]] = []

    def later(request: Request, response: ResponseWriter) -> None:
        pending.append((request, response))

    conn = serve(later)
    conn.deliver(request("GET", "/1") + request("GET", "/2") + request("GET", "/3"))
    assert [r.path for r, _ in pending] == ["/1"]
    assert not conn.transport.is_reading()  # h11 holds the rest; nothing more is read meanwhile
    for expected in ("/1", "/2", "/3"):
        req, response = pending[-1]
        assert req.path == expected
        response.send(200, body=expected.encode())
    assert [reply.body for reply in replies(conn)] == [b"/1", b"/2", b"/3"]
    assert conn.transport.is_reading()


def test_the_handler_may_answer_later_from_a_timer() -> None:
    """A handler returns without answering; a clock callback answers a second later."""

    def slow(request: Request, response: ResponseWriter) -> None:
        conn.clock.call_later(1.0, response.send, 200, (), b"late")

    conn = serve(slow)
    conn.deliver(request("GET", "/"))
    assert conn.take_written() == b""
    conn.clock.advance(1.0)
    assert [reply.body for reply in replies(conn)] == [b"late"]


def test_head_gets_headers_without_a_body() -> None:
    """A HEAD request gets the Content-Length of the body it would have had, and no body."""
    conn = serve(lambda request, response: response.send(200, body=b"twelve bytes"))
    conn.deliver(request("HEAD", "/") + request("GET", "/"))
    got = replies(conn, methods=["HEAD", "GET"])
    assert [(reply.headers["content-length"], reply.body) for reply in got] == [
        ("12", b""),
        ("12", b"twelve bytes"),
    ]


# --------------------------------------------------------------- streaming


def test_a_streamed_response_without_length_is_chunked() -> None:
    """start/write/end with no Content-Length to an HTTP/1.1 client: chunked coding."""

    def stream(request: Request, response: ResponseWriter) -> None:
        response.start(200, [("content-type", "text/plain")])
        response.write(b"hello ")
        response.write(b"world")
        response.end()

    conn = serve(stream)
    conn.deliver(request("GET", "/"))
    data = conn.take_written()
    assert b"transfer-encoding: chunked" in data.lower()
    assert b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n" in data
    assert read_replies(data)[0].body == b"hello world"
    assert not conn.closed


def test_an_http_10_client_gets_a_close_delimited_body() -> None:
    """HTTP/1.0 cannot do chunked: the body runs to the close, and the connection closes."""

    def stream(request: Request, response: ResponseWriter) -> None:
        response.start(200)
        response.write(b"old ")
        response.end(b"client")

    conn = serve(stream)
    conn.deliver(b"GET / HTTP/1.0\r\n\r\n")
    data = conn.written
    assert b"chunked" not in data.lower()
    assert data.endswith(b"\r\n\r\nold client")
    assert conn.closed


def test_a_chunked_request_body_is_streamed_to_a_receiver() -> None:
    """The receiver gets the decoded chunks, then the end; the response follows."""
    events: list[object] = []

    def receive(request: Request, response: ResponseWriter) -> None:
        def end() -> None:
            events.append("end")
            response.send(200, body=b"got it")

        request.body.receive(events.append, end)

    conn = serve(receive)
    conn.deliver(chunked_request("/", [b"abc", b"defg"]))
    assert events == [b"abc", b"defg", "end"]
    assert replies(conn)[0].body == b"got it"


def test_pausing_the_body_pauses_reading() -> None:
    """body.pause() stops delivery and the transport's reading; resume() brings the rest."""
    got: list[bytes] = []
    streams = []

    def receive(request: Request, response: ResponseWriter) -> None:
        streams.append(request.body)

        def data(chunk: bytes) -> None:
            got.append(chunk)
            if len(got) == 1:
                request.body.pause()

        request.body.receive(data, lambda: response.send(200, body=b"".join(got)))

    conn = serve(receive)
    head = b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
    conn.deliver(head + b"3\r\nabc\r\n")
    conn.deliver(b"3\r\ndef\r\n0\r\n\r\n")
    assert got == [b"abc"]
    assert not conn.transport.is_reading()
    streams[0].resume()
    conn.clock.advance(0)
    assert got == [b"abc", b"def"]
    assert replies(conn)[0].body == b"abcdef"


def test_a_large_response_follows_flow_control() -> None:
    """A 4 MiB body written as the client reads: write() says when to stop,
    on_writable() when to go on, and the buffer never holds much more than the high-water mark."""
    chunk = b"x" * 16384
    total = 256
    largest = [0]

    def big(request: Request, response: ResponseWriter) -> None:
        sent = [0]
        response.start(200, [("content-length", str(len(chunk) * total))])

        def pump() -> None:
            while sent[0] < total:
                sent[0] += 1
                more = response.write(chunk)
                largest[0] = max(largest[0], conn.transport.get_write_buffer_size())
                if not more:
                    response.on_writable(pump)
                    return
            response.end()

        pump()

    conn = serve(big, peer_reads=False)
    conn.deliver(request("GET", "/"))
    received = bytearray()
    for _ in range(10_000):
        received += conn.read(50_000)
        conn.clock.advance(0)
        if (
            conn.transport.get_write_buffer_size() == 0
            and received.endswith(chunk)
            and len(received) > 4_000_000
        ):
            break
    (reply,) = read_replies(bytes(received))
    assert len(reply.body) == len(chunk) * total
    assert largest[0] <= 64 * 1024 + len(chunk)


def test_on_writable_runs_on_the_next_turn_when_the_client_keeps_up() -> None:
    """on_writable() while writable calls back on the next clock turn, not inside the call;
    a callback for a response that finished meanwhile is dropped."""
    called: list[str] = []

    def handler(request: Request, response: ResponseWriter) -> None:
        def first() -> None:
            called.append("first")
            response.end()

        response.start(200)
        response.on_writable(first)
        response.on_writable(lambda: called.append("second"))
        assert called == []

    conn = serve(handler)
    conn.deliver(request("GET", "/"))
    assert called == ["first"]
    assert replies(conn)[0].status == 200


# ----------------------------------------------------- 100-continue, close


def test_100_continue_is_sent_only_when_the_body_is_asked_for() -> None:
    """With Expect: 100-continue nothing is sent until the handler asks for the body."""
    holders: list[Request] = []

    def later(request: Request, response: ResponseWriter) -> None:
        holders.append(request)
        conn.clock.call_later(1.0, request.body.collect, lambda body: response.send(200, body=body))

    conn = serve(later)
    conn.deliver(request("PUT", "/", [("Expect", "100-continue"), ("Content-Length", "5")]))
    assert conn.take_written() == b""
    conn.clock.advance(1.0)
    assert conn.take_written() == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.deliver(b"hello")
    assert replies(conn)[0].body == b"hello"
    assert not conn.closed


def test_answering_without_the_expected_body_closes_the_connection() -> None:
    """A handler that refuses an expected body answers without 100 Continue,
    says Connection: close, and the connection is not reused."""
    conn = serve(lambda request, response: response.send(403, body=b"no"))
    conn.deliver(request("PUT", "/", [("Expect", "100-continue"), ("Content-Length", "5")]))
    (reply,) = replies(conn)
    assert (reply.status, reply.headers.get("connection")) == (403, "close")
    assert conn.closed


def test_an_unread_body_is_discarded_and_the_connection_reused() -> None:
    """A handler that ignores an ordinary body: the server drops it and serves the next request."""
    conn = serve(lambda request, response: response.send(200, body=request.path.encode()))
    conn.deliver(
        request("POST", "/1", body=b"ignored") + chunked_request("/2", [b"also"]) + request("GET", "/3")
    )
    assert [reply.body for reply in replies(conn)] == [b"/1", b"/2", b"/3"]
    assert not conn.closed


def test_connection_close_is_honoured() -> None:
    """After a Connection: close request's answer the connection closes, and a
    request pipelined after it gets no answer."""
    called: list[str] = []

    def handler(request: Request, response: ResponseWriter) -> None:
        called.append(request.path)
        response.send(200, body=b"bye")

    conn = serve(handler)
    conn.deliver(request("GET", "/1", [("Connection", "close")]) + request("GET", "/2"))
    assert called == ["/1"]
    (reply,) = replies(conn)
    assert reply.headers["connection"] == "close"
    assert conn.closed


def test_a_client_half_close_still_gets_its_answer() -> None:
    """A request followed by EOF is answered (later, even), then the connection closes."""
    responses: list[ResponseWriter] = []
    conn = serve(lambda request, response: responses.append(response))
    conn.deliver(request("GET", "/"))
    conn.deliver_eof()
    assert not conn.closed
    responses[0].send(200, body=b"ok")
    conn.clock.advance(0)
    assert [reply.body for reply in read_replies(conn.written)] == [b"ok"]
    assert conn.closed


# ----------------------------------------------------------- graceful stop


def stop(conn: MemoryConnection) -> None:
    """What weft.drivers.Server does at a graceful stop: tell the protocol."""
    protocol = conn.protocol
    assert isinstance(protocol, HTTPServerProtocol)
    protocol.server_stopping()
    conn.clock.advance(0)


def test_server_stopping_closes_an_idle_keep_alive_connection() -> None:
    """A kept-alive connection waiting for its next request has nothing in
    flight: it is closed at once rather than holding the stop for its
    keep-alive timeout, as uvicorn and nginx do."""
    conn = serve()
    conn.deliver(request("GET", "/"))
    assert [reply.body for reply in replies(conn)] == [b"GET / "]
    stop(conn)
    assert conn.closed
    assert conn.take_written() == b""


def test_server_stopping_closes_a_connection_that_sent_nothing_yet() -> None:
    """A new connection with no byte of a request yet is closed at once too."""
    conn = serve()
    stop(conn)
    assert conn.closed
    assert conn.written == b""


def test_server_stopping_answers_the_request_in_hand_with_connection_close() -> None:
    """A request being handled is answered, with Connection: close, and the
    connection closes after it; a request pipelined after it gets no answer."""
    responses: list[ResponseWriter] = []
    conn = serve(lambda request, response: responses.append(response))
    conn.deliver(request("GET", "/1") + request("GET", "/2"))
    stop(conn)
    assert not conn.closed
    responses[0].send(200, body=b"last")
    conn.clock.advance(0)
    (reply,) = replies(conn)
    assert (reply.body, reply.headers["connection"]) == (b"last", "close")
    assert conn.closed
    assert len(responses) == 1


def test_server_stopping_lets_a_started_response_finish_then_closes() -> None:
    """A response already streaming when the stop comes is finished, then
    the connection closes."""
    responses: list[ResponseWriter] = []
    conn = serve(lambda request, response: responses.append(response))
    conn.deliver(request("GET", "/"))
    responses[0].start(200)
    responses[0].write(b"first ")
    stop(conn)
    responses[0].write(b"second")
    responses[0].end()
    conn.clock.advance(0)
    assert [reply.body for reply in replies(conn)] == [b"first second"]
    assert conn.closed


@pytest.mark.parametrize(
    "sent", [request("GET", "/"), request("POST", "/", body=b"data")], ids=["quick-path", "h11"]
)
def test_a_request_whose_head_was_coming_at_the_stop_is_answered_then_closes(sent: bytes) -> None:
    """The first bytes of a request came before the stop: it is answered,
    with Connection: close, and the connection closes."""
    conn = serve()
    conn.deliver(sent[:10])
    stop(conn)
    assert not conn.closed
    conn.deliver(sent[10:])
    (reply,) = replies(conn)
    assert reply.headers["connection"] == "close"
    assert reply.body.startswith(sent[:4].strip())
    assert conn.closed


# ------------------------------------------------------------------ limits


SMALL = HTTPLimits(max_head_size=200, max_body_size=10)


def oversized_head() -> bytes:
    return request("GET", "/", [("X-Padding", "p" * 300)])


def test_an_oversized_head_in_one_chunk_gets_431() -> None:
    """h11 misses an oversized head that arrives whole (its issue #182): weft answers 431 anyway."""
    conn = serve(limits=SMALL)
    conn.deliver(oversized_head())
    assert [reply.status for reply in replies(conn)] == [431]
    assert_lingering_close(conn)


def test_an_oversized_head_trickled_in_gets_431() -> None:
    """The same head a byte at a time is refused before it is complete."""
    conn = serve(limits=SMALL)
    for byte in oversized_head()[:250]:
        conn.deliver(bytes([byte]))
    assert [reply.status for reply in replies(conn)] == [431]
    assert_lingering_close(conn)


def test_a_head_at_the_limit_passes() -> None:
    """A head of exactly max_head_size bytes is served."""
    base = request("GET", "/", [("X-Padding", "")])
    head = request("GET", "/", [("X-Padding", "p" * (200 - len(base)))])
    assert len(head) == 200
    conn = serve(limits=SMALL)
    conn.deliver(head)
    assert [reply.status for reply in replies(conn)] == [200]


def test_a_declared_body_over_the_limit_gets_413_at_once() -> None:
    """A Content-Length over max_body_size is refused before the handler runs."""
    called: list[Request] = []
    conn = serve(lambda request, response: called.append(request), limits=SMALL)
    conn.deliver(request("POST", "/", [("Content-Length", "11")]))
    assert [reply.status for reply in replies(conn)] == [413]
    assert called == []
    assert_lingering_close(conn)


def test_a_chunked_body_over_the_limit_gets_413_and_the_reader_hears() -> None:
    """A chunked body growing past the limit: the reader's on_error gets BodyTooLargeError, the client 413."""
    errors: list[Exception] = []

    def handler(request: Request, response: ResponseWriter) -> None:
        request.body.collect(lambda body: response.send(200), on_error=errors.append)

    conn = serve(handler, limits=SMALL)
    conn.deliver(chunked_request("/", [b"123456", b"78901"]))
    assert [reply.status for reply in replies(conn)] == [413]
    assert [type(error) for error in errors] == [BodyTooLargeError]
    assert_lingering_close(conn)


def test_collect_can_lower_the_limit() -> None:
    """collect(max_size=...) refuses a body under the connection's limit but over its own."""
    conn = serve(lambda request, response: request.body.collect(lambda body: response.send(200), max_size=3))
    conn.deliver(request("POST", "/", body=b"four"))
    assert [reply.status for reply in replies(conn)] == [413]


def test_malformed_requests_get_400_and_a_close() -> None:
    """A request line that is not HTTP: 400, then the connection closes."""
    conn = serve()
    conn.deliver(b"NOT HTTP AT ALL\r\n\r\n")
    assert [reply.status for reply in replies(conn)] == [400]
    assert_lingering_close(conn)


def test_a_malformed_chunk_tells_the_reader_and_gets_400() -> None:
    """A broken chunked body mid-way: the reader hears an HTTP error, the client gets 400."""
    errors: list[Exception] = []

    def handler(request: Request, response: ResponseWriter) -> None:
        request.body.receive(lambda chunk: None, lambda: response.send(200), errors.append)

    conn = serve(handler)
    conn.deliver(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert [reply.status for reply in replies(conn)] == [400]
    assert len(errors) == 1
    assert isinstance(errors[0], ProtocolError)
    assert_lingering_close(conn)


def test_limits_are_checked() -> None:
    """Nonsense limits raise ArgumentError."""
    for bad in (
        {"max_head_size": 0},
        {"max_body_size": -1},
        {"head_timeout": 0},
        {"keep_alive_timeout": float("nan")},
    ):
        with pytest.raises(ArgumentError):
            HTTPLimits(**bad)


# ---------------------------------------------------------------- timeouts


def test_a_slow_head_gets_408_at_the_deadline() -> None:
    """A client trickling its head is answered 408 and closed head_timeout after the connection began."""
    conn = serve(limits=HTTPLimits(head_timeout=10))
    conn.deliver(b"GET / HTTP/1.1\r\n")
    conn.clock.advance(5)
    conn.deliver(b"Host: test\r\n")
    conn.clock.advance(4.9)
    assert not conn.closed
    conn.clock.advance(0.1)
    assert [reply.status for reply in replies(conn)] == [408]
    assert_lingering_close(conn)


def test_a_silent_connection_closes_at_the_head_deadline_without_a_word() -> None:
    """No byte at all within head_timeout: closed, nothing written."""
    conn = serve(limits=HTTPLimits(head_timeout=10))
    conn.clock.advance(10)
    assert conn.closed
    assert conn.written == b""


def test_an_idle_keep_alive_connection_closes() -> None:
    """After a response, keep_alive_timeout of silence closes the connection quietly."""
    conn = serve(limits=HTTPLimits(keep_alive_timeout=5))
    conn.deliver(request("GET", "/"))
    conn.take_written()
    conn.clock.advance(4.9)
    assert not conn.closed
    conn.clock.advance(0.1)
    assert conn.closed
    assert conn.written == b""


def test_the_head_deadline_restarts_after_each_response() -> None:
    """The head deadline counts from the previous response's end: a client that
    starts a head but never finishes it gets 408 head_timeout after that response."""
    conn = serve(limits=HTTPLimits(head_timeout=10, keep_alive_timeout=5))
    conn.clock.advance(8)
    conn.deliver(request("GET", "/"))
    conn.take_written()
    conn.deliver(b"GET /next HTTP/1.1\r\n")
    conn.clock.advance(9.9)
    assert not conn.closed  # the idle timer stopped with the first byte
    conn.clock.advance(0.1)
    assert [reply.status for reply in replies(conn)] == [408]


def test_timers_do_not_fire_while_a_request_is_handled() -> None:
    """A handler slower than the head and keep-alive timeouts still answers on a
    kept-alive connection (with handler_timeout off, it may take as long as it likes)."""
    responses: list[ResponseWriter] = []
    conn = serve(
        lambda request, response: responses.append(response),
        limits=HTTPLimits(head_timeout=2, keep_alive_timeout=1, handler_timeout=None),
    )
    conn.deliver(request("GET", "/"))
    conn.clock.advance(100)
    assert not conn.closed
    responses[0].send(200)
    assert [reply.status for reply in replies(conn)] == [200]
    conn.clock.advance(1)
    assert conn.closed


# -------------------------------------------------------- handler failures


def test_a_failing_handler_gets_500_and_the_connection_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    """An exception before any response: 500, logged with its traceback, and the next request is served."""

    def handler(request: Request, response: ResponseWriter) -> None:
        if request.path == "/boom":
            raise RuntimeError("kaboom")
        response.send(200, body=b"fine")

    conn = serve(handler)
    with caplog.at_level(logging.ERROR, logger="weft.protocols.http"):
        conn.deliver(request("POST", "/boom", body=b"unread") + request("GET", "/ok"))
    assert [(reply.status, reply.body) for reply in replies(conn)] == [
        (500, b"Internal Server Error\n"),
        (200, b"fine"),
    ]
    (record,) = caplog.records
    assert record.name == "weft.protocols.http"
    assert record.exc_info is not None
    assert "kaboom" in caplog.text
    assert not conn.closed


def test_a_handler_failing_mid_response_aborts_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    """An exception after the response started: the connection is aborted (half a response is lost)."""

    def handler(request: Request, response: ResponseWriter) -> None:
        response.start(200)
        response.write(b"partial")
        raise ValueError("oops")

    conn = serve(handler)
    with caplog.at_level(logging.ERROR, logger="weft.protocols.http"):
        conn.deliver(request("GET", "/"))
    assert conn.closed
    assert "oops" in caplog.text


def test_a_failing_body_callback_gets_500(caplog: pytest.LogCaptureFixture) -> None:
    """An exception in a body receiver counts as the handler's: 500."""

    def handler(request: Request, response: ResponseWriter) -> None:
        request.body.collect(lambda body: 1 / 0)

    conn = serve(handler)
    with caplog.at_level(logging.ERROR, logger="weft.protocols.http"):
        conn.deliver(request("POST", "/", body=b"x"))
    assert [reply.status for reply in replies(conn)] == [500]
    assert "ZeroDivisionError" in caplog.text


def test_misusing_the_response_raises_weft_errors_not_h11_ones(caplog: pytest.LogCaptureFixture) -> None:
    """Writing past the declared Content-Length raises HTTPUsageError in the handler
    (never h11's exception), and the connection is aborted."""
    raised: list[Exception] = []

    def handler(request: Request, response: ResponseWriter) -> None:
        response.start(200, [("content-length", "2")])
        try:
            response.write(b"too long")
        except HTTPUsageError as exc:
            raised.append(exc)
        assert response.abandoned  # the connection is being aborted: later calls do nothing

    conn = serve(handler)
    conn.deliver(request("GET", "/"))
    assert len(raised) == 1
    assert conn.closed


def test_order_is_enforced() -> None:
    """write() before start(), end() twice, a 1xx status: clear errors."""
    problems: list[type[Exception]] = []

    def handler(request: Request, response: ResponseWriter) -> None:
        for call in (lambda: response.write(b"x"), lambda: response.start(100)):
            try:
                call()
            except (HTTPUsageError, ArgumentError) as exc:
                problems.append(type(exc))
        response.send(200)
        try:
            response.end()
        except HTTPUsageError as exc:
            problems.append(type(exc))

    conn = serve(handler)
    conn.deliver(request("GET", "/"))
    assert problems == [HTTPUsageError, ArgumentError, HTTPUsageError]
    assert replies(conn)[0].status == 200


def test_a_lost_connection_tells_the_body_reader_and_silences_the_response() -> None:
    """A reset mid-body: the reader gets HTTPConnectionClosedError; later writes do nothing."""
    errors: list[Exception] = []
    responses: list[ResponseWriter] = []

    def handler(request: Request, response: ResponseWriter) -> None:
        responses.append(response)
        request.body.receive(lambda chunk: None, lambda: None, errors.append)

    conn = serve(handler)
    conn.deliver(request("POST", "/", [("Content-Length", "10")]) + b"half")
    conn.reset()
    assert [type(error) for error in errors] == [HTTPConnectionClosedError]
    responses[0].send(200)  # does nothing, raises nothing
    assert responses[0].abandoned


# ------------------------------------------------------- any chunking at all


STREAMS = [
    request("GET", "/a") + request("POST", "/b", body=b"body") + request("GET", "/c"),
    chunked_request("/chunked", [b"abc", b"", b"defgh"]) + request("DELETE", "/gone"),
    request("PUT", "/e", [("Expect", "100-continue")], body=b"12345") + request("GET", "/after"),
    request("GET", "/x") + request("GET", "/close", [("Connection", "close")]) + request("GET", "/never"),
    request("GET", "/ok") + oversized_head() + request("GET", "/never"),
    request("GET", "/ok") + chunked_request("/big", [b"123456", b"7890123"]),
    request("GET", "/ok") + b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n",
    b"GET /old HTTP/1.0\r\n\r\n",
]


def served(chunks: list[bytes]) -> tuple[bytes, bool]:
    conn = serve(limits=SMALL)
    for chunk in chunks:
        if not conn.closed:
            conn.deliver(chunk)
    return conn.written, conn.closed


@given(st.sampled_from(STREAMS).flatmap(chunkings))
def test_any_chunking_gives_the_same_answers(chunks: list[bytes]) -> None:
    """Split anywhere, every stream (pipelined, chunked, oversized, malformed) gets the same bytes back."""
    assert served(chunks) == served([b"".join(chunks)])


def test_the_chunking_streams_get_the_answers_they_should() -> None:
    """The streams of the property above, whole, get the statuses that are right for them."""
    statuses = []
    for stream in STREAMS:
        data, _ = served([stream])
        statuses.append([reply.status for reply in read_replies(data)])
    assert statuses == [
        [200, 200, 200],
        [200, 200],
        [100, 200, 200],
        [200, 200],
        [200, 431],
        [200, 413],
        [200, 400],
        [200],
    ]


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
        b"GET /\x00 HTTP/1.1\r\nHost: t\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
    ],
)
def test_h11_errors_never_reach_the_driver(garbage: bytes) -> None:
    """Whatever h11 refuses becomes a 400 and a close; nothing raises out of the protocol."""
    conn = serve()
    conn.deliver(garbage)
    if not conn.closed:
        conn.deliver_eof()  # an incomplete head: the end of input is what makes it malformed
    assert [reply.status for reply in replies(conn)] == [400]
    assert conn.closed


def test_other_http_versions_get_505() -> None:
    """An HTTP/2 preface (which h11 parses as a request) gets 505 and a close, not a handler call."""
    called: list[Request] = []
    conn = serve(lambda request, response: called.append(request))
    conn.deliver(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert [reply.status for reply in replies(conn)] == [505]
    assert called == []
    assert_lingering_close(conn)


def test_a_lingering_close_ends_after_its_timeout() -> None:
    """A client that never stops sending after a refusal is cut off after LINGER_TIMEOUT."""
    conn = serve(limits=SMALL)
    conn.deliver(oversized_head())
    assert conn.eof_written
    conn.clock.advance(LINGER_TIMEOUT - 0.1)
    conn.deliver(b"x" * 1000)
    assert not conn.closed
    conn.clock.advance(0.1)
    assert conn.closed


def test_a_response_is_not_writable_once_the_transport_is_closing() -> None:
    """A reset is known to the transport a turn before connection_lost reaches the
    protocol: `writable` must already say no, so a handler that writes "while
    writable" stops instead of producing into a connection that drops it."""
    writers: list[ResponseWriter] = []

    def handler(request: Request, response: ResponseWriter) -> None:
        response.start(200, [("content-type", "text/plain")])
        writers.append(response)

    conn = connect(HTTPServerProtocol(handler))
    conn.deliver(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    (response,) = writers
    assert response.writable
    conn.transport.abort()  # what a driver does on a reset; connection_lost comes next turn
    assert not response.writable
    conn.clock.advance(0)
    assert response.abandoned

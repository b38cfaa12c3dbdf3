"""The HTTP/1.1 client protocol on the memory driver: reuse, queueing,
streaming both ways, limits, and the connection ending."""

from __future__ import annotations

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.http import chunked_request
from weft.drivers.testing import MemoryConnection, chunkings, connect, connect_pair
from weft.protocols.http import (
    BodyTooLargeError,
    ClientResponse,
    HeadersTooLargeError,
    HTTPClientProtocol,
    HTTPConnectionClosedError,
    HTTPError,
    HTTPLimits,
    HTTPServerProtocol,
    HTTPUsageError,
    MalformedHTTPError,
    Request,
    ResponseWriter,
)

Outcome = tuple[int, bytes] | type[Exception]


class Results:
    """What a test's requests ended with, in the order they ended."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.errors: list[Exception] = []

    def complete(self, response: ClientResponse, body: bytes) -> None:
        self.outcomes.append((response.status, body))

    def error(self, exc: Exception) -> None:
        self.errors.append(exc)
        self.outcomes.append(type(exc))


def fetch(client: HTTPClientProtocol, results: Results, target: str = "/", **kwargs: bytes) -> None:
    client.fetch("GET", target, on_complete=results.complete, on_error=results.error, **kwargs)  # type: ignore[arg-type]


def response(body: bytes = b"ok", *headers: str, status: int = 200) -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def requests_in(data: bytes) -> list[tuple[str, str, dict[str, str], bytes]]:
    """The requests a server would read in ``data``: method, target, headers, body."""
    server = h11.Connection(h11.SERVER)
    server.receive_data(data)
    found: list[tuple[str, str, dict[str, str], bytes]] = []
    while True:
        event = server.next_event()
        if isinstance(event, h11.Request):
            headers = {name.decode(): value.decode() for name, value in event.headers}
            found.append((event.method.decode(), event.target.decode(), headers, b""))
        elif isinstance(event, h11.Data):
            method, target, headers, body = found[-1]
            found[-1] = (method, target, headers, body + event.data)
        elif isinstance(event, h11.EndOfMessage):
            server.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
            server.send(h11.EndOfMessage())
            server.start_next_cycle()
        else:
            return found


def client_on(limits: HTTPLimits | None = None) -> tuple[HTTPClientProtocol, MemoryConnection]:
    client = HTTPClientProtocol(host="example.com", limits=limits)
    return client, connect(client)


# ------------------------------------------------------------------ basics


def test_a_fetch_sends_a_request_and_gets_the_body() -> None:
    """fetch() writes a proper request with Host, and on_complete gets status and body."""
    client, conn = client_on()
    results = Results()
    fetch(client, results, "/page?x=1")
    (sent,) = requests_in(conn.take_written())
    assert sent[:2] == ("GET", "/page?x=1")
    assert sent[2]["host"] == "example.com"
    conn.deliver(response(b"hello"))
    assert results.outcomes == [(200, b"hello")]
    assert client.pending == 0
    assert not conn.closed


def test_the_response_shows_its_parts() -> None:
    """Status, reason, case-insensitive headers and version reach on_response."""
    client, conn = client_on()
    seen: list[ClientResponse] = []

    def keep(got: ClientResponse) -> None:
        seen.append(got)
        got.body.discard()

    client.request("GET", "/", on_response=keep)
    conn.deliver(response(b"x", "X-Thing: yes", status=201))
    (got,) = seen
    assert (got.status, got.reason, got.headers["x-THING"], got.http_version) == (
        201,
        "Whatever",
        "yes",
        "1.1",
    )


def test_the_host_header_defaults_to_the_peer() -> None:
    """Without host=, the Host header names the peer's address."""
    client = HTTPClientProtocol()
    conn = connect(client, extra={"peername": ("127.0.0.1", 8080)})
    fetch(client, Results())
    assert requests_in(conn.take_written())[0][2]["host"] == "127.0.0.1:8080"


def test_requests_made_before_the_connection_go_out_once_it_is_up() -> None:
    """A request made before connection_made is sent when the connection comes up."""
    client = HTTPClientProtocol(host="h")
    results = Results()
    fetch(client, results, "/early")
    conn = connect(client)
    assert requests_in(conn.take_written())[0][1] == "/early"


def test_requests_wait_their_turn_on_one_connection() -> None:
    """Two requests made at once: the second goes out after the first response, and both complete in order."""
    client, conn = client_on()
    results = Results()
    fetch(client, results, "/1")
    fetch(client, results, "/2")
    assert [r[1] for r in requests_in(conn.take_written())] == ["/1"]
    assert client.pending == 2
    conn.deliver(response(b"one"))
    assert [r[1] for r in requests_in(conn.take_written())] == ["/2"]
    conn.deliver(response(b"two"))
    assert results.outcomes == [(200, b"one"), (200, b"two")]


def test_a_one_shot_body_has_a_content_length() -> None:
    """body=b'...' goes out with its Content-Length."""
    client, conn = client_on()
    client.request("POST", "/", body=b"payload", on_response=lambda got: got.body.discard())
    (sent,) = requests_in(conn.take_written())
    assert (sent[2]["content-length"], sent[3]) == ("7", b"payload")


def test_a_streamed_body_is_chunked() -> None:
    """streaming=True with no Content-Length: the chunked coding, chunk by chunk."""
    client, conn = client_on()
    handle = client.request("POST", "/", streaming=True, on_response=lambda got: got.body.discard())
    handle.write(b"abc")
    handle.write(b"de")
    handle.end()
    data = conn.take_written()
    assert b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n" in data
    assert requests_in(data)[0][3] == b"abcde"


def test_a_streamed_body_written_while_queued_waits_for_its_turn() -> None:
    """Writes to a queued request are held until it goes out; on_writable runs then."""
    client, conn = client_on()
    fetch(client, Results(), "/first")
    handle = client.request(
        "PUT",
        "/second",
        streaming=True,
        headers={"content-length": "4"},
        on_response=lambda g: g.body.discard(),
    )
    ready: list[bool] = []
    handle.on_writable(lambda: ready.append(handle.writable))
    handle.write(b"da")
    assert not handle.writable
    conn.take_written()
    conn.deliver(response())
    assert ready == [True]
    handle.end(b"ta")
    (sent,) = requests_in(conn.take_written())
    assert (sent[1], sent[3]) == ("/second", b"data")


def test_misuse_of_a_request_raises() -> None:
    """Writing to a one-shot request, ending twice, or both body forms: HTTPUsageError."""
    client, _ = client_on()
    handle = client.request("GET", "/", on_response=lambda got: None)
    with pytest.raises(HTTPUsageError):
        handle.write(b"x")
    with pytest.raises(HTTPUsageError):
        client.request("POST", "/", body=b"x", streaming=True, on_response=lambda got: None)
    streamed = client.request("POST", "/", streaming=True, on_response=lambda got: None)
    streamed.end()
    with pytest.raises(HTTPUsageError):
        streamed.end()


def test_a_response_body_is_streamed_and_can_be_paused() -> None:
    """receive() gets each chunk; pause() stops reading until resume()."""
    client, conn = client_on()
    chunks: list[object] = []
    bodies = []

    def got(resp: ClientResponse) -> None:
        bodies.append(resp.body)

        def data(chunk: bytes) -> None:
            chunks.append(chunk)
            resp.body.pause()

        resp.body.receive(data, lambda: chunks.append("end"))

    client.request("GET", "/", on_response=got)
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    conn.deliver(head + b"2\r\nab\r\n")
    conn.deliver(b"2\r\ncd\r\n0\r\n\r\n")
    assert chunks == [b"ab"]
    assert not conn.transport.is_reading()
    bodies[0].resume()
    conn.clock.advance(0)
    assert chunks == [b"ab", b"cd"]
    bodies[0].resume()
    conn.clock.advance(0)
    assert chunks == [b"ab", b"cd", "end"]


def test_a_head_response_has_no_body() -> None:
    """A HEAD's response with a Content-Length completes with an empty body."""
    client, conn = client_on()
    results = Results()
    client.fetch("HEAD", "/", on_complete=results.complete, on_error=results.error)
    conn.deliver(b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n")
    assert results.outcomes == [(200, b"")]


# --------------------------------------------------------- reuse and ends


def test_connection_close_ends_reuse_and_fails_the_queue() -> None:
    """A response with Connection: close completes; later requests fail with a clear error."""
    client, conn = client_on()
    results = Results()
    fetch(client, results, "/1")
    fetch(client, results, "/2")
    conn.deliver(response(b"last", "Connection: close"))
    assert results.outcomes == [(200, b"last"), HTTPConnectionClosedError]
    assert "Connection: close" in str(results.errors[0])
    assert conn.closed
    with pytest.raises(HTTPConnectionClosedError):
        fetch(client, results)


def test_a_close_delimited_response_ends_at_eof() -> None:
    """A response with neither length nor chunking runs to the server's EOF."""
    client, conn = client_on()
    results = Results()
    fetch(client, results)
    conn.deliver(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")
    conn.deliver_eof()
    assert results.outcomes == [(200, b"until the end")]
    assert conn.closed


def test_the_server_closing_mid_response_fails_the_request() -> None:
    """EOF in the middle of a body: the request fails, with an HTTP error, once."""
    client, conn = client_on()
    results = Results()
    fetch(client, results)
    conn.deliver(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
    conn.deliver_eof()
    assert results.outcomes == [MalformedHTTPError]


def test_a_lost_connection_fails_everything_unfinished() -> None:
    """A reset: the request in flight and those queued each get HTTPConnectionClosedError, once."""
    client, conn = client_on()
    results = Results()
    fetch(client, results, "/1")
    fetch(client, results, "/2")
    conn.reset()
    assert results.outcomes == [HTTPConnectionClosedError, HTTPConnectionClosedError]
    assert isinstance(results.errors[0].__cause__, ConnectionResetError)


def test_close_fails_what_is_pending() -> None:
    """client.close(): pending requests fail, and the connection closes."""
    client, conn = client_on()
    results = Results()
    fetch(client, results)
    client.close()
    conn.clock.advance(0)
    assert results.outcomes == [HTTPConnectionClosedError]
    assert conn.closed


# ------------------------------------------------------------------ limits


SMALL = HTTPLimits(max_head_size=100, max_body_size=10)


def test_an_oversized_response_head_fails_whole_or_split() -> None:
    """A head over max_head_size fails the request whether it comes in one piece or byte by byte."""
    big = response(b"", "X-Pad: " + "p" * 120)
    for pieces in ([big], [bytes([b]) for b in big]):
        client, conn = client_on(SMALL)
        results = Results()
        fetch(client, results, "/1")
        fetch(client, results, "/2")
        for piece in pieces:
            if not conn.closed:
                conn.deliver(piece)
        assert results.outcomes == [HeadersTooLargeError, HTTPConnectionClosedError]
        assert conn.closed


def test_a_declared_body_over_the_limit_fails_at_once() -> None:
    """A Content-Length over max_body_size fails the request before any of the body is read."""
    client, conn = client_on(SMALL)
    results = Results()
    fetch(client, results)
    conn.deliver(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n")
    assert results.outcomes == [BodyTooLargeError]
    assert conn.closed


def test_a_chunked_body_over_the_limit_fails() -> None:
    """A chunked body that grows past max_body_size fails the request."""
    client, conn = client_on(SMALL)
    results = Results()
    fetch(client, results)
    conn.deliver(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n123456\r\n6\r\n789012\r\n0\r\n\r\n"
    )
    assert results.outcomes == [BodyTooLargeError]


def test_fetch_can_lower_the_body_limit() -> None:
    """fetch(max_size=...) refuses a body over its own limit."""
    client, conn = client_on()
    results = Results()
    fetch(client, results, max_size=3)  # type: ignore[arg-type]
    conn.deliver(response(b"four"))
    assert results.outcomes == [BodyTooLargeError]


def test_a_malformed_response_fails_with_an_http_error() -> None:
    """Garbage instead of a status line: MalformedHTTPError (an HTTPError, not h11's), and the queue fails."""
    client, conn = client_on()
    results = Results()
    fetch(client, results, "/1")
    fetch(client, results, "/2")
    conn.deliver(b"SMTP ready\r\n\r\n")
    assert results.outcomes == [MalformedHTTPError, HTTPConnectionClosedError]
    assert isinstance(results.errors[0], HTTPError)
    assert isinstance(results.errors[0].__cause__, h11.RemoteProtocolError)


def test_a_body_reader_with_its_own_on_error_hears_the_failure_once() -> None:
    """A failure mid-body goes to the receiver's on_error, not also to the request's."""
    client, conn = client_on(SMALL)
    body_errors: list[Exception] = []
    request_errors: list[Exception] = []

    def got(resp: ClientResponse) -> None:
        resp.body.receive(lambda chunk: None, lambda: None, body_errors.append)

    client.request("GET", "/", on_response=got, on_error=request_errors.append)
    conn.deliver(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n" + b"x" * 32 + b"\r\n0\r\n\r\n"
    )
    assert [type(error) for error in body_errors] == [BodyTooLargeError]
    assert request_errors == []


# -------------------------------------------------- against weft's server


def echo(request: Request, response: ResponseWriter) -> None:
    request.body.collect(lambda body: response.send(200, body=request.method.encode() + b" " + body))


def test_client_and_server_talk_through_a_byte_at_a_time() -> None:
    """weft's client and server back to back, one byte per move: every request answered, in order."""
    client = HTTPClientProtocol(host="test")
    results = Results()
    client.fetch("GET", "/", on_complete=results.complete, on_error=results.error)
    client.fetch("POST", "/", body=b"one-shot", on_complete=results.complete, on_error=results.error)
    streamed = client.request(
        "PUT",
        "/",
        streaming=True,
        on_response=lambda got: got.body.collect(lambda body: results.complete(got, body)),
        on_error=results.error,
    )
    streamed.write(b"stream")
    streamed.end(b"ed")
    pump = connect_pair(client, HTTPServerProtocol(echo))
    pump.run(max_bytes=1)
    assert results.outcomes == [(200, b"GET "), (200, b"POST one-shot"), (200, b"PUT streamed")]


# ------------------------------------------------------- any chunking at all


#: Each is what a server answers to two requests, one answer per request:
#: the second is delivered only once the client has sent the second request
#: (bytes before that answer nothing, and are refused).
RESPONSE_STREAMS = [
    [response(b"first"), response(b"second")],
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        response(b"2"),
    ],
    [b"HTTP/1.1 100 Continue\r\n\r\n" + response(b"after 100"), response(b"2")],
    [response(b"ok"), response(b"", "X-Pad: " + "p" * 120)],
    [
        response(b"ok"),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n123456789\r\n3\r\nabc\r\n0\r\n\r\n",
    ],
    [response(b"ok"), b"HTTP/1.1 OK\r\n\r\n"],
    [response(b"bye", "Connection: close"), response(b"never")],
]


def fetched(answers: list[list[bytes]]) -> list[Outcome]:
    """Two requests; the server's answer to each (in chunks) is delivered once
    that request has gone out, as a real server's would be."""
    client, conn = client_on(SMALL)
    results = Results()
    fetch(client, results, "/1")
    fetch(client, results, "/2")
    for number, chunks in enumerate(answers, start=1):
        if conn.closed or len(requests_in(conn.written)) < number:
            break  # the client is done, or never sent this request
        for chunk in chunks:
            if not conn.closed:
                conn.deliver(chunk)
    return results.outcomes


@given(st.sampled_from(RESPONSE_STREAMS).flatmap(lambda answers: st.tuples(*map(chunkings, answers))))
def test_any_chunking_gives_the_same_results(chunked_answers: tuple[list[bytes], ...]) -> None:
    """Split anywhere, every response stream (chunked, 1xx, oversized, malformed) gives the same outcomes."""
    assert fetched(list(chunked_answers)) == fetched([[b"".join(chunks)] for chunks in chunked_answers])


def test_the_chunking_streams_give_the_results_they_should() -> None:
    """The streams of the property above, whole, give the outcomes that are right for them."""
    assert [fetched([[answer] for answer in answers]) for answers in RESPONSE_STREAMS] == [
        [(200, b"first"), (200, b"second")],
        [(200, b"abcde"), (200, b"2")],
        [(200, b"after 100"), (200, b"2")],
        [(200, b"ok"), HeadersTooLargeError],
        [(200, b"ok"), BodyTooLargeError],
        [(200, b"ok"), MalformedHTTPError],
        [(200, b"bye"), HTTPConnectionClosedError],
    ]


def test_bytes_before_the_next_request_are_refused() -> None:
    """A second response that comes before the second request was sent answers
    nothing: taking it for that request's would be a desync, so the first
    completes, the connection closes, and the queued request fails."""
    client, conn = client_on()
    results = Results()
    fetch(client, results, "/1")
    fetch(client, results, "/2")
    conn.deliver(response(b"first") + response(b"not yours"))
    assert results.outcomes == [(200, b"first"), HTTPConnectionClosedError]
    assert isinstance(results.errors[0].__cause__, MalformedHTTPError)
    assert conn.closed


def test_a_response_on_an_idle_connection_ends_it() -> None:
    """An unsolicited response while no request is in flight: the connection
    closes (as Go's client does) rather than wait with the bytes unread."""
    client, conn = client_on()
    results = Results()
    fetch(client, results, "/1")
    conn.deliver(response(b"first"))
    assert not conn.closed
    conn.deliver(response(b"nobody asked"))
    assert conn.closed
    with pytest.raises(HTTPConnectionClosedError):
        fetch(client, results, "/2")


def test_a_chunked_request_helper_is_what_the_server_reads() -> None:
    """The tests' chunked_request() helper builds a body the h11 reader accepts whole."""
    assert requests_in(chunked_request("/x", [b"ab", b"c"]))[0][3] == b"abc"


@pytest.mark.parametrize(
    "garbage",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 999999 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",  # cut short by the EOF below
        b"\x00\x01\x02",
    ],
)
def test_h11_errors_never_reach_the_driver(garbage: bytes) -> None:
    """Whatever h11 refuses fails the request with an HTTPError; nothing raises out of the protocol."""
    client, conn = client_on()
    results = Results()
    fetch(client, results)
    conn.deliver(garbage)
    if not conn.closed:
        conn.deliver_eof()
    assert len(results.errors) == 1
    assert isinstance(results.errors[0], HTTPError)
    assert conn.closed

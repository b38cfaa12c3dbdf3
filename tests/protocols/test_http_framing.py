"""Framing that cannot be desynchronised, on the memory driver: the request
smuggling tricks (Content-Length with Transfer-Encoding, obs-fold,
Transfer-Encoding in HTTP/1.0, odd transfer codings, huge chunks) are
refused by the server with a status and a close, and by the client with an
error and a connection that is not reused.  In every case no second message
is ever parsed from the smuggled bytes.  (tests/drivers/test_http_loopback.py has
the same on real sockets.)"""

from __future__ import annotations

import h11
import pytest

from tests.support.http import read_replies
from weft.drivers.testing import MemoryConnection, connect
from weft.protocols.http import (
    BodyTooLargeError,
    ClientResponse,
    HeadersTooLargeError,
    HTTPClientProtocol,
    HTTPConnectionClosedError,
    HTTPLimits,
    HTTPServerProtocol,
    MalformedHTTPError,
    Request,
    ResponseWriter,
    ServerState,
)
from weft.protocols.http._wire import chunk_bytes_announced

#: What follows the ambiguous request in every smuggling attempt: a request
#: the server must never parse.
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"

#: name -> a request whose framing is ambiguous, followed by SMUGGLED.
AMBIGUOUS_REQUESTS = {
    # h11 lets Transfer-Encoding win: the body is "0\r\n\r\n", and the bytes
    # after it would be a second request (to a proxy framing by
    # Content-Length they are the first request's body).
    "content-length and transfer-encoding": (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        + SMUGGLED
    ),
    "transfer-encoding first": (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n"
        + SMUGGLED
    ),
    # h11 unfolds "Transfer-Encoding:" + " chunked" into chunked; a proxy
    # that does not frames by Content-Length.
    "transfer-encoding folded": (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "content-length folded with a tab": (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length:\r\n\t40\r\n\r\n" + SMUGGLED
    ),
    "any field folded": b"GET / HTTP/1.1\r\nHost: t\r\nX-Note: one\r\n  two\r\n\r\n" + SMUGGLED,
    "folded with bare line feeds": b"GET / HTTP/1.1\nHost: t\nX-Note: one\n two\n\n" + SMUGGLED,
    "transfer-encoding in http/1.0": (
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "transfer-encoding in http/1.0 with a length": (
        b"POST / HTTP/1.0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "chunked not last": b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n" + SMUGGLED,
    "a coding before chunked": (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "chunked twice": (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n" + SMUGGLED
    ),
    "an unknown coding": b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\r\n" + SMUGGLED,
}


class Recorder:
    """A handler that reads each body, answers, and remembers every request it saw."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, request: Request, response: ResponseWriter) -> None:
        self.paths.append(request.path)
        request.body.collect(lambda body: response.send(200, body=body))


def assert_refused_and_closed(conn: MemoryConnection, status: int, handler: Recorder) -> None:
    """One error response, a half-close, and, once the client is done, the close;
    no request was ever handed to the handler, whatever came after."""
    assert [reply.status for reply in read_replies(conn.written)] == [status]
    assert b"connection: close" in conn.written
    assert conn.eof_written
    assert conn.protocol.state is ServerState.LINGERING
    conn.deliver(SMUGGLED)  # more of the same: dropped, never parsed
    conn.deliver_eof()
    assert conn.closed
    assert handler.paths == []


@pytest.mark.parametrize("name", list(AMBIGUOUS_REQUESTS))
def test_ambiguous_framing_gets_400_and_a_close(name: str) -> None:
    """Every ambiguous request gets 400 (not 501: see docs/http.md) and the
    connection closes; the request after it is never parsed."""
    handler = Recorder()
    conn = connect(HTTPServerProtocol(handler))
    conn.deliver(AMBIGUOUS_REQUESTS[name])
    assert_refused_and_closed(conn, 400, handler)


def test_a_well_framed_request_next_to_them_is_served() -> None:
    """The control: the same bytes with a single, final chunked coding are two requests, both served."""
    handler = Recorder()
    conn = connect(HTTPServerProtocol(handler))
    conn.deliver(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED)
    assert [reply.status for reply in read_replies(conn.written)] == [200, 200]
    assert handler.paths == ["/", "/smuggled"]
    assert not conn.closed


def test_a_folded_head_is_refused_whatever_the_chunking() -> None:
    """The fold is found in the head's exact bytes, even split between the
    line feed and the space, or left over from a previous request."""
    folded = b"GET / HTTP/1.1\r\nHost: t\r\nX-Note: one\r\n two\r\n\r\n"
    for cut in range(1, len(folded)):
        handler = Recorder()
        conn = connect(HTTPServerProtocol(handler))
        conn.deliver(b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n" + folded[:cut])
        conn.deliver(folded[cut:] + SMUGGLED)
        assert [reply.status for reply in read_replies(conn.written)] == [200, 400], cut
        assert handler.paths == ["/first"]


def test_a_space_inside_a_field_value_is_not_a_fold() -> None:
    """Spaces and tabs inside values, and around the colon's value, are ordinary."""
    handler = Recorder()
    conn = connect(HTTPServerProtocol(handler))
    conn.deliver(b"GET / HTTP/1.1\r\nHost: t\r\nX-Note:  one \t two\t\r\n\r\n")
    assert [reply.status for reply in read_replies(conn.written)] == [200]


# ------------------------------------------------------------ chunk sizes


def chunked_head(path: str = "/") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".encode()


def test_a_chunk_announced_over_the_limit_gets_413_before_it_comes() -> None:
    """A chunk of 2**72 - 1 bytes: 413 as soon as its size line is in, not after
    waiting for bytes that will never come; the reader hears BodyTooLargeError."""
    errors: list[Exception] = []

    def handler(request: Request, response: ResponseWriter) -> None:
        request.body.collect(lambda body: response.send(200), on_error=errors.append)

    conn = connect(HTTPServerProtocol(handler))
    conn.deliver(chunked_head() + b"ffffffffffffffffff\r\n")
    assert [reply.status for reply in read_replies(conn.written)] == [413]
    assert [type(error) for error in errors] == [BodyTooLargeError]
    assert errors[0].size == 2**72 - 1  # type: ignore[attr-defined]
    assert conn.protocol.state is ServerState.LINGERING


def test_a_chunk_one_byte_over_the_limit_is_refused_and_one_at_it_is_read() -> None:
    """With max_body_size 10: 6 + 5 bytes announced is refused before the 5
    come; 6 + 4 is read whole."""
    limits = HTTPLimits(max_body_size=10)
    refused = connect(HTTPServerProtocol(Recorder(), limits=limits))
    refused.deliver(chunked_head() + b"6\r\n123456\r\n5\r\n")
    assert [reply.status for reply in read_replies(refused.written)] == [413]
    served = connect(HTTPServerProtocol(Recorder(), limits=limits))
    served.deliver(chunked_head() + b"6\r\n123456\r\n4\r\n7890\r\n0\r\n\r\n")
    assert [(reply.status, reply.body) for reply in read_replies(served.written)] == [(200, b"1234567890")]


def test_an_unread_body_announcing_a_huge_chunk_closes_after_the_response() -> None:
    """A handler that answers without reading: its response goes out, then the
    server closes rather than drop 2**72 bytes, and never parses what follows."""
    handler_paths: list[str] = []

    def answer(request: Request, response: ResponseWriter) -> None:
        handler_paths.append(request.path)
        response.send(200, body=b"ok")

    conn = connect(HTTPServerProtocol(answer))
    conn.deliver(chunked_head() + b"ffffffffffffffffff\r\n" + SMUGGLED)
    assert [reply.body for reply in read_replies(conn.written)] == [b"ok"]
    assert conn.eof_written
    conn.deliver_eof()
    assert conn.closed
    assert handler_paths == ["/"]


def test_h11_still_tells_the_announced_chunk_size() -> None:
    """weft reads h11's private chunk counter in one place (wire.chunk_bytes_announced);
    this fails the day h11 changes it, so that the early 413 is not silently lost."""
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(chunked_head() + b"ffff\r\n")
    assert isinstance(connection.next_event(), h11.Request)
    assert connection.next_event() is h11.NEED_DATA
    assert chunk_bytes_announced(connection) == 0xFFFF
    connection.receive_data(b"x" * 16)
    event = connection.next_event()
    assert isinstance(event, h11.Data)
    assert chunk_bytes_announced(connection) == 0xFFFF - 16


def test_without_h11_s_counter_the_limit_still_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """If h11 stops exposing the chunk size (chunk_bytes_announced gives None),
    the body is still refused once the bytes received pass the limit."""
    monkeypatch.setattr("weft.protocols.http._server.chunk_bytes_announced", lambda connection: None)
    conn = connect(HTTPServerProtocol(Recorder(), limits=HTTPLimits(max_body_size=10)))
    conn.deliver(chunked_head() + b"ff\r\n" + b"x" * 10)
    assert conn.written == b""  # the size is not known: 10 bytes are within the limit
    conn.deliver(b"x")
    assert [reply.status for reply in read_replies(conn.written)] == [413]


# ------------------------------------------------------------------ client


def response_then_smuggled(head: bytes, body: bytes = b"0\r\n\r\n") -> bytes:
    return head + body + b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"


AMBIGUOUS_RESPONSES = {
    "content-length and transfer-encoding": response_then_smuggled(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    ),
    "transfer-encoding folded": response_then_smuggled(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"
    ),
    "any field folded": response_then_smuggled(
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Note: a\r\n\tb\r\n\r\n", b""
    ),
    "transfer-encoding in http/1.0": response_then_smuggled(
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    ),
    "a folded response after an interim one": response_then_smuggled(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Note: a\r\n b\r\n\r\n", b""
    ),
    "a folded interim response": response_then_smuggled(
        b"HTTP/1.1 100 Continue\r\nX-Note: a\r\n b\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b""
    ),
}


@pytest.mark.parametrize("name", list(AMBIGUOUS_RESPONSES))
def test_the_client_refuses_ambiguous_responses(name: str) -> None:
    """The request fails with MalformedHTTPError, the connection closes, and the
    response hidden after it is never taken for the next request's."""
    client = HTTPClientProtocol(host="t")
    conn = connect(client)
    outcomes: list[object] = []

    def complete(response: ClientResponse, body: bytes) -> None:
        outcomes.append((response.status, body))

    client.fetch("GET", "/1", on_complete=complete, on_error=lambda exc: outcomes.append(type(exc)))
    client.fetch("GET", "/2", on_complete=complete, on_error=lambda exc: outcomes.append(type(exc)))
    conn.deliver(AMBIGUOUS_RESPONSES[name])
    assert outcomes == [MalformedHTTPError, HTTPConnectionClosedError]
    assert conn.closed
    with pytest.raises(HTTPConnectionClosedError):
        client.fetch("GET", "/3", on_complete=complete)


def test_the_client_refuses_a_chunk_announced_over_its_limit() -> None:
    """A response announcing a chunk past max_body_size fails at once, before any of it comes."""
    client = HTTPClientProtocol(host="t", limits=HTTPLimits(max_body_size=100))
    conn = connect(client)
    errors: list[Exception] = []
    client.fetch("GET", "/", on_complete=lambda response, body: None, on_error=errors.append)
    conn.deliver(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n")
    assert [type(error) for error in errors] == [BodyTooLargeError]
    assert conn.closed


def test_the_client_measures_a_head_after_an_interim_response_exactly() -> None:
    """After a 100 Continue, the final response's head is measured on its own:
    at the limit it passes, one byte over it fails, whatever the chunking."""
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    base = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: \r\n\r\n"
    for extra, expected in ((100 - len(base), [200]), (101 - len(base), [HeadersTooLargeError])):
        head = base.replace(b"X-Pad: ", b"X-Pad: " + b"p" * extra)
        for cut in (None, len(interim), len(interim) + 5):
            client = HTTPClientProtocol(host="t", limits=HTTPLimits(max_head_size=100))
            conn = connect(client)
            outcomes: list[object] = []

            def complete(response: ClientResponse, body: bytes, outcomes: list[object] = outcomes) -> None:
                outcomes.append(response.status)

            def failed(exc: Exception, outcomes: list[object] = outcomes) -> None:
                outcomes.append(type(exc))

            client.fetch("GET", "/", on_complete=complete, on_error=failed)
            data = interim + head
            for piece in [data] if cut is None else [data[:cut], data[cut:]]:
                conn.deliver(piece)
            assert outcomes == expected, (extra, cut)


@pytest.mark.parametrize(
    "host",
    ["attack test", "attack.test/x", "user@host", "host?q", "host#f", "h\tost", "ex\u00e4mple.org", "[::1"],
)
def test_an_invalid_host_is_refused_with_400_and_a_close(host: str) -> None:
    """RFC 9112 section 3.2: a Host that cannot be uri-host[:port] gets 400 and the
    connection closes; the handler never sees the request."""
    seen: list[Request] = []
    conn = connect(HTTPServerProtocol(lambda request, response: seen.append(request)))
    conn.deliver(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode("latin-1"))
    (reply,) = read_replies(conn.written)
    assert reply.status == 400
    assert not seen
    conn.deliver_eof()
    assert conn.closed


@pytest.mark.parametrize(
    "host",
    ["example.org", "example.org:8080", "127.0.0.1:80", "[::1]:8000", "[fe80::1%25eth0]", "", "a-b_c~d"],
)
def test_a_valid_host_is_served(host: str) -> None:
    conn = connect(HTTPServerProtocol(lambda request, response: response.send(200, body=b"ok")))
    conn.deliver(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode("latin-1"))
    (reply,) = read_replies(conn.written)
    assert reply.status == 200

"""The quick path (weft.protocols.http._quick) held to h11, the reference.

Three levels, each on generated input and on the malformed and smuggling
catalogue: the head reader either declines or reads exactly the request h11
reads; the response writer either declines or writes exactly h11's bytes;
and a server with the quick path answers every byte stream, in every
chunking, exactly as a server on h11 alone does (same bytes out, same
requests handed to the handler, same end of the connection).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.protocols.test_http_framing import AMBIGUOUS_REQUESTS
from weft.drivers.testing import chunkings, connect
from weft.protocols.http import HTTPLimits, HTTPServerProtocol, Request, ResponseWriter, _server
from weft.protocols.http._headers import Headers
from weft.protocols.http._quick import read_head, write_response

LIMITS = HTTPLimits(max_head_size=300, max_requests_per_turn=3)
FOREVER = 1000.0

# ------------------------------------------------------------ generated input

_TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: Bytes that are often where parsers differ: controls, DEL, obs-text, separators.
_TRICKY = [b"\x00", b"\x01", b"\x7f", b"\x80", b"\xff", b"\r", b"\n", b" ", b"\t", b":", b"\x0b", b"\x0c"]

tokens = st.text(_TOKEN_CHARS, min_size=1, max_size=8).map(str.encode)
visible = st.binary(min_size=0, max_size=10).map(lambda b: bytes(0x21 + c % 94 for c in b))
tricky = st.lists(st.sampled_from(_TRICKY) | visible, max_size=4).map(b"".join)
values = st.one_of(visible, tricky, st.builds(lambda a, b: a + b" " + b, visible, visible))
spaces = st.sampled_from([b"", b" ", b"\t", b"  "])
names = st.one_of(
    tokens,
    st.sampled_from(
        [
            b"Host",
            b"host",
            b"Content-Length",
            b"Transfer-Encoding",
            b"Connection",
            b"Expect",
            b"Upgrade",
            b"TE",
            b"Trailer",
            b"X-A",
            b"x-a",
        ]
    ),
    tricky,
)


@st.composite
def field_lines(draw: st.DrawFn) -> bytes:
    name = draw(names)
    if draw(st.booleans()) and name.lower() == b"connection":
        value = draw(st.sampled_from([b"keep-alive", b"close", b"Keep-Alive", b"upgrade"]))
    else:
        value = draw(values)
    return name + b":" + draw(spaces) + value + draw(spaces)


@st.composite
def request_heads(draw: st.DrawFn) -> bytes:
    """A request head (without the blank line's CRLF), mostly valid, sometimes not."""
    method = draw(
        st.one_of(st.sampled_from([b"GET", b"HEAD", b"POST", b"DELETE", b"CONNECT"]), tokens, tricky)
    )
    target = draw(st.one_of(st.just(b"/"), visible.map(lambda v: b"/" + v), tricky))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"http/1.1"]))
    separator = draw(st.sampled_from([b" ", b" ", b"  ", b"\t"]))
    lines = [method + separator + target + b" " + version]
    if draw(st.integers(0, 4)):
        lines.append(b"Host: " + draw(st.sampled_from([b"example.com", b"t", b"a:80", b""])))
    lines += draw(st.lists(field_lines(), max_size=5))
    newline = draw(st.sampled_from([b"\r\n"] * 6 + [b"\n"]))
    return b"".join(line + newline for line in lines)


def h11_reads(head: bytes) -> tuple[h11.Request, bytes]:
    """The request h11 reads from ``head`` + CRLF, checked to have no body; and what it holds after."""
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(head + b"\r\nNEXT")
    request = connection.next_event()
    assert isinstance(request, h11.Request)
    assert isinstance(connection.next_event(), h11.EndOfMessage)
    assert connection.our_state is h11.SEND_RESPONSE
    return request, connection.trailing_data[0]


@given(request_heads())
@settings(max_examples=600)
def test_read_head_reads_what_h11_reads_or_declines(head: bytes) -> None:
    """Whatever the head, the quick reader gives None or exactly h11's request,
    with no body, the connection kept alive, and nothing of the next bytes taken."""
    quick = read_head(head)
    if quick is None:
        return
    method, target, raw, index = quick
    request, rest = h11_reads(head)
    assert (method, target, request.http_version) == (request.method, request.target, b"1.1")
    assert raw == list(request.headers.raw_items())
    assert index == Headers(raw)._index
    assert rest == b"NEXT"
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(head + b"\r\n")
    connection.next_event()
    connection.next_event()
    connection.send(h11.Response(status_code=200, headers=[(b"content-length", b"0")]))
    connection.send(h11.EndOfMessage())
    assert connection.our_state is h11.DONE  # kept alive, as the quick path assumes


@pytest.mark.parametrize(
    "head",
    [
        b"GET /hello.txt HTTP/1.1\r\nHost: localhost:8080\r\n",
        b"HEAD / HTTP/1.1\r\nhost: t\r\n",
        b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n"
        b"Connection: keep-alive\r\nCookie: a=b; c=d\r\nX-Empty:\r\n",
    ],
)
def test_read_head_takes_the_common_requests(head: bytes) -> None:
    """What browsers, curl and wrk send is read by the quick path, as h11 reads it."""
    quick = read_head(head)
    assert quick is not None
    request, _ = h11_reads(head)
    assert quick[0] == request.method
    assert quick[1] == request.target
    assert quick[2] == list(request.headers.raw_items())


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.0\r\n",  # HTTP/1.0: h11 closes after it
        b"GET / HTTP/1.1\r\n",  # no Host
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n",
        b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Note: one\r\n two\r\n",  # obs-fold
        b"GET / HTTP/1.1\r\nHost: a\r\nX: \x80\r\n",  # obs-text: h11 takes it, the quick path does not
    ],
)
def test_read_head_leaves_the_rest_to_h11(head: bytes) -> None:
    """Framing, connection changes, and anything beyond the strict grammar are h11's."""
    assert read_head(head) is None


# ------------------------------------------------------------ responses

response_fields = st.lists(
    st.tuples(
        st.one_of(
            tokens, st.sampled_from([b"Connection", b"Host", b"Transfer-Encoding", b"content-length"]), tricky
        ),
        st.one_of(values, st.sampled_from([b"close", b"keep-alive, close", b"chunked", b"5"])),
    ),
    max_size=5,
)


@given(
    st.sampled_from([200, 201, 204, 206, 304, 404, 500, 599]),
    response_fields,
    st.binary(max_size=20),
    st.booleans(),
    st.booleans(),
)
@settings(max_examples=400)
def test_write_response_writes_what_h11_writes_or_declines(
    status: int, fields: list[tuple[bytes, bytes]], body: bytes, head_only: bool, add_length: bool
) -> None:
    """A whole response to a keep-alive HTTP/1.1 request: the quick writer gives
    None or h11's exact bytes, and says it closes exactly when h11 would."""
    if add_length:
        fields = [*fields, (b"content-length", b"%d" % len(body))]
    quick = write_response(status, b"Reason", fields, body, head_only=head_only)
    if quick is None:
        return
    data, closes = quick
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(b"%s / HTTP/1.1\r\nHost: t\r\n\r\n" % (b"HEAD" if head_only else b"GET"))
    connection.next_event()
    connection.next_event()
    expected = connection.send(h11.Response(status_code=status, headers=fields, reason=b"Reason")) or b""
    if body and not head_only:
        expected += connection.send(h11.Data(data=body)) or b""
    expected += connection.send(h11.EndOfMessage()) or b""
    assert data == expected
    assert closes == (connection.our_state is h11.MUST_CLOSE)


def test_write_response_writes_the_usual_answer() -> None:
    """The answer every benchmark and most handlers send goes the quick way."""
    quick = write_response(
        200, b"OK", [(b"content-type", b"text/plain"), (b"content-length", b"2")], b"hi", head_only=False
    )
    assert quick == (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nhi", False)


# ------------------------------------------------------------ whole servers


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    with caplog.at_level(logging.CRITICAL, logger="weft.protocols.http"):
        yield


class Recorder:
    """Answers in several ways, by path, and remembers every request it saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, list[tuple[bytes, bytes]], str]] = []

    def __call__(self, request: Request, response: ResponseWriter) -> None:
        self.seen.append((request.method, request.target, request.headers.raw, request.http_version))
        if "stream" in request.path:
            response.start(200, {"x-kind": "streamed"})
            response.write(b"part ")
            response.end(b"end")
        elif "collect" in request.path:
            request.body.collect(lambda body: response.send(200, body=b"got %d" % len(body)))
        elif "close" in request.path:
            response.send(200, {"connection": "close"}, b"bye")
        elif "bad" in request.path:
            response.send(200, {"x-bad": "a\x00b"}, b"never")
        else:
            response.send(200, {"content-type": "text/plain"}, b"hello " + request.path.encode())


def serve(chunks: list[bytes], *, quick: bool) -> tuple[bytes, bool, bool, list[object]]:
    """Feed ``chunks`` (then EOF, then a long wait) to one server; what came of it."""
    saved = _server.QUICK_PATH
    _server.QUICK_PATH = quick
    try:
        handler = Recorder()
        conn = connect(HTTPServerProtocol(handler, limits=LIMITS))
        for chunk in chunks:
            if not conn.closed:
                conn.deliver(chunk)
            conn.clock.advance(0)
        if not conn.closed:
            conn.deliver_eof()
        conn.clock.advance(FOREVER)
        return conn.written, conn.eof_written, conn.closed, list(handler.seen)
    finally:
        _server.QUICK_PATH = saved


def assert_same_as_h11(chunks: list[bytes]) -> None:
    assert serve(chunks, quick=True) == serve(chunks, quick=False)


requests = st.one_of(
    request_heads().map(lambda head: head + b"\r\n"),
    st.sampled_from(
        [
            b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /collect HTTP/1.1\r\nHost: t\r\n\r\n",
            b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /close HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /bad HTTP/1.1\r\nHost: t\r\n\r\n",
            b"POST /collect HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
            b"GET /hello HTTP/1.1\r\nHost: bad host\r\n\r\n",
            b"GET /hello HTTP/1.0\r\n\r\n",
            b"\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /" + b"a" * 400 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01",  # a TLS ClientHello's first bytes
            b"GET /partial HTTP/1.1\r\nHo",
        ]
    ),
)


@given(
    st.lists(requests, min_size=1, max_size=4)
    .map(b"".join)
    .flatmap(lambda data: chunkings(data, max_chunks=6))
)
@settings(max_examples=300, deadline=None)
def test_a_server_answers_as_h11_alone_would(chunks: list[bytes]) -> None:
    """Pipelines of generated requests, valid and not, in any chunking: the
    quick path changes nothing a client or the handler can see."""
    assert_same_as_h11(chunks)


@pytest.mark.parametrize("name", list(AMBIGUOUS_REQUESTS))
@given(data=st.data())
@settings(max_examples=20, deadline=None)
def test_the_smuggling_catalogue_is_refused_as_h11_alone_refuses_it(name: str, data: st.DataObject) -> None:
    """Each ambiguous request of the catalogue, after a quick request and in any
    chunking: the same refusal, and the smuggled request is never read."""
    stream = b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n" + AMBIGUOUS_REQUESTS[name]
    chunks = data.draw(chunkings(stream, max_chunks=8))
    assert_same_as_h11(chunks)
    assert b"/smuggled" not in b"".join(str(seen).encode() for seen in serve(chunks, quick=True)[3])


def test_the_quick_path_serves_a_keep_alive_stream_without_h11() -> None:
    """The usual stream never reaches h11 (its state stays idle): the quick path
    is really taken, and the answers are h11's."""
    stream = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n" * 5
    handler = Recorder()
    protocol = HTTPServerProtocol(handler, limits=LIMITS)
    conn = connect(protocol)
    conn.deliver(stream)
    conn.clock.advance(0)
    conn.clock.advance(0)
    assert conn.written.count(b"HTTP/1.1 200 OK") == 5
    assert protocol._h11.their_state is h11.IDLE
    assert protocol._h11.trailing_data == (b"", False)
    assert serve([stream], quick=True)[:3] == serve([stream], quick=False)[:3]

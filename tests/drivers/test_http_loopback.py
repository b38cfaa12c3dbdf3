"""weft's HTTP server and client on real loopback sockets, on every driver
that runs here, with Python's http.client (and curl, which is installed
where these tests run) as the other end, and raw sockets for the request
smuggling attempts.  The driver runs in the test's thread; the foreign
client (or server) in a worker thread; every wait is bounded."""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from tests.support import TIMEOUT
from tests.support.http import read_replies
from weft.drivers import Runtime, TCPRuntime, open_runtime
from weft.protocols.http import (
    BodyTooLargeError,
    ClientResponse,
    HTTPClientProtocol,
    HTTPConnectionClosedError,
    HTTPLimits,
    HTTPServerProtocol,
    MalformedHTTPError,
    Request,
    ResponseWriter,
)

#: Bounds every wait; a passing test never comes near it.

CURL = shutil.which("curl")

T = TypeVar("T")


#: Every request path the handler saw, in every test (each test clears it).
SEEN: list[str] = []


def handler(request: Request, response: ResponseWriter) -> None:
    """/echo answers the body; /big streams a MiB with flow control; /count
    counts an upload as it streams; /boom raises."""
    SEEN.append(request.path)
    if request.path == "/boom":
        raise RuntimeError("handler failure, on purpose")
    if request.path == "/big":
        chunk, left = b"z" * 65536, [16]
        response.start(200, [("content-type", "application/octet-stream")])

        def more() -> None:
            while left[0]:
                left[0] -= 1
                if not response.write(chunk):
                    response.on_writable(more)
                    return
            response.end()

        more()
        return
    if request.path == "/count":
        size = [0]

        def count(chunk: bytes) -> None:
            size[0] += len(chunk)

        request.body.receive(count, lambda: response.send(200, body=b"%d" % size[0]))
        return
    request.body.collect(lambda body: response.send(200, {"x-method": request.method}, body))


class Served:
    """A weft HTTP server on a runtime, counting its connections."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.connections = 0
        self.listener = runtime.listen_tcp(self.make, "127.0.0.1", 0)
        self.port: int = self.listener.addresses[0][1]

    def make(self) -> HTTPServerProtocol:
        self.connections += 1
        return HTTPServerProtocol(handler, limits=HTTPLimits(max_body_size=1 << 30))

    def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` in a worker thread while the runtime serves; its result."""
        outcome: list[Any] = []

        def target() -> None:
            try:
                outcome.append(("ok", work()))
            except BaseException as exc:
                outcome.append(("error", exc))
            self.runtime.call_soon_threadsafe(lambda: None)  # wake the loop to see it

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        assert self.runtime.run_until(lambda: bool(outcome), TIMEOUT)
        thread.join(TIMEOUT)
        kind, value = outcome[0]
        if kind == "error":
            raise value
        return value  # type: ignore[no-any-return]


#: Every test runs on each driver with TCP (the ``served`` fixture takes ``driver``).
pytestmark = pytest.mark.drivers(requires={TCPRuntime})


@pytest.fixture
def served(driver: str) -> Iterator[Served]:
    SEEN.clear()
    runtime = open_runtime(driver)
    try:
        made = Served(runtime)
        yield made
        made.listener.close()
        # Every client is done: let each connection reach its end before the runtime goes.
        assert runtime.run_until(lambda: not made.listener.connections, TIMEOUT)
    finally:
        runtime.close()


def test_http_client_reuses_one_connection(served: Served) -> None:
    """http.client: a GET, a POST, a chunked upload and a streamed MiB, all on one kept-alive connection."""

    def talk() -> list[tuple[int, bytes]]:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=TIMEOUT)
        got = []
        try:
            conn.request("GET", "/echo")
            reply = conn.getresponse()
            got.append((reply.status, reply.read()))
            conn.request("POST", "/echo", body=b"posted")
            reply = conn.getresponse()
            got.append((reply.status, reply.read()))
            conn.request("POST", "/count", body=iter([b"a" * 100_000] * 30), encode_chunked=True)
            reply = conn.getresponse()
            got.append((reply.status, reply.read()))
            conn.request("GET", "/big")
            reply = conn.getresponse()
            got.append((reply.status, bytes([len(reply.read()) // 65536])))
        finally:
            conn.close()
        return got

    assert served.run(talk) == [(200, b""), (200, b"posted"), (200, b"3000000"), (200, bytes([16]))]
    assert served.connections == 1


def test_a_failing_handler_gives_http_client_a_500(served: Served) -> None:
    """A handler that raises: http.client gets 500, and the same connection serves the next request."""

    def talk() -> list[int]:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=TIMEOUT)
        try:
            conn.request("GET", "/boom")
            first = conn.getresponse()
            first.read()
            conn.request("GET", "/echo")
            second = conn.getresponse()
            second.read()
            return [first.status, second.status]
        finally:
            conn.close()

    assert served.run(talk) == [500, 200]
    assert served.connections == 1


def test_weft_client_against_weft_server(served: Served) -> None:
    """weft's client on the same runtime: three requests, one connection, answers in order."""
    client = HTTPClientProtocol(host="localhost")
    results: list[tuple[int, bytes] | Exception] = []

    def done(response: ClientResponse, body: bytes) -> None:
        results.append((response.status, body if len(body) < 100 else b"%d bytes" % len(body)))

    client.fetch("GET", "/echo", on_complete=done, on_error=results.append)
    client.fetch("PUT", "/echo", body=b"put", on_complete=done, on_error=results.append)
    client.fetch("GET", "/big", on_complete=done, on_error=results.append, max_size=1 << 21)
    connecting = served.runtime.connect_tcp(lambda: client, "127.0.0.1", served.port)
    assert served.runtime.run_until(lambda: len(results) == 3, TIMEOUT)
    assert results == [(200, b""), (200, b"put"), (200, b"1048576 bytes")]
    assert served.connections == 1
    client.close()
    assert connecting.result().is_closing()


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_keep_alive_expect_and_http_10(served: Served) -> None:
    """curl: two URLs share a connection; a big upload goes through Expect: 100-continue; HTTP/1.0 works."""
    base = f"http://127.0.0.1:{served.port}"
    curl = [str(CURL), "--silent", "--show-error", "--max-time", "15"]

    def talk() -> list[bytes]:
        results = []
        for args, data in (
            ([f"{base}/echo", f"{base}/echo"], None),
            (["--data-binary", "@-", "-H", "Expect: 100-continue", f"{base}/count"], b"u" * 2_000_000),
            (["--http1.0", "--data-binary", "@-", f"{base}/echo"], b"old"),
        ):
            done = subprocess.run(
                [*curl, *args], input=data, capture_output=True, timeout=TIMEOUT, check=True
            )
            results.append(done.stdout)
        return results

    assert served.run(talk) == [b"", b"2000000", b"old"]
    assert served.connections == 3


# ------------------------------------------------------ smuggling, on the wire

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"

#: name -> (bytes a client sends, the status it must get)
SMUGGLING = {
    "content-length and transfer-encoding": (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n" + SMUGGLED,
        400,
    ),
    "transfer-encoding folded": (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"
        b"0\r\n\r\n" + SMUGGLED,
        400,
    ),
    "transfer-encoding in http/1.0": (
        b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
        400,
    ),
    "a coding before chunked": (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
        400,
    ),
    "a chunk of 2**72 bytes": (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n"
        + SMUGGLED,
        413,
    ),
}


def send_raw(port: int, data: bytes) -> tuple[bytes, bool]:
    """Send ``data`` on a fresh connection and read until the server closes its
    side: what came back, and whether the server did close (rather than time out)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        received = bytearray()
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            return bytes(received), False
        return bytes(received), True


@pytest.mark.parametrize("name", list(SMUGGLING))
def test_smuggling_is_refused_on_the_wire(served: Served, name: str) -> None:
    """A raw socket sends an ambiguous request with a second one hidden after
    it: one error response, the server closes the connection, and the hidden
    request never reaches the handler (nor does an ambiguous one; the huge
    chunk's request is well framed, and its handler hears the refusal)."""
    data, status = SMUGGLING[name]
    received, closed = served.run(lambda: send_raw(served.port, data))
    assert closed
    assert [reply.status for reply in read_replies(received, eof=True)] == [status]
    assert b"connection: close" in received
    assert (["/echo"] if status == 413 else []) == SEEN


def raw_server(responses: bytes) -> tuple[socket.socket, Callable[[], bytes]]:
    """A one-connection server that answers whatever comes with ``responses``,
    then reads until the client closes; the result is what the client sent."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)

    def serve_one() -> bytes:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            got = conn.recv(65536)
            conn.sendall(responses)
            while chunk := conn.recv(65536):
                got += chunk
            return got

    return listener, serve_one


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ],
    ids=["content-length and transfer-encoding", "transfer-encoding folded", "transfer-encoding in http/1.0"],
)
def test_the_client_refuses_smuggled_responses_on_the_wire(served: Served, response: bytes) -> None:
    """weft's client against a raw server whose response is ambiguous and hides
    a second one: the request fails with MalformedHTTPError, the queued one with
    HTTPConnectionClosedError, and the client closes the connection (the
    server sees its EOF) instead of reading the hidden response."""
    listener, serve_one = raw_server(response + b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled")
    with listener:
        port = listener.getsockname()[1]
        client = HTTPClientProtocol(host="t")
        errors: list[Exception] = []
        for target in ("/1", "/2"):
            client.fetch("GET", target, on_complete=lambda got, body: None, on_error=errors.append)
        served.runtime.connect_tcp(lambda: client, "127.0.0.1", port)
        sent = served.run(serve_one)
    assert [type(error) for error in errors] == [MalformedHTTPError, HTTPConnectionClosedError]
    assert sent.count(b"GET ") == 1  # the second request never went out


def test_the_client_refuses_a_huge_chunk_on_the_wire(served: Served) -> None:
    """A response announcing a 2**72-byte chunk fails at once (BodyTooLargeError) and the client closes."""
    listener, serve_one = raw_server(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n"
    )
    with listener:
        client = HTTPClientProtocol(host="t")
        errors: list[Exception] = []
        client.fetch("GET", "/", on_complete=lambda got, body: None, on_error=errors.append)
        served.runtime.connect_tcp(lambda: client, "127.0.0.1", listener.getsockname()[1])
        served.run(serve_one)
    assert [type(error) for error in errors] == [BodyTooLargeError]

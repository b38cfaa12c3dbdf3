"""weft's HTTP server and client on real loopback sockets, on every driver
that runs here, with Python's http.client (and curl, which is installed
where these tests run) as the other end.  The driver runs in the test's
thread; the foreign client in a worker thread; every wait is bounded."""

from __future__ import annotations

import http.client
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from tests.processes import AVAILABLE_DRIVERS
from weft.drivers.registry import open_runtime
from weft.drivers.runtime import Runtime
from weft.protocols.http import (
    ClientResponse,
    HTTPClientProtocol,
    HTTPLimits,
    HTTPServerProtocol,
    Request,
    ResponseWriter,
)

#: Bounds every wait; a passing test never comes near it.
TIMEOUT = 20.0

CURL = shutil.which("curl")

T = TypeVar("T")


def handler(request: Request, response: ResponseWriter) -> None:
    """/echo answers the body; /big streams a MiB with flow control; /count
    counts an upload as it streams; /boom raises."""
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
        return HTTPServerProtocol(handler, limits=HTTPLimits(max_body_size=None))

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


@pytest.fixture(params=AVAILABLE_DRIVERS)
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    runtime = open_runtime(request.param)
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

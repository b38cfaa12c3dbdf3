"""weft's protocols handed straight to asyncio's loop methods, on asyncio's
default loop and on uvloop: no weft driver, asyncio's (or uvloop's) own
transports, and the clock of the running loop (``clock_of``'s fallback).

Every factory here goes to ``loop.create_server``, ``create_unix_server`` or
``create_connection`` as it is, with no cast and no ``type: ignore``: mypy
--strict checks this file, so it is also the proof that weft's protocol
types fit asyncio's.  Real loopback sockets; every wait is bounded by
TIMEOUT, and the timeouts under test are short and waited for by event.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import h11
import pytest

from tests.support import TIMEOUT
from tests.support.http import Reply, read_replies
from tests.support.tls import HOSTNAME, client_context, server_context
from weft.protocols import EchoProtocol
from weft.protocols._loop_clock import LoopClock
from weft.protocols.contract import Protocol, Transport, clock_of
from weft.protocols.framing import LineProtocol
from weft.protocols.http import (
    ClientResponse,
    HTTPClientProtocol,
    HTTPLimits,
    HTTPServerProtocol,
    MalformedHTTPError,
    Request,
    ResponseWriter,
)
from weft.protocols.pubsub import PubSubHub, PubSubServerProtocol
from weft.protocols.tls import TLSHandshakeTimeoutError, TLSProtocol, TLSTransport

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_factory(request: pytest.FixtureRequest) -> LoopFactory:
    """asyncio's default loop, then uvloop's (from the test extra)."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory: LoopFactory = uvloop.new_event_loop
        return factory
    return asyncio.new_event_loop


def run(loop_factory: LoopFactory, main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main()`` on a new loop of the kind under test, for at most TIMEOUT seconds."""

    async def bounded() -> T:
        return await asyncio.wait_for(main(), TIMEOUT)

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(bounded())


def hello(request: Request, response: ResponseWriter) -> None:
    """Answers every request with its path."""
    response.send(200, [("content-type", "text/plain")], b"hello " + request.path.encode())


class H11Client:
    """An HTTP/1.1 client made of h11 and asyncio streams: the yardstick."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.connection = h11.Connection(h11.CLIENT)

    async def get(self, target: str) -> tuple[int, bytes]:
        """GET ``target``; the response's status and body."""
        connection = self.connection
        if connection.our_state is h11.DONE:
            connection.start_next_cycle()
        request = h11.Request(method="GET", target=target, headers=[("host", "test")])
        self.writer.write(connection.send(request) + connection.send(h11.EndOfMessage()))
        status, body = 0, b""
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await self.reader.read(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, body
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the server closed before answering")

    def close(self) -> None:
        self.writer.close()


async def static_checks(loop: asyncio.AbstractEventLoop, path: str, sock: socket.socket) -> None:
    """Never run: mypy --strict checks these calls, which is the test.

    Factories of weft's protocols, and of a subclass, fit every asyncio loop
    method that takes one, and create_connection gives back the weft type.
    """
    await loop.create_server(EchoProtocol, "127.0.0.1", 0)
    await loop.create_unix_server(lambda: PubSubServerProtocol(PubSubHub()), path)
    await loop.connect_accepted_socket(Shout, sock)
    _, client = await loop.create_connection(lambda: HTTPClientProtocol(host="test"), "127.0.0.1", 80)
    _, lines = await loop.create_unix_connection(Shout, path)
    _client: HTTPClientProtocol = client
    _lines: Shout = lines


class Shout(LineProtocol):
    """A subclass of a weft protocol, as users write them."""

    def line_received(self, line: bytes) -> None:
        self.send_line(line.upper())


# ------------------------------------------------------------ the HTTP server


def test_the_http_server_answers_an_h11_client(loop_factory: LoopFactory) -> None:
    """HTTPServerProtocol served by loop.create_server answers request after
    request on one kept-alive connection: connection_made found the loop's
    clock (it raised NoClockError there before, and uvloop answered nothing)."""

    async def main() -> list[tuple[int, bytes]]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: HTTPServerProtocol(hello), "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            client = H11Client(*await asyncio.open_connection("127.0.0.1", port))
            answers = [await client.get("/one"), await client.get("/two")]
            client.close()
            return answers

    assert run(loop_factory, main) == [(200, b"hello /one"), (200, b"hello /two")]


def test_the_http_server_answers_over_a_unix_socket(loop_factory: LoopFactory, tmp_path: Path) -> None:
    """The same through loop.create_unix_server."""
    path = str(tmp_path / "http.sock")

    async def main() -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        server = await loop.create_unix_server(lambda: HTTPServerProtocol(hello), path)
        async with server:
            client = H11Client(*await asyncio.open_unix_connection(path))
            answer = await client.get("/unix")
            client.close()
            return answer

    assert run(loop_factory, main) == (200, b"hello /unix")


def test_the_http_servers_head_timeout_fires(loop_factory: LoopFactory) -> None:
    """A client that sends half a request head and stops is answered 408 once
    the head timeout (50 ms here) passes: the deadline runs on the loop's
    clock.  (408 tells the deadline from a connection refused at once.)"""

    async def main() -> list[Reply]:
        loop = asyncio.get_running_loop()
        limits = HTTPLimits(head_timeout=0.05)
        server = await loop.create_server(lambda: HTTPServerProtocol(hello, limits=limits), "127.0.0.1", 0)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
            writer.write(b"GET /slow HTTP/1.1\r\nHost: test\r\n")
            # The server's answer and close are the event.
            said = await reader.read()
            writer.close()
            return read_replies(said, eof=True)

    assert [reply.status for reply in run(loop_factory, main)] == [408]


# ------------------------------------------------------------ the HTTP client


async def canned_server(answer: bytes) -> tuple[asyncio.Server, int]:
    """A plain asyncio server that reads one request head, writes ``answer``
    and closes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def fetch_on_a_plain_transport(answer: bytes) -> tuple[int, bytes]:
    """HTTPClientProtocol by loop.create_connection fetches / from a server
    that answers ``answer``; its on_complete's (status, body), or its on_error's exception."""
    loop = asyncio.get_running_loop()
    server, port = await canned_server(answer)
    async with server:
        transport, client = await loop.create_connection(
            lambda: HTTPClientProtocol(host="test"), "127.0.0.1", port
        )
        outcome: asyncio.Future[tuple[int, bytes]] = loop.create_future()

        def complete(response: ClientResponse, body: bytes) -> None:
            outcome.set_result((response.status, body))

        client.fetch("GET", "/", on_complete=complete, on_error=outcome.set_exception)
        try:
            return await outcome
        finally:
            transport.close()


def test_the_http_client_gets_a_response_on_a_plain_transport(loop_factory: LoopFactory) -> None:
    """The client on asyncio's own transport sends its request and gets the
    whole response (its connection_made found the loop's clock)."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    assert run(loop_factory, lambda: fetch_on_a_plain_transport(answer)) == (200, b"hello")


def test_the_http_clients_on_error_hears_a_peer_that_closes_mid_response(loop_factory: LoopFactory) -> None:
    """A server that promises 100 bytes, sends 9 and closes: on_error hears
    that the body was cut short (the client does not hang)."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part"
    with pytest.raises(MalformedHTTPError, match="without sending complete message body"):
        run(loop_factory, lambda: fetch_on_a_plain_transport(answer))


# ------------------------------------------------------------------- TLS


class Collect(Protocol):
    """An application protocol over TLS: keeps what it hears, says when it ends."""

    def __init__(self) -> None:
        self.received = b""
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport: Transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += data

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


def test_a_weft_tls_server_on_a_plain_transport_completes_a_handshake(loop_factory: LoopFactory) -> None:
    """TLSProtocol (over EchoProtocol) served by loop.create_server: asyncio's
    own TLS client completes the handshake, checks the certificate and gets
    its bytes back."""

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        context = server_context()
        server = await loop.create_server(
            lambda: TLSProtocol(EchoProtocol(), context, server_side=True), "127.0.0.1", 0
        )
        async with server:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1",
                server.sockets[0].getsockname()[1],
                ssl=client_context(),
                server_hostname=HOSTNAME,
            )
            writer.write(b"ping over tls")
            echoed = await reader.readexactly(len(b"ping over tls"))
            writer.close()
            return echoed

    assert run(loop_factory, main) == b"ping over tls"


def test_a_weft_tls_client_on_a_plain_transport_completes_a_handshake(loop_factory: LoopFactory) -> None:
    """TLSProtocol as a client by loop.create_connection, against asyncio's own
    TLS server: on_handshake is called, and the application talks through it."""

    async def main() -> tuple[str | None, bytes]:
        loop = asyncio.get_running_loop()

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readexactly(4))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_context())
        async with server:
            app = Collect()
            shaken: asyncio.Future[TLSTransport] = loop.create_future()
            _, layer = await loop.create_connection(
                lambda: TLSProtocol(
                    app,
                    client_context(),
                    server_side=False,
                    server_hostname=HOSTNAME,
                    on_handshake=shaken.set_result,
                ),
                "127.0.0.1",
                server.sockets[0].getsockname()[1],
            )
            tls = await shaken
            app.transport.write(b"ping")
            await app.lost
            assert layer.handshake_complete
            return tls.get_extra_info("version"), app.received

    version, received = run(loop_factory, main)
    assert version is not None
    assert version.startswith("TLS")
    assert received == b"ping"


def test_the_tls_handshake_timeout_fires_on_a_plain_transport(loop_factory: LoopFactory) -> None:
    """A TLS server whose client never sends its hello gives up after the
    handshake timeout (50 ms here): the application hears
    TLSHandshakeTimeoutError, on the loop's clock."""

    async def main() -> BaseException | None:
        loop = asyncio.get_running_loop()
        accepted: asyncio.Future[Collect] = loop.create_future()

        def layer() -> TLSProtocol:
            app = Collect()
            accepted.set_result(app)
            return TLSProtocol(app, server_context(), server_side=True, handshake_timeout=0.05)

        server = await loop.create_server(layer, "127.0.0.1", 0)
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
            lost = await (await accepted).lost
            writer.close()
            return lost

    assert isinstance(run(loop_factory, main), TLSHandshakeTimeoutError)


# --------------------------------------------------------- the loop's clock


class Ticking(Protocol):
    """Schedules ``tick`` on its clock in connection_made; records the clock."""

    def __init__(self, delay: float, tick: Callable[[], object]) -> None:
        self.delay = delay
        self.tick = tick
        self.clock: Any = None
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.clock = clock_of(transport)
        self.clock.call_later(self.delay, self.tick)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.set_result(exc)


def test_a_raising_timer_ends_its_connection_and_tells_the_loop(loop_factory: LoopFactory) -> None:
    """A weft protocol's timer that raises, on a plain transport, is reported to
    the loop's exception handler and aborts that connection (as weft drivers
    end a connection whose timer raises): the peer sees it end."""

    reported: list[dict[str, Any]] = []

    async def main() -> tuple[bytes, Any]:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: reported.append(context))
        made: list[Ticking] = []

        def boom() -> None:
            raise RuntimeError("timer failure, on purpose")

        def factory() -> Ticking:
            made.append(Ticking(0.01, boom))
            return made[-1]

        server = await loop.create_server(factory, "127.0.0.1", 0)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
            try:
                said = await reader.read()
            except ConnectionResetError:
                said = b""
            writer.close()
            await made[0].lost
            return said, made[0].clock

    said, clock = run(loop_factory, main)
    assert said == b""
    assert isinstance(clock, LoopClock)
    [context] = reported
    assert isinstance(context["exception"], RuntimeError)
    assert "timer" in context["message"]


def test_the_loop_clock_runs_a_timer_on_a_plain_transport(loop_factory: LoopFactory) -> None:
    """A call scheduled in connection_made through clock_of runs, and the
    clock's now() is the loop's time."""

    async def main() -> tuple[float, float, float]:
        loop = asyncio.get_running_loop()
        ticked: asyncio.Future[float] = loop.create_future()
        made: list[Ticking] = []

        def factory() -> Ticking:
            made.append(Ticking(0.01, lambda: ticked.set_result(made[0].clock.now())))
            return made[-1]

        server = await loop.create_server(factory, "127.0.0.1", 0)
        async with server:
            before = loop.time()
            _, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
            at = await ticked
            after = loop.time()
            writer.close()
            return before, at, after

    before, at, after = run(loop_factory, main)
    assert before <= at <= after


# --------------------------------------------------------------- the docs


def docs_example(section: str) -> str:
    """The python block under ``section`` of docs/asyncio.md."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "asyncio.md").read_text()
    found = re.search(r"```python\n(.*?)```", text.split(f"## {section}\n", 1)[1], re.DOTALL)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize("runner", ["asyncio.run", "uvloop.run"])
def test_the_example_in_docs_runs_on_both_loops(runner: str) -> None:
    """The example under "weft protocols on any asyncio loop" runs as written,
    and with uvloop.run as its comment says."""
    code = docs_example("weft protocols on any asyncio loop")
    if runner == "uvloop.run":
        pytest.importorskip("uvloop")
        code = "import uvloop\n" + code.replace("asyncio.run(main())", "uvloop.run(main())")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "HTTP/1.1 200 OK\nbye\n"

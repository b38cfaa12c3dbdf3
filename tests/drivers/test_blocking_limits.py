"""The blocking driver under pressure: a full pool answers at once with the
protocol's busy reply (from the accept thread) and serves again once a slot
frees; the limit is logged once; idle connections are closed.

Every wait is bounded and waits on an event or a socket, never on time.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

from tests.support import TIMEOUT
from tests.support.processes import connect, receive_exactly, receive_to_eof
from weft.drivers.blocking import BlockingListener, BlockingRuntime, ThreadedTransport
from weft.drivers.blocking._refusals import Refusals
from weft.protocols import EchoProtocol
from weft.protocols.contract import Transport
from weft.protocols.errors import ArgumentError
from weft.protocols.http import HTTPServerProtocol, Request, ResponseWriter
from weft.protocols.http._busy import busy_response

BUSY = b"ERR server busy\r\n"


class Ends:
    """Counts the server's connections that have ended, for a test to wait on.

    Hooked onto each transport's ``on_lost`` after the listener's own hook,
    so by the time it counts an end, the pool slot is free again.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.count = 0

    def watch(self, transport: Transport) -> None:
        if isinstance(transport, ThreadedTransport):
            transport.on_lost.append(self._ended)

    def _ended(self, _transport: ThreadedTransport) -> None:
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def wait_for(self, count: int) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: self.count >= count, TIMEOUT), f"{self.count} ended"


class WatchedEcho(EchoProtocol):
    def __init__(self, ends: Ends) -> None:
        super().__init__()
        self.ends = ends

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.ends.watch(transport)


@contextmanager
def serving(
    factory: Callable[[], Any], runtime: BlockingRuntime, **listen: Any
) -> Iterator[BlockingListener]:
    """``runtime`` serving ``factory`` on a thread of its own."""
    listener = runtime.listen_tcp(factory, "127.0.0.1", 0, **listen)
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        runtime.call_soon_threadsafe(runtime.stop)
        thread.join(TIMEOUT)
        assert not thread.is_alive()
        runtime.close()


@contextmanager
def log_records(name: str) -> Iterator[list[logging.LogRecord]]:
    """The records logged on ``name`` meanwhile, INFO and up (a handler of
    its own: the command line's tests may have stopped propagation)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.INFO)
    logger = logging.getLogger(name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def echoed(client: socket.socket, data: bytes) -> bytes:
    client.sendall(data)
    return receive_exactly(client, data)


def test_a_full_pool_answers_busy_at_once_and_serves_again_once_one_leaves() -> None:
    """Four idle clients fill a pool of four; a fifth is accepted and gets the
    busy reply and an EOF at once (it does not wait for a slot), whatever it
    sent; once one of the four leaves, the next client is served."""
    ends = Ends()
    runtime = BlockingRuntime(max_connections=4, busy_reply=BUSY)
    with serving(lambda: WatchedEcho(ends), runtime) as listener, ExitStack() as stack:
        pool = [stack.enter_context(connect(listener.port)) for _ in range(4)]
        for index, client in enumerate(pool):
            assert echoed(client, b"%d" % index) == b"%d" % index
        with connect(listener.port) as fifth:
            fifth.sendall(b"hello?\n")
            assert receive_to_eof(fifth) == BUSY
        assert listener.refused == 1
        pool[0].close()
        ends.wait_for(1)
        with connect(listener.port) as next_client:
            assert echoed(next_client, b"served") == b"served"
        assert listener.refused == 1


def test_without_a_busy_reply_a_client_over_the_pool_is_closed_at_once() -> None:
    """busy_reply None (the runtime's default): over the bound, the client
    gets an EOF straight away rather than a wait."""
    runtime = BlockingRuntime(max_connections=1)
    with serving(EchoProtocol, runtime) as listener, connect(listener.port) as first:
        assert echoed(first, b"one") == b"one"
        with connect(listener.port) as second:
            assert receive_to_eof(second) == b""


def hello(_request: Request, response: ResponseWriter) -> None:
    response.send(200, {"content-type": "text/plain"}, b"hello\n")


class WatchedHTTP(HTTPServerProtocol):
    def __init__(self, ends: Ends) -> None:
        super().__init__(hello)
        self.ends = ends

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.ends.watch(transport)


GET = b"GET / HTTP/1.1\r\nhost: weft.test\r\n\r\n"


def test_http_over_a_full_pool_gets_a_503_with_retry_after() -> None:
    """HTTP: four idle keep-alive clients hold the pool; a fifth, sending a
    request (which is never read), gets the whole 503 with Retry-After and
    Connection: close, then EOF; once a client leaves, a request gets a 200."""
    ends = Ends()
    runtime = BlockingRuntime(max_connections=4)
    with (
        serving(lambda: WatchedHTTP(ends), runtime, busy_reply=busy_response()) as listener,
        ExitStack() as stack,
    ):
        pool = [stack.enter_context(connect(listener.port)) for _ in range(4)]
        # Accepted in order: the kernel queues connections first come, first served.
        with connect(listener.port) as fifth:
            fifth.sendall(GET)
            reply = receive_to_eof(fifth)
        head, _, body = reply.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"HTTP/1.1 503 Service Unavailable"
        assert b"retry-after: 1" in lines
        assert b"connection: close" in lines
        assert int(dict(line.split(b": ", 1) for line in lines[1:])[b"content-length"]) == len(body)
        pool[3].close()
        ends.wait_for(1)
        with connect(listener.port) as next_client:
            next_client.sendall(GET)
            assert receive_exactly(next_client, b"HTTP/1.1 200").startswith(b"HTTP/1.1 200")


def test_the_limit_is_logged_once_when_reached_and_once_when_back() -> None:
    """Three refusals in a row log one warning; the next client served logs
    one line saying so, with the count refused meanwhile."""
    ends = Ends()
    runtime = BlockingRuntime(max_connections=1, busy_reply=BUSY)
    with (
        log_records("weft.drivers.blocking") as records,
        serving(lambda: WatchedEcho(ends), runtime) as listener,
    ):
        with connect(listener.port) as first:
            assert echoed(first, b"in") == b"in"
            for _ in range(3):
                with connect(listener.port) as refused:
                    assert receive_to_eof(refused) == BUSY
        ends.wait_for(1)
        with connect(listener.port) as again:
            assert echoed(again, b"again") == b"again"
    lines = [record.getMessage() for record in records]
    reached = [line for line in lines if "is at its limit of 1 connection:" in line]
    back = [line for line in lines if "serving again" in line]
    assert len(reached) == 1
    assert len(back) == 1
    assert "(3 refused meanwhile)" in back[0]


def test_pool_bounds_are_checked() -> None:
    """max_connections must be a whole number >= 1, idle_timeout a number of seconds > 0."""
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ArgumentError):
            BlockingRuntime(max_connections=bad)  # type: ignore[arg-type]
    for bad_timeout in (0, -1, math.nan):
        with pytest.raises(ArgumentError):
            BlockingRuntime(idle_timeout=bad_timeout)
    with BlockingRuntime() as runtime, pytest.raises(ArgumentError):
        runtime.listen_tcp(EchoProtocol, "127.0.0.1", 0, max_connections=0)
    assert BlockingRuntime(idle_timeout=math.inf).idle_timeout is None


# ---------------------------------------------------------- idle timeout


class Recorded(EchoProtocol):
    """An echo that records how its connection ended, for a test to wait on."""

    def __init__(self) -> None:
        super().__init__()
        self.ended = threading.Event()
        self.end: BaseException | None = None

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.end = exc
        self.ended.set()


def test_an_idle_connection_is_closed_after_the_idle_timeout() -> None:
    """A client that sends nothing is closed cleanly (an EOF, connection_lost(None))
    once the idle timeout passes."""
    server = Recorded()
    runtime = BlockingRuntime(idle_timeout=0.2)
    with serving(lambda: server, runtime) as listener, connect(listener.port) as client:
        assert listener.idle_timeout == 0.2
        assert receive_to_eof(client) == b""
        assert server.ended.wait(TIMEOUT)
        assert server.end is None


def test_a_busy_connection_outlives_the_idle_timeout() -> None:
    """Bytes moving either way keep a connection open: round trips for three
    idle timeouts' worth of time, and it is still served."""
    runtime = BlockingRuntime(idle_timeout=0.2)
    with serving(EchoProtocol, runtime) as listener, connect(listener.port) as client:
        until = time.monotonic() + 0.6  # bounds the loop; nothing is asserted about time
        while time.monotonic() < until:
            assert echoed(client, b"ping") == b"ping"
        assert echoed(client, b"still here") == b"still here"


class Flood(Recorded):
    """Writes far more than a client that never reads can take."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        transport.write(bytes(32 * 1024 * 1024))


def test_a_connection_whose_peer_takes_nothing_is_aborted_with_timeout_error() -> None:
    """Bytes wait and the peer takes none for the idle timeout: closing would
    wait for ever, so the connection is aborted, with a TimeoutError."""
    server = Flood()
    runtime = BlockingRuntime(idle_timeout=0.2)
    with serving(lambda: server, runtime) as listener, connect(listener.port):
        assert server.ended.wait(TIMEOUT)
        assert isinstance(server.end, TimeoutError)


def test_idle_timeout_per_listener_and_never() -> None:
    """listen_tcp(idle_timeout=...) overrides the runtime's; math.inf turns it off."""
    with BlockingRuntime(idle_timeout=5) as runtime:
        assert runtime.listen_tcp(EchoProtocol, "127.0.0.1", 0).idle_timeout == 5
        assert runtime.listen_tcp(EchoProtocol, "127.0.0.1", 0, idle_timeout=math.inf).idle_timeout is None
        with pytest.raises(ArgumentError):
            runtime.listen_tcp(EchoProtocol, "127.0.0.1", 0, idle_timeout=-1)


# ------------------------------------------------------------- refusals


class FakeClock:
    def __init__(self) -> None:
        self.time = 0.0

    def __call__(self) -> float:
        return self.time


def test_refused_sockets_linger_until_eof_or_their_deadline() -> None:
    """A refused socket gets the reply and an EOF; it stays open (reading and
    dropping) until the client's EOF, or until its lingering is over; past
    max_lingering, a refusal closes at once."""
    import select

    clock = FakeClock()
    poller = select.poll()
    refusals = Refusals(poller, b"busy\n", linger=2.0, max_lingering=2, now=clock)
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        for server_side, _client in pairs:
            refusals.refuse(server_side)
        assert len(refusals) == 2  # the third closed at once
        for _server, client in pairs:
            client.settimeout(TIMEOUT)
            assert receive_to_eof(client) == b"busy\n"
        assert refusals.poll_timeout() == 2000
        # The first client sends more (dropped), then says it is done: its socket closes.
        first_client = pairs[0][1]
        first_client.sendall(b"ignored")
        first_client.shutdown(socket.SHUT_WR)
        while len(refusals) > 1:
            for fd, _event in poller.poll(int(TIMEOUT * 1000)):
                refusals.readable(fd)
        # The second lingers until its deadline.
        clock.time = 2.0
        refusals.expire()
        assert len(refusals) == 0
        assert refusals.poll_timeout() is None
    finally:
        refusals.close()
        for server_side, client in pairs:
            server_side.close()
            client.close()


def test_the_docs_pool_example_runs_as_written() -> None:
    """docs/drivers-blocking.md's BlockingRuntime example runs (its own assert included)."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "drivers-blocking.md").read_text()
    (block,) = [code for code in re.findall(r"```python\n(.*?)```", page, re.S) if "busy_reply=" in code]
    scope: dict[str, Any] = {}
    exec(compile(block, "docs/drivers-blocking.md", "exec"), scope)
    assert scope["runtime"].busy_reply == b"ERR server busy\r\n"

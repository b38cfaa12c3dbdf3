"""serve() and Server, in-process, on every driver that can run here: the
graceful stop, pipes, readiness and errors."""

from __future__ import annotations

import errno
import inspect
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from tests.support import TIMEOUT
from tests.support.drivers import SERVES
from weft.drivers import PipesRuntime, Runtime, Server, open_runtime, serve
from weft.drivers._core.connection_limit import BUSY_LINGER, REPORT_INTERVAL, BusyProtocol, LimitReport
from weft.drivers._core.socket_binding import format_address
from weft.drivers._serving import announce
from weft.drivers.testing import FakeClock, MemoryRuntime, RecordingProtocol
from weft.drivers.testing import connect as memory_connect
from weft.protocols import EchoProtocol
from weft.protocols.errors import ArgumentError
from weft.protocols.http import HTTPServerProtocol, Request, ResponseWriter
from weft.protocols.pubsub import PubSubHub, PubSubServerProtocol

#: Bounds every wait; a passing test never comes near it.


#: The tests that take a ``runtime`` (or a ``driver``) run on each driver that can serve.
pytestmark = pytest.mark.drivers(requires=SERVES)


@contextmanager
def log_records(logger: logging.Logger) -> Iterator[list[str]]:
    """The messages logged on ``logger`` meanwhile, INFO and up."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Keep(logging.INFO)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def connected_client(runtime: Runtime, server: Server) -> RecordingProtocol:
    """A client on ``runtime``, connected to ``server`` and accepted by it."""
    client = RecordingProtocol()
    port = server.port
    assert port is not None
    connecting = runtime.connect_tcp(lambda: client, "127.0.0.1", port)
    assert runtime.run_until(lambda: connecting.done() and len(server.open_connections()) == 1, TIMEOUT)
    connecting.result()
    return client


def rescue_after_timeout(runtime: Runtime, server: Server) -> list[bool]:
    """If the server is still running after TIMEOUT, stop it hard and say so
    (so that a broken stop fails the test instead of hanging it)."""
    rescued: list[bool] = []

    def rescue() -> None:
        rescued.append(True)
        server.stop()
        server.stop()

    runtime.call_later(TIMEOUT, rescue)
    return rescued


def test_format_address() -> None:
    """Addresses as people write them."""
    assert format_address(("127.0.0.1", 8000)) == "127.0.0.1:8000"
    assert format_address(("::1", 8000, 0, 0)) == "[::1]:8000"
    assert format_address("/run/weft.sock") == "/run/weft.sock"
    assert format_address("\0weft") == repr("\0weft")


def test_stop_lets_an_open_connection_finish(runtime: Runtime) -> None:
    """After stop() the listener is closed, and the open connection runs to its own end."""
    server = Server(runtime, EchoProtocol, grace=600)
    server.listen_tcp("127.0.0.1", 0)
    port = server.port or 0
    client = connected_client(runtime, server)
    rescued = rescue_after_timeout(runtime, server)

    def stop_then_finish() -> None:
        server.stop()
        client.transport.write(b"last words")
        client.transport.write_eof()  # the echo server then closes: the connection ends by itself

    runtime.call_soon(stop_then_finish)
    server.run()
    assert rescued == []
    assert server.open_connections() == []
    assert runtime.run_until(lambda: client.lost, TIMEOUT)
    assert (client.received, client.lost_exc) == (b"last words", None)
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), TIMEOUT):
        pass


def test_an_async_handler_serves_a_stream_per_connection(runtime: Runtime) -> None:
    """Server takes an ``async def`` handler as well as a protocol factory: each
    connection is a stream in a task of its own; when the handler returns the
    stream is closed, and a graceful stop waits for it."""
    from weft.drivers.coroutines import Stream

    async def shout_once(stream: Stream) -> None:
        line = await stream.readline()
        await stream.send(line.upper())

    server = Server(runtime, shout_once, grace=600)
    server.listen_tcp("127.0.0.1", 0)
    client = connected_client(runtime, server)
    rescued = rescue_after_timeout(runtime, server)
    client.transport.write(b"hello\n")
    assert runtime.run_until(lambda: client.lost, TIMEOUT)
    assert (client.received, client.lost_exc) == (b"HELLO\n", None)
    runtime.call_soon(server.stop)
    server.run()
    assert rescued == []
    assert server.open_connections() == []


def test_stop_cuts_off_what_is_open_after_the_grace_period(runtime: Runtime) -> None:
    """A connection still open when the grace period ends is aborted; run() returns."""
    server = Server(runtime, EchoProtocol, grace=0.2)
    server.listen_tcp("127.0.0.1", 0)
    client = connected_client(runtime, server)
    runtime.call_soon(server.stop)
    server.run()
    assert server.open_connections() == []
    assert runtime.run_until(lambda: client.lost, TIMEOUT)
    assert isinstance(client.lost_exc, ConnectionResetError)


def test_a_second_stop_cuts_the_grace_period_short(runtime: Runtime) -> None:
    """stop() again while connections finish aborts them at once."""
    server = Server(runtime, EchoProtocol, grace=600)
    server.listen_tcp("127.0.0.1", 0)
    client = connected_client(runtime, server)
    rescued = rescue_after_timeout(runtime, server)

    def stop_twice() -> None:
        server.stop()
        runtime.call_soon(server.stop)  # a turn later: while it waits

    runtime.call_soon(stop_twice)
    server.run()
    assert rescued == []
    assert runtime.run_until(lambda: client.lost, TIMEOUT)
    assert isinstance(client.lost_exc, ConnectionResetError)


def test_stop_does_not_wait_for_a_half_closed_subscriber(runtime: Runtime) -> None:
    """A pub/sub subscriber that half-closed and went silent does not hold a
    graceful stop for its grace period (ten minutes here): the server tells
    its protocol (server_stopping), which closes it after what it was sent."""
    hub = PubSubHub()
    server = Server(runtime, lambda: PubSubServerProtocol(hub), grace=600)
    server.listen_tcp("127.0.0.1", 0)
    client = connected_client(runtime, server)
    client.transport.write(b"SUB news\n")
    client.transport.write_eof()
    assert runtime.run_until(lambda: client.received == b"OK\r\n" and hub.topic_count == 1, TIMEOUT)
    rescued = rescue_after_timeout(runtime, server)
    runtime.call_soon(server.stop)
    server.run()
    assert rescued == []
    assert server.open_connections() == []
    assert runtime.run_until(lambda: client.lost, TIMEOUT)
    assert client.lost_exc is None
    assert hub.topic_count == 0


def test_stop_ends_a_live_subscriber(runtime: Runtime) -> None:
    """A pub/sub subscriber that has not half-closed would wait for messages
    for the whole grace period (ten minutes here): server_stopping closes it
    at once, after what it was sent, and the stop ends with it."""
    hub = PubSubHub()
    server = Server(runtime, lambda: PubSubServerProtocol(hub), grace=600)
    server.listen_tcp("127.0.0.1", 0)
    client = connected_client(runtime, server)
    client.transport.write(b"SUB news\n")
    assert runtime.run_until(lambda: client.received == b"OK\r\n" and hub.topic_count == 1, TIMEOUT)
    rescued = rescue_after_timeout(runtime, server)
    runtime.call_soon(server.stop)
    server.run()
    assert rescued == []
    assert server.open_connections() == []
    assert runtime.run_until(lambda: client.lost, TIMEOUT)
    assert (client.received, client.lost_exc) == (b"OK\r\n", None)
    assert hub.topic_count == 0


def test_the_stop_ends_when_the_last_connection_does_not_at_the_grace_period() -> None:
    """On the fake clock: a stop at t=60 with a client open and 5 s of grace
    returns at t=61.5, when that client leaves (the wait is checked again as
    each connection ends), not at t=65; nothing is cut off."""
    runtime = MemoryRuntime()
    server = Server(runtime, EchoProtocol, grace=5)
    server.listen_tcp("127.0.0.1", 8000)
    client = RecordingProtocol()
    connecting = runtime.connect_tcp(lambda: client, "127.0.0.1", 8000)
    assert runtime.run_until(connecting.done)
    runtime.call_later(60, server.stop)
    runtime.call_later(61.5, client.transport.write_eof)  # the echo server then closes
    with log_records(logging.getLogger("weft.drivers")) as lines:
        server.run()
    assert runtime.now() == 61.5
    assert lines == ["stopping: waiting up to 5 s for 1 open connection (stop again to cut them off)"]
    assert server.open_connections() == []
    assert (client.lost, client.lost_exc) == (True, None)


def test_a_live_subscriber_does_not_hold_the_stop_on_the_fake_clock() -> None:
    """On the fake clock: a stop at t=60 with a live subscriber returns at
    t=60, no time spent waiting; the subscriber got what it was sent, then
    an orderly close."""
    runtime = MemoryRuntime()
    hub = PubSubHub()
    server = Server(runtime, lambda: PubSubServerProtocol(hub), grace=5)
    server.listen_tcp("127.0.0.1", 8000)
    client = RecordingProtocol()
    connecting = runtime.connect_tcp(lambda: client, "127.0.0.1", 8000)
    assert runtime.run_until(connecting.done)
    client.transport.write(b"SUB news\nPUB news hello\n")
    runtime.call_later(60, server.stop)
    with log_records(logging.getLogger("weft.drivers")) as lines:
        server.run()
    assert runtime.now() == 60
    assert lines == ["stopping"]  # nothing counted as waited for: it closed when told
    assert client.received == b"OK\r\nMSG news hello\r\nOK 1\r\n"
    assert (client.lost, client.lost_exc) == (True, None)
    assert hub.topic_count == 0


def _returning(protocol: RecordingProtocol) -> Callable[[], RecordingProtocol]:
    """A protocol factory that hands out ``protocol``."""
    return lambda: protocol


def test_the_stop_counts_only_the_connections_it_waits_for() -> None:
    """On the fake clock: a stop at t=60 with a live subscriber (which closes
    when told the server is stopping) and a client halfway through a command
    (which does not) logs that it waits for one connection, not two; the
    half-sent command then finishes, its answer goes out, and the server
    closes that connection too, between commands: the stop ends then."""
    runtime = MemoryRuntime()
    hub = PubSubHub()
    server = Server(runtime, lambda: PubSubServerProtocol(hub), grace=5)
    server.listen_tcp("127.0.0.1", 8000)
    subscriber, publisher = RecordingProtocol(), RecordingProtocol()
    for client in (subscriber, publisher):
        connecting = runtime.connect_tcp(_returning(client), "127.0.0.1", 8000)
        assert runtime.run_until(connecting.done)
    subscriber.transport.write(b"SUB news\n")
    publisher.transport.write(b"PUB news hel")
    assert runtime.run_until(lambda: subscriber.received == b"OK\r\n")
    runtime.call_later(60, server.stop)
    runtime.call_later(61, lambda: publisher.transport.write(b"lo\n"))
    with log_records(logging.getLogger("weft.drivers")) as lines:
        server.run()
    assert lines == ["stopping: waiting up to 5 s for 1 open connection (stop again to cut them off)"]
    assert runtime.now() == 61
    assert (subscriber.lost, subscriber.lost_exc) == (True, None)
    assert publisher.received == b"OK 0\r\n"
    assert (publisher.lost, publisher.lost_exc) == (True, None)
    assert server.open_connections() == []


def test_an_idle_keep_alive_http_client_does_not_hold_the_stop_on_the_fake_clock() -> None:
    """On the fake clock: a stop at t=1 with an HTTP client kept alive after
    its response returns at t=1, not at t=5 when its keep-alive timeout
    would end it."""
    runtime = MemoryRuntime()

    def hello(_request: Request, response: ResponseWriter) -> None:
        response.send(200, body=b"hello")

    server = Server(runtime, lambda: HTTPServerProtocol(hello), grace=5)
    server.listen_tcp("127.0.0.1", 8000)
    client = RecordingProtocol()
    connecting = runtime.connect_tcp(lambda: client, "127.0.0.1", 8000)
    assert runtime.run_until(connecting.done)
    client.transport.write(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
    assert runtime.run_until(lambda: client.received.endswith(b"\r\n\r\nhello"))
    runtime.call_later(1, server.stop)
    server.run()
    assert runtime.now() == 1
    assert (client.lost, client.lost_exc) == (True, None)


def test_stop_before_run(runtime: Runtime) -> None:
    """stop() before run(): run() only closes the listeners and returns."""
    server = Server(runtime, EchoProtocol)
    server.listen_tcp("127.0.0.1", 0)
    port = server.port
    server.stop()
    server.run()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port or 0), TIMEOUT):
        pass


@pytest.mark.drivers(requires={PipesRuntime})
def test_a_pipe_server_stops_when_its_connection_ends(runtime: Runtime) -> None:
    """serve_pipes: one connection over two descriptors, left open afterwards;
    with no listener, the end of that connection ends run()."""
    in_read, in_write = os.pipe()
    out_read, out_write = os.pipe()
    try:
        server = Server(runtime, EchoProtocol)
        server.serve_pipes(in_read, out_write)
        assert server.addresses == []
        os.write(in_write, b"through pipes\n")
        os.close(in_write)
        in_write = -1
        rescued = rescue_after_timeout(runtime, server)
        server.run()
        assert rescued == []
        assert os.read(out_read, 100) == b"through pipes\n"
        assert os.get_blocking(in_read)
        assert os.get_blocking(out_write)
    finally:
        for fd in (in_read, in_write, out_read, out_write):
            if fd >= 0:
                os.close(fd)


def test_listen_errors_name_the_address(runtime: Runtime) -> None:
    """A port in use raises the same OSError class, with the address in the message."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        server = Server(runtime, EchoProtocol)
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}: ") as caught:
            server.listen_tcp("127.0.0.1", port)
    assert caught.value.errno == errno.EADDRINUSE
    assert server.listeners == []


def test_serve_announces_then_stops_on_sigterm(driver: str) -> None:
    """serve() calls on_ready once listening (server.port is the real port),
    and SIGTERM makes it stop gracefully and return."""
    ready: list[int | None] = []

    def on_ready(server: Server) -> None:
        ready.append(server.port)
        os.kill(os.getpid(), signal.SIGTERM)  # handled: serve() set a handler first

    before = signal.getsignal(signal.SIGTERM)
    serve(EchoProtocol, port=0, driver=driver, on_ready=on_ready)
    assert len(ready) == 1
    assert ready[0] is not None
    assert ready[0] > 0
    assert signal.getsignal(signal.SIGTERM) == before  # put back by the runtime's close


def test_serve_announces_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """The default on_ready, announce, prints the listening line on stderr and nothing on stdout."""
    assert inspect.signature(serve).parameters["on_ready"].default is announce

    def announce_then_stop(server: Server) -> None:
        announce(server)
        os.kill(os.getpid(), signal.SIGINT)

    serve(EchoProtocol, port=0, on_ready=announce_then_stop)
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("listening on 127.0.0.1:")


@pytest.mark.parametrize(
    "options",
    [
        {"port": 0, "unix": "/tmp/x.sock"},
        {"port": 0, "stdio": True},
        {"port": 0, "grace": -1.0},
        {"port": 0, "grace": float("nan")},
        {"port": 0, "driver": "no-such-driver"},
    ],
)
def test_serve_refuses_bad_arguments(options: dict[str, object]) -> None:
    """Several endpoints, a bad grace or an unknown driver: ArgumentError, before anything opens."""
    with pytest.raises(ArgumentError):
        serve(EchoProtocol, **options)  # type: ignore[arg-type]


# ------------------------------------------------------- connection limit


def test_max_connections_answers_busy_and_serves_again_once_one_leaves(runtime: Runtime) -> None:
    """On every driver: with two connections served, a third is accepted and
    gets the busy reply and an EOF at once; once one of the two ends, the
    next client is served."""
    server = Server(runtime, EchoProtocol, max_connections=2, busy_reply=b"BUSY\r\n")
    server.listen_tcp("127.0.0.1", 0)
    port = server.port or 0
    first = connected_client(runtime, server)
    second = RecordingProtocol()
    runtime.connect_tcp(lambda: second, "127.0.0.1", port)
    assert runtime.run_until(lambda: len(server.open_connections()) == 2, TIMEOUT)

    third = RecordingProtocol()
    runtime.connect_tcp(lambda: third, "127.0.0.1", port)
    assert runtime.run_until(lambda: third.lost, TIMEOUT)
    assert third.received == b"BUSY\r\n"
    assert ("eof_received",) in third.events

    first.transport.close()
    assert runtime.run_until(lambda: len(server.open_connections()) == 1, TIMEOUT)
    fourth = RecordingProtocol()
    runtime.connect_tcp(lambda: fourth, "127.0.0.1", port)
    assert runtime.run_until(lambda: hasattr(fourth, "transport"), TIMEOUT)
    fourth.transport.write(b"served")
    assert runtime.run_until(lambda: fourth.received == b"served", TIMEOUT)
    second.transport.write(b"still")
    assert runtime.run_until(lambda: second.received == b"still", TIMEOUT)


def test_max_connections_is_checked() -> None:
    """A limit must be a whole number >= 1; busy_reply bytes or None."""
    runtime = open_runtime("reactor")
    try:
        for bad in (0, -3, 2.5, True):
            with pytest.raises(ArgumentError):
                Server(runtime, EchoProtocol, max_connections=bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            Server(runtime, EchoProtocol, busy_reply="busy")  # type: ignore[arg-type]
    finally:
        runtime.close()


@pytest.mark.parametrize(
    "options",
    [
        {"port": 0, "max_connections": 0},
        {"port": 0, "idle_timeout": 5.0},  # the reactor: a blocking-driver option
        {"port": 0, "idle_timeout": -1.0, "driver": "blocking"},
        {"port": 0, "idle_timeout": float("nan"), "driver": "blocking"},
    ],
)
def test_serve_refuses_bad_limits(options: dict[str, object]) -> None:
    """A limit below 1, an idle timeout off the blocking driver or not > 0: ArgumentError."""
    with pytest.raises(ArgumentError):
        serve(EchoProtocol, **options)  # type: ignore[arg-type]


def test_serve_sets_the_blocking_drivers_idle_timeout() -> None:
    """serve(idle_timeout=...) on the blocking driver reaches its listeners."""
    seen: list[object] = []

    def on_ready(server: Server) -> None:
        seen.extend(getattr(listener, "idle_timeout", None) for listener in server.listeners)
        server.stop()

    serve(EchoProtocol, port=0, driver="blocking", idle_timeout=7.5, on_ready=on_ready)
    assert seen == [7.5]


class SteppedClock:
    def __init__(self) -> None:
        self.time = 0.0

    def __call__(self) -> float:
        return self.time


def test_the_limit_report_logs_a_line_each_way_and_at_most_once_a_second() -> None:
    """Reached, then back: one line each.  A refusal within REPORT_INTERVAL of
    the "back" line is counted but not logged; past it, logged again."""
    clock = SteppedClock()
    logger = logging.getLogger("weft.test.limit")
    with log_records(logger) as lines:
        report = LimitReport("the server", 4, clock, logger)
        report.admitted()
        for _ in range(5):
            report.refused()
        assert report.refusing
        report.admitted()
        report.admitted()
        clock.time = REPORT_INTERVAL / 2
        report.refused()  # too soon after "back": counted only
        assert not report.refusing
        clock.time = REPORT_INTERVAL
        report.refused()
        report.admitted()
    assert lines == [
        "the server is at its limit of 4 connections: new ones get a busy reply until one ends",
        "the server is serving again under its limit of 4 connections (5 refused meanwhile)",
        "the server is at its limit of 4 connections: new ones get a busy reply until one ends",
        "the server is serving again under its limit of 4 connections (2 refused meanwhile)",
    ]
    assert report.refused_total == 7


def test_the_busy_protocol_replies_half_closes_and_lingers() -> None:
    """Memory driver, fake clock: the reply then EOF at once; what the client
    still sends is dropped; the connection closes at the client's EOF, or
    once BUSY_LINGER has passed."""
    ended: list[str] = []
    clock = FakeClock()
    busy = BusyProtocol(b"BUSY\r\n", on_lost=lambda: ended.append("early"))
    peer = memory_connect(busy, clock=clock)
    assert peer.written == b"BUSY\r\n"
    assert peer.eof_written
    peer.deliver(b"GET / HTTP/1.1\r\n")
    peer.deliver_eof()
    clock.advance(0)
    assert peer.closed
    assert ended == ["early"]

    late = BusyProtocol(b"BUSY\r\n", on_lost=lambda: ended.append("late"))
    peer = memory_connect(late, clock=clock)
    clock.advance(BUSY_LINGER - 0.01)
    assert not peer.closed
    clock.advance(0.01)
    assert peer.closed
    assert ended == ["early", "late"]


def test_the_busy_protocol_without_a_reply_closes_at_once() -> None:
    """No reply to protect: close straight away."""
    peer = memory_connect(BusyProtocol(None), clock=FakeClock())
    assert peer.written == b""
    assert peer.closed

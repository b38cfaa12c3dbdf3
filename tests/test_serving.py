"""serve() and Server, in-process, on every driver that can run here: the
graceful stop, pipes, readiness and errors."""

from __future__ import annotations

import errno
import inspect
import os
import signal
import socket
from collections.abc import Iterator

import pytest

from tests.processes import AVAILABLE_DRIVERS
from weft.drivers import Server, open_runtime, serve
from weft.drivers.runtime import Runtime
from weft.drivers.serving import announce, format_address
from weft.drivers.testing import RecordingProtocol
from weft.protocols import ArgumentError, EchoProtocol

#: Bounds every wait; a passing test never comes near it.
TIMEOUT = 20.0


@pytest.fixture(params=AVAILABLE_DRIVERS)
def runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    made = open_runtime(request.param)
    try:
        yield made
    finally:
        made.close()


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


def test_stop_before_run(runtime: Runtime) -> None:
    """stop() before run(): run() only closes the listeners and returns."""
    server = Server(runtime, EchoProtocol)
    server.listen_tcp("127.0.0.1", 0)
    port = server.port
    server.stop()
    server.run()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port or 0), TIMEOUT):
        pass


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


@pytest.mark.parametrize("driver", AVAILABLE_DRIVERS)
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

"""MemoryRuntime: listen_tcp, connect_tcp and Server in memory, on a fake clock.

Every test here runs in no real time: the runtime jumps its FakeClock from
deadline to deadline, so a 30-second timeout is as quick as a refused
connection.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from typing import Any

import pytest

from weft.drivers import (
    CapabilityError,
    LoopRuntime,
    PipesRuntime,
    ProcessRuntime,
    Server,
    SignalsRuntime,
    TCPRuntime,
    ThreadsRuntime,
    UNIXRuntime,
)
from weft.drivers.coroutines import Stream, open_tcp, run, serve_tcp
from weft.drivers.testing import FakeClock, IdleForeverError, MemoryRuntime, RecordingProtocol
from weft.protocols import EchoProtocol
from weft.protocols.contract import TimerHandle, clock_of
from weft.protocols.errors import ArgumentError, ClosedResourceError, NotSettledError
from weft.protocols.framing import LineProtocol
from weft.protocols.http import HTTPLimits, HTTPServerProtocol, Request, ResponseWriter


def connected(runtime: MemoryRuntime, port: int) -> RecordingProtocol:
    """A recording client connected to ``127.0.0.1:port`` on ``runtime``."""
    client = RecordingProtocol()
    connecting = runtime.connect_tcp(lambda: client, "127.0.0.1", port)
    assert runtime.run_until(connecting.done)
    assert connecting.result() is client.transport
    return client


def factory_of(protocol: RecordingProtocol) -> Callable[[], RecordingProtocol]:
    """A factory that gives ``protocol``."""
    return lambda: protocol


# ------------------------------------------------------------- capabilities


def test_it_offers_the_loop_tcp_and_unix_and_not_the_operating_systems_own() -> None:
    """A MemoryRuntime is a LoopRuntime, TCPRuntime and UNIXRuntime, and none of
    the capabilities only an operating system has; Server says so when asked
    for pipes."""
    runtime = MemoryRuntime()
    for capability in (LoopRuntime, TCPRuntime, UNIXRuntime):
        assert isinstance(runtime, capability)
    for lacking in (ThreadsRuntime, PipesRuntime, SignalsRuntime, ProcessRuntime):
        assert not isinstance(runtime, lacking)
    with pytest.raises(CapabilityError, match=r"'memory' runtime cannot serve pipes .*PipesRuntime"):
        Server(runtime, EchoProtocol).serve_pipes(0, 1)


# ---------------------------------------------------- serving, connecting


def test_a_protocol_served_and_connected_in_memory() -> None:
    """connect_tcp to a listened port: the future has the client's transport
    once both ends are made (server first), bytes go both ways, and the
    listener counts the connection until it ends."""
    runtime = MemoryRuntime()
    order: list[str] = []

    class Server_(EchoProtocol):
        def connection_made(self, transport: Any) -> None:
            order.append("server")
            super().connection_made(transport)

    class Client(RecordingProtocol):
        def connection_made(self, transport: Any) -> None:
            order.append("client")
            super().connection_made(transport)

    listener = runtime.listen_tcp(Server_, "127.0.0.1", 0)
    assert listener.addresses == [("127.0.0.1", listener.port)]
    connecting = runtime.connect_tcp(Client, "127.0.0.1", listener.port)
    assert not connecting.done()  # connections are made on a step, as on a real loop
    assert runtime.run_until(connecting.done)
    assert order == ["server", "client"]
    client = runtime.pumps[0].client
    assert connecting.result() is client.transport
    assert listener.connections == {runtime.pumps[0].server_transport}
    client.transport.write(b"hello, memory")
    runtime.run_until_idle()
    assert client.received == b"hello, memory"
    client.transport.close()
    runtime.run_until_idle()
    assert client.lost
    assert client.lost_exc is None
    assert listener.connections == set()
    assert runtime.now() == 0.0


def test_connections_are_made_in_the_order_asked_for() -> None:
    """Three connects asked for in one step are made in that order (each pump
    starting its ends steps the clock, which must not reorder them): their
    pumps, and their server ends' connection_made, come in the same order."""
    runtime = MemoryRuntime()
    accepted: list[int] = []

    class Numbered(RecordingProtocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            accepted.append(len(accepted))

    listener = runtime.listen_tcp(Numbered)
    clients = [RecordingProtocol() for _ in range(3)]
    futures = [runtime.connect_tcp(factory_of(client), "127.0.0.1", listener.port) for client in clients]
    assert runtime.run_until(lambda: all(future.done() for future in futures))
    assert [pump.client for pump in runtime.pumps] == clients
    assert [future.result() for future in futures] == [client.transport for client in clients]
    assert accepted == [0, 1, 2]


def test_unix_sockets_and_any_host() -> None:
    """listen_unix and connect_unix join by path; a listener on every host
    (None) answers any host on its port, localhost included."""
    runtime = MemoryRuntime()
    runtime.listen_unix(EchoProtocol, "/run/echo.sock")
    connecting = runtime.connect_unix(RecordingProtocol, "/run/echo.sock")
    assert runtime.run_until(connecting.done)
    connecting.result().write(b"by path")
    runtime.run_until_idle()
    assert runtime.pumps[0].client.received == b"by path"
    anywhere = runtime.listen_tcp(EchoProtocol, None, 8000)
    assert anywhere.addresses == [("0.0.0.0", 8000)]
    for host in ("127.0.0.1", "localhost", "10.1.2.3"):
        connecting = runtime.connect_tcp(RecordingProtocol, host, 8000)
        assert runtime.run_until(connecting.done)
        assert connecting.exception() is None
    assert len(anywhere.connections) == 3


def test_ports_are_picked_and_held() -> None:
    """Port 0 picks a free port, a different one each time; a port held on the
    same host, or by a listener on every host, is EADDRINUSE; once its
    listener closes, it is free again."""
    runtime = MemoryRuntime()
    first = runtime.listen_tcp(EchoProtocol)
    second = runtime.listen_tcp(EchoProtocol)
    assert first.port != second.port
    with pytest.raises(OSError, match="Address already in use") as caught:
        runtime.listen_tcp(EchoProtocol, "127.0.0.1", first.port)
    assert caught.value.errno == errno.EADDRINUSE
    runtime.listen_tcp(EchoProtocol, "", 9000)
    with pytest.raises(OSError, match="Address already in use"):
        runtime.listen_tcp(EchoProtocol, "127.0.0.2", 9000)
    runtime.listen_tcp(EchoProtocol, "127.0.0.2", 9001)
    runtime.listen_unix(EchoProtocol, "/run/a.sock")
    with pytest.raises(OSError, match="Address already in use"):
        runtime.listen_unix(EchoProtocol, "/run/a.sock")
    first.close()
    assert first.closed
    assert runtime.listen_tcp(EchoProtocol, "127.0.0.1", first.port).port == first.port
    with pytest.raises(ArgumentError, match="port"):
        runtime.listen_tcp(EchoProtocol, "127.0.0.1", 70000)
    with pytest.raises(ArgumentError, match="not a TCP listener"):
        _ = runtime.listen_unix(EchoProtocol, "/run/b.sock").port


# ------------------------------------------------ refused, reset, dropped


def test_nobody_listening_is_a_refused_connection() -> None:
    """Where nobody listens (never, or no longer), the future fails with
    ConnectionRefusedError naming the address, as the OS drivers say it; a
    UNIX path nobody listens on is FileNotFoundError.  The factory is never called."""
    runtime = MemoryRuntime()
    made: list[RecordingProtocol] = []

    def factory() -> RecordingProtocol:
        made.append(RecordingProtocol())
        return made[-1]

    connecting = runtime.connect_tcp(factory, "127.0.0.1", 4242)
    assert runtime.run_until(connecting.done)
    error = connecting.exception()
    assert isinstance(error, ConnectionRefusedError)
    assert error.errno == errno.ECONNREFUSED
    assert str(error) == "[Errno 111] cannot connect to 127.0.0.1:4242: Connection refused"
    listener = runtime.listen_tcp(EchoProtocol, "127.0.0.1", 4242)
    listener.close()
    again = runtime.connect_tcp(factory, "127.0.0.1", 4242)
    assert runtime.run_until(again.done)
    assert isinstance(again.exception(), ConnectionRefusedError)
    by_path = runtime.connect_unix(factory, "/run/nobody.sock")
    assert runtime.run_until(by_path.done)
    assert isinstance(by_path.exception(), FileNotFoundError)
    assert made == []


def test_refuse_next_refuses_one_connection_where_someone_listens() -> None:
    """refuse_next: the next connection to the address is refused though a
    listener is there; the one after is served; the listener never sees the first."""
    runtime = MemoryRuntime()
    listener = runtime.listen_tcp(EchoProtocol, "127.0.0.1", 8000)
    runtime.refuse_next(("localhost", 8000))
    refused = runtime.connect_tcp(RecordingProtocol, "127.0.0.1", 8000)
    served = runtime.connect_tcp(RecordingProtocol, "127.0.0.1", 8000)
    assert runtime.run_until(lambda: refused.done() and served.done())
    assert isinstance(refused.exception(), ConnectionRefusedError)
    assert served.exception() is None
    assert len(listener.connections) == 1
    runtime.refuse_next("/run/echo.sock")
    runtime.listen_unix(EchoProtocol, "/run/echo.sock")
    by_path = runtime.connect_unix(RecordingProtocol, "/run/echo.sock")
    assert runtime.run_until(by_path.done)
    assert isinstance(by_path.exception(), ConnectionRefusedError)


def test_reset_next_makes_the_connection_then_resets_both_ends() -> None:
    """reset_next: the connection is made (both connection_made, the future
    has the transport), then both ends lose it with ConnectionResetError."""
    runtime = MemoryRuntime()
    servers: list[RecordingProtocol] = []

    def server() -> RecordingProtocol:
        servers.append(RecordingProtocol())
        return servers[-1]

    listener = runtime.listen_tcp(server)
    runtime.reset_next(("127.0.0.1", listener.port))
    client = connected(runtime, listener.port)
    runtime.run_until_idle()
    for end in (client, servers[0]):
        assert end.events[0][0] == "connection_made"
        assert end.lost
        assert isinstance(end.lost_exc, ConnectionResetError)
    assert listener.connections == set()


def test_drop_next_times_out_on_the_fake_clock() -> None:
    """drop_next: the connection is never answered; its future fails with
    TimeoutError once its timeout has passed on the fake clock, not before."""
    runtime = MemoryRuntime()
    listener = runtime.listen_tcp(EchoProtocol)
    runtime.drop_next(("127.0.0.1", listener.port))
    connecting = runtime.connect_tcp(RecordingProtocol, "127.0.0.1", listener.port, timeout=10)
    runtime.advance(9.5)
    assert not connecting.done()
    runtime.advance(0.5)
    assert connecting.done()
    error = connecting.exception()
    assert isinstance(error, TimeoutError)
    assert str(error) == f"[Errno 110] cannot connect to 127.0.0.1:{listener.port}: no answer in 10 s"
    assert runtime.now() == 10.0
    assert listener.connections == set()


def test_a_pump_resets_or_stalls_one_connection() -> None:
    """Each connection's pump is in runtime.pumps: a stalled server end makes
    the client's buffer fill until pause_writing; a reset ends both ends."""
    runtime = MemoryRuntime()
    listener = runtime.listen_tcp(EchoProtocol)
    client = connected(runtime, listener.port)
    pump = runtime.pumps[0]
    pump.stall("server")
    client.transport.write(b"x" * 100_000)
    runtime.run_until_idle()
    assert client.writing_paused
    assert client.received == b""
    pump.unstall("server")
    runtime.run_until_idle()
    assert client.received == b"x" * 100_000
    pump.reset()
    assert isinstance(client.lost_exc, ConnectionResetError)


# ------------------------------------------------------------------- time


class IdleCloser(LineProtocol):
    """Echoes lines; closes after ``timeout`` quiet seconds, by its transport's clock."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout
        self.timer: TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.timer = clock_of(transport).call_later(self.timeout, self.transport.close)

    def line_received(self, line: bytes) -> None:
        self.send_line(line)
        if self.timer is not None:
            self.timer.cancel()
        self.timer = clock_of(self.transport).call_later(self.timeout, self.transport.close)


def test_a_protocols_timeout_fires_on_the_runtimes_clock() -> None:
    """A served protocol's timers run on the runtime's FakeClock: advance(29)
    leaves the connection open, a line restarts the timer, and 30 quiet
    seconds close it, with the client told at once."""
    runtime = MemoryRuntime()
    listener = runtime.listen_tcp(lambda: IdleCloser(30))
    client = connected(runtime, listener.port)
    runtime.advance(29)
    client.transport.write(b"still here\r\n")
    runtime.advance(29)
    assert not client.lost
    assert client.received == b"still here\r\n"
    runtime.advance(1)
    assert client.lost
    assert runtime.now() == 59.0


def test_an_http_keep_alive_connection_is_closed_after_its_idle_timeout() -> None:
    """weft's HTTP server on the memory runtime: a request is answered, and
    the kept-alive connection closes when its keep-alive timeout runs out on
    the fake clock (run_until jumps there), not a second before."""
    runtime = MemoryRuntime()

    def hello(request: Request, response: ResponseWriter) -> None:
        response.send(200, {"content-type": "text/plain"}, b"hello")

    limits = HTTPLimits(keep_alive_timeout=15)
    listener = runtime.listen_tcp(lambda: HTTPServerProtocol(hello, limits=limits))
    client = connected(runtime, listener.port)
    client.transport.write(b"GET / HTTP/1.1\r\nhost: memory\r\n\r\n")
    runtime.run_until_idle()
    assert client.received.startswith(b"HTTP/1.1 200 ")
    assert client.received.endswith(b"\r\n\r\nhello")
    runtime.advance(14.9)
    assert not client.got_eof
    assert runtime.run_until(lambda: client.got_eof, timeout=60)
    assert 15.0 <= runtime.now() < 16.0


def test_run_until_jumps_to_its_timeout_and_run_refuses_to_wait_forever() -> None:
    """run_until with nothing scheduled answers False at once, or after its
    timeout when given one (the clock is there); run() with nothing scheduled
    and no stop() raises IdleForeverError instead of hanging; with a timer
    that stops it, it returns at the timer's time."""
    runtime = MemoryRuntime(clock=FakeClock(start=100))
    assert not runtime.run_until(lambda: False)
    assert runtime.now() == 100.0
    assert not runtime.run_until(lambda: False, timeout=60)
    assert runtime.now() == 160.0
    with pytest.raises(IdleForeverError, match="stop"):
        runtime.run()
    assert not runtime.running
    runtime.call_later(5, runtime.stop)
    runtime.run()
    assert runtime.now() == 165.0


def test_errors_are_loud_and_endless_talk_is_caught() -> None:
    """A server protocol that raises ends its connection and the exception
    comes out of the step that ran it; two protocols that never stop talking
    raise NotSettledError rather than hang."""
    runtime = MemoryRuntime()

    class Broken(EchoProtocol):
        def data_received(self, data: bytes) -> None:
            raise ValueError("a bug in the protocol")

    broken = runtime.listen_tcp(Broken)
    client = connected(runtime, broken.port)
    client.transport.write(b"boom")
    with pytest.raises(ValueError, match="a bug"):
        runtime.run_until_idle()
    runtime.run_until_idle()
    assert isinstance(client.lost_exc, ConnectionResetError)

    class Chatty(EchoProtocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            transport.write(b"ping")

    chatty = runtime.listen_tcp(EchoProtocol)
    connecting = runtime.connect_tcp(Chatty, "127.0.0.1", chatty.port)
    with pytest.raises(NotSettledError):
        runtime.run_until(connecting.done)


def test_a_factory_that_raises() -> None:
    """The client's factory raising fails its connect with that exception; the
    listener's factory raising comes out of the step (loud) and the client's
    connect fails with ConnectionResetError; no connection is left."""
    runtime = MemoryRuntime()
    listener = runtime.listen_tcp(EchoProtocol)

    def broken() -> EchoProtocol:
        raise LookupError("no protocol today")

    connecting = runtime.connect_tcp(broken, "127.0.0.1", listener.port)
    assert runtime.run_until(connecting.done)
    assert isinstance(connecting.exception(), LookupError)
    refusing = runtime.listen_tcp(broken)
    connecting = runtime.connect_tcp(RecordingProtocol, "127.0.0.1", refusing.port)
    with pytest.raises(LookupError):
        runtime.run_until_idle()
    assert isinstance(connecting.exception(), ConnectionResetError)
    assert runtime.pumps == []


def test_close_aborts_what_is_open_and_ends_the_runtime() -> None:
    """close() closes the listeners and aborts the connections (each protocol
    hears connection_lost before it returns); a closed runtime refuses work,
    and a running one cannot be closed."""
    runtime = MemoryRuntime()
    listener = runtime.listen_tcp(EchoProtocol)
    client = connected(runtime, listener.port)

    def close_while_running() -> None:
        with pytest.raises(RuntimeError, match="running"):
            runtime.close()
        runtime.stop()

    runtime.call_soon(close_while_running)
    runtime.run()
    with runtime:
        pass
    assert client.lost
    assert listener.closed
    with pytest.raises(ClosedResourceError):
        runtime.listen_tcp(EchoProtocol)
    with pytest.raises(ClosedResourceError):
        runtime.connect_tcp(EchoProtocol, "127.0.0.1", 1)
    with pytest.raises(ClosedResourceError):
        runtime.run()
    runtime.close()  # again: nothing happens


# ----------------------------------------------------------------- Server


def test_a_server_on_the_memory_runtime_stops_gracefully() -> None:
    """Server runs on a MemoryRuntime: stop() at 10 s closes the listener (a
    new client is refused), the open connection gets its grace period of fake
    time, and is cut off at its end: run() returns at 10 + grace."""
    runtime = MemoryRuntime()
    server = Server(runtime, EchoProtocol, grace=5)
    server.listen_tcp("127.0.0.1", 0)
    port = server.port
    assert port is not None
    assert server.addresses == [f"127.0.0.1:{port}"]
    client = connected(runtime, port)
    late: list[BaseException | None] = []

    def try_to_connect() -> None:
        connecting = runtime.connect_tcp(RecordingProtocol, "127.0.0.1", port)
        connecting.add_done_callback(lambda done: late.append(done.exception()))

    runtime.call_later(10, server.stop)
    runtime.call_later(11, try_to_connect)
    server.run()
    assert runtime.now() == 15.0
    assert client.lost
    assert isinstance(late[0], ConnectionRefusedError)
    assert server.open_connections() == []


def test_a_server_with_a_limit_answers_busy_in_memory() -> None:
    """max_connections on the memory runtime: the connection over the limit
    gets the busy reply and an EOF; once one leaves, the next is served."""
    runtime = MemoryRuntime()
    server = Server(runtime, EchoProtocol, max_connections=1, busy_reply=b"BUSY\r\n")
    listener = server.listen_tcp("127.0.0.1", 0)
    first = connected(runtime, listener.addresses[0][1])
    second = connected(runtime, listener.addresses[0][1])
    runtime.run_until(lambda: second.lost, timeout=60)
    assert second.received == b"BUSY\r\n"
    assert second.got_eof
    assert server.refused == 1
    first.transport.close()
    runtime.run_until_idle()  # the server's end closes too
    assert listener.connections == set()
    third = connected(runtime, listener.addresses[0][1])
    third.transport.write(b"served")
    runtime.run_until_idle()
    assert third.received == b"served"


def test_coroutine_streams_serve_and_connect_in_memory(caplog: pytest.LogCaptureFixture) -> None:
    """The coroutine library on the memory runtime: serve_tcp's handler and an
    open_tcp client talk line by line, and a 30-second wait inside the client
    takes no real time."""
    runtime = MemoryRuntime()

    async def shout(stream: Stream) -> None:
        while line := await stream.readline():
            await stream.send(line.upper())

    async def client(port: int) -> list[bytes]:
        from weft.drivers.coroutines import sleep

        stream = await open_tcp(runtime, "127.0.0.1", port)
        replies = []
        for word in (b"one\n", b"two\n"):
            await stream.send(word)
            replies.append(await stream.readline())
            await sleep(30)
        await stream.close()
        return replies

    listener = serve_tcp(runtime, shout)
    with caplog.at_level(logging.ERROR):
        assert run(runtime, client(listener.addresses[0][1]), timeout=120) == [b"ONE\n", b"TWO\n"]
    assert runtime.now() == 60.0
    assert caplog.records == []

"""StdioBridge in-process, on every driver that can run here: flow control
both ways, half-close, and how a session ends.  "stdin" and "stdout" are
pipes the test holds; the server is a protocol on the same runtime."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support import TIMEOUT
from weft._cli.bridge import StdioBridge
from weft.drivers import Future, PipesRuntime, Runtime, TCPRuntime
from weft.protocols.contract import Protocol, Transport

MIB = 1024 * 1024
#: Far more than loopback's socket buffers and a pipe's hold together, so
#: that without flow control the bridge would have to buffer most of it.
PAYLOAD = bytes(range(256)) * (32 * MIB // 256)
#: What the bridge may hold for a side that does not read: the high-water
#: mark (64 KiB) plus one read, with room to spare; without flow control it
#: would be tens of megabytes.
BOUND = 1 * MIB


#: Every test runs on each driver with TCP and pipes (the ``runtime`` fixture).
pytestmark = pytest.mark.drivers(requires={TCPRuntime, PipesRuntime})


class Pipes:
    """Two pipes standing in for stdin and stdout."""

    def __init__(self) -> None:
        self.stdin_read, self.stdin_write = os.pipe()
        self.stdout_read, self.stdout_write = os.pipe()

    def close(self) -> None:
        for fd in (self.stdin_read, self.stdin_write, self.stdout_read, self.stdout_write):
            if fd >= 0:
                os.close(fd)

    def end_stdin(self) -> None:
        os.close(self.stdin_write)
        self.stdin_write = -1


@pytest.fixture
def pipes() -> Iterator[Pipes]:
    made = Pipes()
    try:
        yield made
    finally:
        made.close()


class Server(Protocol):
    """The far end: records what it gets, and runs ``on_connect`` when connected."""

    transport: Transport

    def __init__(self, on_connect: Callable[[Server], object], *, on_eof: bytes | None = None) -> None:
        self.on_connect = on_connect
        self.on_eof = on_eof
        self.received = bytearray()
        self.got_eof = False
        self.lost = False

    def connection_made(self, transport: Any) -> None:
        self.transport: Transport = transport
        self.on_connect(self)

    def data_received(self, data: bytes) -> None:
        self.received += data

    def eof_received(self) -> bool:
        self.got_eof = True
        if self.on_eof is not None:
            self.transport.write(self.on_eof)
        self.transport.close()
        return True

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = True


def start(
    runtime: Runtime, server: Server, pipes: Pipes, *, idle_timeout: float | None = None
) -> tuple[StdioBridge, Future[Transport]]:
    """A bridge from the pipes to ``server``, and its connect under way; with
    a watchdog that interrupts it (and so fails the test) past TIMEOUT."""
    on_connect = server.on_connect

    def accepted(server: Server) -> None:
        # One connection is all it takes; closed a turn later, not from
        # inside the accept.
        runtime.call_soon(listener.close)
        on_connect(server)

    server.on_connect = accepted
    listener = runtime.listen_tcp(lambda: server, "127.0.0.1", 0)
    port = listener.addresses[0][1]
    bridge = StdioBridge(
        runtime,
        f"127.0.0.1:{port}",
        read_fd=pipes.stdin_read,
        write_fd=pipes.stdout_write,
        idle_timeout=idle_timeout,
    )
    runtime.call_later(TIMEOUT, bridge.interrupt, 0)
    connecting = runtime.connect_tcp(bridge.network_protocol, "127.0.0.1", port)
    return bridge, connecting


def run(runtime: Runtime, bridge: StdioBridge, connecting: Future[Transport], server: Server) -> None:
    """Run the session to its end, then until the server's end of it is gone too."""
    try:
        bridge.run(connecting)
    finally:
        assert runtime.run_until(lambda: server.lost, TIMEOUT)


def every_turn(runtime: Runtime, check: Callable[[], bool]) -> None:
    """Call ``check()`` once per turn of the loop until it returns True."""

    def again() -> None:
        if not check():
            runtime.call_soon(again)

    runtime.call_soon(again)


def read_all_in_background(fd: int, size: int) -> tuple[threading.Thread, bytearray]:
    received = bytearray()

    def read() -> None:
        while len(received) < size and (chunk := os.read(fd, 65536)):
            received.extend(chunk)

    return threading.Thread(target=read, daemon=True), received


def test_a_slow_stdout_pauses_reading_the_connection(runtime: Runtime, pipes: Pipes) -> None:
    """Nobody reads stdout: the bridge stops reading the connection (the server
    is told to pause writing) instead of buffering; once stdout is read again,
    every byte arrives, in order."""

    def flood(server: Server) -> None:
        server.transport.write(PAYLOAD)
        server.transport.write_eof()

    server = Server(flood)
    bridge, connecting = start(runtime, server, pipes)
    reader, received = read_all_in_background(pipes.stdout_read, len(PAYLOAD))
    most_buffered = 0
    network_paused = False

    def watch() -> bool:
        nonlocal most_buffered, network_paused
        network, stdout = bridge.network_transport, bridge.stdio_transport
        if network is None or stdout is None:
            return False
        most_buffered = max(most_buffered, stdout.get_write_buffer_size())
        if not network_paused and stdout.get_write_buffer_size() and not network.is_reading():
            network_paused = True
            reader.start()  # the bridge holds back: now drain stdout
        return False  # measure until the session ends

    every_turn(runtime, watch)
    run(runtime, bridge, connecting, server)
    reader.join(TIMEOUT)
    assert bridge.interrupted is None, "the watchdog had to stop the bridge"
    assert network_paused
    assert 0 < most_buffered <= BOUND
    assert bytes(received) == PAYLOAD


def test_a_slow_connection_pauses_reading_stdin(runtime: Runtime, pipes: Pipes) -> None:
    """The server does not read: the bridge stops reading stdin instead of
    buffering.  Once the server reads, all of stdin arrives, then its EOF as a
    half-close, and the server's answer to that EOF still reaches stdout."""
    server = Server(lambda server: server.transport.pause_reading(), on_eof=b"all read\n")
    bridge, connecting = start(runtime, server, pipes)

    def write_stdin() -> None:
        view = memoryview(PAYLOAD)
        while view:
            view = view[os.write(pipes.stdin_write, view[: 1024 * 1024]) :]
        pipes.end_stdin()

    writer = threading.Thread(target=write_stdin, daemon=True)
    writer.start()
    most_buffered = 0
    stdin_paused = False

    def watch() -> bool:
        nonlocal most_buffered, stdin_paused
        network, stdio = bridge.network_transport, bridge.stdio_transport
        if network is None or stdio is None:
            return False
        most_buffered = max(most_buffered, network.get_write_buffer_size())
        if not stdin_paused and not stdio.is_reading() and network.get_write_buffer_size():
            stdin_paused = True
            server.transport.resume_reading()  # the bridge holds back: now read
        return False  # measure until the session ends

    every_turn(runtime, watch)
    run(runtime, bridge, connecting, server)
    writer.join(TIMEOUT)
    assert bridge.interrupted is None, "the watchdog had to stop the bridge"
    assert stdin_paused
    assert 0 < most_buffered <= BOUND
    assert server.got_eof
    assert bytes(server.received) == PAYLOAD
    assert os.read(pipes.stdout_read, 100) == b"all read\n"


def test_the_connection_closing_ends_the_session(runtime: Runtime, pipes: Pipes) -> None:
    """The server's close ends the session cleanly, though stdin is still open;
    the descriptors are left open and blocking."""

    def say_bye(server: Server) -> None:
        server.transport.write(b"bye\n")
        server.transport.close()

    server = Server(say_bye)
    bridge, connecting = start(runtime, server, pipes)
    run(runtime, bridge, connecting, server)
    assert (bridge.interrupted, bridge.error) == (None, None)
    assert os.read(pipes.stdout_read, 100) == b"bye\n"
    assert os.get_blocking(pipes.stdin_read)
    assert os.get_blocking(pipes.stdout_write)


def test_an_idle_session_times_out(runtime: Runtime, pipes: Pipes) -> None:
    """With idle_timeout, a session in which nothing moves ends with TimeoutError."""
    server = Server(lambda server: None)
    bridge, connecting = start(runtime, server, pipes, idle_timeout=0.2)
    with pytest.raises(TimeoutError, match=r"nothing sent either way for 0\.2 s"):
        run(runtime, bridge, connecting, server)
    assert bridge.interrupted is None


def test_interrupt_ends_the_session(runtime: Runtime, pipes: Pipes) -> None:
    """interrupt() aborts both sides; run() returns without raising."""
    server = Server(lambda server: runtime.call_soon(bridge.interrupt, 15))
    bridge, connecting = start(runtime, server, pipes)
    run(runtime, bridge, connecting, server)
    assert bridge.interrupted == 15

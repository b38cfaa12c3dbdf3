"""weft's reactor as an asyncio event loop: the names, the transports, and
where this loop's asyncio API follows asyncio's contract over the reactor's.

CPython's own asyncio tests run against the loop in
tests/frameworks/test_asyncio_suite.py; these check what is weft's own.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import os
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import TIMEOUT
from tests.support.backlog import full_backlog
from tests.support.tls import HOSTNAME, client_context, server_context
from weft.drivers.reactor import (
    DescriptorTransport,
    EventLoop,
    EventLoopPolicy,
    Reactor,
    new_event_loop,
    run,
)
from weft.protocols import EchoProtocol


def run_on_weft(main: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``main()`` on a new weft loop, bounded by the suite's timeout."""

    async def bounded() -> Any:
        async with asyncio.timeout(TIMEOUT):
            return await main()

    return run(bounded())


async def echo_server() -> tuple[asyncio.Server, int]:
    """An asyncio streams echo server on loopback; the server and its port."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


# ------------------------------------------------------------------ names


def test_run_returns_the_result_on_a_weft_loop() -> None:
    """``run(main())`` is ``asyncio.run`` on weft's loop."""

    async def main() -> type:
        return type(asyncio.get_running_loop())

    assert run(main()) is EventLoop


def test_runner_takes_new_event_loop_as_its_factory() -> None:
    """Python 3.11's way to pick a loop: ``asyncio.Runner(loop_factory=...)``."""

    async def main() -> bool:
        return isinstance(asyncio.get_running_loop(), EventLoop)

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        assert runner.run(main())


def test_the_policy_makes_weft_loops() -> None:
    """``asyncio.set_event_loop_policy(EventLoopPolicy())`` makes every new loop weft's."""
    loop = EventLoopPolicy().new_event_loop()
    try:
        assert isinstance(loop, EventLoop)
        assert isinstance(loop.reactor, Reactor)
    finally:
        loop.close()


# ------------------------------------------------------------- transports


def test_streams_run_on_the_reactors_transports() -> None:
    """asyncio streams get weft's DescriptorTransport, which is an asyncio.Transport."""

    async def main() -> None:
        server, port = await echo_server()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert isinstance(writer.transport, DescriptorTransport)
        assert isinstance(writer.transport, asyncio.Transport)
        writer.write(b"hello\n")
        assert await reader.readline() == b"hello\n"
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run_on_weft(main)


def test_a_steady_exchange_changes_no_registration() -> None:
    """Echoing 200 messages through asyncio's streams makes no epoll_ctl: the
    connection is registered once, on the reactor's poller."""

    async def main() -> int:
        server, port = await echo_server()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"warm-up\n")
        await reader.readline()
        poller = asyncio.get_running_loop().reactor.poller  # type: ignore[attr-defined]
        before = poller.changes
        for index in range(200):
            writer.write(b"%d\n" % index)
            assert await reader.readline() == b"%d\n" % index
        changes: int = poller.changes - before
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return changes

    assert run_on_weft(main) == 0


# ------------------------------------------------------------ the turn


class OrderRecorder(asyncio.Protocol):
    """Records into a shared list when data arrives."""

    def __init__(self, order: list[str]) -> None:
        self.order = order

    def data_received(self, data: bytes) -> None:
        self.order.append(f"data {data.decode()}")


@pytest.mark.parametrize("make_loop", [asyncio.new_event_loop, new_event_loop], ids=["asyncio", "weft"])
def test_a_turn_runs_what_was_ready_before_its_io_as_asyncio_does(
    make_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """Within one turn, callbacks that were ready before the poll run before
    the I/O callbacks of that poll, and what they schedule waits for the
    next turn: the same order on weft's loop (whose transports read inline,
    with no handle per event) as on asyncio's."""
    order: list[str] = []
    loop = make_loop()
    ours, theirs = socket.socketpair()
    try:

        async def connect() -> asyncio.BaseTransport:
            transport, _ = await loop.create_connection(lambda: OrderRecorder(order), sock=ours)
            return transport

        transport = loop.run_until_complete(connect())
        theirs.sendall(b"x")  # in the kernel's buffer before the turn polls

        def ready_before() -> None:
            order.append("ready before")
            loop.call_soon(order.append, "scheduled during the turn")

        loop.call_soon(ready_before)
        loop.call_soon(loop.stop)
        loop.run_forever()  # stop() was ready too: exactly one turn
        assert order == ["ready before", "data x"]
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert order == ["ready before", "data x", "scheduled during the turn"]
        transport.close()
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        theirs.close()
        loop.close()


@pytest.mark.parametrize("make_loop", [asyncio.new_event_loop, new_event_loop], ids=["asyncio", "weft"])
def test_a_turn_runs_its_readers_then_its_due_timers_and_defers_what_they_schedule(
    make_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """asyncio's own readers (``add_reader``) run in the turn that polled
    them, after what was ready before and before the timers due, and what
    they schedule runs next turn: the same on both loops."""
    order: list[str] = []
    loop = make_loop()
    ours, theirs = socket.socketpair()
    try:
        theirs.sendall(b"x")

        def read() -> None:
            order.append("reader")
            ours.recv(1)
            loop.remove_reader(ours.fileno())
            loop.call_soon(order.append, "scheduled by the reader")

        loop.add_reader(ours.fileno(), read)
        loop.call_at(loop.time() - 1, order.append, "timer")  # already due
        loop.call_soon(order.append, "ready before")
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert order == ["ready before", "reader", "timer"]
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert order == ["ready before", "reader", "timer", "scheduled by the reader"]
    finally:
        ours.close()
        theirs.close()
        loop.close()


def test_call_soon_hands_out_asyncio_handles_that_keep_asyncio_rules() -> None:
    """The loop schedules callbacks without Handle's __init__, yet the handle is
    an asyncio.Handle: cancelling it skips the callback, the callback runs in
    the context given, in order, with its arguments, and an exception goes to
    the exception handler with asyncio's message and the handle."""
    variable: contextvars.ContextVar[str] = contextvars.ContextVar("variable", default="default")
    seen: list[object] = []
    errors: list[dict[str, Any]] = []

    def fail() -> None:
        raise ValueError("from a callback")

    loop = new_event_loop()
    try:
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        context = contextvars.copy_context()
        context.run(variable.set, "given")
        first = loop.call_soon(seen.append, 1)
        cancelled = loop.call_soon(seen.append, "cancelled")
        failing = loop.call_soon(fail)
        loop.call_soon(lambda: seen.append(variable.get()), context=context)
        loop.call_soon(seen.append, 2)
        cancelled.cancel()
        assert type(first) is asyncio.Handle
        assert cancelled.cancelled()
        assert not first.cancelled()
        loop.call_soon(loop.stop)
        loop.run_forever()
    finally:
        loop.close()
    assert seen == [1, "given", 2]
    assert len(errors) == 1
    assert errors[0]["message"].startswith("Exception in callback ")
    assert "fail" in errors[0]["message"]
    assert isinstance(errors[0]["exception"], ValueError)
    assert errors[0]["handle"] is failing


def test_debug_mode_logs_a_slow_callback(caplog: pytest.LogCaptureFixture) -> None:
    """In debug mode the turn times each callback as asyncio's does and logs
    one slower than ``slow_callback_duration`` on asyncio's logger."""
    loop = new_event_loop()
    try:
        loop.set_debug(True)
        loop.slow_callback_duration = 0.0  # every callback is "slow": nothing waits on the wall clock
        current: list[object] = []

        def note_current() -> None:
            current.append(loop._current_handle)

        handle = loop.call_soon(note_current)
        loop.call_soon(loop.stop)
        with caplog.at_level("WARNING", logger="asyncio"):
            loop.run_forever()
    finally:
        loop.close()
    assert current == [handle]
    assert any(
        record.name == "asyncio"
        and record.getMessage().startswith("Executing <Handle")
        and "note_current() at" in record.getMessage()
        for record in caplog.records
    )


def test_the_reactor_refuses_to_run_inside_the_running_loop() -> None:
    """While the loop runs, its reactor is running: ``loop.reactor.run()``
    from a coroutine raises rather than nesting a second loop on the same poller."""

    async def main() -> str:
        loop = asyncio.get_running_loop()
        if not isinstance(loop, EventLoop):
            raise TypeError("not on weft's loop")
        assert loop.reactor.running
        with pytest.raises(RuntimeError, match="already running"):
            loop.reactor.run()
        return "refused"

    assert run_on_weft(main) == "refused"


def test_weft_protocols_and_asyncio_code_share_the_loop() -> None:
    """A weft protocol served by the loop's reactor answers an asyncio client on the same loop."""

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        if not isinstance(loop, EventLoop):
            raise TypeError("not on weft's loop")
        listener = loop.reactor.listen_tcp(EchoProtocol, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"across\n")
        line = await reader.readline()
        writer.close()
        await writer.wait_closed()
        listener.close()
        return line

    assert run_on_weft(main) == b"across\n"


def test_writelines_feeds_flow_control() -> None:
    """writelines() past the high-water mark pauses the protocol (asyncio's
    gh-127655 was a writelines that never did), and the drain resumes it."""

    class Recorder(asyncio.Protocol):
        def __init__(self) -> None:
            self.events: list[str] = []
            self.resumed = asyncio.get_running_loop().create_future()

        def pause_writing(self) -> None:
            self.events.append("pause")

        def resume_writing(self) -> None:
            self.events.append("resume")
            if not self.resumed.done():
                self.resumed.set_result(None)

    async def main() -> list[str]:
        server, port = await echo_server()
        transport, protocol = await asyncio.get_running_loop().create_connection(Recorder, "127.0.0.1", port)
        transport.set_write_buffer_limits(high=1024)
        transport.writelines([b"x" * 65536] * 64)
        paused = list(protocol.events)
        await protocol.resumed
        transport.close()
        server.close()
        await server.wait_closed()
        return paused

    assert run_on_weft(main) == ["pause"]


def test_a_buffered_protocol_is_read_into_its_own_buffer() -> None:
    """asyncio.BufferedProtocol: get_buffer, then buffer_updated with the count."""

    class Collector(asyncio.BufferedProtocol):
        def __init__(self) -> None:
            self.buffer = bytearray(7)  # small: the data takes several reads
            self.received = bytearray()
            self.done = asyncio.get_running_loop().create_future()

        def get_buffer(self, sizehint: int) -> bytearray:
            return self.buffer

        def buffer_updated(self, nbytes: int) -> None:
            self.received += self.buffer[:nbytes]

        def eof_received(self) -> None:
            self.done.set_result(bytes(self.received))

    async def main() -> bytes:
        payload = bytes(range(256)) * 40
        server, port = await echo_server()
        transport, protocol = await asyncio.get_running_loop().create_connection(Collector, "127.0.0.1", port)
        if not isinstance(transport, asyncio.WriteTransport):
            raise TypeError("not a write transport")
        transport.write(payload)
        transport.write_eof()
        received: bytes = await protocol.done
        transport.close()
        server.close()
        await server.wait_closed()
        return received

    assert run_on_weft(main) == bytes(range(256)) * 40


# --------------------------------------------------- asyncio's contract here


def test_add_reader_replaces_silently_as_asyncio_does() -> None:
    """The loop's add_reader follows asyncio (the reactor's own raises
    BusyResourceError): the second callback replaces the first."""

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        left, right = socket.socketpair()
        calls: list[str] = []
        done = loop.create_future()

        def first() -> None:
            calls.append("first")

        def second() -> None:
            calls.append("second")
            left.recv(10)
            done.set_result(None)

        loop.add_reader(left, first)
        loop.add_reader(left, second)
        right.send(b"x")
        await done
        assert loop.remove_reader(left)
        left.close()
        right.close()
        return calls

    assert run_on_weft(main) == ["second"]


def test_add_reader_refuses_an_fd_a_transport_uses() -> None:
    """As on asyncio's loop: RuntimeError for an fd a live transport reads."""

    async def main() -> None:
        server, port = await echo_server()
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.get_extra_info("socket")
        with pytest.raises(RuntimeError, match="is used by transport"):
            asyncio.get_running_loop().add_reader(sock.fileno(), lambda: None)
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run_on_weft(main)


def test_a_protocol_error_reaches_the_exception_handler_and_ends_that_connection() -> None:
    """asyncio's rule on this loop: the handler hears of it, the connection ends,
    the loop and other connections go on."""

    class Failing(asyncio.Protocol):
        def __init__(self) -> None:
            self.lost = asyncio.get_running_loop().create_future()

        def data_received(self, data: bytes) -> None:
            raise ValueError("bad data")

        def connection_lost(self, exc: Exception | None) -> None:
            self.lost.set_result(exc)

    async def main() -> tuple[list[dict[str, Any]], BaseException | None, bytes]:
        loop = asyncio.get_running_loop()
        contexts: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: contexts.append(context))
        server, port = await echo_server()
        transport, protocol = await loop.create_connection(Failing, "127.0.0.1", port)
        if not isinstance(transport, asyncio.WriteTransport):
            raise TypeError("not a write transport")
        transport.write(b"ping")
        lost = await protocol.lost
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"still here\n")
        line = await reader.readline()
        writer.close()
        server.close()
        await server.wait_closed()
        return contexts, lost, line

    contexts, lost, line = run_on_weft(main)
    # (The echo server's handler, reset by that connection's end, reports too.)
    ours = [context for context in contexts if isinstance(context.get("protocol"), Failing)]
    assert [type(context["exception"]) for context in ours] == [ValueError]
    assert isinstance(lost, ValueError)
    assert line == b"still here\n"


# ---------------------------------------------------------- sendfile, TLS


def test_sendfile_sends_the_range_with_os_sendfile_and_moves_the_file_position() -> None:
    """loop.sendfile on the loop's transports: queued behind earlier writes,
    the given range, the file's position after it, and write() refused meanwhile."""

    async def main() -> tuple[bytes, int, int]:
        loop = asyncio.get_running_loop()
        received = bytearray()
        got_all = loop.create_future()

        async def collect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.extend(await reader.read())
            got_all.set_result(None)
            writer.close()

        server = await asyncio.start_server(collect, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        with tempfile.TemporaryFile() as file:
            file.write(bytes(range(256)) * 4096)  # 1 MiB
            file.flush()
            writer.write(b"head:")
            sending = asyncio.ensure_future(
                loop.sendfile(writer.transport, file, offset=256, count=512 * 1024)
            )
            await asyncio.sleep(0)
            with pytest.raises(RuntimeError, match="sendfile is in progress"):
                writer.write(b"too early")
            sent = await sending
            position = file.tell()
        writer.write(b":tail")
        writer.write_eof()
        await got_all
        writer.close()
        server.close()
        await server.wait_closed()
        return bytes(received), sent, position

    received, sent, position = run_on_weft(main)
    expected = b"head:" + (bytes(range(256)) * 4096)[256 : 256 + 512 * 1024] + b":tail"
    assert received == expected
    assert sent == 512 * 1024
    assert position == 256 + 512 * 1024


def test_start_tls_upgrades_a_stream_in_place() -> None:
    """StreamWriter.start_tls on the loop's transports (asyncio checks they say they can)."""

    async def main() -> bytes:
        async def upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert await reader.readline() == b"STARTTLS\n"
            writer.write(b"GO\n")
            await writer.drain()
            await writer.start_tls(server_context())
            writer.write((await reader.readline()).upper())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(upgrade, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"STARTTLS\n")
        assert await reader.readline() == b"GO\n"
        await writer.start_tls(client_context(), server_hostname=HOSTNAME)
        assert writer.get_extra_info("ssl_object") is not None
        writer.write(b"secret\n")
        answer = await reader.readline()
        writer.close()
        server.close()
        await server.wait_closed()
        return answer

    assert run_on_weft(main) == b"SECRET\n"


def test_closing_the_loop_ends_connections_left_open() -> None:
    """A connection still open when the loop closes is ended (its protocol
    hears connection_lost) and its descriptor closed: no leak."""
    loop = new_event_loop()
    lost: list[BaseException | None] = []

    class Watcher(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            lost.append(exc)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(Watcher, "127.0.0.1", port)
        fd: int = transport.get_extra_info("socket").fileno()
        server.close()
        return fd

    try:
        fd = loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT))
    finally:
        loop.close()
    assert lost == [None]
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(fd)


def test_datagram_endpoints_run_on_the_reactors_datagram_transport() -> None:
    """create_datagram_endpoint gets the reactor's datagram transport; a protocol
    error goes to the exception handler and the endpoint goes on (asyncio's rule)."""

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            if not isinstance(transport, asyncio.DatagramTransport):
                raise TypeError("not a datagram transport")
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            if data == b"boom":
                raise ValueError("boom")
            self.transport.sendto(data.upper(), addr)

    class Client(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.answers: asyncio.Queue[bytes] = asyncio.Queue()

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.answers.put_nowait(data)

    async def main() -> tuple[str, list[bytes], list[type]]:
        loop = asyncio.get_running_loop()
        errors: list[type] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(type(context["exception"])))
        server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        address = server.get_extra_info("sockname")
        client_transport, client = await loop.create_datagram_endpoint(Client, remote_addr=address)
        client_transport.sendto(b"one")
        first = await client.answers.get()
        client_transport.sendto(b"boom")
        client_transport.sendto(b"two")
        second = await client.answers.get()
        kind = type(server).__name__
        client_transport.close()
        server.close()
        return kind, [first, second], errors

    kind, answers, errors = run_on_weft(main)
    assert kind == "LoopDatagramTransport"
    assert answers == [b"ONE", b"TWO"]
    assert errors == [ValueError]


def test_the_example_in_docs_runs_as_written() -> None:
    """The example under "asyncio programs on weft's loop" in docs/asyncio.md
    runs, on weft's loop both ways it shows."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "asyncio.md").read_text()
    section = text.split("## asyncio programs on weft's loop\n", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None
    result = subprocess.run(
        [sys.executable, "-c", found.group(1)], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "HELLO\n\nHELLO\n\n"


def test_weft_protocols_on_the_loops_reactor_keep_weft_rules() -> None:
    """A transport made by the reactor's own API (loop.reactor.listen_tcp)
    serves a weft protocol by weft's contract: a bytearray write (the slow
    path) goes out, and abort() resets the connection."""

    class Answer(EchoProtocol):
        def data_received(self, data: bytes) -> None:
            self.transport.write(bytearray(b"got " + data))
            self.transport.abort()

    async def main() -> tuple[bytes, type | None]:
        loop = asyncio.get_running_loop()
        if not isinstance(loop, EventLoop):
            raise TypeError("not on weft's loop")
        listener = loop.reactor.listen_tcp(Answer, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"x")
        answer = await reader.read(5)
        error: type | None = None
        try:
            await reader.read()
        except ConnectionResetError as exc:
            error = type(exc)
        writer.close()
        listener.close()
        return answer, error

    assert run_on_weft(main) == (b"got x", ConnectionResetError)


def test_start_tls_over_a_pair_of_pipes() -> None:
    """asyncio's start_tls over the reactor's pipe transports: TLS over pipes,
    which asyncio's own pipe transports refuse."""

    class Side(asyncio.Protocol):
        def __init__(self) -> None:
            self.received: asyncio.Queue[bytes] = asyncio.Queue()

        def data_received(self, data: bytes) -> None:
            self.received.put_nowait(data)

    async def main() -> tuple[bytes, bytes]:
        loop = asyncio.get_running_loop()
        if not isinstance(loop, EventLoop):
            raise TypeError("not on weft's loop")
        to_server_read, to_server_write = os.pipe()
        to_client_read, to_client_write = os.pipe()
        server_side, client_side = Side(), Side()
        server_pipe = loop.reactor.connect_pipes(lambda: server_side, to_server_read, to_client_write)
        client_pipe = loop.reactor.connect_pipes(lambda: client_side, to_client_read, to_server_write)
        server_tls, client_tls = await asyncio.gather(
            loop.start_tls(server_pipe, server_side, server_context(), server_side=True),
            loop.start_tls(client_pipe, client_side, client_context(), server_hostname=HOSTNAME),
        )
        if server_tls is None or client_tls is None:
            raise RuntimeError("start_tls gave no transport")
        if not isinstance(client_tls, asyncio.WriteTransport) or not isinstance(
            server_tls, asyncio.WriteTransport
        ):
            raise TypeError("not write transports")
        client_tls.write(b"over a pipe")
        at_server = await server_side.received.get()
        server_tls.write(b"and back")
        at_client = await client_side.received.get()
        client_tls.abort()
        server_tls.abort()
        return at_server, at_client

    assert run_on_weft(main) == (b"over a pipe", b"and back")


# ------------------------------------------------------- a full UNIX backlog


def test_create_unix_connection_waits_for_room_in_a_full_backlog(tmp_path: Path) -> None:
    """asyncio's sock_connect takes EAGAIN from a full UNIX backlog for a
    connect under way and returns a socket that never connected; this loop's
    create_unix_connection stays pending instead, and connects once the
    listener accepts, with bytes flowing."""
    with full_backlog(str(tmp_path / "s")) as backlog:

        async def main() -> bytes:
            loop = asyncio.get_running_loop()
            connecting = asyncio.ensure_future(loop.create_unix_connection(asyncio.Protocol, backlog.path))
            done, _pending = await asyncio.wait({connecting}, timeout=0.05)
            assert not done, "create_unix_connection finished while the backlog was full"
            await loop.run_in_executor(None, backlog.drain)
            transport, _protocol = await connecting
            assert transport.get_extra_info("peername") == backlog.path
            peer = await loop.run_in_executor(None, backlog.accept)
            transport.write(b"ping")
            received: bytes = await loop.run_in_executor(None, peer.recv, 4)
            transport.close()
            return received

        assert run_on_weft(main) == b"ping"


def test_sock_connect_on_a_full_backlog_leaves_the_socket_unconnected_when_timed_out(tmp_path: Path) -> None:
    """The caller's timeout bounds the waiting; the socket it gave is left
    as it was, not connected (asyncio's own would say it was)."""
    with full_backlog(str(tmp_path / "s")) as backlog:

        async def main() -> int | None:
            loop = asyncio.get_running_loop()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.1):
                        await loop.sock_connect(sock, backlog.path)
                try:
                    sock.getpeername()
                except OSError as exc:
                    return exc.errno
                return None
            finally:
                sock.close()

        assert run_on_weft(main) == errno.ENOTCONN

"""Streams on the protocol layer: on the memory driver with a fake clock, and on the real reactor."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.support import TIMEOUT
from tests.support.backlog import full_backlog
from tests.support.streams import go, pair, settle
from weft.drivers import ListenerBacklogFullError, Runtime, TCPRuntime, UNIXRuntime
from weft.drivers.coroutines import Stream, StreamProtocol, open_tcp, open_unix, run, serve_tcp, spawn
from weft.drivers.coroutines._streams import DEFAULT_WRITE_LOW_WATER
from weft.drivers.reactor import Reactor
from weft.drivers.testing import FakeClock, connect_pair
from weft.protocols.errors import ArgumentError, BusyResourceError, ClosedResourceError, LineTooLongError


def test_receive_returns_what_arrived_up_to_max_bytes() -> None:
    """receive gives what has arrived, at most max_bytes at a time."""
    pump, client, server = pair()
    go(pump, client.send(b"hello"))
    assert go(pump, server.receive(2)) == b"he"
    assert go(pump, server.receive()) == b"llo"


def test_receive_waits_for_data() -> None:
    """A receive with nothing buffered waits until data arrives."""
    pump, client, server = pair()
    task = spawn(pump.clock, server.receive())
    settle(pump)
    assert not task.done()
    go(pump, client.send(b"late"))
    assert task.result() == b"late"


def test_readline_splits_lines_and_returns_the_last_partial_one_at_eof() -> None:
    """readline returns each line with its newline, the unterminated tail at EOF, then b''."""
    pump, client, server = pair()

    async def talk() -> None:
        await client.send(b"one\ntw")
        await client.send(b"o\nthr")
        client.send_eof()

    go(pump, talk())

    async def lines() -> list[bytes]:
        return [await server.readline() for _ in range(5)]

    assert go(pump, lines()) == [b"one\n", b"two\n", b"thr", b"", b""]


def test_a_line_over_the_limit_raises_and_leaves_the_stream_usable() -> None:
    """A line longer than limit raises LineTooLongError, consumes nothing, and receive still works."""
    pump, client, server = pair()
    go(pump, client.send(b"x" * 10 + b"\nok\n"))
    with pytest.raises(LineTooLongError) as info:
        go(pump, server.readline(limit=5))
    assert info.value.limit == 5
    assert go(pump, server.readline(limit=11)) == b"x" * 10 + b"\n"
    assert go(pump, server.readline(limit=5)) == b"ok\n"


def test_a_line_over_the_limit_raises_before_its_newline_arrives() -> None:
    """readline does not wait for a newline once more than limit bytes are buffered."""
    pump, client, server = pair()
    go(pump, client.send(b"y" * 8))
    with pytest.raises(LineTooLongError):
        go(pump, server.readline(limit=7))
    assert go(pump, server.receive()) == b"y" * 8


def test_eof_is_a_half_close() -> None:
    """After the peer's send_eof, receive gives b'' and this side can still send."""
    pump, client, server = pair()
    client.send_eof()
    assert go(pump, server.receive()) == b""
    go(pump, server.send(b"reply"))
    assert go(pump, client.receive()) == b"reply"


def test_a_lost_connection_raises_its_error_after_the_buffered_data() -> None:
    """Data buffered before a reset is still received; then receive and send raise the reset."""
    pump, client, server = pair()
    go(pump, client.send(b"last words"))
    pump.reset()
    assert go(pump, server.receive()) == b"last words"
    with pytest.raises(ConnectionResetError):
        go(pump, server.receive())
    with pytest.raises(ConnectionResetError):
        go(pump, server.send(b"x"))


def test_close_waits_for_the_end_and_the_peer_sees_eof() -> None:
    """close() returns once the connection is gone; the peer reads EOF; the stream then refuses use."""
    pump, client, server = pair()
    go(pump, client.send(b"bye"))
    go(pump, client.close())
    assert pump.client_transport.connection_lost_called
    assert go(pump, server.receive()) == b"bye"
    assert go(pump, server.receive()) == b""
    with pytest.raises(ClosedResourceError):
        go(pump, client.receive())
    with pytest.raises(ClosedResourceError):
        go(pump, client.send(b"x"))


def test_send_returns_only_once_no_more_than_the_low_water_mark_waits() -> None:
    """A send that leaves more than the low-water mark (16 KiB) queued waits,
    even under asyncio's high-water mark (64 KiB), until the peer has taken
    the buffer back down; the peer gets every byte."""
    pump, client, server = pair()
    pump.stall("server")
    sending = spawn(pump.clock, client.send(b"z" * 40_000))
    settle(pump)
    assert not sending.done()
    assert pump.client_transport.get_write_buffer_size() == 40_000
    pump.unstall("server")
    settle(pump)
    assert sending.done()
    assert sending.result() is None
    assert pump.client_transport.get_write_buffer_size() <= DEFAULT_WRITE_LOW_WATER
    assert go(pump, server.receive()) == b"z" * 40_000


def test_send_up_to_the_low_water_mark_returns_at_once() -> None:
    """A send that leaves no more than the low-water mark queued does not wait for the peer."""
    pump, client, _server = pair()
    pump.stall("server")
    task = spawn(pump.clock, client.send(b"s" * DEFAULT_WRITE_LOW_WATER))
    settle(pump)
    assert task.done()
    assert task.result() is None
    late = spawn(pump.clock, client.send(b"one more"))
    settle(pump)
    assert not late.done()
    pump.unstall("server")
    settle(pump)
    assert late.done()


def test_the_low_water_mark_is_the_streams_to_choose() -> None:
    """write_low_water sets the mark; a negative one is refused."""
    client, server = StreamProtocol(write_low_water=10), StreamProtocol()
    pump = connect_pair(client, server, clock=FakeClock())
    assert pump.client_transport.get_write_buffer_limits() == (10, 10)
    pump.stall("server")
    sending = spawn(pump.clock, client.stream.send(b"x" * 11))
    settle(pump)
    assert not sending.done()
    pump.unstall("server")
    settle(pump)
    assert sending.done()
    with pytest.raises(ArgumentError):
        StreamProtocol(write_low_water=-1)


def test_marks_set_on_the_transport_afterwards_are_honoured() -> None:
    """Water marks set later on the transport itself replace the stream's:
    a send over the high-water mark waits until the low-water mark."""
    pump, client, server = pair()
    pump.client_transport.set_write_buffer_limits(high=1000, low=100)
    pump.stall("server")
    sending = spawn(pump.clock, client.send(b"z" * 5000))
    settle(pump)
    assert not sending.done()
    pump.unstall("server")
    settle(pump)
    assert sending.done()
    assert go(pump, server.receive()) == b"z" * 5000


def test_reading_pauses_when_too_much_is_unread_and_resumes_when_drained() -> None:
    """Over read_limit unread bytes pause the transport's reading; receiving them resumes it."""
    pump, client, server = pair(read_limit=1000)
    go(pump, client.send(b"a" * 3000))
    assert not pump.server_transport.is_reading()
    go(pump, client.send(b"b" * 3000))
    assert pump.client_transport.get_write_buffer_size() == 3000  # held back by the pause
    assert go(pump, server.receive(100_000)) == b"a" * 3000
    assert go(pump, server.receive(100_000)) == b"b" * 3000
    assert pump.server_transport.is_reading()


def test_readline_may_buffer_past_the_read_limit() -> None:
    """A readline whose limit exceeds read_limit keeps reading until its line is complete."""
    pump, client, server = pair(read_limit=10)
    line = spawn(pump.clock, server.readline(limit=100))
    for _ in range(5):
        go(pump, client.send(b"c" * 10))
    go(pump, client.send(b"\n"))
    assert line.done()
    assert line.result() == b"c" * 50 + b"\n"


def test_a_second_concurrent_reader_is_refused() -> None:
    """Two tasks receiving from one stream at once: the second gets BusyResourceError."""
    pump, client, server = pair()
    first = spawn(pump.clock, server.receive())
    settle(pump)
    with pytest.raises(BusyResourceError):
        go(pump, server.receive())
    go(pump, client.send(b"for the first"))  # the first reader is still served
    assert first.result() == b"for the first"


# ---------------------------------------------------------- real runtimes


@pytest.mark.drivers(requires={TCPRuntime})
def test_serve_tcp_and_open_tcp_echo_on_real_sockets(runtime: Runtime) -> None:
    """An echo handler under serve_tcp answers an open_tcp client line by line on real sockets."""

    async def echo(stream: Stream) -> None:
        while line := await stream.readline():
            await stream.send(line)

    async def client(port: int) -> list[bytes]:
        stream = await open_tcp(runtime, "127.0.0.1", port)
        replies = []
        for word in (b"alpha\n", b"beta\n" * 10_000):
            await stream.send(word)
            got = b""
            while len(got) < len(word):
                got += await stream.receive()
            replies.append(got)
        stream.send_eof()
        assert await stream.receive() == b""
        await stream.close()
        return replies

    listener = serve_tcp(runtime, echo)
    port = listener.addresses[0][1]
    assert run(runtime, client(port), timeout=TIMEOUT) == [b"alpha\n", b"beta\n" * 10_000]
    listener.close()


@pytest.mark.drivers(requires={UNIXRuntime})
def test_open_unix_to_a_full_backlog_waits_then_raises_listener_backlog_full_error(
    runtime: Runtime, tmp_path: Path
) -> None:
    """open_unix to a listener whose backlog stays full raises ListenerBacklogFullError
    at its timeout, never a stream over a socket that did not connect."""
    with (
        full_backlog(str(tmp_path / "s")) as backlog,
        pytest.raises(ListenerBacklogFullError, match="backlog stayed full"),
    ):
        run(runtime, open_unix(runtime, backlog.path, timeout=0.2), timeout=TIMEOUT)


def test_a_failing_handler_is_logged_and_closes_only_its_connection(caplog: pytest.LogCaptureFixture) -> None:
    """A handler that raises is logged and its connection ends; another connection is served normally."""
    reactor = Reactor()

    async def handler(stream: Stream) -> None:
        line = await stream.readline()
        if line == b"boom\n":
            raise ValueError("boom")
        await stream.send(b"fine\n")

    async def client(port: int) -> tuple[bytes, bytes]:
        bad = await open_tcp(reactor, "127.0.0.1", port)
        good = await open_tcp(reactor, "127.0.0.1", port)
        await bad.send(b"boom\n")
        try:
            ended = await bad.receive()
        except ConnectionResetError:
            ended = b""
        await good.send(b"hi\n")
        reply = await good.readline()
        await bad.close()
        await good.close()
        return ended, reply

    try:
        listener = serve_tcp(reactor, handler)
        with caplog.at_level(logging.ERROR, logger="weft.drivers.coroutines"):
            assert run(reactor, client(listener.addresses[0][1]), timeout=TIMEOUT) == (b"", b"fine\n")
        assert "stream handler" in caplog.text
        assert "boom" in caplog.text
        listener.close()
    finally:
        reactor.close()

"""The memory driver's own promises: the test handles, the pump, fault injection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from weft.drivers.testing import FakeClock, MemoryTransport, RecordingProtocol, connect, connect_pair
from weft.protocols import EchoProtocol
from weft.protocols.contract import clock_of
from weft.protocols.errors import ClosedResourceError, NotSettledError

# ------------------------------------------------------ MemoryConnection


def test_connect_calls_connection_made_and_records_writes() -> None:
    """connect() runs connection_made at once; `written` is what the protocol wrote,
    and take_written() hands it over once."""
    protocol = RecordingProtocol()
    conn = connect(protocol)
    assert protocol.names == ["connection_made"]
    assert isinstance(protocol.transport, MemoryTransport)
    protocol.transport.write(b"ab")
    protocol.transport.writelines([b"c", b"d"])
    assert conn.written == b"abcd"
    assert conn.take_written() == b"abcd"
    assert conn.take_written() == b""
    assert conn.written == b""


def test_deliver_and_deliver_eof_reach_the_protocol_in_order() -> None:
    """deliver() calls data_received with exactly the bytes given; deliver_eof()
    calls eof_received, and a false answer closes the transport."""
    protocol = RecordingProtocol()
    conn = connect(protocol)
    conn.deliver(b"one")
    conn.deliver(b"two")
    conn.deliver_eof()
    assert protocol.events == [
        ("connection_made",),
        ("data_received", b"one"),
        ("data_received", b"two"),
        ("eof_received",),
        ("connection_lost", None),
    ]
    assert conn.closed
    assert conn.eof_written


def test_the_peer_cannot_send_after_its_eof() -> None:
    """deliver() after deliver_eof() is a test bug, reported as ClosedResourceError."""
    conn = connect(RecordingProtocol(keep_open_on_eof=True))
    conn.deliver_eof()
    with pytest.raises(ClosedResourceError):
        conn.deliver(b"late")
    with pytest.raises(ClosedResourceError):
        conn.deliver_eof()


def test_lose_connection_passes_the_exception() -> None:
    """lose_connection(exc) calls connection_lost(exc) at once; reset() uses a
    ConnectionResetError; either way the transport then behaves as closed."""
    first, second = RecordingProtocol(), RecordingProtocol()
    error = OSError("network unreachable")
    connect(first).lose_connection(error)
    assert first.lost_exc is error
    conn = connect(second)
    conn.reset()
    assert isinstance(second.lost_exc, ConnectionResetError)
    assert second.transport.is_closing()
    second.transport.write(b"dropped")
    assert conn.written == b""


def test_data_delivered_while_paused_is_held_until_resume() -> None:
    """While the protocol has paused reading, delivered data and EOF wait, and
    arrive in order after resume_reading (at the next step of the clock)."""
    protocol = RecordingProtocol()
    conn = connect(protocol)
    protocol.transport.pause_reading()
    conn.deliver(b"a")
    conn.deliver(b"b")
    conn.deliver_eof()
    assert protocol.names == ["connection_made"]
    protocol.transport.resume_reading()
    assert protocol.names == ["connection_made"]  # not from inside resume_reading
    conn.clock.advance(0)
    assert protocol.events[1:] == [
        ("data_received", b"a"),
        ("data_received", b"b"),
        ("eof_received",),
        ("connection_lost", None),
    ]


def test_data_arriving_before_held_data_is_drained_waits_its_turn() -> None:
    """Data delivered after resume_reading but before the held data has gone out
    is queued behind it: order is never broken."""
    protocol = RecordingProtocol()
    conn = connect(protocol)
    protocol.transport.pause_reading()
    conn.deliver(b"first")
    protocol.transport.resume_reading()
    conn.deliver(b"second")
    assert protocol.received == b"firstsecond"


def test_pausing_again_while_held_data_is_delivered_stops_it() -> None:
    """A protocol that pauses from data_received gets no more held data until it resumes."""

    class OneAtATime(RecordingProtocol):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self.transport.pause_reading()

    protocol = OneAtATime()
    conn = connect(protocol)
    conn.deliver(b"1")
    conn.deliver(b"2")
    conn.deliver(b"3")
    assert protocol.received == b"1"
    protocol.transport.resume_reading()
    conn.clock.advance(0)
    assert protocol.received == b"12"
    protocol.transport.resume_reading()
    conn.clock.advance(0)
    assert protocol.received == b"123"


def test_a_peer_that_never_reads_fills_the_buffer() -> None:
    """With peer_reads=False writes stay buffered and drive flow control; read(n)
    lets the peer take n bytes; turning peer_reads on reads the rest."""
    protocol = RecordingProtocol()
    conn = connect(protocol, peer_reads=False)
    protocol.transport.set_write_buffer_limits(high=10, low=4)
    protocol.transport.write(b"0123456789")
    assert protocol.names == ["connection_made"]
    protocol.transport.write(b"A")
    assert protocol.names[-1] == "pause_writing"
    assert conn.read(3) == b"012"
    assert protocol.names[-1] == "pause_writing"
    assert conn.read(4) == b"3456"  # leaves exactly the low-water mark: resume
    assert protocol.names[-1] == "resume_writing"
    assert conn.written == b"0123456"
    conn.peer_reads = True
    assert conn.written == b"0123456789A"
    assert protocol.transport.get_write_buffer_size() == 0


def test_close_waits_for_a_slow_peer_to_read() -> None:
    """close() on a transport whose peer is not reading ends the connection only
    once the peer has read everything."""
    protocol = RecordingProtocol()
    conn = connect(protocol, peer_reads=False)
    protocol.transport.write(b"x" * 100)
    protocol.transport.close()
    conn.clock.advance(0)
    assert not conn.closed
    assert not conn.eof_written
    conn.read(99)
    assert not conn.closed
    conn.read(1)
    assert conn.closed
    assert conn.eof_written
    assert conn.written == b"x" * 100


def test_write_eof_reaches_the_peer_after_the_buffered_data() -> None:
    """eof_written turns true only when the data written before write_eof is read."""
    protocol = RecordingProtocol()
    conn = connect(protocol, peer_reads=False)
    protocol.transport.write(b"data")
    protocol.transport.write_eof()
    assert not conn.eof_written
    conn.read()
    assert conn.eof_written
    assert not conn.closed


def test_extra_info_has_names_clock_and_extras() -> None:
    """The transport answers peername, sockname, the clock, and extras the test gave."""
    protocol = RecordingProtocol()
    conn = connect(protocol, extra={"peername": ("10.0.0.1", 4000), "flavour": "test"})
    transport = protocol.transport
    assert transport.get_extra_info("peername") == ("10.0.0.1", 4000)
    assert transport.get_extra_info("sockname") == ("memory", "local")
    assert transport.get_extra_info("flavour") == "test"
    clock = clock_of(transport)
    assert clock.now() == conn.clock.now()


# ------------------------------------------------- errors in callbacks


def test_an_exception_in_a_callback_ends_the_connection_and_reaches_the_test() -> None:
    """A raising data_received ends the connection with that exception (as on any
    driver) and the exception propagates out of deliver(), so no bug is silent."""

    class Fails(RecordingProtocol):
        def data_received(self, data: bytes) -> None:
            raise KeyError(data)

    protocol = Fails()
    conn = connect(protocol)
    with pytest.raises(KeyError) as caught:
        conn.deliver(b"x")
    assert protocol.lost_exc is caught.value
    assert conn.closed
    conn.deliver(b"ignored now")


def test_an_exception_in_a_timer_ends_that_connection_only() -> None:
    """A call scheduled through a transport's clock that raises ends that
    connection, not the others on the same clock, and reaches the test."""
    clock = FakeClock()
    doomed, bystander = RecordingProtocol(), RecordingProtocol()
    connect(doomed, clock=clock)
    connect(bystander, clock=clock)

    def explode() -> None:
        raise RuntimeError("timer failed")

    clock_of(doomed.transport).call_later(1.0, explode)
    with pytest.raises(RuntimeError, match="timer failed"):
        clock.advance(2.0)
    assert isinstance(doomed.lost_exc, RuntimeError)
    assert not bystander.lost
    assert not bystander.transport.is_closing()


# --------------------------------------------------------------- the pump


def test_the_pump_moves_nothing_until_told() -> None:
    """Writes stay in the sender's buffer until the test delivers them."""
    client, server = RecordingProtocol(), RecordingProtocol()
    pump = connect_pair(client, server)
    assert server.names == client.names == ["connection_made"]
    client.transport.write(b"hello")
    assert client.transport.get_write_buffer_size() == 5
    assert server.received == b""
    assert pump.deliver("client")
    assert server.received == b"hello"
    assert not pump.deliver("client")


def test_the_pump_controls_chunk_sizes() -> None:
    """deliver(max_bytes=n) moves at most n bytes: the receiver sees exactly those chunks."""
    client, server = RecordingProtocol(), RecordingProtocol()
    pump = connect_pair(client, server)
    client.transport.write(b"abcdefg")
    pump.deliver("client", 3)
    pump.deliver("client", 1)
    pump.run(max_bytes=2)
    assert [event[1] for event in server.events if event[0] == "data_received"] == [
        b"abc",
        b"d",
        b"ef",
        b"g",
    ]


class Note(RecordingProtocol):
    """Notes its label in a shared list whenever data arrives."""

    def __init__(self, label: str, order: list[str]) -> None:
        super().__init__()
        self.label = label
        self.order = order

    def data_received(self, data: bytes) -> None:
        self.order.append(self.label)


def test_the_pump_controls_which_direction_moves_first() -> None:
    """run(first=...) decides whose bytes arrive first when both have written."""
    for first, expected in (("client", ["to server", "to client"]), ("server", ["to client", "to server"])):
        order: list[str] = []

        client, server = Note("to client", order), Note("to server", order)
        pump = connect_pair(client, server)
        client.transport.write(b"x")
        server.transport.write(b"y")
        pump.run(first=first)  # type: ignore[arg-type]
        assert order == expected


def test_a_paused_receiver_gets_nothing_and_its_peer_fills_up() -> None:
    """The pump does not move bytes to an end that paused reading, so the sender's
    buffer fills and flow control engages, as over a real network."""
    client, server = RecordingProtocol(), RecordingProtocol()
    pump = connect_pair(client, server)
    server.transport.pause_reading()
    client.transport.write(bytes(70_000))
    assert client.names[-1] == "pause_writing"
    pump.run()
    assert server.received == b""
    server.transport.resume_reading()
    pump.run()
    assert len(server.received) == 70_000
    assert client.names[-1] == "resume_writing"


def test_stall_stops_an_end_reading_whatever_its_protocol_does() -> None:
    """stall() makes an end's host stop reading; unstall() resumes delivery."""
    client, server = RecordingProtocol(), RecordingProtocol()
    pump = connect_pair(client, server)
    pump.stall("server")
    client.transport.write(b"waiting")
    pump.run()
    assert server.received == b""
    assert server.transport.is_reading()
    pump.unstall("server")
    pump.run()
    assert server.received == b"waiting"


def test_bytes_sent_to_a_closed_end_reset_the_sender() -> None:
    """After one end has closed, data sent to it is dropped and the sender's
    connection is reset, as TCP does."""
    client, server = RecordingProtocol(keep_open_on_eof=True), RecordingProtocol()
    pump = connect_pair(client, server)
    server.transport.close()
    pump.run()
    assert server.lost
    assert client.got_eof
    client.transport.write(b"to nobody")
    pump.run()
    assert isinstance(client.lost_exc, ConnectionResetError)
    assert server.received == b""


def test_pump_reset_breaks_both_ends() -> None:
    """reset() drops the connection under both protocols with ConnectionResetError,
    along with anything in flight."""
    client, server = RecordingProtocol(), RecordingProtocol()
    pump = connect_pair(client, server)
    client.transport.write(b"in flight")
    pump.reset()
    assert isinstance(client.lost_exc, ConnectionResetError)
    assert isinstance(server.lost_exc, ConnectionResetError)
    pump.run()
    assert server.received == b""


def test_run_gives_up_on_a_conversation_that_never_ends() -> None:
    """Two echo protocols bounce bytes forever: run() raises NotSettledError
    instead of hanging."""
    pump = connect_pair(EchoProtocol(), EchoProtocol())
    pump.client_transport.write(b"ping")
    with pytest.raises(NotSettledError):
        pump.run(max_rounds=50)


def test_pair_transports_know_their_names() -> None:
    """Each end's peername is the other end's sockname."""
    pump = connect_pair(RecordingProtocol(), RecordingProtocol())
    client, server = pump.transport("client"), pump.transport("server")
    assert client.get_extra_info("peername") == server.get_extra_info("sockname")
    assert server.get_extra_info("peername") == client.get_extra_info("sockname")


def test_connection_made_runs_server_first() -> None:
    """connect_pair calls connection_made on the server, then the client."""
    order: list[str] = []

    class Named(RecordingProtocol):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            order.append(self.name)

    connect_pair(Named("client"), Named("server"))
    assert order == ["server", "client"]


# ------------------------------------------------------- asyncio interop


def test_an_asyncio_protocol_runs_on_a_memory_transport() -> None:
    """An asyncio.Protocol subclass, unchanged, works on weft's memory transport."""

    class AsyncioUpper(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, MemoryTransport)
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data.upper())

    conn = connect(AsyncioUpper())
    conn.deliver(b"shout")
    conn.deliver_eof()
    assert conn.written == b"SHOUT"
    assert conn.closed


def test_bytes_written_from_resume_writing_during_a_read_come_after_the_bytes_read() -> None:
    """A write made by resume_writing while the peer reads reaches the peer after
    what it was reading, never before (found by fuzzing)."""

    class WritesOnResume(RecordingProtocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            transport.set_write_buffer_limits(high=4)
            transport.write(b"12345")

        def resume_writing(self) -> None:
            super().resume_writing()
            assert self.transport is not None
            self.transport.write(b"X")

    conn = connect(WritesOnResume(), peer_reads=False)
    conn.peer_reads = True
    assert conn.written == b"12345X"

    conn = connect(WritesOnResume(), peer_reads=False)
    assert conn.read(5) == b"12345"
    assert conn.read() == b"X"
    assert conn.written == b"12345X"

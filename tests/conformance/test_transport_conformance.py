"""The transport contract, checked the same way on every driver.

Written once; each driver joins by adding a harness in ``harness.py``.  The
tests wait on conditions, never on time, so they are as deterministic on a
real event loop as on the memory pump.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest

from tests.conformance.harness import HARNESSES, ConnectedPair, DriverHarness, FlowRecorder, StuckError
from weft.drivers.testing import RecordingProtocol
from weft.protocols.contract import Clock
from weft.protocols.errors import ArgumentError, WeftError, WriteAfterEofError

KIB = 1024
MIB = 1024 * KIB


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest) -> Iterator[DriverHarness]:
    """Each driver in turn."""
    made = HARNESSES[request.param]()
    yield made
    made.close()


def connect(
    harness: DriverHarness, **server_options: bool
) -> tuple[ConnectedPair, FlowRecorder, FlowRecorder]:
    client, server = FlowRecorder(), FlowRecorder(**server_options)
    return harness.connect(client, server), client, server


class Explodes(RecordingProtocol):
    """Raises from data_received."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        raise ValueError("boom")


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def write_until_paused(protocol: FlowRecorder, chunk: bytes, limit: int = 4096) -> int:
    """Write ``chunk`` until the transport says pause; return bytes written."""
    written = 0
    for _ in range(limit):
        protocol.transport.write(chunk)
        written += len(chunk)
        if protocol.writing_paused:
            return written
    raise AssertionError(f"no pause_writing after {written} bytes")


def received_from(protocol: RecordingProtocol) -> Callable[[int], Callable[[], bool]]:
    return lambda size: lambda: len(protocol.received) >= size


# ------------------------------------------------------------- the start


def test_connection_made_comes_first_with_an_open_transport(harness: DriverHarness) -> None:
    """Both sides get connection_made before anything else, with a transport that is
    open, reading, and offers peer/sock names and a clock."""
    _pair, client, server = connect(harness)
    for protocol in (client, server):
        assert protocol.names == ["connection_made"]
        transport = protocol.transport
        assert not transport.is_closing()
        assert transport.is_reading()
        assert transport.get_write_buffer_size() == 0
        assert transport.can_write_eof()
        assert transport.get_extra_info("peername") is not None
        assert transport.get_extra_info("sockname") is not None
        assert transport.get_extra_info("no such thing", "default") == "default"
        assert isinstance(transport.get_extra_info("clock"), Clock)
        assert transport.get_protocol() is protocol


def test_the_clock_runs_calls_after_their_delay_in_order(harness: DriverHarness) -> None:
    """The clock a transport offers runs calls once their delay has passed, earlier
    deadlines first and equal deadlines in scheduling order; cancelled calls never run."""
    pair, client, _server = connect(harness)
    clock: Clock = client.transport.get_extra_info("clock")
    start = clock.now()
    ran: list[str] = []
    # Scheduled in deadline order: on a real clock time passes between the
    # calls, so "late" scheduled first could legitimately fall due first.
    clock.call_later(0.01, ran.append, "first")
    clock.call_later(0.01, ran.append, "second")
    clock.call_later(0.05, ran.append, "late")
    cancelled = clock.call_later(0.005, ran.append, "cancelled")
    cancelled.cancel()
    assert cancelled.cancelled()
    pair.run_until(lambda: len(ran) == 3)
    assert ran == ["first", "second", "late"]
    assert clock.now() - start >= 0.05


# ------------------------------------------------------------ delivery


def test_bytes_arrive_in_order_and_intact(harness: DriverHarness) -> None:
    """What one side writes, in writes of any size, the other receives in order,
    byte for byte, in both directions."""
    pair, client, server = connect(harness)
    rng = random.Random(1)
    outbound, inbound = random_bytes(300 * KIB, 2), random_bytes(200 * KIB, 3)
    for data, sender in ((outbound, client), (inbound, server)):
        offset = 0
        while offset < len(data):
            size = rng.choice((1, 7, 100, 4 * KIB, 33 * KIB))
            sender.transport.write(data[offset : offset + size])
            offset += size
    pair.run_until(lambda: len(server.received) >= len(outbound) and len(client.received) >= len(inbound))
    assert server.received == outbound
    assert client.received == inbound
    assert all(len(event[1]) > 0 for event in server.events if event[0] == "data_received")


def test_a_megabyte_each_way_at_once(harness: DriverHarness) -> None:
    """A 1 MiB random exchange in both directions at the same time arrives intact
    (both sides keep writing while the other's data comes in)."""
    pair, client, server = connect(harness)
    to_server, to_client = random_bytes(MIB, 4), random_bytes(MIB, 5)
    step = 48 * KIB
    for offset in range(0, MIB, step):
        client.transport.write(to_server[offset : offset + step])
        server.transport.write(to_client[offset : offset + step])
    pair.run_until(lambda: len(server.received) >= MIB and len(client.received) >= MIB)
    assert server.received == to_server
    assert client.received == to_client


def test_writelines_is_one_write_in_order(harness: DriverHarness) -> None:
    """writelines sends its pieces in order, as if they were one write."""
    pair, client, server = connect(harness)
    client.transport.writelines([b"one ", bytearray(b"two "), memoryview(b"three")])
    client.transport.write(b"!")
    pair.run_until(lambda: len(server.received) >= 14)
    assert server.received == b"one two three!"


class _TaggedBytes(bytes):
    """A bytes subclass, as some libraries hand out."""


def test_write_takes_every_bytes_like_kind(harness: DriverHarness) -> None:
    """write() takes bytes, a bytes subclass, a bytearray and a memoryview; a
    bytearray changed after write() still sends what it held at the call."""
    pair, client, server = connect(harness)
    scratch = bytearray(b"array ")
    client.transport.write(b"plain ")
    client.transport.write(_TaggedBytes(b"tagged "))
    client.transport.write(scratch)
    scratch[:] = b"CHANGED"
    client.transport.write(memoryview(b"view"))
    pair.run_until(lambda: len(server.received) >= 23)
    assert server.received == b"plain tagged array view"


def test_write_checks_its_argument(harness: DriverHarness) -> None:
    """write() of an empty buffer does nothing; write() of a str raises TypeError."""
    pair, client, server = connect(harness)
    client.transport.write(b"")
    assert client.transport.get_write_buffer_size() == 0
    with pytest.raises(TypeError):
        client.transport.write("text")  # type: ignore[arg-type]
    client.transport.write(b"x")
    pair.run_until(lambda: server.received == b"x")


def test_set_protocol_hands_the_connection_over(harness: DriverHarness) -> None:
    """After set_protocol, later data goes to the new protocol."""
    pair, client, server = connect(harness)
    replacement = RecordingProtocol()
    server.transport.set_protocol(replacement)
    assert server.transport.get_protocol() is replacement
    client.transport.write(b"for the new one")
    pair.run_until(lambda: replacement.received == b"for the new one")
    assert server.received == b""


# -------------------------------------------------------- flow control


def test_write_buffer_limits_follow_asyncio(harness: DriverHarness) -> None:
    """Defaults are 64 KiB high and a quarter of it low; either limit alone implies
    the other as in asyncio; high < low is an ArgumentError (also a ValueError)."""
    _pair, client, _server = connect(harness)
    transport = client.transport
    assert transport.get_write_buffer_limits() == (16 * KIB, 64 * KIB)
    transport.set_write_buffer_limits(high=1000)
    assert transport.get_write_buffer_limits() == (250, 1000)
    transport.set_write_buffer_limits(low=10)
    assert transport.get_write_buffer_limits() == (10, 40)
    transport.set_write_buffer_limits(high=0)
    assert transport.get_write_buffer_limits() == (0, 0)
    for high, low in ((1, 2), (-1, None), (None, -4)):
        with pytest.raises(ArgumentError):
            transport.set_write_buffer_limits(high=high, low=low)
    with pytest.raises(ValueError, match="must be"):
        transport.set_write_buffer_limits(high=5, low=6)
    assert transport.get_write_buffer_limits() == (0, 0)


def test_pause_and_resume_writing_track_the_water_marks(harness: DriverHarness) -> None:
    """A peer that does not read makes the buffer pass the high-water mark:
    pause_writing once, with the buffer over high.  When it reads again,
    resume_writing once, with the buffer at or under low, and all the data
    arrives.  The paused reader gets nothing while paused."""
    pair, client, server = connect(harness)
    server.transport.pause_reading()
    assert not server.transport.is_reading()
    written = write_until_paused(client, random_bytes(16 * KIB, 6))
    low, high = client.transport.get_write_buffer_limits()
    assert client.buffer_at_pause == [client.buffer_at_pause[0]]
    assert client.buffer_at_pause[0] > high
    assert server.received == b""

    server.transport.resume_reading()
    assert server.transport.is_reading()
    pair.run_until(lambda: client.count("resume_writing") == 1)
    assert client.buffer_at_resume[0] <= low
    pair.run_until(received_from(server)(written))
    assert len(server.received) == written
    assert client.count("pause_writing") == 1
    assert client.count("resume_writing") == 1


def test_writelines_feeds_flow_control(harness: DriverHarness) -> None:
    """writelines pauses the writer exactly as write does (asyncio gh-127655 forgot)."""
    pair, client, server = connect(harness)
    server.transport.pause_reading()
    piece = bytes(8 * KIB)
    for _ in range(4096):
        client.transport.writelines([piece, piece])
        if client.writing_paused:
            break
    assert client.count("pause_writing") == 1
    assert client.buffer_at_pause[0] > client.transport.get_write_buffer_limits()[1]
    server.transport.resume_reading()
    pair.run_until(lambda: client.count("resume_writing") == 1)


def test_lowering_the_high_water_mark_pauses_at_once(harness: DriverHarness) -> None:
    """set_write_buffer_limits below what is buffered calls pause_writing right away."""
    pair, client, server = connect(harness)
    server.transport.pause_reading()
    write_until_paused(client, bytes(16 * KIB))
    pair.run_until(lambda: True)
    server.transport.resume_reading()
    pair.run_until(lambda: client.count("resume_writing") == 1)
    server.transport.pause_reading()
    client.transport.write(bytes(KIB))
    pair.run_until(lambda: True)
    if client.transport.get_write_buffer_size() == 0:
        # The driver sent it all (into a kernel buffer): nothing to pause for.
        client.transport.set_write_buffer_limits(high=0)
        assert client.count("pause_writing") == 1
        return
    client.transport.set_write_buffer_limits(high=0)
    assert client.count("pause_writing") == 2


def test_pause_and_resume_reading_are_idempotent(harness: DriverHarness) -> None:
    """Pausing twice and resuming twice is harmless, and is_reading says where it stands."""
    pair, client, server = connect(harness)
    transport = server.transport
    transport.pause_reading()
    transport.pause_reading()
    assert not transport.is_reading()
    transport.resume_reading()
    transport.resume_reading()
    assert transport.is_reading()
    client.transport.write(b"still works")
    pair.run_until(lambda: server.received == b"still works")


# ---------------------------------------------------------- half-close


def test_write_eof_half_closes(harness: DriverHarness) -> None:
    """write_eof sends EOF after the data; a peer that keeps the connection open
    can still answer; the answer and its EOF come back; then both ends close
    cleanly."""
    pair, client, server = connect(harness, keep_open_on_eof=True)
    client.transport.write(b"request")
    client.transport.write_eof()
    client.transport.write_eof()  # harmless
    pair.run_until(lambda: server.got_eof)
    assert server.received == b"request"
    assert server.names[-2:] == ["data_received", "eof_received"]
    assert not server.transport.is_closing()

    server.transport.write(b"reply")
    server.transport.close()
    pair.run_until(lambda: client.lost and server.lost)
    assert client.received == b"reply"
    assert client.got_eof
    assert client.lost_exc is None
    assert server.lost_exc is None


def test_write_after_write_eof_raises(harness: DriverHarness) -> None:
    """write() after write_eof() raises WriteAfterEofError, a RuntimeError as in asyncio."""
    _pair, client, _server = connect(harness)
    client.transport.write_eof()
    with pytest.raises(WriteAfterEofError):
        client.transport.write(b"too late")
    with pytest.raises(RuntimeError):
        client.transport.writelines([b"too late"])
    assert issubclass(WriteAfterEofError, WeftError)


def test_eof_received_returning_false_closes_the_transport(harness: DriverHarness) -> None:
    """When eof_received returns a false value the transport closes itself, after
    flushing what the protocol wrote; both sides end cleanly."""
    pair, client, server = connect(harness)
    server.transport.write(b"bye")
    client.transport.write_eof()
    pair.run_until(lambda: server.lost and client.lost)
    assert server.names[-2:] == ["eof_received", "connection_lost"]
    assert client.received == b"bye"
    assert client.got_eof
    assert (client.lost_exc, server.lost_exc) == (None, None)


# -------------------------------------------------------- close, abort


def test_close_flushes_everything_then_ends(harness: DriverHarness) -> None:
    """close() with data still buffered sends all of it, then EOF, then ends the
    connection; connection_lost never runs inside close() itself; writes after
    close() are discarded."""
    pair, client, server = connect(harness)
    server.transport.pause_reading()
    data = random_bytes(MIB, 7)
    client.transport.write(data)
    events_before = list(client.events)
    client.transport.close()
    assert client.transport.is_closing()
    assert not client.transport.is_reading()
    assert client.events == events_before
    client.transport.write(b"discarded")
    client.transport.close()  # harmless

    server.transport.resume_reading()
    pair.run_until(lambda: server.got_eof and client.lost)
    assert server.received == data
    assert client.lost_exc is None
    pair.run_until(lambda: server.lost)
    assert server.received == data


def test_abort_drops_the_buffer(harness: DriverHarness) -> None:
    """abort() throws away what is still buffered and ends the connection at once
    (connection_lost(None) follows, not from inside abort()); the peer's
    connection ends too, without the dropped bytes."""
    pair, client, server = connect(harness)
    server.transport.pause_reading()
    written = write_until_paused(client, random_bytes(64 * KIB, 8))
    assert client.transport.get_write_buffer_size() > 0
    events_before = list(client.events)
    client.transport.abort()
    assert client.events == events_before
    assert client.transport.get_write_buffer_size() == 0
    assert client.transport.is_closing()
    pair.run_until(lambda: client.lost)
    assert client.lost_exc is None
    server.transport.resume_reading()
    pair.run_until(lambda: server.lost)
    assert len(server.received) < written


def test_a_closed_transport_stays_closed(harness: DriverHarness) -> None:
    """After connection_lost the transport is closing, not reading, discards
    writes, ignores close/abort/pause/resume, and still answers get_extra_info."""
    pair, client, server = connect(harness)
    client.transport.close()
    pair.run_until(lambda: client.lost and server.lost)
    transport = client.transport
    assert transport.is_closing()
    assert not transport.is_reading()
    transport.write(b"nobody hears this")
    transport.writelines([b"nor this"])
    transport.close()
    transport.abort()
    transport.pause_reading()
    transport.resume_reading()
    assert not transport.is_reading()
    assert transport.get_extra_info("peername") is not None
    assert client.count("connection_lost") == 1
    assert server.received == b""


# ---------------------------------------------------------------- errors


def test_a_vanished_peer_reaches_connection_lost_as_an_error(harness: DriverHarness) -> None:
    """When the peer drops the connection abruptly (an abort: a reset over TCP),
    a side that keeps writing to it gets connection_lost with a ConnectionError."""
    pair, client, server = connect(harness, keep_open_on_eof=True)
    client.transport.write(b"hello")
    pair.run_until(lambda: server.received == b"hello")
    pair.reset_from("client")
    pair.run_until(lambda: client.lost)

    def server_gave_up() -> bool:
        if not server.lost and not server.transport.is_closing():
            server.transport.write(b"are you there?")
        return server.lost

    pair.run_until(server_gave_up)
    assert isinstance(server.lost_exc, ConnectionError)
    assert server.count("connection_lost") == 1


def test_an_exception_in_a_callback_ends_that_connection_with_it(harness: DriverHarness) -> None:
    """A protocol callback that raises ends its own connection: connection_lost
    gets that very exception, and the peer's connection ends too."""
    client, server = RecordingProtocol(), Explodes()
    pair = harness.connect(client, server)
    client.transport.write(b"trigger")
    pair.run_until(lambda: server.lost and client.lost)
    error = server.lost_exc
    assert isinstance(error, ValueError)
    assert str(error) == "boom"
    assert any(exc is error for exc in pair.callback_errors)
    assert server.count("connection_lost") == 1


def test_run_until_reports_a_condition_that_cannot_happen(harness: DriverHarness) -> None:
    """The harness itself fails loudly rather than hanging (guards every test above)."""
    pair, _client, server = connect(harness)
    with pytest.raises(StuckError):
        pair.run_until(lambda: server.received == b"never sent", timeout=0.2)

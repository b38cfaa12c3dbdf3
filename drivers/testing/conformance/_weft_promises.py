"""weft's promises beyond the asyncio contract, checked on any transport.

Every weft driver keeps these; asyncio's and uvloop's own transports miss
some (https://github.com/weft-project/weft/blob/main/docs/conformance.md has the table).  Each check
is named for the promise it holds a transport to: a clock bound to the connection, writes
after the end discarded, weft's exceptions, flow control on every write
path, what was written being what is sent, a paused reader getting nothing,
an exception from any callback ending that connection, names that outlive
it.  The promises about ``write_file`` are in
:mod:`~weft.drivers.testing.conformance._file_promises`.
"""

from __future__ import annotations

from collections.abc import Callable

from weft.drivers.testing.conformance._asyncio_contract import MIB, needs_write_eof, random_bytes
from weft.drivers.testing.conformance._checking import Group, checks_of
from weft.drivers.testing.conformance._expectations import expect, expect_equal, expect_raises
from weft.drivers.testing.conformance._session import Connection, FlowRecorder, Session
from weft.protocols.contract import Clock, WallClock
from weft.protocols.errors import ArgumentError, WeftError, WriteAfterEofError

__all__ = ["TRANSPORT_PROMISES"]

KIB = 1024

#: How long the end of a connection may follow the report of the exception
#: that ends it (a driver logs, then schedules connection_lost).
AFTER_A_REPORT = 3.0


def every_transport_offers_a_clock(session: Session) -> None:
    """get_extra_info("clock") is a Clock (now, call_later) on both ends: the
    only time a protocol may read, so every timeout can run on a fake clock.
    It tells the time of day too (a WallClock: wall_time, for an HTTP Date)."""
    connection = session.connect()
    for side, protocol in (("client", connection.client), ("server", connection.server)):
        clock = protocol.transport.get_extra_info("clock")
        expect(isinstance(clock, Clock), f"the {side}'s get_extra_info('clock') is {clock!r}, not a Clock")
        expect(
            isinstance(clock, WallClock) and isinstance(clock.wall_time(), float),
            f"the {side}'s clock {clock!r} tells no wall time (wall_time())",
        )


def the_clock_runs_calls_in_deadline_order_and_never_a_cancelled_one(session: Session) -> None:
    """The transport's clock runs each call once its delay has passed, earlier
    deadlines first and equal ones in the order they were scheduled; a
    cancelled call never runs."""
    connection = session.connect()
    clock = connection.client.transport.get_extra_info("clock")
    expect(isinstance(clock, Clock), f"get_extra_info('clock') is {clock!r}, not a Clock")
    start = clock.now()
    ran: list[str] = []
    # Scheduled in deadline order: on a real clock time passes between the
    # calls, so "late" scheduled first could rightly fall due first.
    clock.call_later(0.01, ran.append, "first")
    clock.call_later(0.01, ran.append, "second")
    clock.call_later(0.05, ran.append, "late")
    cancelled = clock.call_later(0.005, ran.append, "cancelled")
    cancelled.cancel()
    expect(cancelled.cancelled(), "cancelled() is false after cancel()")
    connection.wait(lambda: len(ran) == 3, "three timer calls")
    connection.run_a_while()
    expect_equal(ran, ["first", "second", "late"], "the calls, in the order they ran")
    expect(clock.now() - start >= 0.05, f"a 0.05 s call ran after {clock.now() - start:g} s")


def writes_after_close_are_discarded(session: Session) -> None:
    """What is written after close() is dropped, even while close() is still
    flushing earlier data: the peer gets exactly what came before the call."""
    connection = session.connect()
    client, server = connection.client, connection.server
    server.transport.pause_reading()
    data = random_bytes(8 * MIB, 11)
    client.transport.write(data)
    expect(client.transport.get_write_buffer_size() > 0, "8 MiB to a peer not reading left nothing buffered")
    client.transport.close()
    client.transport.write(b"discarded")
    client.transport.writelines([b"and this"])
    server.transport.resume_reading()
    connection.wait(
        lambda: server.got_eof and client.lost, "EOF at the server and connection_lost at the client"
    )
    expect_equal(server.received, data, "what the server received")


def writes_after_the_end_are_discarded_without_an_error(session: Session) -> None:
    """After connection_lost, write() and writelines() raise nothing and send
    nothing: the protocol already knows the connection is gone."""
    connection = session.connect()
    client, server = connection.client, connection.server
    client.transport.close()
    connection.wait(lambda: client.lost and server.lost, "connection_lost on both sides")
    for side, protocol in (("client", client), ("server", server)):
        for call in ("write", "writelines"):
            try:
                if call == "write":
                    protocol.transport.write(b"nobody hears this")
                else:
                    protocol.transport.writelines([b"nor this"])
            except Exception as exc:
                expect(
                    False, f"the {side}'s {call}() after connection_lost raised {type(exc).__name__}: {exc}"
                )
    expect_equal(
        (client.count("connection_lost"), server.count("connection_lost")), (1, 1), "connection_lost calls"
    )


def write_after_write_eof_raises_write_after_eof_error(session: Session) -> None:
    """write() and writelines() after write_eof() raise WriteAfterEofError: a
    WeftError, and a RuntimeError as asyncio's is."""
    connection = session.connect()
    needs_write_eof(connection)
    transport = connection.client.transport
    transport.write_eof()
    attempts: tuple[tuple[str, Callable[[], None]], ...] = (
        ("write", lambda: transport.write(b"too late")),
        ("writelines", lambda: transport.writelines([b"too late"])),
    )
    for name, attempt in attempts:
        raised = expect_raises(RuntimeError, attempt, f"{name}() after write_eof()")
        expect(
            isinstance(raised, WriteAfterEofError) and isinstance(raised, WeftError),
            f"{name}() after write_eof() raised {type(raised).__name__}, not WriteAfterEofError",
        )


def water_marks_default_and_derive_as_in_asyncio(session: Session) -> None:
    """The water marks default to 64 KiB high and a quarter of it low, and
    either mark alone implies the other (low = high // 4, high = 4 * low), as
    asyncio's own transports do."""
    transport = session.connect().client.transport
    expect_equal(transport.get_write_buffer_limits(), (16 * KIB, 64 * KIB), "the default (low, high)")
    transport.set_write_buffer_limits(high=1000)
    expect_equal(transport.get_write_buffer_limits(), (250, 1000), "(low, high) after high=1000")
    transport.set_write_buffer_limits(low=10)
    expect_equal(transport.get_write_buffer_limits(), (10, 40), "(low, high) after low=10")
    transport.set_write_buffer_limits(high=0)
    expect_equal(transport.get_write_buffer_limits(), (0, 0), "(low, high) after high=0")


def bad_water_marks_raise_argument_error(session: Session) -> None:
    """Water marks that are not high >= low >= 0 raise ArgumentError (a
    WeftError, and the ValueError asyncio raises)."""
    transport = session.connect().client.transport
    for high, low in ((1, 2), (-1, None), (None, -4)):
        raised = expect_raises(
            ValueError,
            lambda high=high, low=low: transport.set_write_buffer_limits(high=high, low=low),  # type: ignore[misc]
            f"set_write_buffer_limits(high={high}, low={low})",
        )
        expect(
            isinstance(raised, ArgumentError),
            f"set_write_buffer_limits(high={high}, low={low}) raised {type(raised).__name__}, "
            "not ArgumentError",
        )


def abort_empties_the_write_buffer_at_once(session: Session) -> None:
    """Right after abort(), get_write_buffer_size() is 0: the dropped bytes
    are gone, not waiting for the loop's next turn."""
    connection = session.connect()
    client, server = connection.client, connection.server
    server.transport.pause_reading()
    client.transport.write(random_bytes(8 * MIB, 22))
    expect(client.transport.get_write_buffer_size() > 0, "8 MiB to a peer not reading left nothing buffered")
    client.transport.abort()
    expect_equal(client.transport.get_write_buffer_size(), 0, "the buffer size right after abort()")


def every_transport_can_half_close(session: Session) -> None:
    """can_write_eof() is true at both ends: every weft stream transport (TLS
    too, with close_notify's help) can half-close."""
    connection = session.connect()
    for side, protocol in (("client", connection.client), ("server", connection.server)):
        expect(protocol.transport.can_write_eof() is True, f"the {side}'s can_write_eof() is not True")


def writelines_feeds_flow_control(session: Session) -> None:
    """writelines pauses the writer exactly as write does: flow control on
    every write path (asyncio 3.12.0 to 3.12.8 forgot it, gh-127655)."""
    connection = session.connect()
    client, server = connection.client, connection.server
    server.transport.pause_reading()
    piece = bytes(8 * KIB)
    for _ in range(4096):
        client.transport.writelines([piece, piece])
        if client.writing_paused:
            break
    expect_equal(client.count("pause_writing"), 1, "pause_writing calls from writelines")
    high = client.transport.get_write_buffer_limits()[1]
    expect(
        client.buffer_at_pause[0] > high,
        f"pause_writing came at {client.buffer_at_pause[0]} bytes, not over {high}",
    )
    server.transport.resume_reading()
    connection.wait(lambda: client.count("resume_writing") == 1, "resume_writing once the peer reads")


def what_was_written_is_what_is_sent(session: Session) -> None:
    """A bytearray, or a memoryview of one, changed after write() returned
    still sends what it held at the call, also while it waits in the buffer."""
    connection = session.connect()
    client, server = connection.client, connection.server
    server.transport.pause_reading()
    client.transport.set_write_buffer_limits(high=64 * MIB)
    filler = random_bytes(8 * MIB, 12)
    client.transport.write(filler)
    scratch, under_view = bytearray(b"before"), bytearray(b"view")
    client.transport.write(scratch)
    client.transport.write(memoryview(under_view))
    scratch[:] = b"AFTER!"
    under_view[:] = b"VIEW"
    server.transport.resume_reading()
    connection.wait(lambda: len(server.received) >= len(filler) + 10, "8 MiB and 10 bytes at the server")
    expect_equal(server.received[len(filler) :], b"beforeview", "the bytes after the filler")


class _PausesAtOnce(FlowRecorder):
    """Pauses reading inside connection_made."""

    def connection_made(self, transport: object) -> None:
        super().connection_made(transport)
        self.transport.pause_reading()


def a_pause_reading_in_connection_made_holds_the_data_back(session: Session) -> None:
    """A protocol that pauses reading in connection_made gets no data_received
    until it resumes, then gets every byte."""
    connection = session.connect(server=_PausesAtOnce())
    connection.client.transport.write(b"early bytes")
    connection.run_a_while()
    expect_equal(connection.server.received, b"", "what a reader paused from the start received")
    expect(
        not connection.server.transport.is_reading(), "is_reading() after pause_reading() in connection_made"
    )
    connection.server.transport.resume_reading()
    connection.wait(lambda: connection.server.received == b"early bytes", "the data after resume_reading")


class _FloodsAndRaisesOnPause(FlowRecorder):
    """Answers data by writing until paused; raises from pause_writing."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        piece = bytes(64 * KIB)
        for _ in range(4096):
            self.transport.write(piece)
            if self.writing_paused:
                return

    def pause_writing(self) -> None:
        super().pause_writing()
        raise ValueError("no pausing here")


def an_exception_from_pause_writing_ends_that_connection_with_it(session: Session) -> None:
    """Not only data_received: a pause_writing that raises (called from a
    write() in data_received) ends its own connection with that exception,
    which the driver reports, rather than being logged and forgotten; the
    peer's connection ends too."""
    connection = session.connect(client=_FloodsAndRaisesOnPause())
    connection.server.transport.pause_reading()
    connection.server.transport.write(b"go")
    connection.wait(
        lambda: connection.client.lost or bool(connection.callback_errors), "the exception reported"
    )
    # Reading again, so that the server sees the end (a paused reader hears
    # of no EOF or reset).
    connection.server.transport.resume_reading()
    _expect_ended_by(connection, "no pausing here")


class _RaisesOnResume(FlowRecorder):
    """Raises from resume_writing."""

    def resume_writing(self) -> None:
        super().resume_writing()
        raise ValueError("no resuming here")


def an_exception_from_resume_writing_ends_that_connection_with_it(session: Session) -> None:
    """A resume_writing that raises (called by the driver as the buffer
    drains) ends its own connection with that exception, which the driver
    reports; the peer's connection ends too."""
    connection = session.connect(client=_RaisesOnResume())
    client, server = connection.client, connection.server
    server.transport.pause_reading()
    piece = bytes(64 * KIB)
    for _ in range(4096):
        client.transport.write(piece)
        if client.writing_paused:
            break
    server.transport.resume_reading()
    _expect_ended_by(connection, "no resuming here")


def an_exception_from_a_clock_callback_ends_that_connection_with_it(session: Session) -> None:
    """A timer scheduled on the transport's clock that raises ends that
    connection with its exception, which the driver reports; the peer's
    connection ends too."""
    connection = session.connect()
    clock = connection.client.transport.get_extra_info("clock")
    expect(isinstance(clock, Clock), f"get_extra_info('clock') is {clock!r}, not a Clock")

    def explode() -> None:
        raise ValueError("timer went off")

    clock.call_later(0.001, explode)
    _expect_ended_by(connection, "timer went off")


def _expect_ended_by(connection: Connection, message: str) -> None:
    """The client's callback raised ValueError(message): the driver reports it,
    and both sides lose the connection, the client with that exception."""
    client, server = connection.client, connection.server

    def reported() -> list[BaseException]:
        return list(connection.callback_errors)

    connection.wait(lambda: client.lost or bool(reported()), "the exception reported, or the connection lost")
    connection.wait(
        lambda: client.lost and server.lost,
        f"connection_lost on both sides after the exception was reported ({reported()!r})",
        timeout=AFTER_A_REPORT,
    )
    error = client.lost_exc
    expect(
        isinstance(error, ValueError) and str(error) == message,
        f"the client's connection_lost got {error!r}, not the ValueError its callback raised",
    )
    expect(
        any(exc is error for exc in reported()),
        f"the driver did not report the exception (it reported {reported()!r})",
    )


def peername_and_sockname_are_kept_after_the_end(session: Session) -> None:
    """get_extra_info answers peername and sockname on both ends, and still
    gives the same answers after connection_lost."""
    connection = session.connect()
    client, server = connection.client, connection.server
    names = {}
    for side, protocol in (("client", client), ("server", server)):
        for name in ("peername", "sockname"):
            value = protocol.transport.get_extra_info(name)
            expect(value is not None, f"the {side}'s get_extra_info({name!r}) is None")
            names[side, name] = value
    client.transport.close()
    connection.wait(lambda: client.lost and server.lost, "connection_lost on both sides")
    for side, protocol in (("client", client), ("server", server)):
        for name in ("peername", "sockname"):
            expect_equal(
                protocol.transport.get_extra_info(name),
                names[side, name],
                f"the {side}'s get_extra_info({name!r}) after the end",
            )


TRANSPORT_PROMISES = checks_of(
    Group.WEFT_PROMISE,
    every_transport_offers_a_clock,
    the_clock_runs_calls_in_deadline_order_and_never_a_cancelled_one,
    every_transport_can_half_close,
    writes_after_close_are_discarded,
    writes_after_the_end_are_discarded_without_an_error,
    write_after_write_eof_raises_write_after_eof_error,
    water_marks_default_and_derive_as_in_asyncio,
    bad_water_marks_raise_argument_error,
    abort_empties_the_write_buffer_at_once,
    writelines_feeds_flow_control,
    what_was_written_is_what_is_sent,
    a_pause_reading_in_connection_made_holds_the_data_back,
    an_exception_from_pause_writing_ends_that_connection_with_it,
    an_exception_from_resume_writing_ends_that_connection_with_it,
    an_exception_from_a_clock_callback_ends_that_connection_with_it,
    peername_and_sockname_are_kept_after_the_end,
)

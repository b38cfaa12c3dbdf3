"""The asyncio contract: what asyncio's own transports do, checked on any transport.

These are the promises of ``asyncio.Transport`` and ``asyncio.Protocol`` as
asyncio's socket transports keep them: bytes in order, half-close,
flow control at the water marks, pause and resume of reading, close that
flushes, abort that does not, ``connection_lost`` once and last.  An
adapter that runs asyncio-style protocols over another loop (asyncio's,
uvloop's, Twisted's, Trio's) must pass every one.  Where weft promises more,
the check is in :mod:`~weft.drivers.testing.conformance._weft_promises`.
"""

from __future__ import annotations

import random
from typing import Any

from weft.drivers.testing._recording import RecordingProtocol
from weft.drivers.testing.conformance._checking import Group, checks_of
from weft.drivers.testing.conformance._expectations import (
    CheckFailure,
    NotApplicable,
    expect,
    expect_equal,
    expect_raises,
)
from weft.drivers.testing.conformance._session import Connection, FlowRecorder, Session

__all__ = ["ASYNCIO_CONTRACT", "HARNESS_CHECKS"]

KIB = 1024
MIB = 1024 * KIB


def random_bytes(size: int, seed: int) -> bytes:
    """``size`` pseudo-random bytes, the same for the same seed."""
    return random.Random(seed).randbytes(size)


def write_until_paused(protocol: FlowRecorder, chunk: bytes, limit: int = 4096) -> int:
    """Write ``chunk`` until the transport calls pause_writing; return the bytes written."""
    written = 0
    for _ in range(limit):
        protocol.transport.write(chunk)
        written += len(chunk)
        if protocol.writing_paused:
            return written
    raise CheckFailure(f"no pause_writing after {written} bytes written to a peer that is not reading")


def needs_write_eof(connection: Connection) -> None:
    """Step aside when the client's transport cannot half-close (asyncio's SSL transports cannot)."""
    if not connection.client.transport.can_write_eof():
        raise NotApplicable("can_write_eof() is false")


# ------------------------------------------------------------------ harness


def harness_run_until_gives_up_on_a_condition_that_never_holds(session: Session) -> None:
    """The harness's run_until returns True at once for a true condition, and
    False (rather than hanging or raising) once its timeout passes for one that
    never holds: every other check relies on it."""
    connection = session.connect()
    expect(connection.pair.run_until(lambda: True, 0.2) is True, "run_until(<true>) did not return True")
    held = connection.pair.run_until(lambda: connection.server.received == b"never sent", 0.2)
    expect(held is False, f"run_until(<never true>, 0.2) returned {held!r}, not False")


# ---------------------------------------------------------------- the start


def connection_made_comes_first_with_an_open_transport(session: Session) -> None:
    """Both protocols get connection_made before anything else, with a transport
    that is open, reading, has nothing buffered, answers get_extra_info with
    the default for an unknown name, and knows its protocol."""
    connection = session.connect()
    for side, protocol in (("client", connection.client), ("server", connection.server)):
        transport = protocol.transport
        expect_equal(protocol.names, ["connection_made"], f"the {side}'s calls so far")
        expect(not transport.is_closing(), f"the {side}'s new transport says is_closing()")
        expect(transport.is_reading(), f"the {side}'s new transport says not is_reading()")
        expect_equal(transport.get_write_buffer_size(), 0, f"the {side}'s write buffer size")
        expect(isinstance(transport.can_write_eof(), bool), f"the {side}'s can_write_eof() is not a bool")
        expect_equal(
            transport.get_extra_info("no such thing", "dflt"), "dflt", "get_extra_info of an unknown name"
        )
        expect(transport.get_protocol() is protocol, f"the {side}'s get_protocol() is not its protocol")


# ----------------------------------------------------------------- delivery


def bytes_arrive_in_order_and_intact(session: Session) -> None:
    """What one side writes, in writes of any size, the other receives in order
    and byte for byte, in both directions, and never as an empty data_received."""
    connection = session.connect()
    client, server = connection.client, connection.server
    sizes = random.Random(1)
    outbound, inbound = random_bytes(300 * KIB, 2), random_bytes(200 * KIB, 3)
    for data, sender in ((outbound, client), (inbound, server)):
        offset = 0
        while offset < len(data):
            size = sizes.choice((1, 7, 100, 4 * KIB, 33 * KIB))
            sender.transport.write(data[offset : offset + size])
            offset += size
    connection.wait(
        lambda: len(server.received) >= len(outbound) and len(client.received) >= len(inbound),
        "300 KiB one way and 200 KiB the other",
    )
    expect_equal(server.received, outbound, "what the server received")
    expect_equal(client.received, inbound, "what the client received")
    empty = [event for event in server.events + client.events if event[0] == "data_received" and not event[1]]
    expect(not empty, "data_received was called with no data")


def a_mebibyte_each_way_at_once(session: Session) -> None:
    """1 MiB of random bytes each way at the same time arrives intact: both
    sides keep writing while the other's data comes in."""
    connection = session.connect()
    client, server = connection.client, connection.server
    to_server, to_client = random_bytes(MIB, 4), random_bytes(MIB, 5)
    step = 48 * KIB
    for offset in range(0, MIB, step):
        client.transport.write(to_server[offset : offset + step])
        server.transport.write(to_client[offset : offset + step])
    connection.wait(lambda: len(server.received) >= MIB and len(client.received) >= MIB, "1 MiB each way")
    expect_equal(server.received, to_server, "what the server received")
    expect_equal(client.received, to_client, "what the client received")


def writelines_sends_its_pieces_in_order(session: Session) -> None:
    """writelines sends bytes, bytearray and memoryview pieces in order, before what is written next."""
    connection = session.connect()
    connection.client.transport.writelines([b"one ", bytearray(b"two "), memoryview(b"three")])
    connection.client.transport.write(b"!")
    connection.wait(lambda: len(connection.server.received) >= 14, "14 bytes at the server")
    expect_equal(connection.server.received, b"one two three!", "what the server received")


class _TaggedBytes(bytes):
    """A bytes subclass, as some libraries hand out."""


def write_takes_every_bytes_like_kind(session: Session) -> None:
    """write() takes bytes, a bytes subclass, a bytearray and a memoryview."""
    connection = session.connect()
    transport = connection.client.transport
    transport.write(b"plain ")
    transport.write(_TaggedBytes(b"tagged "))
    transport.write(bytearray(b"array "))
    transport.write(memoryview(b"view"))
    connection.wait(lambda: len(connection.server.received) >= 23, "23 bytes at the server")
    expect_equal(connection.server.received, b"plain tagged array view", "what the server received")


def write_of_nothing_does_nothing_and_write_of_str_raises_type_error(session: Session) -> None:
    """write(b"") buffers and sends nothing; write("text") raises TypeError and the connection goes on."""
    connection = session.connect()
    transport = connection.client.transport
    transport.write(b"")
    expect_equal(transport.get_write_buffer_size(), 0, "the buffer after write(b'')")
    text: Any = "text"
    expect_raises(TypeError, lambda: transport.write(text), "write() of a str")
    transport.write(b"x")
    connection.wait(lambda: connection.server.received == b"x", "b'x' at the server")
    expect(not connection.server.lost, "write() of a str ended the connection")


def set_protocol_hands_the_connection_over(session: Session) -> None:
    """After set_protocol, get_protocol answers the new protocol and later data goes to it."""
    connection = session.connect()
    replacement = RecordingProtocol()
    connection.server.transport.set_protocol(replacement)
    expect(connection.server.transport.get_protocol() is replacement, "get_protocol() after set_protocol()")
    connection.client.transport.write(b"for the new one")
    connection.wait(lambda: replacement.received == b"for the new one", "the data at the new protocol")
    expect_equal(connection.server.received, b"", "what the old protocol received")


# ------------------------------------------------------------- flow control


def write_buffer_limits_are_kept_as_set_and_checked(session: Session) -> None:
    """get_write_buffer_limits gives back the (low, high) marks set; marks that
    are not high >= low >= 0 raise ValueError and change nothing.  (The
    defaults, and one mark derived from the other, are asyncio's own choice:
    weft promises asyncio's, uvloop has others.)"""
    transport = session.connect().client.transport
    transport.set_write_buffer_limits(high=1000, low=250)
    expect_equal(transport.get_write_buffer_limits(), (250, 1000), "(low, high) after high=1000, low=250")
    transport.set_write_buffer_limits(high=0, low=0)
    expect_equal(transport.get_write_buffer_limits(), (0, 0), "(low, high) after high=0, low=0")
    for high, low in ((1, 2), (-1, 0), (0, -4), (5, 6)):
        expect_raises(
            ValueError,
            lambda high=high, low=low: transport.set_write_buffer_limits(high=high, low=low),  # type: ignore[misc]
            f"set_write_buffer_limits(high={high}, low={low})",
        )
    expect_equal(transport.get_write_buffer_limits(), (0, 0), "(low, high) after the refused marks")


def pause_writing_past_the_high_water_mark_and_resume_writing_at_the_low(session: Session) -> None:
    """Writing to a peer that does not read makes the buffer pass the high-water
    mark: pause_writing once, with the buffer over it.  Once the peer reads
    again, resume_writing once, with the buffer at or under the low-water
    mark, and every byte arrives."""
    connection = session.connect()
    client, server = connection.client, connection.server
    server.transport.pause_reading()
    written = write_until_paused(client, random_bytes(16 * KIB, 6))
    low, high = client.transport.get_write_buffer_limits()
    expect_equal(client.count("pause_writing"), 1, "pause_writing calls")
    expect(
        client.buffer_at_pause[0] > high,
        f"pause_writing came at {client.buffer_at_pause[0]} bytes, not over {high}",
    )
    server.transport.resume_reading()
    connection.wait(lambda: client.count("resume_writing") == 1, "resume_writing once the peer reads")
    expect(
        client.buffer_at_resume[0] <= low,
        f"resume_writing came at {client.buffer_at_resume[0]} bytes, over {low}",
    )
    connection.wait(lambda: len(server.received) >= written, f"all {written} bytes at the server")
    expect_equal(len(server.received), written, "bytes received")
    expect_equal((client.count("pause_writing"), client.count("resume_writing")), (1, 1), "(pauses, resumes)")


def lowering_the_high_water_mark_below_the_buffer_pauses_at_once(session: Session) -> None:
    """set_write_buffer_limits under what is buffered calls pause_writing before it returns."""
    connection = session.connect()
    client, server = connection.client, connection.server
    server.transport.pause_reading()
    client.transport.set_write_buffer_limits(high=64 * MIB)
    data = random_bytes(8 * MIB, 9)
    client.transport.write(data)
    expect(client.transport.get_write_buffer_size() > 0, "8 MiB to a peer not reading left nothing buffered")
    expect_equal(client.count("pause_writing"), 0, "pause_writing calls under a 64 MiB mark")
    client.transport.set_write_buffer_limits(high=0)
    expect_equal(client.count("pause_writing"), 1, "pause_writing calls once the mark is under the buffer")
    server.transport.resume_reading()
    connection.wait(lambda: client.count("resume_writing") == 1, "resume_writing once all is sent")
    connection.wait(lambda: len(server.received) >= len(data), "the 8 MiB at the server")
    expect_equal(server.received, data, "what the server received")


def a_paused_reader_receives_nothing_until_resumed(session: Session) -> None:
    """While reading is paused no data_received comes, however long the loop
    runs; resume_reading delivers everything that waited."""
    connection = session.connect()
    connection.server.transport.pause_reading()
    connection.client.transport.write(b"held back")
    connection.run_a_while()
    expect_equal(connection.server.received, b"", "what a paused reader received")
    connection.server.transport.resume_reading()
    connection.wait(lambda: connection.server.received == b"held back", "the data after resume_reading")


def pause_and_resume_reading_are_idempotent(session: Session) -> None:
    """Pausing twice and resuming twice is harmless, and is_reading says where it stands."""
    connection = session.connect()
    transport = connection.server.transport
    transport.pause_reading()
    transport.pause_reading()
    expect(not transport.is_reading(), "is_reading() after pause_reading()")
    transport.resume_reading()
    transport.resume_reading()
    expect(transport.is_reading(), "not is_reading() after resume_reading()")
    connection.client.transport.write(b"still works")
    connection.wait(lambda: connection.server.received == b"still works", "data after pausing and resuming")


# --------------------------------------------------------------- half-close


def write_eof_half_closes_and_the_peer_can_still_answer(session: Session) -> None:
    """write_eof sends EOF after the data (twice is harmless); a peer whose
    eof_received returns true keeps its side open and answers; its answer and
    EOF come back; both ends then close cleanly."""
    connection = session.connect(keep_open_on_eof=True)
    needs_write_eof(connection)
    client, server = connection.client, connection.server
    client.transport.write(b"request")
    client.transport.write_eof()
    client.transport.write_eof()
    connection.wait(lambda: server.got_eof, "eof_received at the server")
    expect_equal(server.received, b"request", "what the server received")
    expect_equal(server.names[-2:], ["data_received", "eof_received"], "the server's last calls")
    expect(
        not server.transport.is_closing(), "the server's transport closed though eof_received returned true"
    )
    server.transport.write(b"reply")
    server.transport.close()
    connection.wait(lambda: client.lost and server.lost, "connection_lost on both sides")
    expect_equal(client.received, b"reply", "what the client received")
    expect(client.got_eof, "the client got no eof_received")
    expect_equal((client.lost_exc, server.lost_exc), (None, None), "connection_lost's exceptions")


def write_after_write_eof_raises_runtime_error(session: Session) -> None:
    """write() and writelines() after write_eof() raise RuntimeError."""
    connection = session.connect()
    needs_write_eof(connection)
    transport = connection.client.transport
    transport.write_eof()
    expect_raises(RuntimeError, lambda: transport.write(b"too late"), "write() after write_eof()")
    expect_raises(RuntimeError, lambda: transport.writelines([b"too late"]), "writelines() after write_eof()")


def eof_received_returning_false_closes_the_transport(session: Session) -> None:
    """When eof_received returns a false value the transport closes itself,
    after flushing what its protocol wrote; both sides end cleanly."""
    connection = session.connect()
    needs_write_eof(connection)
    client, server = connection.client, connection.server
    server.transport.write(b"bye")
    client.transport.write_eof()
    connection.wait(lambda: server.lost and client.lost, "connection_lost on both sides")
    expect_equal(server.names[-2:], ["eof_received", "connection_lost"], "the server's last calls")
    expect_equal(client.received, b"bye", "what the client received")
    expect(client.got_eof, "the client got no eof_received")
    expect_equal((client.lost_exc, server.lost_exc), (None, None), "connection_lost's exceptions")


# -------------------------------------------------------------- close, abort


def close_flushes_what_was_written_then_ends(session: Session) -> None:
    """close() with megabytes still buffered sends all of it, then EOF, then ends the
    connection cleanly; connection_lost never runs inside close(), which is
    harmless twice; the transport is closing and not reading from the call on."""
    connection = session.connect()
    client, server = connection.client, connection.server
    server.transport.pause_reading()
    data = random_bytes(8 * MIB, 7)
    client.transport.write(data)
    expect(client.transport.get_write_buffer_size() > 0, "8 MiB to a peer not reading left nothing buffered")
    events_before = list(client.events)
    client.transport.close()
    expect(client.transport.is_closing(), "not is_closing() after close()")
    expect(not client.transport.is_reading(), "is_reading() after close()")
    expect_equal(client.events, events_before, "the client's calls during close()")
    client.transport.close()
    server.transport.resume_reading()
    connection.wait(
        lambda: server.got_eof and client.lost, "EOF at the server and connection_lost at the client"
    )
    expect_equal(server.received, data, "what the server received")
    expect(client.lost_exc is None, f"the client's connection_lost got {client.lost_exc!r}")
    connection.wait(lambda: server.lost, "connection_lost at the server")


def abort_drops_the_buffer_and_ends_at_once(session: Session) -> None:
    """abort() throws away what is buffered and ends the connection:
    connection_lost(None) follows, never from inside abort(), and the peer's
    connection ends too, without the dropped bytes."""
    connection = session.connect()
    client, server = connection.client, connection.server
    server.transport.pause_reading()
    written = write_until_paused(client, random_bytes(64 * KIB, 8))
    expect(client.transport.get_write_buffer_size() > 0, "nothing buffered after pause_writing")
    events_before = list(client.events)
    client.transport.abort()
    expect_equal(client.events, events_before, "the client's calls during abort()")
    expect(client.transport.is_closing(), "not is_closing() after abort()")
    connection.wait(lambda: client.lost, "connection_lost at the client")
    expect(client.lost_exc is None, f"the client's connection_lost got {client.lost_exc!r}")
    server.transport.resume_reading()
    connection.wait(lambda: server.lost, "connection_lost at the server")
    expect(len(server.received) < written, f"all {written} bytes arrived though abort() should drop some")


def abort_ends_a_close_that_cannot_flush(session: Session) -> None:
    """A close() waiting on a peer that never reads stays open, and abort()
    then ends it at once: how a protocol bounds its close with a timer."""
    connection = session.connect()
    client, server = connection.client, connection.server
    server.transport.pause_reading()
    client.transport.write(random_bytes(8 * MIB, 10))
    client.transport.close()
    connection.run_a_while()
    expect(not client.lost, "close() ended the connection with 8 MiB unsent to a peer that was not reading")
    client.transport.abort()
    connection.wait(lambda: client.lost, "connection_lost at the client after abort()")
    expect(client.lost_exc is None, f"the client's connection_lost got {client.lost_exc!r}")
    server.transport.resume_reading()
    connection.wait(lambda: server.lost, "connection_lost at the server")
    expect(len(server.received) < 8 * MIB, "every byte arrived though abort() should drop some")


def a_closed_transport_stays_closed(session: Session) -> None:
    """After connection_lost the transport is closing and not reading;
    close, abort, pause_reading and resume_reading are harmless; connection_lost
    came once."""
    connection = session.connect()
    client, server = connection.client, connection.server
    client.transport.close()
    connection.wait(lambda: client.lost and server.lost, "connection_lost on both sides")
    transport = client.transport
    expect(transport.is_closing(), "not is_closing() after connection_lost")
    expect(not transport.is_reading(), "is_reading() after connection_lost")
    transport.close()
    transport.abort()
    transport.pause_reading()
    transport.resume_reading()
    expect(not transport.is_reading(), "is_reading() after resume_reading() on a closed transport")
    connection.run_a_while()
    expect_equal(
        (client.count("connection_lost"), server.count("connection_lost")), (1, 1), "connection_lost calls"
    )
    expect_equal(server.received, b"", "what the server received")


# -------------------------------------------------------------------- errors


def a_vanished_peer_ends_the_writer_with_a_connection_error(session: Session) -> None:
    """When the peer drops the connection abruptly, a side that keeps writing
    gets connection_lost with a ConnectionError (a reset, a broken pipe), once."""
    connection = session.connect(keep_open_on_eof=True)
    client, server = connection.client, connection.server
    client.transport.write(b"hello")
    connection.wait(lambda: server.received == b"hello", "b'hello' at the server")
    client.transport.abort()
    connection.wait(lambda: client.lost, "connection_lost at the client after abort()")

    def server_gave_up() -> bool:
        if not server.lost and not server.transport.is_closing():
            server.transport.write(b"are you there?")
        return server.lost

    connection.wait(server_gave_up, "connection_lost at the server, writing to a peer that aborted")
    expect(
        isinstance(server.lost_exc, ConnectionError),
        f"the server's connection_lost got {server.lost_exc!r}, not a ConnectionError",
    )
    expect_equal(server.count("connection_lost"), 1, "the server's connection_lost calls")


class _Explodes(FlowRecorder):
    """Raises from data_received."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        raise ValueError("boom")


def an_exception_from_data_received_ends_that_connection_with_it(session: Session) -> None:
    """A data_received that raises ends its own connection: connection_lost gets
    that very exception, the driver reports it, and the peer's connection ends too."""
    connection = session.connect(server=_Explodes())
    client, server = connection.client, connection.server
    client.transport.write(b"trigger")
    connection.wait(lambda: server.lost and client.lost, "connection_lost on both sides")
    error = server.lost_exc
    expect(
        isinstance(error, ValueError) and str(error) == "boom", f"the server's connection_lost got {error!r}"
    )
    expect(
        any(exc is error for exc in connection.callback_errors),
        f"the driver did not report the exception (it reported {list(connection.callback_errors)!r})",
    )
    expect_equal(server.count("connection_lost"), 1, "the server's connection_lost calls")


HARNESS_CHECKS = checks_of(Group.HARNESS, harness_run_until_gives_up_on_a_condition_that_never_holds)

ASYNCIO_CONTRACT = checks_of(
    Group.ASYNCIO_CONTRACT,
    connection_made_comes_first_with_an_open_transport,
    bytes_arrive_in_order_and_intact,
    a_mebibyte_each_way_at_once,
    writelines_sends_its_pieces_in_order,
    write_takes_every_bytes_like_kind,
    write_of_nothing_does_nothing_and_write_of_str_raises_type_error,
    set_protocol_hands_the_connection_over,
    write_buffer_limits_are_kept_as_set_and_checked,
    pause_writing_past_the_high_water_mark_and_resume_writing_at_the_low,
    lowering_the_high_water_mark_below_the_buffer_pauses_at_once,
    a_paused_reader_receives_nothing_until_resumed,
    pause_and_resume_reading_are_idempotent,
    write_eof_half_closes_and_the_peer_can_still_answer,
    write_after_write_eof_raises_runtime_error,
    eof_received_returning_false_closes_the_transport,
    close_flushes_what_was_written_then_ends,
    abort_drops_the_buffer_and_ends_at_once,
    abort_ends_a_close_that_cannot_flush,
    a_closed_transport_stays_closed,
    a_vanished_peer_ends_the_writer_with_a_connection_error,
    an_exception_from_data_received_ends_that_connection_with_it,
)

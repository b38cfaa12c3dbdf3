"""weft's promises about ``write_file``, checked where a transport offers it.

A transport that has ``write_file`` (:func:`~weft.protocols.contract.file_writer_of`
finds it) sends a :class:`~weft.protocols.contract.FileRegion` in order with
the bytes around it, counts it in flow control, flushes it on ``close()``,
and closes the region whatever happens.  Transports without it (a TLS
layer, asyncio's own) are not applicable here: protocols then read the
file themselves.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from weft.drivers._core.file_region import FileSlice
from weft.drivers.testing.conformance._asyncio_contract import KIB, MIB, random_bytes
from weft.drivers.testing.conformance._checking import Group, checks_of
from weft.drivers.testing.conformance._expectations import NotApplicable, expect, expect_equal, expect_raises
from weft.drivers.testing.conformance._session import FlowRecorder, Session
from weft.protocols.contract import FileRegion, file_writer_of
from weft.protocols.errors import WriteAfterEofError

__all__ = ["FILE_PROMISES"]


def writer_of(protocol: FlowRecorder) -> Callable[[FileRegion], None]:
    """The transport's write_file; not applicable when it has none."""
    writer = file_writer_of(protocol.transport)
    if writer is None:
        raise NotApplicable("the transport offers no write_file")
    return writer


@contextmanager
def data_file(size: int, seed: int) -> Iterator[tuple[Path, bytes]]:
    """A temporary file of ``size`` pseudo-random bytes, and those bytes."""
    with tempfile.TemporaryDirectory(prefix="weft-conformance-") as directory:
        content = random_bytes(size, seed)
        path = Path(directory) / "data.bin"
        path.write_bytes(content)
        yield path, content


def write_file_keeps_order_with_the_bytes_around_it(session: Session) -> None:
    """Bytes written before a region go first (4 MiB the peer has not read
    yet), bytes written after it follow it, two regions with bytes between
    them arrive as written, and each region is closed once sent."""
    connection = session.connect()
    client, server = connection.client, connection.server
    write_file = writer_of(server)
    head, tail = random_bytes(4 * MIB, 13), random_bytes(4 * MIB, 14)
    with data_file(300 * KIB, 15) as (path, content):
        client.transport.pause_reading()
        first, second = FileSlice.open(path), FileSlice.open(path, offset=1000, count=5000)
        server.transport.write(head)
        write_file(first)
        server.transport.write(b"|middle|")
        write_file(second)
        server.transport.writelines([b"|ta", b"il|"])
        server.transport.write(tail)
        client.transport.resume_reading()
        expected = head + content + b"|middle|" + content[1000:6000] + b"|tail|" + tail
        connection.wait(lambda: len(client.received) >= len(expected), f"{len(expected)} bytes at the client")
        expect_equal(client.received, expected, "what the client received")
        connection.wait(lambda: first.closed and second.closed, "both regions closed once sent")


def write_file_counts_in_flow_control(session: Session) -> None:
    """A region's length counts in the write buffer: one over the high-water
    mark calls pause_writing from inside write_file with all of it counted,
    bytes written after it add to it, and resume_writing comes at the low
    mark; a region under the mark pauses nothing."""
    connection = session.connect()
    client, server = connection.client, connection.server
    write_file = writer_of(server)
    with data_file(MIB, 16) as (path, content):
        write_file(FileSlice.open(path, count=10 * KIB))
        # Received is not yet reported sent: a driver whose writer thread
        # sends (the blocking driver's) tells the loop afterwards, and the
        # sizes checked below assume this region has left the buffer.
        connection.wait(
            lambda: len(client.received) >= 10 * KIB and server.transport.get_write_buffer_size() == 0,
            "a 10 KiB region at the client, and gone from the server's buffer",
        )
        expect_equal(server.count("pause_writing"), 0, "pause_writing calls for a 10 KiB region")
        client.transport.pause_reading()
        write_file(FileSlice.open(path))
        expect_equal(server.names[-1], "pause_writing", "the server's last call after write_file of 1 MiB")
        expect_equal(server.buffer_at_pause, [MIB], "the buffer size pause_writing saw")
        server.transport.write(b"x" * 1000)
        expect_equal(server.transport.get_write_buffer_size(), MIB + 1000, "the buffer size")
        low = server.transport.get_write_buffer_limits()[0]
        client.transport.resume_reading()
        connection.wait(lambda: server.count("resume_writing") == 1, "resume_writing once the peer reads")
        expect(
            server.buffer_at_resume[0] <= low, f"resume_writing came at {server.buffer_at_resume[0]} bytes"
        )
        total = 10 * KIB + MIB + 1000
        connection.wait(lambda: len(client.received) >= total, f"{total} bytes at the client")
        expect_equal(client.received, content[: 10 * KIB] + content + b"x" * 1000, "what the client received")
        expect_equal(server.count("pause_writing"), 1, "pause_writing calls")


class _WritesWhenPaused(FlowRecorder):
    """Writes a marker from inside pause_writing."""

    def pause_writing(self) -> None:
        super().pause_writing()
        self.transport.write(b"<paused>")


def a_write_from_inside_pause_writing_goes_after_the_region(session: Session) -> None:
    """pause_writing comes from inside write_file; what the protocol writes
    there is sent after the region, not before."""
    connection = session.connect(server=_WritesWhenPaused())
    client, server = connection.client, connection.server
    write_file = writer_of(server)
    with data_file(MIB, 17) as (path, content):
        write_file(FileSlice.open(path))
        expect_equal(server.count("pause_writing"), 1, "pause_writing calls from write_file of 1 MiB")
        connection.wait(lambda: len(client.received) >= len(content) + 8, "the region and the marker")
        expect_equal(client.received, content + b"<paused>", "what the client received")


def close_sends_a_region_before_ending(session: Session) -> None:
    """close() right after write_file sends the whole region and what follows
    it, then ends cleanly; what is written after close() is dropped."""
    connection = session.connect()
    client, server = connection.client, connection.server
    write_file = writer_of(server)
    with data_file(2 * MIB, 18) as (path, content):
        region = FileSlice.open(path)
        write_file(region)
        server.transport.write(b"bye")
        server.transport.close()
        server.transport.write(b"discarded")
        connection.wait(lambda: client.lost and server.lost, "connection_lost on both sides")
        expect_equal(client.received, content + b"bye", "what the client received")
        expect(server.lost_exc is None, f"the server's connection_lost got {server.lost_exc!r}")
        expect(region.closed, "the region is still open after it was sent")


def write_eof_waits_for_a_region_and_write_file_after_it_raises(session: Session) -> None:
    """EOF comes after a region's last byte; write_file after write_eof raises
    WriteAfterEofError and closes the region it was given."""
    connection = session.connect()
    client, server = connection.client, connection.server
    client.keep_open_on_eof = True
    write_file = writer_of(server)
    with data_file(MIB, 19) as (path, content):
        write_file(FileSlice.open(path))
        server.transport.write_eof()
        late = FileSlice.open(path)
        expect_raises(WriteAfterEofError, lambda: write_file(late), "write_file() after write_eof()")
        expect(late.closed, "a region refused after write_eof() is still open")
        connection.wait(lambda: client.got_eof, "EOF at the client")
        expect_equal(client.received, content, "what the client received before EOF")
        expect_equal(client.events[-1], ("eof_received",), "the client's last call")


def write_file_on_a_closing_transport_drops_and_closes_the_region(session: Session) -> None:
    """After close(), a region is dropped (and closed), as written bytes are."""
    connection = session.connect()
    client, server = connection.client, connection.server
    write_file = writer_of(server)
    with data_file(10 * KIB, 20) as (path, _content):
        server.transport.close()
        region = FileSlice.open(path)
        write_file(region)
        expect(region.closed, "a region given to a closing transport is still open")
        connection.wait(lambda: client.lost, "connection_lost at the client")
        expect_equal(client.received, b"", "what the client received")


def a_file_cut_short_ends_the_connection_with_os_error(session: Session) -> None:
    """A file truncated before its region is sent ends the connection with
    OSError, never a short body passed off as whole; the peer gets no more
    than the file held, and the region is closed."""
    connection = session.connect()
    client, server = connection.client, connection.server
    write_file = writer_of(server)
    with data_file(MIB, 21) as (path, content):
        region = FileSlice.open(path)
        os.truncate(path, 100 * KIB)
        write_file(region)
        connection.wait(lambda: server.lost and client.lost, "connection_lost on both sides")
        expect(isinstance(server.lost_exc, OSError), f"the server's connection_lost got {server.lost_exc!r}")
        expect(region.closed, "the region is still open")
        expect(content.startswith(client.received), "the client received bytes that are not the file's")
        expect(
            len(client.received) <= 100 * KIB, f"the client received {len(client.received)} bytes of 100 KiB"
        )


FILE_PROMISES = checks_of(
    Group.WEFT_PROMISE,
    write_file_keeps_order_with_the_bytes_around_it,
    write_file_counts_in_flow_control,
    a_write_from_inside_pause_writing_goes_after_the_region,
    close_sends_a_region_before_ending,
    write_eof_waits_for_a_region_and_write_file_after_it_raises,
    write_file_on_a_closing_transport_drops_and_closes_the_region,
    a_file_cut_short_ends_the_connection_with_os_error,
)

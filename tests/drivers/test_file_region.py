"""FileSlice, the concrete file region, and write_file on the memory driver."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from weft.drivers import FileSlice
from weft.drivers.testing import RecordingProtocol, connect
from weft.protocols.contract import FileRegion, file_writer_of
from weft.protocols.errors import ArgumentError, WriteAfterEofError


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 16)  # 4 KiB
    return path


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_slice_is_a_file_region_and_reads_its_bytes_in_order(data_file: Path) -> None:
    """A FileSlice is what write_file takes; read() hands out the next bytes and moves on."""
    region = FileSlice.open(data_file)
    assert isinstance(region, FileRegion)
    assert len(region) == 4096
    assert region.read(10) == bytes(range(10))
    assert (region.offset, len(region)) == (10, 4086)
    rest = region.read(1 << 20)
    assert rest == data_file.read_bytes()[10:]
    assert len(region) == 0
    assert region.read(10) == b""
    region.close()


def test_a_slice_covers_only_its_part(data_file: Path) -> None:
    """offset and count bound the region: nothing before or after it is read."""
    region = FileSlice.open(data_file, offset=100, count=50)
    assert region.read(1000) == data_file.read_bytes()[100:150]
    assert len(region) == 0
    region.close()


def test_consumed_moves_past_bytes_sent_from_the_file(data_file: Path) -> None:
    """consumed(n) is how sendfile reports progress; the next read starts after it."""
    region = FileSlice.open(data_file)
    region.consumed(4000)
    assert (region.offset, len(region)) == (4000, 96)
    assert region.read(1000) == data_file.read_bytes()[4000:]
    region.close()


def test_a_file_cut_short_while_sent_is_an_oserror(data_file: Path) -> None:
    """A truncated file ends the region with OSError, never with a short body."""
    region = FileSlice.open(data_file)
    os.truncate(data_file, 100)
    assert len(region.read(100)) == 100
    with pytest.raises(OSError, match="ended 3996 bytes early"):
        region.read(100)
    with pytest.raises(OSError, match="early"):
        region.consumed(0)
    region.close()


def test_bad_bounds_are_argument_errors_and_leak_nothing(data_file: Path) -> None:
    """A negative offset or count raises ArgumentError, and the descriptor opened for it is closed."""
    before = open_fds()
    with pytest.raises(ArgumentError):
        FileSlice.open(data_file, offset=-1)
    with pytest.raises(ArgumentError):
        FileSlice.open(data_file, count=-1)
    with pytest.raises(FileNotFoundError):
        FileSlice.open(data_file.with_name("absent"))
    assert open_fds() == before


def test_close_is_idempotent_and_frees_the_descriptor(data_file: Path) -> None:
    before = open_fds()
    region = FileSlice.open(data_file)
    assert open_fds() == before + 1
    region.close()
    region.close()
    assert region.closed
    assert open_fds() == before


# ----------------------------------------------------- the memory driver


def test_write_file_sends_the_region_between_writes(data_file: Path) -> None:
    """The memory transport offers write_file: bytes written before and after keep their order."""
    protocol = RecordingProtocol()
    conn = connect(protocol)
    writer = file_writer_of(conn.transport)
    assert writer is not None
    region = FileSlice.open(data_file)
    conn.transport.write(b"head|")
    writer(region)
    conn.transport.write(b"|tail")
    assert conn.written == b"head|" + data_file.read_bytes() + b"|tail"
    assert region.closed  # sent, then closed by the transport


def test_a_region_drives_flow_control_without_being_read(tmp_path: Path) -> None:
    """A region counts in the buffer size (pause_writing at once for a big one) but is read
    only as the peer takes it."""
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * (1 << 20))
    protocol = RecordingProtocol()
    conn = connect(protocol, peer_reads=False)
    region = FileSlice.open(path)
    conn.transport.write_file(region)
    assert conn.transport.get_write_buffer_size() == 1 << 20
    assert protocol.names[-1] == "pause_writing"
    assert region.offset == 0  # nothing read yet
    conn.read((1 << 20) - 16 * 1024)
    assert protocol.names[-1] == "resume_writing"
    assert conn.transport.get_write_buffer_size() == 16 * 1024
    assert conn.read() == b"x" * (16 * 1024)


def test_close_flushes_a_region_and_abort_drops_it(data_file: Path) -> None:
    """close() sends the whole region before EOF; abort() closes it unsent."""
    conn = connect(RecordingProtocol(), peer_reads=False)
    region = FileSlice.open(data_file)
    conn.transport.write_file(region)
    conn.transport.close()
    assert not conn.eof_written
    assert conn.read() == data_file.read_bytes()
    assert conn.eof_written
    assert region.closed

    conn = connect(RecordingProtocol(), peer_reads=False)
    region = FileSlice.open(data_file)
    conn.transport.write_file(region)
    conn.transport.abort()
    conn.clock.advance(0)
    assert region.closed
    assert conn.written == b""


def test_write_file_after_write_eof_raises_and_closes_the_region(data_file: Path) -> None:
    conn = connect(RecordingProtocol(keep_open_on_eof=True))
    conn.transport.write_eof()
    region = FileSlice.open(data_file)
    with pytest.raises(WriteAfterEofError):
        conn.transport.write_file(region)
    assert region.closed


def test_write_file_on_a_closing_transport_drops_the_region(data_file: Path) -> None:
    conn = connect(RecordingProtocol())
    conn.transport.close()
    region = FileSlice.open(data_file)
    conn.transport.write_file(region)
    assert region.closed
    assert conn.written == b""


def test_a_region_that_cannot_be_read_ends_the_connection_with_its_error(data_file: Path) -> None:
    """A file truncated before it is sent ends the connection with OSError, as a failed send does."""
    protocol = RecordingProtocol()
    conn = connect(protocol, peer_reads=False)
    region = FileSlice.open(data_file)
    conn.transport.write_file(region)
    os.truncate(data_file, 10)
    conn.read()
    lost = protocol.events[-1]
    assert lost[0] == "connection_lost"
    assert isinstance(lost[1], OSError)
    assert region.closed

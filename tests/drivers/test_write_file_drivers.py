"""write_file on every driver that offers it, over real sockets and pipes:
what the shipped conformance suite cannot check everywhere.

The suite's write_file checks (order with the bytes around a region, flow
control, close, write_eof, a closing transport, a file cut short) run on
every transport in tests/conformance.  Here, through the same harnesses:
a large region to a slow reader, regions closed and no descriptor leaked
when a connection ends mid-region, and how the OS drivers send (pieces of
at most 64 KiB where the kernel refuses sendfile, never a byte through
Python where it does not); then connect_pipes edge cases: a region written
before the pipes are up, a regular file as the output.
"""

from __future__ import annotations

import hashlib
import os
import random
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.harnesses import make_harness
from tests.support.drivers import driver_names
from weft.drivers import DRIVERS, FileSlice
from weft.drivers.testing import RecordingProtocol
from weft.drivers.testing.conformance import CARRIERS, FlowRecorder, Session
from weft.protocols.contract import FileRegion, FileWriteTransport, Transport, clock_of, file_writer_of

KIB = 1024
MIB = 1024 * KIB

#: The registered drivers whose transports offer write_file and send it as
#: these tests expect, and the memory driver.
WRITE_FILE_DRIVERS = (
    "memory",
    *driver_names(
        requires={FileWriteTransport},
        exclude={
            "blocking": "its writer thread reads a region into a pipe, or one sendfile refuses, in its "
            "256 KiB write batches (tests/drivers/test_blocking_write_file.py)"
        },
    ),
)
OS_NAMES = [
    f"{driver}-{carrier}" for driver in WRITE_FILE_DRIVERS if driver != "memory" for carrier in CARRIERS
]
NAMES = ["memory", *OS_NAMES]


@pytest.fixture(params=NAMES)
def session(request: pytest.FixtureRequest) -> Iterator[Session]:
    """Each driver (and carrier) in turn; what a test connects is ended after it."""
    with Session(make_harness(request.param)) as made:
        yield made


@pytest.fixture(params=OS_NAMES)
def os_session(request: pytest.FixtureRequest) -> Iterator[Session]:
    """Each OS driver (and carrier) in turn: where sendfile does the sending."""
    with Session(make_harness(request.param)) as made:
        yield made


def data_file(tmp_path: Path, size: int, seed: int = 9) -> tuple[Path, bytes]:
    content = random.Random(seed).randbytes(size)
    path = tmp_path / f"data-{size}.bin"
    path.write_bytes(content)
    return path, content


def write_file(transport: Transport, region: FileRegion) -> None:
    """``transport.write_file(region)``, by way of file_writer_of, as a protocol asks."""
    writer = file_writer_of(transport)
    assert writer is not None, f"{transport!r} offers no write_file"
    writer(region)


def links() -> dict[int, str]:
    """What each of this process's descriptors refers to (``socket:[123]``, a path...)."""
    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            found[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # closed since listdir (the listing's own descriptor)
            continue
    return found


def output_of(transport: Transport) -> str | None:
    """What the transport's output descriptor refers to (None in memory)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        return os.readlink(f"/proc/self/fd/{sock.fileno()}")
    pipe = transport.get_extra_info("pipe")
    if isinstance(pipe, tuple):
        return os.readlink(f"/proc/self/fd/{pipe[1]}")
    return None


# ----------------------------------------------------------------- order


@pytest.mark.parametrize("driver", ["reactor", "coroutine", "asyncio", "uvloop"])
def test_a_region_written_before_the_pipes_are_up_goes_first(driver: str, tmp_path: Path) -> None:
    """connect_pipes hands out its transport at once (asyncio sets the pipes up
    on the loop, later): a region and bytes written then are sent in order,
    once the connection is up."""
    if not DRIVERS[driver].available():
        pytest.skip(f"{driver} is not installed here")
    path, content = data_file(tmp_path, 1 * MIB)
    runtime: Any = DRIVERS[driver].open()
    try:
        to_server, from_client = os.pipe()
        to_client, from_server = os.pipe()
        client, server = RecordingProtocol(), RecordingProtocol()
        server_transport = runtime.connect_pipes(lambda: server, to_server, from_server)
        server_transport.write(b"<")
        write_file(server_transport, FileSlice.open(path))
        server_transport.write(b">")
        runtime.connect_pipes(lambda: client, to_client, from_client)
        assert runtime.run_until(lambda: len(client.received) >= len(content) + 2, 20)
        assert client.received == b"<" + content + b">"
    finally:
        runtime.close()


class SlowReader(FlowRecorder):
    """Takes one chunk, then pauses reading for a couple of milliseconds; keeps a digest."""

    def __init__(self) -> None:
        super().__init__()
        self.digest = hashlib.sha256()
        self.size = 0

    def data_received(self, data: bytes) -> None:
        self.digest.update(data)
        self.size += len(data)
        self.transport.pause_reading()
        clock_of(self.transport).call_later(0.002, self.transport.resume_reading)


def test_a_large_region_reaches_a_slow_reader_intact(session: Session, tmp_path: Path) -> None:
    """4 MiB to a reader that stops after every chunk: every byte arrives, in
    order (same digest), and flow control paused and resumed the writer."""
    path, content = data_file(tmp_path, 4 * MIB)
    reader = SlowReader()
    connection = session.connect(reader)
    server = connection.server
    region = FileSlice.open(path)
    write_file(server.transport, region)
    server.transport.write(b"!")
    connection.wait(lambda: reader.size >= len(content) + 1, "the region at the reader", timeout=30)
    assert reader.digest.hexdigest() == hashlib.sha256(content + b"!").hexdigest()
    assert server.names.count("pause_writing") >= 1
    connection.wait(lambda: server.transport.get_write_buffer_size() == 0, "an empty buffer")
    assert not server.writing_paused
    assert region.closed


# ----------------------------------------------------------------- endings


@pytest.mark.parametrize("ending", ["abort", "peer-abort"])
def test_an_abort_or_a_lost_connection_closes_the_region_and_leaks_no_descriptor(
    session: Session, tmp_path: Path, ending: str
) -> None:
    """A region being sent when the server aborts, or when the peer goes away,
    is closed; and once both ends are gone no descriptor of this process still
    refers to the region's file or to the server's socket or pipe (a
    duplicate kept by the sending would)."""
    path = tmp_path / "sparse.bin"
    with open(path, "wb") as file:
        file.truncate(64 * MIB)
    connection = session.connect()
    client, server = connection.client, connection.server
    region = FileSlice.open(path)
    write_file(server.transport, region)
    connection.wait(lambda: len(client.received) > 0, "the region's first bytes")
    output = output_of(server.transport)
    if ending == "abort":
        server.transport.abort()
    else:
        client.transport.abort()
    connection.wait(lambda: client.lost and server.lost, "connection_lost on both sides")
    assert region.closed
    left = set(links().values())
    assert str(path) not in left
    if output is not None:  # an OS driver (the memory pump moves everything in one step)
        assert len(client.received) < 64 * MIB  # the end came in the middle of the region
        assert output not in left


# ------------------------------------------------------- how it is sent


class PipeRegion:
    """A region whose descriptor is a pipe: sendfile refuses it (EINVAL or
    ESPIPE), so a transport must read it, a piece at a time."""

    def __init__(self, data: bytes) -> None:
        self._read_end, self._write_end = os.pipe()
        self._data = data
        self._offset = 0
        self.reads: list[int] = []
        self.closed = False

    @property
    def offset(self) -> int:
        return self._offset

    def __len__(self) -> int:
        return len(self._data) - self._offset

    def fileno(self) -> int:
        return self._read_end

    def read(self, size: int) -> bytes:
        piece = self._data[self._offset : self._offset + size]
        self._offset += len(piece)
        self.reads.append(len(piece))
        return piece

    def consumed(self, count: int) -> None:
        raise AssertionError(f"consumed({count}): sendfile cannot have sent from a pipe")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._read_end)
            os.close(self._write_end)


def test_a_region_sendfile_refuses_is_read_in_small_pieces(os_session: Session) -> None:
    """Where the kernel refuses sendfile, the region is read in pieces of at
    most 64 KiB, still in order with the bytes around it, and still closed."""
    content = random.Random(3).randbytes(1 * MIB + 123)
    connection = os_session.connect()
    client, server = connection.client, connection.server
    region = PipeRegion(content)
    server.transport.write(b"<")
    write_file(server.transport, region)
    server.transport.write(b">")
    connection.wait(lambda: len(client.received) >= len(content) + 2, "the region and the bytes around it")
    assert client.received == b"<" + content + b">"
    assert region.reads
    assert max(region.reads) <= 64 * KIB
    connection.wait(lambda: region.closed, "the region closed")


class CountingSlice(FileSlice):
    """A FileSlice that counts the calls to ``read``: bytes that went through Python."""

    reads = 0

    def read(self, size: int) -> bytes:
        self.reads += 1
        return super().read(size)


class Drain(FlowRecorder):
    """Counts what arrives and keeps none of it."""

    def __init__(self) -> None:
        super().__init__()
        self.size = 0

    def data_received(self, data: bytes) -> None:
        self.size += len(data)


def test_a_64_mib_region_never_passes_through_python(os_session: Session, tmp_path: Path) -> None:
    """Zero copy: 64 MiB arrive without the region's read() ever being called
    (sendfile moved them), and the process's Python allocations peak far below
    the region's size while they do."""
    path = tmp_path / "sparse.bin"
    with open(path, "wb") as file:
        file.truncate(64 * MIB)
    drain = Drain()
    connection = os_session.connect(drain)
    server = connection.server
    region = CountingSlice(os.open(path, os.O_RDONLY | os.O_CLOEXEC), name=str(path))
    tracemalloc.start()
    try:
        write_file(server.transport, region)
        connection.wait(lambda: drain.size == 64 * MIB, "64 MiB at the client", timeout=60)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert region.reads == 0
    assert peak < 4 * MIB, f"{peak} bytes allocated while sending"
    connection.wait(lambda: region.closed, "the region closed")


# ------------------------------------------------------ files as outputs


@pytest.mark.parametrize("driver", [name for name in WRITE_FILE_DRIVERS if name != "memory"])
def test_a_region_into_a_regular_file(driver: str, tmp_path: Path) -> None:
    """connect_pipes with a regular file as its output (the loop cannot watch
    one: it is always ready): regions and bytes land in it in order, and the
    file is complete when the connection has closed."""
    if not DRIVERS[driver].available():
        pytest.skip(f"{driver} is not installed here")
    path, content = data_file(tmp_path, 3 * MIB)
    target = tmp_path / "copy.bin"
    runtime: Any = DRIVERS[driver].open()
    try:
        protocol = RecordingProtocol(keep_open_on_eof=True)  # /dev/null reads EOF at once
        read_fd = os.open(os.devnull, os.O_RDONLY)
        write_fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        runtime.connect_pipes(lambda: protocol, read_fd, write_fd)
        assert runtime.run_until(lambda: protocol.made, 10)
        protocol.transport.write(b"[")
        write_file(protocol.transport, FileSlice.open(path))
        protocol.transport.write(b"]")
        protocol.transport.close()
        assert runtime.run_until(lambda: protocol.lost, 20)
        assert protocol.lost_exc is None
    finally:
        runtime.close()
    assert target.read_bytes() == b"[" + content + b"]"

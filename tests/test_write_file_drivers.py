"""write_file on every driver that offers it, over real sockets and pipes.

The conformance suite's harnesses connect the pairs (memory, and each
registered driver whose transports offer ``write_file``, over TCP,
UNIX-domain sockets, two pipes and a socketpair given as stdio), and each
test checks one promise of the contract's ``write_file`` the same way on
each.  The event-loop drivers send regions with ``os.sendfile``; the last
tests prove that they never read a region into memory, and that a region the
kernel refuses is sent in pieces.
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

from tests.conformance.harness import HARNESSES, ConnectedPair, DriverHarness, FlowRecorder
from tests.support.drivers import driver_names, param
from weft.drivers import FileSlice, PipesRuntime, Runtime, open_runtime
from weft.drivers.testing import RecordingProtocol
from weft.protocols.contract import FileRegion, FileWriteTransport, Transport, clock_of, file_writer_of
from weft.protocols.errors import WriteAfterEofError

KIB = 1024
MIB = 1024 * KIB

#: The registered drivers whose transports offer write_file (a TLS layer's
#: do not: it must encrypt every byte).
WRITE_FILE_DRIVERS = driver_names(requires={FileWriteTransport})
#: Those whose write_file goes through os.sendfile wherever the kernel allows.
SENDFILE_DRIVERS = driver_names(
    requires={FileWriteTransport},
    exclude={
        "blocking": "its writer thread reads a region into a pipe, or one sendfile refuses, in its "
        "256 KiB write batches (tests/test_blocking_write_file.py)"
    },
)


def harness_params(drivers: list[str]) -> list[Any]:
    """The conformance harnesses (driver and carrier) of ``drivers``, each
    skipped, naming the extra, where its driver cannot run."""
    return [
        param(name.split("-")[0], name, id=name)
        for name in sorted(HARNESSES)
        if name.split("-")[0] in drivers
    ]


@pytest.fixture(params=[pytest.param("memory", id="memory"), *harness_params(WRITE_FILE_DRIVERS)])
def harness(request: pytest.FixtureRequest) -> Iterator[DriverHarness]:
    """The memory driver, then each driver (and carrier) in turn."""
    made = HARNESSES[request.param]()
    yield made
    made.close()


@pytest.fixture(params=harness_params(SENDFILE_DRIVERS))
def os_harness(request: pytest.FixtureRequest) -> Iterator[DriverHarness]:
    """Each OS driver (and carrier) in turn: where sendfile does the sending."""
    made = HARNESSES[request.param]()
    yield made
    made.close()


def data_file(tmp_path: Path, size: int, seed: int = 9) -> tuple[Path, bytes]:
    content = random.Random(seed).randbytes(size)
    path = tmp_path / f"data-{size}.bin"
    path.write_bytes(content)
    return path, content


def connect(
    harness: DriverHarness, client: Any = None, *, keep_open_on_eof: bool = False
) -> tuple[ConnectedPair, Any, FlowRecorder]:
    client = client if client is not None else RecordingProtocol(keep_open_on_eof=keep_open_on_eof)
    server = FlowRecorder()
    pair = harness.connect(client, server)
    return pair, client, server


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


# ------------------------------------------------------------------ order


@pytest.mark.parametrize("ahead", [5, 4 * MIB], ids=["small", "queued"])
def test_bytes_around_regions_keep_their_order(harness: DriverHarness, tmp_path: Path, ahead: int) -> None:
    """Bytes written before a region go first (also when the kernel has not
    taken them yet: 4 MiB to a peer that is not reading), bytes written after
    it follow it, and two regions with bytes between them arrive as written;
    each region is closed once sent."""
    path, content = data_file(tmp_path, 300 * KIB)
    head = random.Random(5).randbytes(ahead)
    tail = random.Random(6).randbytes(ahead)
    pair, client, server = connect(harness)
    client.transport.pause_reading()
    first, second = FileSlice.open(path), FileSlice.open(path, offset=1000, count=5000)
    server.transport.write(head)
    write_file(server.transport, first)
    server.transport.write(b"|middle|")
    write_file(server.transport, second)
    server.transport.writelines([b"|ta", b"il|"])
    server.transport.write(tail)
    client.transport.resume_reading()
    expected = head + content + b"|middle|" + content[1000:6000] + b"|tail|" + tail
    pair.run_until(lambda: len(client.received) >= len(expected))
    assert client.received == expected
    pair.run_until(lambda: first.closed and second.closed)


class WritesWhenPaused(FlowRecorder):
    """Writes a marker from inside pause_writing."""

    def pause_writing(self) -> None:
        super().pause_writing()
        self.transport.write(b"<paused>")


def test_a_write_from_inside_pause_writing_queues_behind_the_region(
    harness: DriverHarness, tmp_path: Path
) -> None:
    """pause_writing comes from inside write_file; a write it makes is sent after the region, not before."""
    path, content = data_file(tmp_path, 1 * MIB)
    client, server = RecordingProtocol(), WritesWhenPaused()
    pair = harness.connect(client, server)
    write_file(server.transport, FileSlice.open(path))
    assert server.count("pause_writing") == 1
    pair.run_until(lambda: len(client.received) >= len(content) + 8)
    assert client.received == content + b"<paused>"


@pytest.mark.drivers(requires={FileWriteTransport, PipesRuntime})
def test_a_region_written_before_the_pipes_are_up_goes_first(runtime: Runtime, tmp_path: Path) -> None:
    """connect_pipes hands out its transport at once (asyncio sets the pipes up
    on the loop, later): a region and bytes written then are sent in order,
    once the connection is up."""
    path, content = data_file(tmp_path, 1 * MIB)
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


class SlowReader(RecordingProtocol):
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


def test_a_large_region_reaches_a_slow_reader_intact(harness: DriverHarness, tmp_path: Path) -> None:
    """4 MiB to a reader that stops after every chunk: every byte arrives, in
    order (same digest), and flow control paused and resumed the writer."""
    path, content = data_file(tmp_path, 4 * MIB)
    reader = SlowReader()
    pair, _client, server = connect(harness, reader)
    region = FileSlice.open(path)
    write_file(server.transport, region)
    server.transport.write(b"!")
    pair.run_until(lambda: reader.size >= len(content) + 1, timeout=30)
    assert reader.digest.hexdigest() == hashlib.sha256(content + b"!").hexdigest()
    assert server.names.count("pause_writing") >= 1
    pair.run_until(lambda: server.transport.get_write_buffer_size() == 0)
    assert not server.writing_paused
    assert region.closed


# ------------------------------------------------------------ flow control


def test_a_region_over_the_high_water_mark_pauses_at_once_and_resumes_at_the_low_mark(
    harness: DriverHarness, tmp_path: Path
) -> None:
    """The region's length counts in the buffer size: pause_writing comes from
    inside write_file, with the whole region counted (and bytes written after
    it add to it); resume_writing comes once no more than the low-water mark waits."""
    path, content = data_file(tmp_path, 1 * MIB)
    pair, client, server = connect(harness)
    client.transport.pause_reading()
    write_file(server.transport, FileSlice.open(path))
    assert server.names[-1] == "pause_writing"
    assert server.buffer_at_pause == [len(content)]
    server.transport.write(b"x" * 1000)
    assert server.transport.get_write_buffer_size() == len(content) + 1000
    low, _high = server.transport.get_write_buffer_limits()
    client.transport.resume_reading()
    pair.run_until(lambda: server.count("resume_writing") == 1)
    assert server.buffer_at_resume[0] <= low
    pair.run_until(lambda: len(client.received) == len(content) + 1000)
    assert client.received == content + b"x" * 1000
    assert server.count("pause_writing") == 1


def test_a_small_region_does_not_pause(harness: DriverHarness, tmp_path: Path) -> None:
    """A region under the high-water mark is sent without any flow-control call."""
    path, content = data_file(tmp_path, 10 * KIB)
    pair, client, server = connect(harness)
    write_file(server.transport, FileSlice.open(path))
    pair.run_until(lambda: len(client.received) == len(content))
    assert client.received == content
    assert "pause_writing" not in server.names


# ----------------------------------------------------------------- endings


def test_close_flushes_the_region_first(harness: DriverHarness, tmp_path: Path) -> None:
    """close() right after write_file sends the whole region (and what follows
    it), then ends the connection cleanly."""
    path, content = data_file(tmp_path, 2 * MIB)
    pair, client, server = connect(harness)
    region = FileSlice.open(path)
    write_file(server.transport, region)
    server.transport.write(b"bye")
    server.transport.close()
    server.transport.write(b"discarded")
    pair.run_until(lambda: client.lost and server.lost)
    assert client.received == content + b"bye"
    assert server.lost_exc is None
    assert region.closed


def test_write_eof_waits_for_the_region_and_write_file_after_it_raises(
    harness: DriverHarness, tmp_path: Path
) -> None:
    """EOF comes after the region's last byte; write_file after write_eof raises
    WriteAfterEofError and closes the region it was given."""
    path, content = data_file(tmp_path, 1 * MIB)
    pair, client, server = connect(harness, keep_open_on_eof=True)
    write_file(server.transport, FileSlice.open(path))
    server.transport.write_eof()
    late = FileSlice.open(path)
    with pytest.raises(WriteAfterEofError):
        write_file(server.transport, late)
    assert late.closed
    pair.run_until(lambda: client.got_eof)
    assert client.received == content
    assert client.events[-1] == ("eof_received",)


def test_write_file_on_a_closing_transport_drops_the_region(harness: DriverHarness, tmp_path: Path) -> None:
    """After close(), a region is discarded (and closed), as written bytes are."""
    path, _content = data_file(tmp_path, 10 * KIB)
    pair, client, server = connect(harness)
    server.transport.close()
    region = FileSlice.open(path)
    write_file(server.transport, region)
    assert region.closed
    pair.run_until(lambda: client.lost)
    assert client.received == b""


@pytest.mark.parametrize("ending", ["abort", "peer-abort"])
def test_an_abort_or_a_lost_connection_closes_the_region_and_leaks_no_descriptor(
    harness: DriverHarness, tmp_path: Path, ending: str
) -> None:
    """A region being sent when the server aborts, or when the peer goes away,
    is closed; and once both ends are gone no descriptor of this process still
    refers to the region's file or to the server's socket or pipe (a
    duplicate kept by the sending would)."""
    path = tmp_path / "sparse.bin"
    with open(path, "wb") as file:
        file.truncate(64 * MIB)
    pair, client, server = connect(harness)
    region = FileSlice.open(path)
    write_file(server.transport, region)
    pair.run_until(lambda: len(client.received) > 0)
    output = output_of(server.transport)
    if ending == "abort":
        server.transport.abort()
    else:
        client.transport.abort()
    pair.run_until(lambda: client.lost and server.lost)
    assert region.closed
    left = set(links().values())
    assert str(path) not in left
    if output is not None:  # an OS driver (the memory pump moves everything in one step)
        assert len(client.received) < 64 * MIB  # the end came in the middle of the region
        assert output not in left


def test_a_file_cut_short_ends_the_connection_with_oserror(harness: DriverHarness, tmp_path: Path) -> None:
    """A file truncated before its region is sent ends the connection with
    OSError (never a short body passed off as whole); the peer gets no more
    than the file held."""
    path, content = data_file(tmp_path, 1 * MIB)
    pair, client, server = connect(harness)
    region = FileSlice.open(path)
    os.truncate(path, 100 * KIB)
    write_file(server.transport, region)
    pair.run_until(lambda: server.lost and client.lost)
    assert isinstance(server.lost_exc, OSError)
    assert "early" in str(server.lost_exc)
    assert region.closed
    assert content.startswith(client.received)
    assert len(client.received) <= 100 * KIB


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


def test_a_region_sendfile_refuses_is_read_in_small_pieces(os_harness: DriverHarness) -> None:
    """Where the kernel refuses sendfile, the region is read in pieces of at
    most 64 KiB, still in order with the bytes around it, and still closed."""
    content = random.Random(3).randbytes(1 * MIB + 123)
    pair, client, server = connect(os_harness)
    region = PipeRegion(content)
    server.transport.write(b"<")
    write_file(server.transport, region)
    server.transport.write(b">")
    pair.run_until(lambda: len(client.received) >= len(content) + 2)
    assert client.received == b"<" + content + b">"
    assert region.reads
    assert max(region.reads) <= 64 * KIB
    pair.run_until(lambda: region.closed)


class CountingSlice(FileSlice):
    """A FileSlice that counts the calls to ``read``: bytes that went through Python."""

    reads = 0

    def read(self, size: int) -> bytes:
        self.reads += 1
        return super().read(size)


class Drain(RecordingProtocol):
    """Counts what arrives and keeps none of it."""

    def __init__(self) -> None:
        super().__init__()
        self.size = 0

    def data_received(self, data: bytes) -> None:
        self.size += len(data)


def test_a_64_mib_region_never_passes_through_python(os_harness: DriverHarness, tmp_path: Path) -> None:
    """Zero copy: 64 MiB arrive without the region's read() ever being called
    (sendfile moved them), and the process's Python allocations peak far below
    the region's size while they do."""
    path = tmp_path / "sparse.bin"
    with open(path, "wb") as file:
        file.truncate(64 * MIB)
    drain = Drain()
    pair, _client, server = connect(os_harness, drain)
    region = CountingSlice(os.open(path, os.O_RDONLY | os.O_CLOEXEC), name=str(path))
    tracemalloc.start()
    try:
        write_file(server.transport, region)
        pair.run_until(lambda: drain.size == 64 * MIB, timeout=60)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert region.reads == 0
    assert peak < 4 * MIB, f"{peak} bytes allocated while sending"
    pair.run_until(lambda: region.closed)


# ------------------------------------------------------ files as outputs


@pytest.mark.drivers(requires={FileWriteTransport, PipesRuntime})
def test_a_region_into_a_regular_file(driver: str, tmp_path: Path) -> None:
    """connect_pipes with a regular file as its output (the loop cannot watch
    one: it is always ready): regions and bytes land in it in order, and the
    file is complete when the connection has closed (and the runtime too)."""
    path, content = data_file(tmp_path, 3 * MIB)
    target = tmp_path / "copy.bin"
    runtime = open_runtime(driver)
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

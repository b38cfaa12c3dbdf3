"""write_file on the blocking driver, over real sockets and pipes: order with
the writes around it, a region of several MiB to a slow reader, flow control
on its unsent length, close flushing it, abort and loss closing it, a file
cut short ending the connection with OSError, and no descriptor left open.

Every wait is bounded and waits on an event or a socket, never on time.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import TIMEOUT
from tests.support.processes import connect, receive_to_eof
from weft.drivers import FileSlice
from weft.drivers.blocking import BlockingRuntime, ThreadedTransport
from weft.drivers.testing import RecordingProtocol
from weft.protocols.contract import file_writer_of
from weft.protocols.errors import WriteAfterEofError


class Sender(RecordingProtocol):
    """Runs ``action(transport)`` in connection_made; records the rest, and
    sets ``ended`` when the connection is lost."""

    def __init__(self, action: Callable[[ThreadedTransport], object]) -> None:
        super().__init__()
        self.action = action
        self.ended = threading.Event()
        self.sizes: list[int] = []

    def connection_made(self, transport: ThreadedTransport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.action(transport)
        self.sizes.append(transport.get_write_buffer_size())

    def resume_writing(self) -> None:
        super().resume_writing()
        self.sizes.append(self.transport.get_write_buffer_size())

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.ended.set()

    @property
    def lost_exc(self) -> BaseException | None:
        return next((event[1] for event in self.events if event[0] == "connection_lost"), None)


@contextmanager
def serving_one(sender: Sender) -> Iterator[tuple[BlockingRuntime, int]]:
    """A blocking runtime on its own thread, giving each connection ``sender``."""
    runtime = BlockingRuntime()
    listener = runtime.listen_tcp(lambda: sender, "127.0.0.1", 0)
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    try:
        yield runtime, listener.port
    finally:
        runtime.call_soon_threadsafe(runtime.stop)
        thread.join(TIMEOUT)
        assert not thread.is_alive()
        runtime.close()


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    """8 MiB that are not all alike, so a misplaced piece shows."""
    path = tmp_path / "big.bin"
    block = hashlib.sha256(b"weft").digest() * 2048  # 64 KiB
    path.write_bytes(b"".join(bytes([index % 251]) + block[1:] for index in range(128)))
    return path


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_socket_transport_is_a_file_writer(big_file: Path) -> None:
    """file_writer_of finds write_file on the blocking driver's transport."""

    def action(transport: ThreadedTransport) -> None:
        assert file_writer_of(transport) == transport.write_file
        transport.close()

    sender = Sender(action)
    with serving_one(sender) as (_runtime, port), connect(port) as client:
        assert receive_to_eof(client) == b""
    assert sender.ended.wait(TIMEOUT)


def test_a_region_goes_between_the_writes_around_it_and_close_flushes_it(big_file: Path) -> None:
    """write, write_file, write, close: the client reads the three in order, then EOF."""

    def action(transport: ThreadedTransport) -> None:
        transport.write(b"head:")
        transport.write_file(FileSlice.open(big_file, offset=10, count=1000))
        transport.write(b":tail")
        transport.close()

    sender = Sender(action)
    with serving_one(sender) as (_runtime, port), connect(port) as client:
        assert receive_to_eof(client) == b"head:" + big_file.read_bytes()[10:1010] + b":tail"
    assert sender.ended.wait(TIMEOUT)
    assert sender.lost_exc is None


def test_several_mib_reach_a_slow_reader_intact_under_flow_control(big_file: Path) -> None:
    """An 8 MiB region, read 4 KiB at a time: every byte arrives in order.
    Its unsent length counts in the buffer size at once (pause_writing), and
    resume_writing comes once it has drained to the low-water mark."""
    regions: list[FileSlice] = []

    def action(transport: ThreadedTransport) -> None:
        transport.write(b"x" * 100)
        regions.append(FileSlice.open(big_file))
        transport.write_file(regions[0])
        transport.close()

    sender = Sender(action)
    expected = b"x" * 100 + big_file.read_bytes()
    with serving_one(sender) as (_runtime, port), connect(port) as client:
        received = bytearray()
        while chunk := client.recv(4096):
            received += chunk
    assert bytes(received) == expected
    assert sender.ended.wait(TIMEOUT)
    assert sender.sizes[0] == len(expected)
    assert [event[0] for event in sender.events][:3] == ["connection_made", "pause_writing", "resume_writing"]
    low, _high = sender.transport.get_write_buffer_limits()
    assert sender.sizes[1] <= low
    assert regions[0].closed  # sent: closed by the transport


class Region(FileSlice):
    """A FileSlice that says when it is closed."""

    closed_event: threading.Event

    @classmethod
    def of(cls, path: Path) -> Region:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        region = cls(fd, name=str(path))
        region.closed_event = threading.Event()
        return region

    def close(self) -> None:
        super().close()
        self.closed_event.set()


def test_abort_closes_regions_queued_and_the_one_being_sent(big_file: Path) -> None:
    """The client reads nothing: one region is in sendfile (blocked), another
    waits behind it; abort ends the connection and closes both."""
    regions = [Region.of(big_file), Region.of(big_file)]

    def action(transport: ThreadedTransport) -> None:
        for region in regions:
            transport.write_file(region)

    sender = Sender(action)
    with serving_one(sender) as (runtime, port), connect(port) as client:
        client.recv(1)  # the first bytes are out: the writer is sending the first region
        runtime.call_soon_threadsafe(sender.transport.abort)
        assert sender.ended.wait(TIMEOUT)
        for region in regions:
            assert region.closed_event.wait(TIMEOUT)
    assert sender.lost_exc is None


def test_a_region_cut_short_ends_the_connection_with_oserror(tmp_path: Path) -> None:
    """The file shrinks after the region was made: what is there is sent,
    then the connection ends with OSError rather than a short body."""
    path = tmp_path / "shrinks.bin"
    path.write_bytes(b"a" * 1_000_000)
    region = Region.of(path)
    os.truncate(path, 100_000)

    def action(transport: ThreadedTransport) -> None:
        transport.write_file(region)

    sender = Sender(action)
    with serving_one(sender) as (_runtime, port), connect(port) as client:
        assert sender.ended.wait(TIMEOUT)
        with pytest.raises(ConnectionResetError):
            receive_to_eof(client)
    assert isinstance(sender.lost_exc, OSError)
    assert "early" in str(sender.lost_exc)
    assert region.closed_event.is_set()


def test_write_file_after_write_eof_raises_and_closes_the_region(big_file: Path) -> None:
    """As write() does, with the region closed (the transport owned it)."""
    region = Region.of(big_file)
    raised: list[BaseException] = []

    def action(transport: ThreadedTransport) -> None:
        transport.write_eof()
        try:
            transport.write_file(region)
        except WriteAfterEofError as exc:
            raised.append(exc)
        transport.close()

    sender = Sender(action)
    with serving_one(sender) as (_runtime, port), connect(port) as client:
        assert receive_to_eof(client) == b""
    assert raised
    assert region.closed_event.is_set()


def test_write_file_once_closing_drops_the_region(big_file: Path) -> None:
    """After close(), a region is dropped (closed), as written bytes are."""
    region = Region.of(big_file)

    def action(transport: ThreadedTransport) -> None:
        transport.close()
        transport.write_file(region)

    sender = Sender(action)
    with serving_one(sender) as (_runtime, port), connect(port) as client:
        assert receive_to_eof(client) == b""
    assert region.closed_event.is_set()


def test_over_pipes_too(big_file: Path) -> None:
    """A pipe transport sends a region, in order with the writes around it
    (read a piece at a time, as pipe writes go), and EOF closes the pipe."""
    to_server_read, to_server_write = os.pipe()
    from_server_read, from_server_write = os.pipe()
    region = Region.of(big_file)
    sender = Sender(lambda transport: None)
    with BlockingRuntime() as runtime:
        transport = runtime.connect_pipes(lambda: sender, to_server_read, from_server_write)
        transport.write(b"<")
        transport.write_file(region)
        transport.write(b">")
        transport.write_eof()
        received = bytearray()

        def read_all() -> None:
            while chunk := os.read(from_server_read, 65536):
                received.extend(chunk)

        # The writer thread sends without the scheduler; the pipe's EOF ends the reader.
        reader = threading.Thread(target=read_all)
        reader.start()
        reader.join(TIMEOUT)
        os.close(to_server_write)
        runtime.run_until(sender.ended.is_set, TIMEOUT)
    os.close(from_server_read)
    assert bytes(received) == b"<" + big_file.read_bytes() + b">"
    assert region.closed_event.is_set()


def test_no_descriptor_is_left_open(big_file: Path) -> None:
    """Regions sent, dropped, aborted and cut short, and the runtime closed:
    the process has as many descriptors open as before."""
    before = open_fds()
    test_a_region_goes_between_the_writes_around_it_and_close_flushes_it(big_file)
    test_abort_closes_regions_queued_and_the_one_being_sent(big_file)
    test_write_file_once_closing_drops_the_region(big_file)
    test_a_region_cut_short_ends_the_connection_with_oserror(big_file.parent)
    assert open_fds() == before

"""The blocking driver's datagram endpoints: threads, flow control, and what only it must promise.

The contract is checked by tests/conformance on every driver; here: every
callback on the scheduler thread while ``sendto`` works from any thread,
flow control and ``close()`` with a queue (the socket's send mocked to
refuse), ``abort()``, and the bound on datagrams read but not delivered.
"""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support import TIMEOUT
from weft.drivers.blocking import BlockingRuntime, ThreadedDatagramTransport
from weft.drivers.blocking._datagrams import MAX_UNDELIVERED
from weft.drivers.testing import RecordingDatagramProtocol

pytestmark = pytest.mark.drivers(only=("blocking",))


@pytest.fixture
def runtime() -> Iterator[BlockingRuntime]:
    made = BlockingRuntime()
    yield made
    made.close()


def open_endpoint(
    runtime: BlockingRuntime, protocol: RecordingDatagramProtocol, *args: Any
) -> ThreadedDatagramTransport:
    opening = runtime.open_udp(lambda: protocol, *args)
    assert runtime.run_until(opening.done, TIMEOUT)
    transport = opening.result()
    assert isinstance(transport, ThreadedDatagramTransport)
    return transport


def pair(
    runtime: BlockingRuntime,
) -> tuple[
    RecordingDatagramProtocol, ThreadedDatagramTransport, RecordingDatagramProtocol, ThreadedDatagramTransport
]:
    server = RecordingDatagramProtocol()
    server_transport = open_endpoint(runtime, server, ("127.0.0.1", 0))
    client = RecordingDatagramProtocol()
    client_transport = open_endpoint(runtime, client, None, server_transport.get_extra_info("sockname"))
    return server, server_transport, client, client_transport


class Refusing:
    """Stands in for the transport's one send call: BlockingIOError while ``full``."""

    def __init__(self, real: Callable[[bytes, Any], None]) -> None:
        self.real = real
        self.full = True

    def __call__(self, data: bytes, target: Any) -> None:
        if self.full:
            raise BlockingIOError(errno.EAGAIN, "would block")
        self.real(data, target)


def test_callbacks_run_on_the_scheduler_thread_and_sendto_from_any(runtime: BlockingRuntime) -> None:
    """datagram_received runs on the thread running the runtime; sendto from
    another thread sends, in the order that thread called it."""
    threads: list[int] = []

    class Noting(RecordingDatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            threads.append(threading.get_ident())
            super().datagram_received(data, addr)

    server = Noting()
    server_transport = open_endpoint(runtime, server, ("127.0.0.1", 0))
    client = RecordingDatagramProtocol()
    client_transport = open_endpoint(runtime, client, None, server_transport.get_extra_info("sockname"))

    def send() -> None:
        for index in range(20):
            client_transport.sendto(b"%d" % index)

    sender = threading.Thread(target=send)
    sender.start()
    sender.join(TIMEOUT)
    assert runtime.run_until(lambda: len(server.datagrams) == 20, TIMEOUT)
    assert server.payloads == [b"%d" % index for index in range(20)]
    assert set(threads) == {threading.get_ident()}


def test_pause_and_resume_writing_around_a_refusing_socket(runtime: BlockingRuntime) -> None:
    """With the socket refusing, datagrams queue; pause_writing comes over the
    high-water mark (on the scheduler thread), resume_writing once the I/O
    thread has sent them, and every one arrives, in order."""
    server, _, client, client_transport = pair(runtime)
    client_transport.set_write_buffer_limits(high=3000, low=1000)
    refusing = Refusing(client_transport._send)
    client_transport._send = refusing  # type: ignore[method-assign]
    for index in range(5):
        client_transport.sendto(b"%d" % index + b"." * 999)
    assert client.count("pause_writing") == 1
    assert client_transport.get_write_buffer_size() == 5000
    refusing.full = False
    assert runtime.run_until(lambda: client.count("resume_writing") == 1, TIMEOUT)
    assert runtime.run_until(lambda: len(server.datagrams) == 5, TIMEOUT)
    assert [data[:1] for data in server.payloads] == [b"0", b"1", b"2", b"3", b"4"]
    assert client_transport.get_write_buffer_size() == 0


def test_close_sends_the_queue_first_and_abort_drops_it(runtime: BlockingRuntime) -> None:
    """close() lets the I/O thread send what waits, then connection_lost(None);
    abort() on another endpoint drops its queue."""
    server, server_transport, closing, closing_transport = pair(runtime)
    aborting = RecordingDatagramProtocol()
    aborting_transport = open_endpoint(runtime, aborting, None, server_transport.get_extra_info("sockname"))
    refusing = Refusing(closing_transport._send)
    closing_transport._send = refusing  # type: ignore[method-assign]
    dropping = Refusing(aborting_transport._send)
    aborting_transport._send = dropping  # type: ignore[method-assign]
    closing_transport.sendto(b"kept")
    aborting_transport.sendto(b"dropped")
    closing_transport.close()
    aborting_transport.abort()
    assert runtime.run_until(lambda: aborting.lost, TIMEOUT)
    assert not closing.lost
    refusing.full = False
    dropping.full = False
    assert runtime.run_until(lambda: closing.lost, TIMEOUT)
    assert closing.lost_exc is None
    assert runtime.run_until(lambda: server.payloads == [b"kept"], TIMEOUT)
    runtime.run_until(lambda: len(server.payloads) > 1, 0.05)
    assert server.payloads == [b"kept"]


def test_at_most_max_undelivered_datagrams_wait_for_the_scheduler(runtime: BlockingRuntime) -> None:
    """Twice MAX_UNDELIVERED datagrams sent while the scheduler is not running:
    the I/O thread never holds more than MAX_UNDELIVERED undelivered (the
    kernel keeps the rest), and all arrive once it runs."""
    seen: list[int] = []
    server = RecordingDatagramProtocol()
    transport = open_endpoint(runtime, server, ("127.0.0.1", 0))

    class Watching(RecordingDatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            seen.append(transport._undelivered)
            super().datagram_received(data, addr)

    watching = Watching()
    transport.set_protocol(watching)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for index in range(2 * MAX_UNDELIVERED):
            sender.sendto(b"%d" % index, transport.get_extra_info("sockname"))
    assert runtime.run_until(lambda: len(watching.datagrams) == 2 * MAX_UNDELIVERED, TIMEOUT)
    assert max(seen) <= MAX_UNDELIVERED


def test_closing_the_runtime_ends_open_endpoints(runtime: BlockingRuntime) -> None:
    """Endpoints still open when the runtime closes hear connection_lost, after their thread left."""
    protocol = RecordingDatagramProtocol()
    transport = open_endpoint(runtime, protocol, ("127.0.0.1", 0))
    sock = transport.get_extra_info("socket")
    runtime.close()
    assert protocol.lost
    assert sock.fileno() == -1


def test_an_exception_from_connection_made_ends_the_endpoint(runtime: BlockingRuntime) -> None:
    """connection_made raising: the future still has the transport, the endpoint
    ends with that exception once its thread has left, and the socket is closed."""
    failure = RuntimeError("connection_made failed")

    class Failing(RecordingDatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            raise failure

    protocol = Failing()
    transport = open_endpoint(runtime, protocol, ("127.0.0.1", 0))
    assert runtime.run_until(lambda: protocol.lost, TIMEOUT)
    assert protocol.lost_exc is failure
    assert transport.get_extra_info("socket").fileno() == -1

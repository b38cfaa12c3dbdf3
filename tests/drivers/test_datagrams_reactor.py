"""The reactor's datagram endpoints: what only it promises, and what the conformance suite cannot force.

The contract itself is checked on every driver by tests/conformance; here:
registration (once for reading, write interest only while datagrams wait),
flow control and close() with a queue (the kernel's sendto mocked to
refuse, since loopback never fills), errors reported on the next turn,
the batch read per event, the asyncio extras, ``datagram_transport`` for
a socket made elsewhere, name lookup off the loop, IPv6 and UNIX sockets.
Every test runs on the reactor and on the coroutine driver, a Reactor too.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.support import TIMEOUT
from weft.drivers import open_runtime
from weft.drivers.reactor import Reactor, ReactorDatagramTransport, datagram_transport
from weft.drivers.reactor._datagrams import READS_PER_EVENT
from weft.drivers.testing import RecordingDatagramProtocol
from weft.protocols.contract import DatagramTransport
from weft.protocols.errors import ArgumentError, DatagramAddressError, DatagramTooLargeError

pytestmark = pytest.mark.drivers(only=("reactor", "coroutine"))


@pytest.fixture
def reactor(driver: str) -> Iterator[Reactor]:
    made = open_runtime(driver)
    assert isinstance(made, Reactor)
    yield made
    made.close()


def open_endpoint(reactor: Reactor, *args: Any, **kwargs: Any) -> tuple[RecordingDatagramProtocol, Any]:
    # The transport is Any: the tests reach into the reactor's own (its bound send calls).
    """A recording protocol on a new UDP endpoint (open_udp's arguments), once open."""
    protocol = RecordingDatagramProtocol()
    opening = reactor.open_udp(lambda: protocol, *args, **kwargs)
    assert reactor.run_until(opening.done, TIMEOUT)
    return protocol, opening.result()


def arrived(protocol: RecordingDatagramProtocol, count: int) -> bool:
    """Whether ``protocol`` has received ``count`` datagrams (a condition for run_until)."""
    return len(protocol.datagrams) == count


def pair(reactor: Reactor) -> tuple[RecordingDatagramProtocol, Any, RecordingDatagramProtocol, Any]:
    """A server bound to loopback, and a client connected to it."""
    server, server_transport = open_endpoint(reactor, ("127.0.0.1", 0))
    client, client_transport = open_endpoint(reactor, None, server_transport.get_extra_info("sockname"))
    return server, server_transport, client, client_transport


class Refusing:
    """Stands in for a transport's bound sendto/send: raises BlockingIOError
    while ``full``, as a kernel whose send buffer is full does."""

    def __init__(self, real: Callable[..., int]) -> None:
        self.real = real
        self.full = True
        self.calls = 0

    def __call__(self, *args: Any) -> int:
        self.calls += 1
        if self.full:
            raise BlockingIOError(errno.EAGAIN, "would block")
        return self.real(*args)


def fill(transport: ReactorDatagramTransport) -> Refusing:
    """Make the client's connected sends refuse, as a full kernel buffer would."""
    refusing = Refusing(transport._send)
    transport._send = refusing
    return refusing


# ---------------------------------------------------------------- the poller


def test_an_endpoint_is_registered_once_and_a_steady_exchange_changes_nothing(reactor: Reactor) -> None:
    """After the endpoints start, a hundred datagrams each way make no
    registration change: reading is registered once, writing never (the
    kernel takes every datagram at once)."""
    server, server_transport, client, client_transport = pair(reactor)
    before = reactor.poller.changes
    for index in range(1, 101):
        client_transport.sendto(b"%d" % index)
        assert reactor.run_until(partial(arrived, server, index), TIMEOUT)
        server_transport.sendto(b"ok", server.datagrams[-1][1])
    assert reactor.run_until(lambda: len(client.datagrams) == 100, TIMEOUT)
    assert reactor.poller.changes == before


def test_write_interest_is_added_only_while_datagrams_wait(reactor: Reactor) -> None:
    """A refused send queues the datagram and registers write interest; once
    the queue is sent, write interest goes, and the datagrams arrive in order."""
    server, _, _, client_transport = pair(reactor)
    refusing = fill(client_transport)
    before = reactor.poller.changes
    client_transport.sendto(b"first")
    client_transport.sendto(b"second")
    assert client_transport.get_write_buffer_size() == len(b"firstsecond")
    assert reactor.poller.changes == before + 1  # write interest, once
    refusing.full = False
    assert reactor.run_until(lambda: len(server.datagrams) == 2, TIMEOUT)
    assert server.payloads == [b"first", b"second"]
    assert client_transport.get_write_buffer_size() == 0
    assert reactor.poller.changes == before + 2  # and gone again


# ----------------------------------------------------------- flow control


def test_pause_writing_over_the_high_water_mark_and_resume_at_the_low(reactor: Reactor) -> None:
    """With the kernel refusing, datagrams queue; pause_writing comes once the
    queue goes over the high-water mark, exactly once, and resume_writing
    once it has drained to the low-water mark; nothing is lost."""
    server, _, client, client_transport = pair(reactor)
    client_transport.set_write_buffer_limits(high=4000, low=1000)
    refusing = fill(client_transport)
    datagram = b"d" * 1000
    for _ in range(4):
        client_transport.sendto(datagram)
    assert client.count("pause_writing") == 0  # 4000 is not over 4000
    client_transport.sendto(datagram)
    assert client.names[-1] == "pause_writing"
    client_transport.sendto(datagram)  # allowed, and kept
    assert client.count("pause_writing") == 1
    assert client_transport.get_write_buffer_size() == 6000
    refusing.full = False
    assert reactor.run_until(lambda: client.count("resume_writing") == 1, TIMEOUT)
    assert reactor.run_until(lambda: len(server.datagrams) == 6, TIMEOUT)
    assert client_transport.get_write_buffer_size() == 0


def test_lowering_the_marks_below_what_waits_pauses_at_once(reactor: Reactor) -> None:
    """set_write_buffer_limits under the queue's size calls pause_writing at once."""
    _, _, client, client_transport = pair(reactor)
    fill(client_transport)
    client_transport.sendto(b"x" * 500)
    client_transport.set_write_buffer_limits(high=100)
    assert client.names[-1] == "pause_writing"
    client_transport.abort()


# ------------------------------------------------------------------ endings


def test_close_sends_what_is_queued_then_connection_lost(reactor: Reactor) -> None:
    """close() with datagrams queued: they all go once the kernel takes them,
    then connection_lost(None); nothing sent after close() goes."""
    server, _, client, client_transport = pair(reactor)
    refusing = fill(client_transport)
    for index in range(5):
        client_transport.sendto(b"queued %d" % index)
    client_transport.close()
    client_transport.sendto(b"after close")
    reactor.run_until(lambda: client.lost, 0.05)
    assert not client.lost  # still waiting for the kernel
    refusing.full = False
    assert reactor.run_until(lambda: client.lost, TIMEOUT)
    assert client.lost_exc is None
    assert reactor.run_until(lambda: len(server.datagrams) == 5, TIMEOUT)
    assert server.payloads == [b"queued %d" % index for index in range(5)]


def test_abort_drops_what_is_queued(reactor: Reactor) -> None:
    """abort() with datagrams queued: none is sent, connection_lost(None)
    follows on a later turn, the buffer is empty at once."""
    server, server_transport, client, client_transport = pair(reactor)
    refusing = fill(client_transport)
    client_transport.sendto(b"dropped")
    client_transport.abort()
    assert client_transport.get_write_buffer_size() == 0
    assert not client.lost
    refusing.full = False
    assert reactor.run_until(lambda: client.lost, TIMEOUT)
    assert client.lost_exc is None
    # A datagram the server sends itself still arrives: the abort lost only the client's.
    server_transport.sendto(b"probe", server_transport.get_extra_info("sockname"))
    assert reactor.run_until(lambda: server.payloads == [b"probe"], TIMEOUT)


def test_the_socket_is_closed_when_the_endpoint_ends(reactor: Reactor) -> None:
    """connection_lost comes with the socket closed and the endpoint off the reactor's books."""
    _, transport = open_endpoint(reactor, ("127.0.0.1", 0))
    sock = transport.get_extra_info("socket")
    transport.close()
    assert reactor.run_until(lambda: sock.fileno() == -1, TIMEOUT)
    assert transport not in reactor._open


def test_closing_the_reactor_aborts_open_endpoints(reactor: Reactor) -> None:
    """Endpoints still open when the reactor closes hear connection_lost before close() returns."""
    protocol, _ = open_endpoint(reactor, ("127.0.0.1", 0))
    reactor.close()
    assert protocol.lost


# ------------------------------------------------------------------- errors


def test_a_send_error_reaches_error_received_on_the_next_turn(reactor: Reactor) -> None:
    """An error from sending goes to error_received, never from inside sendto
    (a protocol that sends from error_received cannot recurse), and the
    endpoint goes on."""
    _, _, client, client_transport = pair(reactor)

    def failing(data: bytes) -> int:
        raise OSError(errno.ENOBUFS, "No buffer space available")

    client_transport._send = failing
    client_transport.sendto(b"x")
    assert client.errors == []
    assert reactor.run_until(lambda: len(client.errors) == 1, TIMEOUT)
    error = client.errors[0]
    assert isinstance(error, OSError)
    assert error.errno == errno.ENOBUFS
    assert not client_transport.is_closing()


def test_the_kernels_emsgsize_becomes_datagram_too_large_error(reactor: Reactor, tmp_path: Any) -> None:
    """A UNIX datagram over the socket's send buffer (no size weft knows in
    advance) is refused by the kernel; error_received gets a
    DatagramTooLargeError, an OSError with errno EMSGSIZE, and the endpoint goes on."""
    path = str(tmp_path / "server")
    server = RecordingDatagramProtocol()
    opening = reactor.open_unix_datagram(lambda: server, path)
    assert reactor.run_until(opening.done, TIMEOUT)
    client = RecordingDatagramProtocol()
    connecting = reactor.open_unix_datagram(lambda: client, None, path)
    assert reactor.run_until(connecting.done, TIMEOUT)
    transport = connecting.result()
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    limit = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    transport.sendto(b"x" * (limit + 1))
    assert reactor.run_until(lambda: bool(client.errors), TIMEOUT)
    error = client.errors[0]
    assert isinstance(error, DatagramTooLargeError)
    assert error.errno == errno.EMSGSIZE
    assert error.size == limit + 1
    transport.sendto(b"small")
    assert reactor.run_until(lambda: server.payloads == [b"small"], TIMEOUT)


def test_an_exception_from_error_received_ends_the_endpoint(reactor: Reactor) -> None:
    """error_received raising ends its endpoint with that exception, as any callback's."""
    failure = RuntimeError("error_received failed")

    class Failing(RecordingDatagramProtocol):
        def error_received(self, exc: Exception) -> None:
            super().error_received(exc)
            raise failure

    protocol = Failing()
    opening = reactor.open_udp(lambda: protocol, ("127.0.0.1", 0))
    assert reactor.run_until(opening.done, TIMEOUT)
    transport: Any = opening.result()

    def failing(data: bytes, addr: Any) -> int:
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    transport._sendto = failing
    transport.sendto(b"x", ("127.0.0.1", 9))
    assert reactor.run_until(lambda: protocol.lost, TIMEOUT)
    assert protocol.lost_exc is failure


# ------------------------------------------------------------------ reading


def test_one_readiness_event_reads_a_batch_of_datagrams(reactor: Reactor) -> None:
    """Datagrams waiting in the kernel are read up to READS_PER_EVENT per event:
    twice that many arrive in two turns, not one turn each."""
    server, server_transport = open_endpoint(reactor, ("127.0.0.1", 0))
    address = server_transport.get_extra_info("sockname")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for index in range(2 * READS_PER_EVENT):
            sender.sendto(b"%d" % index, address)
        turns = 0
        while len(server.datagrams) < 2 * READS_PER_EVENT and turns < 100:
            reactor.run_once(TIMEOUT)
            turns += 1
    assert len(server.datagrams) == 2 * READS_PER_EVENT
    assert turns <= 3


def test_pause_reading_holds_datagrams_in_the_kernel_until_resume(reactor: Reactor) -> None:
    """asyncio's selector-loop extras: pause_reading stops delivery (is_reading
    false), resume_reading delivers what waited; both are harmless when repeated."""
    server, server_transport, _, client_transport = pair(reactor)
    server_transport.pause_reading()
    server_transport.pause_reading()
    assert not server_transport.is_reading()
    client_transport.sendto(b"held")
    reactor.run_until(lambda: bool(server.datagrams), 0.05)
    assert server.datagrams == []
    server_transport.resume_reading()
    server_transport.resume_reading()
    assert server_transport.is_reading()
    assert reactor.run_until(lambda: server.payloads == [b"held"], TIMEOUT)


# --------------------------------------------------- a socket made elsewhere


def test_datagram_transport_wraps_a_socket_and_start_calls_connection_made(reactor: Reactor) -> None:
    """datagram_transport() takes a socket made elsewhere (blocking: it is made
    non-blocking) and does not call connection_made; start() does, and starts
    reading.  A connected socket's peer is the one address it sends to."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(TIMEOUT)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(receiver.getsockname())
    protocol = RecordingDatagramProtocol()
    transport: DatagramTransport = datagram_transport(reactor, protocol, sock)
    assert isinstance(transport, ReactorDatagramTransport)
    assert not sock.getblocking()
    assert protocol.events == []
    transport.start()
    assert protocol.made
    transport.sendto(b"from a socket made elsewhere")
    data, address = receiver.recvfrom(100)
    assert data == b"from a socket made elsewhere"
    receiver.sendto(b"answer", address)
    assert reactor.run_until(lambda: protocol.payloads == [b"answer"], TIMEOUT)
    with pytest.raises(DatagramAddressError):
        transport.sendto(b"x", ("127.0.0.1", 9))
    transport.close()
    assert reactor.run_until(lambda: protocol.lost, TIMEOUT)
    assert sock.fileno() == -1
    receiver.close()


def test_datagram_transport_takes_a_default_destination_for_an_unconnected_socket(reactor: Reactor) -> None:
    """On an unconnected socket, remote_address is where sendto(data) goes
    (asyncio's remote_addr with allow_broadcast); other addresses are allowed."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(TIMEOUT)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    transport = datagram_transport(reactor, RecordingDatagramProtocol(), sock, receiver.getsockname())
    transport.start()
    assert transport.get_extra_info("peername") is None
    transport.sendto(b"default")
    transport.sendto(b"explicit", receiver.getsockname())
    assert [receiver.recvfrom(100)[0] for _ in range(2)] == [b"default", b"explicit"]
    transport.abort()
    receiver.close()


def test_datagram_transport_refuses_a_stream_socket(reactor: Reactor) -> None:
    """A socket that is not SOCK_DGRAM is an ArgumentError."""
    with socket.socket() as stream, pytest.raises(ArgumentError, match="datagram socket"):
        datagram_transport(reactor, RecordingDatagramProtocol(), stream)


# ------------------------------------------------------------------ opening


def test_ipv6_connected_and_unconnected(reactor: Reactor) -> None:
    """IPv6 loopback: an unconnected server and a connected client, addresses as four-tuples."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    server, server_transport = open_endpoint(reactor, ("::1", 0))
    address = server_transport.get_extra_info("sockname")
    assert address[0] == "::1"
    assert len(address) == 4
    client, client_transport = open_endpoint(reactor, None, ("::1", address[1]))
    client_transport.sendto(b"v6")
    assert reactor.run_until(lambda: server.payloads == [b"v6"], TIMEOUT)
    server_transport.sendto(b"back", server.datagrams[0][1][:2])  # a pair is enough
    assert reactor.run_until(lambda: client.payloads == [b"back"], TIMEOUT)


def test_a_family_alone_makes_an_unbound_endpoint(reactor: Reactor) -> None:
    """With no address, family=AF_INET makes an endpoint the kernel binds on its first send."""
    server, server_transport = open_endpoint(reactor, ("127.0.0.1", 0))
    _, sender = open_endpoint(reactor, family=socket.AF_INET)
    sender.sendto(b"hi", server_transport.get_extra_info("sockname"))
    assert reactor.run_until(lambda: server.payloads == [b"hi"], TIMEOUT)


def test_names_are_looked_up_off_the_loop(reactor: Reactor) -> None:
    """A remote address given by name (localhost) is resolved in a thread; the
    endpoint is connected to what it resolved to."""
    server, server_transport = open_endpoint(reactor, ("127.0.0.1", 0))
    port = server_transport.get_extra_info("sockname")[1]
    _, client_transport = open_endpoint(reactor, None, ("localhost", port), family=socket.AF_INET)
    assert client_transport.get_extra_info("peername") == ("127.0.0.1", port)
    client_transport.sendto(b"by name")
    assert reactor.run_until(lambda: server.payloads == [b"by name"], TIMEOUT)


def test_open_errors_reach_the_future(reactor: Reactor) -> None:
    """A port in use fails the future with OSError(EADDRINUSE), the address in the message."""
    _, taken = open_endpoint(reactor, ("127.0.0.1", 0))
    address = taken.get_extra_info("sockname")
    opening = reactor.open_udp(RecordingDatagramProtocol, address)
    assert reactor.run_until(opening.done, TIMEOUT)
    error = opening.exception()
    assert isinstance(error, OSError)
    assert error.errno == errno.EADDRINUSE
    assert f"127.0.0.1:{address[1]}" in str(error)


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({}, ArgumentError),
        ({"local_address": "127.0.0.1:53"}, TypeError),
        ({"local_address": ("127.0.0.1", 70000)}, ArgumentError),
        ({"remote_address": ("", 53)}, ArgumentError),
        ({"remote_address": ("::1", 53), "family": socket.AF_INET}, ArgumentError),
        ({"family": socket.AF_UNIX}, ArgumentError),
    ],
)
def test_bad_arguments_raise_at_once(
    reactor: Reactor, arguments: dict[str, Any], error: type[Exception]
) -> None:
    """open_udp checks its arguments before anything is made: nothing to wait for."""
    with pytest.raises(error):
        reactor.open_udp(RecordingDatagramProtocol, **arguments)


def test_a_factory_that_raises_fails_the_future(reactor: Reactor) -> None:
    """The factory's exception is the future's, and the socket is closed."""
    failure = ValueError("no protocol today")

    def factory() -> RecordingDatagramProtocol:
        raise failure

    opening = reactor.open_udp(factory, ("127.0.0.1", 0))
    assert reactor.run_until(opening.done, TIMEOUT)
    assert opening.exception() is failure


def test_unix_socket_files_are_replaced_only_when_stale_and_removed_at_the_end(
    reactor: Reactor, tmp_path: Any
) -> None:
    """A stale socket file is replaced; a live endpoint's path is EADDRINUSE;
    a regular file is never overwritten; the endpoint removes its file when it ends."""
    path = str(tmp_path / "sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(path)
    stale.close()
    protocol = RecordingDatagramProtocol()
    opening = reactor.open_unix_datagram(lambda: protocol, path)
    assert reactor.run_until(opening.done, TIMEOUT)
    transport = opening.result()
    again = reactor.open_unix_datagram(RecordingDatagramProtocol, path)
    assert reactor.run_until(again.done, TIMEOUT)
    in_use = again.exception()
    assert isinstance(in_use, OSError)
    assert in_use.errno == errno.EADDRINUSE
    transport.close()
    assert reactor.run_until(lambda: protocol.lost, TIMEOUT)
    assert not os.path.exists(path)
    with open(path, "w") as blocker:
        blocker.write("not a socket")
    refused = reactor.open_unix_datagram(RecordingDatagramProtocol, path)
    assert reactor.run_until(refused.done, TIMEOUT)
    assert isinstance(refused.exception(), FileExistsError)
    assert Path(path).read_text() == "not a socket"


def test_a_unix_datagram_to_a_path_nobody_holds_is_refused(reactor: Reactor, tmp_path: Any) -> None:
    """Connecting to a path with no socket fails the future (ENOENT or ECONNREFUSED)."""
    opening = reactor.open_unix_datagram(RecordingDatagramProtocol, None, str(tmp_path / "nobody"))
    assert reactor.run_until(opening.done, TIMEOUT)
    error = opening.exception()
    assert isinstance(error, OSError)
    assert error.errno in (errno.ENOENT, errno.ECONNREFUSED)


def test_an_exception_from_connection_made_ends_the_endpoint(reactor: Reactor) -> None:
    """connection_made raising: the future still has the transport, which never
    starts reading and ends with that exception."""
    failure = RuntimeError("connection_made failed")

    class Failing(RecordingDatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            raise failure

    protocol = Failing()
    opening = reactor.open_udp(lambda: protocol, ("127.0.0.1", 0))
    assert reactor.run_until(opening.done, TIMEOUT)
    assert opening.result().is_closing()
    assert reactor.run_until(lambda: protocol.lost, TIMEOUT)
    assert protocol.lost_exc is failure

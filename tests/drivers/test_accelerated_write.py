"""The reactor transport's ``write``: the accelerator's C copy against the Python method.

``DescriptorTransport.write`` is, where weft's C accelerator is built, a C
function bound as the method (``weft._speedups.transport_write``), which
skips the Python frame of the call every reply makes.  Each test here runs
once with the Python method (``python_write``, what a build without a C
compiler runs) and once with the C one, and requires the same behaviour:
what reaches the peer, what stays queued, how errors end the connection.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support import TIMEOUT
from tests.support.accelerator import SPEEDUPS, fill, needs_accelerator, needs_accelerator_in_use
from weft.drivers.reactor import Reactor
from weft.drivers.reactor._descriptor_transport import DescriptorTransport, python_write
from weft.drivers.testing import RecordingProtocol

_speedups: Any = SPEEDUPS

#: The two writes: the Python method, and the accelerator's C function.
WRITES: dict[str, Callable[[], Any]] = {
    "python": lambda: python_write,
    "c": lambda: _speedups.transport_write,
}


@pytest.fixture(params=[pytest.param("python"), pytest.param("c", marks=needs_accelerator)])
def write_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Makes DescriptorTransport.write the parameter's implementation for the test."""
    kind: str = request.param
    monkeypatch.setattr(DescriptorTransport, "write", WRITES[kind]())
    return kind


class Connected:
    """A reactor transport over one end of a socketpair; the test holds the other end."""

    def __init__(self, *, send_buffer: int | None = None) -> None:
        self.reactor = Reactor()
        ours, self.peer = socket.socketpair()
        if send_buffer is not None:
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        ours.setblocking(False)
        self.peer.setblocking(False)
        self.fd = ours.detach()
        self.protocol = RecordingProtocol()
        self.transport: Any = self.reactor.connect_pipes(lambda: self.protocol, self.fd, self.fd)

    def receive(self, size: int) -> bytes:
        """Run the reactor until the peer has read ``size`` bytes; those bytes."""
        got = bytearray()

        def read_some() -> bool:
            try:
                got.extend(self.peer.recv(1 << 20))
            except BlockingIOError:
                pass
            return len(got) >= size

        assert self.reactor.run_until(read_some, TIMEOUT), f"{len(got)} of {size} bytes arrived"
        return bytes(got)

    def close(self) -> None:
        self.transport.abort()
        self.reactor.run_until(lambda: self.protocol.lost, TIMEOUT)
        self.reactor.close()
        self.peer.close()


@pytest.fixture
def connected(write_kind: str) -> Iterator[Connected]:
    pair = Connected()
    yield pair
    pair.close()


def test_a_write_the_kernel_takes_whole_leaves_nothing_queued(connected: Connected) -> None:
    connected.transport.write(b"hello")
    assert connected.transport.get_write_buffer_size() == 0
    assert connected.receive(5) == b"hello"


def test_empty_bytes_send_nothing(connected: Connected) -> None:
    """write(b"") sends nothing and leaves the transport as it was."""
    connected.transport.write(b"")
    connected.transport.write(b"after")
    assert connected.receive(5) == b"after"
    assert connected.transport.get_write_buffer_size() == 0


def test_a_partial_write_queues_the_rest_which_follows_in_order(write_kind: str) -> None:
    """The kernel takes part of a big write: the rest is queued (counted in the
    buffer size at once) and arrives after it, every byte in order."""
    pair = Connected(send_buffer=4096)
    try:
        data = bytes(range(256)) * 4096  # 1 MiB
        pair.transport.write(data)
        queued = pair.transport.get_write_buffer_size()
        assert 0 < queued < len(data)
        assert pair.receive(len(data)) == data
        assert pair.transport.get_write_buffer_size() == 0
    finally:
        pair.close()


def test_a_write_to_a_full_socket_queues_it_all_and_later_ones_behind_it(connected: Connected) -> None:
    """The kernel takes nothing (EAGAIN): all of it is queued, and a write
    after it queues behind it rather than jumping ahead."""
    filled = fill(connected.fd)
    connected.transport.write(b"first")
    assert connected.transport.get_write_buffer_size() == 5
    connected.transport.write(b"second")
    assert connected.transport.get_write_buffer_size() == 11
    got = connected.receive(filled + 11)
    assert got[filled:] == b"firstsecond"


def test_a_bytearray_is_copied_when_written(connected: Connected) -> None:
    """Anything but bytes takes the other path: it is copied, so changing it
    after the call does not change what is sent."""
    data = bytearray(b"original")
    connected.transport.write(data)
    data[:] = b"CHANGED!"
    assert connected.receive(8) == b"original"


def test_a_write_after_the_peer_went_away_ends_the_connection_with_the_error(connected: Connected) -> None:
    """The kernel refuses the write (EPIPE): the connection ends, and
    connection_lost gets that error."""
    connected.peer.close()
    connected.transport.write(b"into the void")
    assert connected.reactor.run_until(lambda: connected.protocol.lost, TIMEOUT)
    assert isinstance(connected.protocol.lost_exc, (BrokenPipeError, ConnectionResetError))


def test_an_exception_that_is_no_oserror_leaves_write(
    connected: Connected, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the kernel's errors end the connection: anything else the send
    call raises (a bug) goes to write's caller, and the connection stays open."""

    def broken(_data: bytes) -> int:
        raise ValueError("a bug in the send call")

    monkeypatch.setattr(connected.transport, "_send", broken)
    with pytest.raises(ValueError, match="a bug in the send call"):
        connected.transport.write(b"x")
    assert not connected.transport.is_closing()


@needs_accelerator
def test_the_c_write_takes_exactly_one_argument() -> None:
    with pytest.raises(TypeError, match=r"write\(\) takes exactly one argument \(0 given\)"):
        _speedups.transport_write(object())
    with pytest.raises(TypeError, match=r"write\(\) takes exactly one argument \(2 given\)"):
        _speedups.transport_write(object(), b"a", b"b")


@needs_accelerator_in_use
def test_the_reactor_transport_writes_with_the_c_copy_where_accelerated() -> None:
    """Where the reactor uses the accelerator, its transports' write is the C
    function (its asyncio loop's transports inherit it); a subclass that
    defines its own write (the completion driver's) keeps it."""
    from weft.drivers.completion._transport import CompletionTransport
    from weft.drivers.reactor._loop_transports import LoopStreamTransport

    assert DescriptorTransport.__dict__["write"] is _speedups.transport_write
    assert LoopStreamTransport.write is DescriptorTransport.write
    assert CompletionTransport.write is CompletionTransport.__dict__["write"]
    assert CompletionTransport.write is not DescriptorTransport.write

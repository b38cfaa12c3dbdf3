"""Datagram sockets for coroutines: send and receive, the bounded queue, errors in place, deadlines.

On the memory runtime (fake time: every deadline is exact and instant)
for the rules, and once on every real driver for a round trip.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import TIMEOUT
from weft.drivers import DatagramRuntime, Runtime, open_runtime
from weft.drivers.coroutines import (
    DatagramSocket,
    DatagramSocketProtocol,
    TimedOutError,
    fail_after,
    gather,
    move_on_after,
    open_udp,
    open_unix_datagram,
    run,
    sleep,
)
from weft.drivers.testing import MemoryNetwork, MemoryRuntime
from weft.protocols.errors import ArgumentError, ClosedResourceError, DatagramAddressError

SERVER = ("127.0.0.1", 5300)


@pytest.fixture
def memory() -> Iterator[MemoryRuntime]:
    runtime = MemoryRuntime()
    yield runtime
    runtime.close()


def test_send_and_receive_both_ways(memory: MemoryRuntime) -> None:
    """A connected socket sends without an address; the server receives the
    datagram with its sender's address and answers there."""

    async def main() -> tuple[tuple[bytes, Any], tuple[bytes, Any]]:
        server = await open_udp(memory, SERVER)
        client = await open_udp(memory, remote_address=SERVER)
        assert client.remote_address == SERVER
        await client.send(b"ping")
        request = await server.receive()
        await server.send(b"pong", request[1])
        answer = await client.receive()
        await client.close()
        await server.close()
        return request, answer

    request, answer = run(memory, main())
    assert request[0] == b"ping"
    assert answer == (b"pong", SERVER)


def test_a_full_queue_drops_new_datagrams_and_counts_them(memory: MemoryRuntime) -> None:
    """With max_queued=3, of five datagrams nobody receives yet the first three
    wait (in order) and the last two are dropped and counted."""

    async def main() -> tuple[list[bytes], int]:
        server = await open_udp(memory, SERVER, max_queued=3)
        client = await open_udp(memory, remote_address=SERVER)
        for index in range(5):
            await client.send(b"%d" % index)
        await sleep(1)  # they have all arrived (fake time)
        got = [(await server.receive())[0] for _ in range(3)]
        return got, server.dropped

    assert run(memory, main()) == ([b"0", b"1", b"2"], 2)


def test_max_queued_must_be_positive() -> None:
    """A queue of no datagrams is an ArgumentError."""
    with pytest.raises(ArgumentError):
        DatagramSocketProtocol(max_queued=0)


def test_an_error_is_raised_in_its_place_and_the_socket_goes_on(memory: MemoryRuntime) -> None:
    """A datagram from the peer, then the peer gone and a send to it: receive
    returns the datagram first, then raises ConnectionRefusedError; the
    socket stays open."""

    async def main() -> list[object]:
        peer = await open_udp(memory, SERVER)
        client = await open_udp(memory, remote_address=SERVER)
        await peer.send(b"before", client.local_address)
        await sleep(1)
        await peer.close()
        await client.send(b"anyone?")
        outcomes: list[object] = [await client.receive()]  # the datagram that came first
        try:
            await client.receive()
        except ConnectionRefusedError as exc:
            outcomes.append(type(exc))
        outcomes.append(client.transport.is_closing())
        return outcomes

    assert run(memory, main()) == [(b"before", SERVER), ConnectionRefusedError, False]


def test_fail_after_bounds_a_receive(memory: MemoryRuntime) -> None:
    """The deadline helpers work on datagram sockets: a receive with nothing
    coming ends with TimedOutError after exactly its fake seconds."""

    async def main() -> float:
        sock = await open_udp(memory, SERVER)
        start = memory.now()
        with pytest.raises(TimedOutError), fail_after(2.5):
            await sock.receive()
        return memory.now() - start

    assert run(memory, main()) == 2.5


def test_send_waits_while_the_transport_is_paused(memory: MemoryRuntime) -> None:
    """While the network stalls a socket, sends fill its transport; the send
    that takes it over the high-water mark waits until the stall ends."""
    order: list[str] = []

    async def sender(sock: DatagramSocket) -> None:
        sock.transport.set_write_buffer_limits(high=1000, low=0)
        memory.network.stall(sock.transport)
        await sock.send(b"x" * 600, SERVER)
        order.append("first sent")
        await sock.send(b"y" * 600, SERVER)
        order.append("second sent")

    async def unstaller(sock: DatagramSocket) -> None:
        await sleep(3)
        order.append("unstalled")
        memory.network.unstall(sock.transport)

    async def main() -> None:
        await open_udp(memory, SERVER)
        sock = await open_udp(memory, ("127.0.0.1", 0))
        await gather(sender(sock), unstaller(sock))

    run(memory, main())
    assert order == ["first sent", "unstalled", "second sent"]


def test_receivers_are_woken_one_datagram_each(memory: MemoryRuntime) -> None:
    """Two tasks receiving on one socket get one datagram each."""

    async def main() -> list[tuple[bytes, Any]]:
        server = await open_udp(memory, SERVER)
        client = await open_udp(memory, remote_address=SERVER)

        async def later() -> None:
            await sleep(1)
            await client.send(b"a")
            await client.send(b"b")

        first, second, _ = await gather(server.receive(), server.receive(), later())
        assert first is not None
        assert second is not None
        return sorted([first, second])

    assert [data for data, _ in run(memory, main())] == [b"a", b"b"]


def test_closed_and_ended_sockets(memory: MemoryRuntime) -> None:
    """After close(), send and receive raise ClosedResourceError; a bad address
    raises the transport's DatagramAddressError from send."""

    async def main() -> None:
        sock = await open_udp(memory, SERVER)
        with pytest.raises(DatagramAddressError):
            await sock.send(b"where?")
        await sock.close()
        with pytest.raises(ClosedResourceError):
            await sock.send(b"x", SERVER)
        with pytest.raises(ClosedResourceError):
            await sock.receive()

    run(memory, main())


def test_unix_datagram_sockets(memory: MemoryRuntime) -> None:
    """open_unix_datagram gives the same socket over UNIX paths."""

    async def main() -> tuple[bytes, Any]:
        server = await open_unix_datagram(memory, "/run/server")
        client = await open_unix_datagram(memory, "/run/client", "/run/server")
        await client.send(b"local")
        return await server.receive()

    assert run(memory, main()) == (b"local", "/run/client")


def test_a_lossy_network_shows_in_what_a_socket_receives() -> None:
    """On a network losing half its datagrams (seeded), a receiver with a
    deadline gets what survived, and the network's count says how many did not."""
    runtime = MemoryRuntime(network=MemoryNetwork(seed=5, loss=0.5))

    async def main() -> list[bytes]:
        server = await open_udp(runtime, SERVER)
        client = await open_udp(runtime, remote_address=SERVER)
        for index in range(20):
            await client.send(b"%d" % index)
        got: list[bytes] = []
        with move_on_after(1):
            while True:
                got.append((await server.receive())[0])
        return got

    got = run(runtime, main())
    assert len(got) == 20 - runtime.network.stats.lost
    assert 0 < len(got) < 20
    runtime.close()


@pytest.mark.drivers(requires={DatagramRuntime})
def test_a_round_trip_on_every_driver(driver: str) -> None:
    """The same coroutine code on each real driver: a datagram there and back, under a deadline."""
    runtime: Runtime = open_runtime(driver)

    async def main() -> bytes:
        server = await open_udp(runtime, ("127.0.0.1", 0))
        client = await open_udp(runtime, remote_address=server.local_address)
        with fail_after(TIMEOUT):
            await client.send(b"there")
            data, address = await server.receive()
            await server.send(data + b" and back", address)
            answer, _ = await client.receive()
        await client.close()
        await server.close()
        return answer

    try:
        assert run(runtime, main(), timeout=TIMEOUT) == b"there and back"
    finally:
        runtime.close()

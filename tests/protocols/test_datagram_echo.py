"""The datagram echo protocol, on the memory network: answers, drops under pressure, goes on after errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from weft.drivers.testing import MemoryNetwork, RecordingDatagramProtocol
from weft.protocols import DatagramEchoProtocol

SERVER = ("127.0.0.1", 7)


def factory(protocol: RecordingDatagramProtocol) -> Callable[[], RecordingDatagramProtocol]:
    return lambda: protocol


def test_every_datagram_goes_back_to_its_sender() -> None:
    """Two clients, each hears its own datagrams back, whole and in order (even empty ones)."""
    network = MemoryNetwork()
    network.open_udp(DatagramEchoProtocol, SERVER)
    clients = [RecordingDatagramProtocol() for _ in range(2)]
    transports = [network.open_udp(factory(client), None, SERVER) for client in clients]
    transports[0].sendto(b"one")
    transports[1].sendto(b"two")
    transports[0].sendto(b"")
    network.clock.advance(0)
    assert clients[0].payloads == [b"one", b""]
    assert clients[1].payloads == [b"two"]


def test_while_paused_it_answers_nothing_and_counts_what_it_dropped() -> None:
    """With its own sends stalled past the high-water mark, the echo drops what
    comes (it cannot slow its senders) and counts it; it answers again once
    the stall is over."""
    network = MemoryNetwork()
    echo = DatagramEchoProtocol()
    server = network.open_udp(lambda: echo, SERVER)
    server.set_write_buffer_limits(high=10, low=0)
    client = RecordingDatagramProtocol()
    transport = network.open_udp(lambda: client, None, SERVER)
    network.stall(server)
    transport.sendto(b"first, queued: over the mark")
    transport.sendto(b"second, dropped")
    network.clock.advance(0)
    assert echo.dropped == 1
    network.unstall(server)
    transport.sendto(b"third, answered")
    network.clock.advance(0)
    assert client.payloads == [b"first, queued: over the mark", b"third, answered"]


def test_a_sender_with_no_address_cannot_be_answered() -> None:
    """A datagram from an unbound UNIX socket is dropped and counted, not an error."""
    network = MemoryNetwork()
    echo = DatagramEchoProtocol()
    network.open_unix_datagram(lambda: echo, "/run/echo")
    transport = network.open_unix_datagram(RecordingDatagramProtocol, None, "/run/echo")
    transport.sendto(b"anonymous")
    network.clock.advance(0)
    assert echo.dropped == 1


def test_errors_are_counted_and_the_echo_goes_on() -> None:
    """A sender gone before its answer came: the error is counted, the echo answers the next one."""
    network = MemoryNetwork(latency=1.0)
    echo = DatagramEchoProtocol()
    network.open_udp(lambda: echo, SERVER)
    gone = network.open_udp(RecordingDatagramProtocol, ("127.0.0.1", 0))
    gone.sendto(b"and goodbye", SERVER)
    network.clock.advance(1.0)  # it arrives; the answer leaves
    gone.abort()
    network.clock.advance(1.0)  # the answer finds nobody
    client = RecordingDatagramProtocol()
    network.open_udp(lambda: client, None, SERVER).sendto(b"still there?")
    network.clock.advance(2.0)
    assert client.payloads == [b"still there?"]
    assert echo.errors == 0  # unconnected: no ICMP news, as on loopback


def test_a_weft_datagram_protocol_runs_on_asyncios_own_transport() -> None:
    """The contract's promise: the weft echo protocol, handed to asyncio's own
    create_datagram_endpoint, echoes (asyncio's names all the way)."""

    class Client(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport.sendto(b"over asyncio")  # type: ignore[attr-defined]

        def datagram_received(self, data: bytes, addr: object) -> None:
            self.answer.set_result(data)

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        # A weft datagram protocol's factory fits asyncio's (checked by mypy).
        server, _ = await loop.create_datagram_endpoint(
            DatagramEchoProtocol,
            local_addr=("127.0.0.1", 0),
        )
        client_transport, client = await loop.create_datagram_endpoint(
            Client, remote_addr=server.get_extra_info("sockname")
        )
        try:
            return await asyncio.wait_for(client.answer, 20)
        finally:
            client_transport.close()
            server.close()

    assert asyncio.run(main()) == b"over asyncio"

"""The memory network: datagrams on a fake clock, lost, duplicated and reordered on demand, seeded.

What a test of a datagram protocol relies on: the same seed gives the same
run; each fault happens at about its probability and is counted; order is
the clock's; a test can take over (deliver, drop, stall); and the network
behaves as loopback does where a protocol could tell (a connected endpoint
hears only its peer and is told of a closed port; ports; addresses).
"""

from __future__ import annotations

import errno
import itertools
import socket
from typing import Any

import pytest

from weft.drivers.testing import (
    FakeClock,
    MemoryDatagramTransport,
    MemoryNetwork,
    MemoryRuntime,
    RecordingDatagramProtocol,
)
from weft.protocols.errors import ArgumentError, DatagramTooLargeError

SERVER = ("127.0.0.1", 5300)


def endpoint(
    network: MemoryNetwork, local: Any = None, remote: Any = None, **kwargs: Any
) -> tuple[RecordingDatagramProtocol, MemoryDatagramTransport]:
    protocol = RecordingDatagramProtocol()
    return protocol, network.open_udp(lambda: protocol, local, remote, **kwargs)


def run(
    seed: int, *, count: int = 200, loss: float = 0.0, duplicate: float = 0.0, reorder: float = 0.0
) -> tuple[list[bytes], MemoryNetwork]:
    """``count`` numbered datagrams through a network with these faults; what arrived, in order."""
    network = MemoryNetwork(seed=seed, loss=loss, duplicate=duplicate, reorder=reorder)
    server, _ = endpoint(network, SERVER)
    _, client = endpoint(network, None, SERVER)
    for index in range(count):
        client.sendto(b"%d" % index)
        network.clock.advance(0.001)
    network.clock.advance(1)
    return server.payloads, network


# -------------------------------------------------------------- the faults


def test_the_same_seed_gives_the_same_run_and_another_seed_another() -> None:
    """Two networks with one seed deliver the same datagrams in the same order;
    a different seed differs (with these rates, surely)."""
    first, _ = run(7, loss=0.1, duplicate=0.1, reorder=0.2)
    second, _ = run(7, loss=0.1, duplicate=0.1, reorder=0.2)
    other, _ = run(8, loss=0.1, duplicate=0.1, reorder=0.2)
    assert first == second
    assert first != other


def test_loss_drops_about_its_share_and_counts_it() -> None:
    """loss=0.25 over 2000 datagrams loses between 20% and 30%, each one counted,
    and what arrives arrives once and in order."""
    arrived, network = run(1, count=2000, loss=0.25)
    assert 400 <= network.stats.lost <= 600
    assert len(arrived) == 2000 - network.stats.lost == network.stats.delivered
    numbers = [int(data) for data in arrived]
    assert numbers == sorted(set(numbers))


def test_duplicate_sends_some_twice_and_counts_them() -> None:
    """duplicate=0.2: about a fifth arrive twice, the copy right after the original."""
    arrived, network = run(2, count=1000, duplicate=0.2)
    assert 150 <= network.stats.duplicated <= 250
    assert len(arrived) == 1000 + network.stats.duplicated
    assert sorted(set(arrived), key=int) == [b"%d" % index for index in range(1000)]
    doubled = [data for previous, data in itertools.pairwise(arrived) if previous == data]
    assert len(doubled) == network.stats.duplicated


def test_reorder_holds_some_back_so_that_later_ones_overtake_them() -> None:
    """reorder=0.3: every datagram arrives once, about 30% held back, and the
    order is no longer the sending order."""
    arrived, network = run(3, count=1000, reorder=0.3)
    assert sorted(arrived, key=int) == [b"%d" % index for index in range(1000)]
    assert 250 <= network.stats.reordered <= 350
    assert arrived != sorted(arrived, key=int)


def test_changing_one_fault_leaves_the_others_decisions_alone() -> None:
    """The draws are the same whatever the probabilities: with loss added, the
    datagrams still delivered are reordered exactly as before (relative order)."""
    reordered, _ = run(4, reorder=0.3)
    with_loss, _ = run(4, reorder=0.3, loss=0.2)
    survivors = set(with_loss)
    assert [data for data in reordered if data in survivors] == with_loss


def test_latency_delays_every_datagram_on_the_clock() -> None:
    """With latency 0.2 a datagram arrives 0.2 fake seconds after it was sent, not before."""
    network = MemoryNetwork(latency=0.2)
    server, _ = endpoint(network, SERVER)
    _, client = endpoint(network, None, SERVER)
    client.sendto(b"slow")
    network.clock.advance(0.19)
    assert server.payloads == []
    network.clock.advance(0.01)
    assert server.payloads == [b"slow"]


@pytest.mark.parametrize(
    "bad", [{"loss": 1.5}, {"duplicate": -0.1}, {"latency": -1.0}, {"reorder_delay": float("nan")}]
)
def test_out_of_range_settings_are_refused(bad: dict[str, Any]) -> None:
    """Probabilities outside 0..1 and negative or NaN seconds are ArgumentErrors."""
    with pytest.raises(ArgumentError):
        MemoryNetwork(**bad)


# --------------------------------------------------------- taking over


def test_a_test_can_deliver_in_flight_datagrams_in_any_order_or_drop_them() -> None:
    """in_flight lists what is on its way; deliver() delivers one now, drop() loses one."""
    network = MemoryNetwork(latency=1.0)
    server, _ = endpoint(network, SERVER)
    _, client = endpoint(network, None, SERVER)
    for data in (b"a", b"b", b"c"):
        client.sendto(data)
    flights = network.in_flight
    assert [flight.data for flight in flights] == [b"a", b"b", b"c"]
    network.deliver(flights[2])
    network.drop(flights[0])
    assert server.payloads == [b"c"]
    network.clock.advance(1.0)
    assert server.payloads == [b"c", b"b"]
    assert network.stats.lost == 1
    with pytest.raises(ArgumentError, match="not on its way"):
        network.deliver(flights[1])


def test_a_stalled_endpoint_queues_pauses_and_resumes(tmp_path: Any) -> None:
    """While the network stalls an endpoint, its datagrams wait in its transport:
    the write buffer grows, pause_writing comes over the high-water mark,
    resume_writing and the datagrams (in order) once unstalled."""
    network = MemoryNetwork()
    server, _ = endpoint(network, SERVER)
    client, transport = endpoint(network, None, SERVER)
    transport.set_write_buffer_limits(high=2000, low=500)
    network.stall(transport.get_extra_info("sockname"))
    for index in range(3):
        transport.sendto(b"%d" % index + b"." * 999)
    network.clock.advance(1)
    assert server.payloads == []
    assert transport.get_write_buffer_size() == 3000
    assert client.count("pause_writing") == 1
    network.unstall(transport.get_extra_info("sockname"))
    assert client.names[-1] == "resume_writing"
    assert [data[:1] for data in server.payloads] == [b"0", b"1", b"2"]


def test_close_waits_for_a_stall_and_abort_does_not() -> None:
    """close() on a stalled endpoint ends it only once what waits has gone;
    abort() ends another at once and drops what it held."""
    network = MemoryNetwork()
    server, _ = endpoint(network, SERVER)
    closing, closing_transport = endpoint(network, None, SERVER)
    aborting, aborting_transport = endpoint(network, None, SERVER)
    for transport in (closing_transport, aborting_transport):
        network.stall(transport.get_extra_info("sockname"))
    closing_transport.sendto(b"kept")
    aborting_transport.sendto(b"dropped")
    closing_transport.close()
    aborting_transport.abort()
    network.clock.advance(1)
    assert not closing.lost
    assert aborting.lost
    network.unstall(closing_transport.get_extra_info("sockname"))
    assert closing.lost
    assert server.payloads == [b"kept"]


# ---------------------------------------------------- as loopback does


def test_a_connected_endpoint_is_told_of_a_closed_port_and_goes_on() -> None:
    """Sending where no endpoint is: a connected sender gets ConnectionRefusedError
    in error_received (ICMP's port unreachable), an unconnected one nothing."""
    network = MemoryNetwork()
    connected, connected_transport = endpoint(network, None, ("127.0.0.1", 9))
    unconnected, unconnected_transport = endpoint(network, ("127.0.0.1", 0))
    connected_transport.sendto(b"anyone?")
    unconnected_transport.sendto(b"anyone?", ("127.0.0.1", 9))
    network.clock.advance(0)
    assert [type(error) for error in connected.errors] == [ConnectionRefusedError]
    assert connected.errors[0].errno == errno.ECONNREFUSED  # type: ignore[attr-defined]
    assert unconnected.errors == []
    assert not connected_transport.is_closing()
    assert network.stats.unreachable == 2


def test_a_connected_endpoint_hears_only_its_peer() -> None:
    """Datagrams from other addresses do not reach a connected endpoint."""
    network = MemoryNetwork()
    _, peer = endpoint(network, SERVER)
    _, stranger = endpoint(network, ("127.0.0.1", 0))
    listener, listener_transport = endpoint(network, None, SERVER)
    address = listener_transport.get_extra_info("sockname")
    stranger.sendto(b"stranger", address)
    peer.sendto(b"peer", address)
    network.clock.advance(0)
    assert listener.datagrams == [(b"peer", SERVER)]


def test_ports_addresses_and_wildcards() -> None:
    """Port 0 picks free ports from 49152; a taken address is EADDRINUSE (the
    same port on every interface too); an endpoint on every interface hears
    datagrams to any host, from a sender seen at loopback; IPv6 addresses
    are four-tuples; names other than localhost are refused."""
    network = MemoryNetwork()
    _, first = endpoint(network, ("127.0.0.1", 0))
    assert first.get_extra_info("sockname") == ("127.0.0.1", 49152)
    with pytest.raises(OSError, match="in use") as taken:
        endpoint(network, ("127.0.0.1", 49152))
    assert taken.value.errno == errno.EADDRINUSE
    wildcard, _ = endpoint(network, (None, 6000))
    with pytest.raises(OSError, match="in use"):
        endpoint(network, ("127.0.0.2", 6000))
    first.sendto(b"to any host", ("127.0.0.9", 6000))
    network.clock.advance(0)
    assert wildcard.datagrams == [(b"to any host", ("127.0.0.1", 49152))]
    _six, six_transport = endpoint(network, ("::1", 0))
    assert six_transport.get_extra_info("sockname") == ("::1", 49153, 0, 0)
    _, localhost = endpoint(network, None, ("localhost", 6000))
    assert localhost.get_extra_info("peername") == ("127.0.0.1", 6000)
    with pytest.raises(socket.gaierror):
        endpoint(network, None, ("example.com", 53))


def test_unix_datagrams_paths_and_unbound_senders() -> None:
    """UNIX paths: a taken path is EADDRINUSE, a path nobody holds refuses a
    connect, an unbound sender is seen as None, and a datagram over the
    kernel's limit reaches error_received as DatagramTooLargeError."""
    network = MemoryNetwork()
    server = RecordingDatagramProtocol()
    network.open_unix_datagram(lambda: server, "/run/server")
    with pytest.raises(OSError, match="in use"):
        network.open_unix_datagram(RecordingDatagramProtocol, "/run/server")
    with pytest.raises(ConnectionRefusedError):
        network.open_unix_datagram(RecordingDatagramProtocol, None, "/run/nobody")
    client = RecordingDatagramProtocol()
    transport = network.open_unix_datagram(lambda: client, None, "/run/server")
    transport.sendto(b"anonymous")
    transport.sendto(b"x" * 300_000)
    network.clock.advance(0)
    assert server.datagrams == [(b"anonymous", None)]
    assert [type(error) for error in client.errors] == [DatagramTooLargeError]


def test_an_exception_in_a_protocol_ends_its_endpoint_and_reaches_the_test() -> None:
    """As everywhere in the memory driver, a callback's exception is loud: it
    propagates out of the clock step, after ending that endpoint with it."""
    failure = RuntimeError("bug")

    class Failing(RecordingDatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            super().datagram_received(data, addr)
            raise failure

    network = MemoryNetwork()
    server = Failing()
    network.open_udp(lambda: server, SERVER)
    _, client = endpoint(network, None, SERVER)
    client.sendto(b"boom")
    with pytest.raises(RuntimeError, match="bug"):
        network.clock.advance(0)
    assert server.lost_exc is failure
    client.sendto(b"again")  # the address is free now: refused, told to the client
    network.clock.advance(0)


# ----------------------------------------------------------- the runtime


def test_the_memory_runtime_opens_endpoints_on_its_network() -> None:
    """MemoryRuntime.open_udp is a DatagramRuntime's: a future, resolved on the
    next step; its network (passed in, with its faults) is runtime.network; run_until
    jumps over the latency; closing the runtime ends the endpoints."""
    clock = FakeClock()
    network = MemoryNetwork(clock, latency=30.0)
    runtime = MemoryRuntime(network=network)
    assert runtime.clock is clock
    server = RecordingDatagramProtocol()
    opening = runtime.open_udp(lambda: server, SERVER)
    assert not opening.done()
    assert runtime.run_until(opening.done)
    client = RecordingDatagramProtocol()
    connecting = runtime.open_udp(lambda: client, None, SERVER)
    assert runtime.run_until(connecting.done)
    connecting.result().sendto(b"later")
    assert runtime.run_until(lambda: bool(server.datagrams), timeout=60)
    assert clock.now() == 30.0
    taken = runtime.open_udp(RecordingDatagramProtocol, SERVER)
    assert runtime.run_until(taken.done)
    assert isinstance(taken.exception(), OSError)
    runtime.close()
    assert server.lost
    assert client.lost


def test_a_runtime_and_a_network_on_different_clocks_are_refused() -> None:
    """The runtime and its network share one clock, or it is an ArgumentError."""
    with pytest.raises(ArgumentError, match="another clock"):
        MemoryRuntime(clock=FakeClock(), network=MemoryNetwork(FakeClock()))

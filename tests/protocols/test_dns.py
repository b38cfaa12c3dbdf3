"""The DNS stub resolver: the wire format, and the resolver against a fake server on the memory network.

Time is fake: every timeout is exact and instant, and the network's loss is
seeded, so each run is the same run.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable
from typing import Any

import pytest

from weft.drivers.testing import MemoryNetwork, RecordingDatagramProtocol
from weft.protocols.contract import DatagramProtocol
from weft.protocols.dns import (
    TYPE_A,
    TYPE_AAAA,
    DNSNameError,
    DNSResolverProtocol,
    DNSServerError,
    DNSTimeoutError,
    DNSTruncatedError,
    Lookup,
    build_query,
    parse_answer,
)
from weft.protocols.errors import (
    ArgumentError,
    ClosedResourceError,
    MalformedFrameError,
    UnencodableFrameError,
)

SERVER = ("127.0.0.53", 53)


# ------------------------------------------------------------------- wire


def test_an_a_query_is_the_bytes_rfc_1035_says() -> None:
    """Header (id, RD, one question), the name as labels, type A, class IN."""
    assert build_query("Example.com.", query_id=0x1234) == (
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07Example\x03com\x00\x00\x01\x00\x01"
    )


@pytest.mark.parametrize("name", ["", ".", "a..b", "x" * 64 + ".com", ".".join(["a" * 60] * 5)])
def test_names_that_cannot_be_dns_names_are_refused(name: str) -> None:
    """Empty labels, labels over 63 bytes, names over 253: UnencodableFrameError."""
    with pytest.raises(UnencodableFrameError):
        build_query(name, query_id=1)


def answer(
    query: bytes,
    addresses: list[bytes],
    *,
    rcode: int = 0,
    truncated: bool = False,
    record_type: int = TYPE_A,
) -> bytes:
    """The answer a server gives ``query``: its id and question, then records
    whose names point back to the question (compression)."""
    query_id = struct.unpack("!H", query[:2])[0]
    flags = 0x8180 | rcode | (0x0200 if truncated else 0)
    head = struct.pack("!HHHHHH", query_id, flags, 1, len(addresses), 0, 0)
    records = b"".join(
        b"\xc0\x0c" + struct.pack("!HHIH", record_type, 1, 300, len(data)) + data for data in addresses
    )
    return head + query[12:] + records


def test_an_answer_is_parsed_with_compressed_names() -> None:
    """Id, code, question, and each record's name (through its pointer), TTL and address."""
    parsed = parse_answer(
        answer(build_query("weft.example", query_id=7), [b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"])
    )
    assert (parsed.id, parsed.rcode, parsed.truncated) == (7, 0, False)
    assert parsed.question == ("weft.example", TYPE_A)
    assert [record.name for record in parsed.records] == ["weft.example"] * 2
    assert parsed.records[0].ttl == 300
    assert parsed.addresses() == ["10.0.0.1", "10.0.0.2"]


def test_aaaa_addresses_are_written_as_rfc_5952_says() -> None:
    """The longest run of zero groups becomes ::, and groups lose leading zeros."""
    data = bytes.fromhex("20010db8000000000000000000000001")
    parsed = parse_answer(
        answer(build_query("six", query_id=1, record_type=TYPE_AAAA), [data], record_type=TYPE_AAAA)
    )
    assert parsed.addresses(TYPE_AAAA) == ["2001:db8::1"]


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01",  # shorter than a header
        struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\x00\x00\x01\x00\x01",  # a query
        struct.pack("!HHHHHH", 1, 0x8180, 1, 1, 0, 0) + b"\x00\x00\x01\x00\x01" + b"\xc0\x0c\x00",  # cut
        struct.pack("!HHHHHH", 1, 0x8180, 1, 0, 0, 0) + b"\xc0\x0c",  # a pointer to itself
        struct.pack("!HHHHHH", 1, 0x8180, 1, 0, 0, 0) + b"\x05ab",  # a label past the end
    ],
)
def test_bytes_that_are_not_an_answer_are_malformed(data: bytes) -> None:
    """Short, a query, cut short, a pointer loop, a label past the end: MalformedFrameError."""
    with pytest.raises(MalformedFrameError):
        parse_answer(data)


# ------------------------------------------------------------- a fake server


class FakeServer(DatagramProtocol):
    """Answers A queries from a table; unknown names get NXDOMAIN.  ``silent`` answers nothing."""

    def __init__(
        self, table: dict[str, list[bytes]], *, silent: bool = False, truncate: bool = False
    ) -> None:
        self.table = table
        self.silent = silent
        self.truncate = truncate
        self.queries: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queries.append(data)
        if self.silent:
            return
        name = parse_question(data)
        if name not in self.table:
            self.transport.sendto(answer(data, [], rcode=3), addr)
            return
        self.transport.sendto(answer(data, self.table[name], truncated=self.truncate), addr)


def parse_question(query: bytes) -> str:
    labels, offset = [], 12
    while length := query[offset]:
        labels.append(query[offset + 1 : offset + 1 + length].decode().lower())
        offset += 1 + length
    return ".".join(labels)


def setup(
    server: FakeServer | None, *, network: MemoryNetwork | None = None, **resolver_options: Any
) -> tuple[MemoryNetwork, DNSResolverProtocol]:
    network = network if network is not None else MemoryNetwork()
    if server is not None:
        network.open_udp(lambda: server, SERVER)
    ids = itertools.count(100)
    resolver = DNSResolverProtocol(next_id=lambda: next(ids), **resolver_options)
    network.open_udp(lambda: resolver, None, SERVER)
    return network, resolver


def collect() -> tuple[list[Lookup], Callable[[Lookup], None]]:
    done: list[Lookup] = []
    return done, done.append


def test_a_name_resolves_to_its_addresses() -> None:
    """One query, one answer: the callback runs once with the addresses."""
    network, resolver = setup(FakeServer({"weft.example": [b"\x0a\x00\x00\x07"]}))
    done, callback = collect()
    lookup = resolver.resolve("weft.example", callback)
    network.clock.advance(0)
    assert done == [lookup]
    assert lookup.addresses == ["10.0.0.7"]
    assert (lookup.error, lookup.attempts) == (None, 1)


def test_a_silent_server_times_out_after_every_attempt_exactly() -> None:
    """With no answer the query goes out `attempts` times, one timeout apart,
    and the lookup fails with DNSTimeoutError at timeout x attempts, not before."""
    server = FakeServer({}, silent=True)
    network, resolver = setup(server, timeout=1.5, attempts=3)
    done, callback = collect()
    lookup = resolver.resolve("slow.example", callback)
    network.clock.advance(4.49)
    assert done == []
    assert len(server.queries) == 3
    assert len(set(server.queries)) == 1  # the same query, the same id
    network.clock.advance(0.01)
    assert done == [lookup]
    assert isinstance(lookup.error, DNSTimeoutError)
    assert isinstance(lookup.error, TimeoutError)


def test_retries_get_through_a_lossy_network() -> None:
    """On a network losing a third of its datagrams (seeded), retries resolve
    every name of twenty, some after more than one attempt, none timing out."""
    table = {f"host{index}.example": [bytes([10, 0, 0, index])] for index in range(20)}
    network, resolver = setup(FakeServer(table), network=MemoryNetwork(seed=11, loss=0.3), attempts=10)
    done, callback = collect()
    for name in table:
        resolver.resolve(name, callback)
    network.clock.advance(60)
    assert len(done) == 20
    assert all(lookup.error is None for lookup in done)
    assert {lookup.name: lookup.addresses for lookup in done} == {
        name: [f"10.0.0.{index}"] for index, name in enumerate(table)
    }
    assert max(lookup.attempts for lookup in done) > 1
    assert network.stats.lost > 0


def test_a_duplicated_answer_finishes_the_lookup_once() -> None:
    """Every datagram sent twice: each lookup's callback still runs once; the
    extra answers are ignored and counted."""
    network, resolver = setup(
        FakeServer({"a.example": [b"\x01\x02\x03\x04"]}), network=MemoryNetwork(duplicate=1.0)
    )
    done, callback = collect()
    resolver.resolve("a.example", callback)
    network.clock.advance(1)
    assert len(done) == 1
    assert resolver.ignored >= 1


def test_nxdomain_and_other_codes_and_truncation_are_errors() -> None:
    """NXDOMAIN is DNSNameError (a LookupError); a truncated answer DNSTruncatedError."""
    network, resolver = setup(FakeServer({}))
    done, callback = collect()
    missing = resolver.resolve("nowhere.example", callback)
    network.clock.advance(0)
    assert done == [missing]
    assert isinstance(missing.error, DNSNameError)
    assert isinstance(missing.error, LookupError)
    network, resolver = setup(FakeServer({"big.example": [b"\x01\x01\x01\x01"]}, truncate=True))
    big = resolver.resolve("big.example", callback)
    network.clock.advance(0)
    assert isinstance(big.error, DNSTruncatedError)


def test_forged_and_broken_datagrams_do_not_end_a_lookup() -> None:
    """An answer with another id, one to another question, and bytes that are
    not DNS are ignored; the real answer still completes the lookup."""
    network, resolver = setup(FakeServer({"real.example": [b"\x0a\x0a\x0a\x0a"]}))
    done, callback = collect()
    lookup = resolver.resolve("real.example", callback)
    query = build_query("real.example", query_id=100)
    resolver.datagram_received(
        answer(build_query("real.example", query_id=999), [b"\x06\x06\x06\x06"]), SERVER
    )
    resolver.datagram_received(
        answer(build_query("other.example", query_id=100), [b"\x06\x06\x06\x06"]), SERVER
    )
    resolver.datagram_received(b"not dns", SERVER)
    assert resolver.ignored == 3
    assert not lookup.done
    assert query == lookup._query
    network.clock.advance(0)
    assert done == [lookup]
    assert lookup.addresses == ["10.10.10.10"]


def test_a_server_that_is_not_there_fails_every_lookup_at_once() -> None:
    """Nobody at the server's address: the ICMP refusal reaches error_received,
    and every waiting lookup fails with DNSServerError, without waiting for its timeouts."""
    network, resolver = setup(None, timeout=30.0)
    done, callback = collect()
    first = resolver.resolve("a.example", callback)
    second = resolver.resolve("b.example", callback)
    network.clock.advance(0)
    assert done == [first, second]
    assert all(isinstance(lookup.error, DNSServerError) for lookup in done)
    assert isinstance(first.error.__cause__, ConnectionRefusedError)  # type: ignore[union-attr]


def test_the_end_of_the_endpoint_fails_what_waits_and_refuses_more() -> None:
    """Closing the endpoint fails the lookups waiting; resolve afterwards is ClosedResourceError."""
    network, resolver = setup(FakeServer({}, silent=True))
    done, callback = collect()
    lookup = resolver.resolve("a.example", callback)
    resolver.transport.close()
    network.clock.advance(0)
    assert done == [lookup]
    assert isinstance(lookup.error, DNSServerError)
    with pytest.raises(ClosedResourceError):
        resolver.resolve("b.example", callback)


def test_bad_options_and_an_id_source_that_repeats() -> None:
    """A timeout <= 0 or no attempts is an ArgumentError; so is an id source
    that only gives ids already waiting."""
    with pytest.raises(ArgumentError):
        DNSResolverProtocol(next_id=lambda: 1, timeout=0)
    with pytest.raises(ArgumentError):
        DNSResolverProtocol(next_id=lambda: 1, attempts=0)
    network = MemoryNetwork()
    resolver = DNSResolverProtocol(next_id=lambda: 5)
    network.open_udp(lambda: resolver, None, SERVER)
    resolver.resolve("a.example", lambda lookup: None)
    with pytest.raises(ArgumentError, match="random"):
        resolver.resolve("b.example", lambda lookup: None)


def test_recording_sees_the_query_on_the_wire() -> None:
    """What the resolver sends is build_query's bytes, to its peer."""
    network = MemoryNetwork()
    server = RecordingDatagramProtocol()
    network.open_udp(lambda: server, SERVER)
    resolver = DNSResolverProtocol(next_id=lambda: 0xBEEF)
    network.open_udp(lambda: resolver, None, SERVER)
    resolver.resolve("weft.example", lambda lookup: None)
    network.clock.advance(0)
    assert server.payloads == [build_query("weft.example", query_id=0xBEEF)]

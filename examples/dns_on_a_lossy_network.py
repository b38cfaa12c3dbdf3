"""A DNS stub resolver against a fake server, on a memory network that loses a third of the datagrams.

Run: python examples/dns_on_a_lossy_network.py
The resolver retries on the fake clock, so a minute of timeouts takes no
real time, and the same seed gives the same run every time.  Over a real
network: runtime.open_udp(lambda: resolver, remote_address=("127.0.0.53", 53)).
"""

import secrets
import struct
from typing import Any

from weft.drivers.testing import MemoryNetwork
from weft.protocols.contract import DatagramProtocol
from weft.protocols.dns import DNSResolverProtocol, Lookup

SERVER = ("127.0.0.53", 53)


class FakeServer(DatagramProtocol):
    """Answers every A query with 192.0.2.1, compressing the name (RFC 1035 4.1.4)."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, query: bytes, addr: Any) -> None:
        (query_id,) = struct.unpack("!H", query[:2])
        header = struct.pack("!HHHHHH", query_id, 0x8180, 1, 1, 0, 0)
        record = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 1])
        self.transport.sendto(header + query[12:] + record, addr)


network = MemoryNetwork(seed=7, loss=0.33)
network.open_udp(FakeServer, SERVER)
resolver = DNSResolverProtocol(next_id=lambda: secrets.randbits(16), timeout=2.0, attempts=6)
network.open_udp(lambda: resolver, remote_address=SERVER)

answers: list[Lookup] = []
for name in ("weft.example", "docs.weft.example", "udp.weft.example"):
    resolver.resolve(name, answers.append)
network.clock.advance(60)  # fake seconds: instant
for lookup in answers:
    print(f"{lookup.name} -> {lookup.addresses} after {lookup.attempts} attempt(s)")
print(f"resolved {sum(not lookup.error for lookup in answers)} of 3; the network lost {network.stats.lost}")

"""UDP echo: a datagram echo server and a client, on one runtime of any driver.

Run: python examples/udp_echo.py [DRIVER]
     (DRIVER: reactor, the default, or any driver `weft drivers` lists.)
The same server from the command line: weft serve echo --udp --port 8000
"""

import sys
from typing import Any

from weft.drivers import open_runtime
from weft.protocols import DatagramEchoProtocol
from weft.protocols.contract import DatagramProtocol


class Client(DatagramProtocol):
    """Sends two datagrams to its peer, and keeps the answers."""

    def __init__(self) -> None:
        self.answers: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        transport.sendto(b"hello")  # connected: no address needed
        transport.sendto(b"weft")

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.answers.append(data)


runtime = open_runtime(sys.argv[1] if len(sys.argv) > 1 else "reactor")
opening = runtime.open_udp(DatagramEchoProtocol, ("127.0.0.1", 0))  # port 0: a free one
runtime.run_until(opening.done, timeout=5)
server_address = opening.result().get_extra_info("sockname")
client = Client()
runtime.open_udp(lambda: client, remote_address=server_address)
runtime.run_until(lambda: len(client.answers) == 2, timeout=5)
print(f"echoed by udp {server_address[0]}: {b' '.join(client.answers).decode()}")
runtime.close()

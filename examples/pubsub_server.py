"""A broadcast server: every line a client sends goes to every connected client.

The server on Twisted's front page, on weft.  A client that stops reading
is dropped once a megabyte is waiting for it, so one slow reader cannot make
the server hold everything everyone says.  (For topics, replies and a wire
format that will not change, serve weft's pub/sub: `weft serve pubsub`.)

Run: python examples/pubsub_server.py [DRIVER [PORT]]
     (DRIVER: reactor, the default, or any driver `weft drivers` lists;
     PORT: 8000 unless given, 0 for a free one.)
Try, in two or more terminals: weft connect 127.0.0.1 8000
"""

import sys
from typing import Any

from weft.drivers import serve
from weft.protocols.framing import LineProtocol

MAX_BACKLOG = 1024 * 1024


class Broadcast(LineProtocol):
    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        clients.add(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        clients.discard(self)

    def line_received(self, line: bytes) -> None:
        for client in list(clients):
            client.send_line(line)
            if client.transport.get_write_buffer_size() > MAX_BACKLOG:
                client.transport.abort()  # too slow: drop it rather than buffer without end


clients: set[Broadcast] = set()
driver = sys.argv[1] if len(sys.argv) > 1 else "reactor"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 8000
serve(Broadcast, port=port, driver=driver)

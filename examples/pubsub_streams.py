"""A broadcast server written as a coroutine: every line a client sends goes to every client.

The same server as examples/pubsub_server.py, in the other style.  The
broadcast queues each line without waiting (``transport.write``), so one
slow reader never holds up the others; a client with a megabyte waiting is
dropped instead.

Run: python examples/pubsub_streams.py [DRIVER [PORT]]
     (DRIVER: reactor, the default, or any driver `weft drivers` lists;
     PORT: 8000 unless given, 0 for a free one.)
Try, in two or more terminals: weft connect 127.0.0.1 8000
"""

import sys

from weft.drivers import serve
from weft.drivers.coroutines import Stream

MAX_BACKLOG = 1024 * 1024
clients: set[Stream] = set()


async def broadcast(stream: Stream) -> None:
    clients.add(stream)
    try:
        while line := await stream.readline():
            for client in list(clients):
                client.transport.write(line)
                if client.transport.get_write_buffer_size() > MAX_BACKLOG:
                    client.abort()  # too slow: drop it rather than buffer without end
    finally:
        clients.discard(stream)


driver = sys.argv[1] if len(sys.argv) > 1 else "reactor"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 8000
serve(broadcast, port=port, driver=driver)

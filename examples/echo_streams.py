r"""An echo server written as a coroutine: one task per connection, on any driver.

The same server as examples/echo_server.py, in the other style: a handler
that awaits a stream instead of a protocol that is called back.

Run: python examples/echo_streams.py [DRIVER [PORT]]
     (DRIVER: reactor, the default, or any driver `weft drivers` lists;
     PORT: 8000 unless given, 0 for a free one.)
Try: printf 'hello\n' | weft connect 127.0.0.1 8000
"""

import sys

from weft.drivers import serve
from weft.drivers.coroutines import Stream


async def echo(stream: Stream) -> None:
    while data := await stream.receive():
        await stream.send(data)  # waits while the client is slow to read


driver = sys.argv[1] if len(sys.argv) > 1 else "reactor"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 8000
serve(echo, port=port, driver=driver)

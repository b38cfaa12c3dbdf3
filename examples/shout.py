r"""A protocol of your own, served by the command line: every line comes back in capitals.

The same service written both ways weft serves, in one module that
`weft serve MODULE:FACTORY` imports (as `uvicorn module:app` does); run it
from the repository's top, so that `examples` is found:

Serve: weft serve examples.shout:ShoutProtocol   (a protocol class: one made per connection)
       weft serve examples.shout:shout           (an async def: awaited with a stream per connection)
Try:   printf 'hello\n' | weft connect 127.0.0.1 8000

Every other `weft serve` option works with either: --port, --unix, --stdio,
--driver, --tls, --max-connections...
"""

from weft.drivers.coroutines import Stream
from weft.protocols.framing import LineProtocol


class ShoutProtocol(LineProtocol):
    """Called back with each line (at most 64 KiB); answers it in capitals."""

    def line_received(self, line: bytes) -> None:
        self.send_line(line.upper())


async def shout(stream: Stream) -> None:
    """The same, as a coroutine: one task per connection, awaiting each line."""
    while line := await stream.readline():
        await stream.send(line.upper())

"""weft's echo protocol on asyncio, inside an ordinary asyncio program.

The asyncio driver runs weft protocols on the program's own event loop
(uvloop's too, when it is installed): weft serves EchoProtocol while a
coroutine talks to it with asyncio's streams, and a weft client's connect
is awaited like any asyncio future.

Run: python examples/echo_on_asyncio.py
"""

import asyncio
import importlib.util

from weft.drivers.asyncio import AsyncioRuntime
from weft.protocols import EchoProtocol
from weft.protocols.contract import Protocol


class FirstReply(Protocol):
    """A weft client that hands the first bytes it receives to an asyncio future."""

    def __init__(self, reply: asyncio.Future[bytes]) -> None:
        self.reply = reply

    def data_received(self, data: bytes) -> None:
        if not self.reply.done():
            self.reply.set_result(data)


async def main() -> None:
    runtime = AsyncioRuntime(asyncio.get_running_loop())  # weft on this program's loop
    listener = runtime.listen_tcp(EchoProtocol, "127.0.0.1", 0)

    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)  # plain asyncio
    writer.write(b"hello, weft\n")
    print("echoed:", (await reader.readline()).decode().strip())
    writer.close()
    await writer.wait_closed()

    reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    connecting = runtime.connect_tcp(lambda: FirstReply(reply), "127.0.0.1", listener.port)
    transport = await runtime.wrap_future(connecting)  # a weft Future, awaited
    transport.write(b"and back")
    print("weft client got:", (await reply).decode())

    listener.close()
    runtime.close()  # ends weft's open connections; the loop stays asyncio.run's


if importlib.util.find_spec("uvloop"):
    import uvloop

    uvloop.run(main())
else:
    asyncio.run(main())

"""weft's echo protocol on Trio, inside an ordinary Trio program.

The trio driver runs weft protocols as Trio tasks of the program's own run:
weft serves EchoProtocol while a Trio task talks to it with Trio's own
``trio.open_tcp_stream``; a weft client's connect (a weft future) is awaited
with ``from_weft``; and a weft coroutine stream is handed to Trio code as a
``trio.abc.HalfCloseableStream`` (``TrioStream``), as any Trio stream.

Run: python examples/echo_on_trio.py   (needs: pip install 'weft[trio]')
"""

import trio

from weft.drivers.coroutines import open_tcp
from weft.drivers.trio import TrioStream, from_weft, open_trio_runtime
from weft.protocols import EchoProtocol
from weft.protocols.contract import Protocol


class FirstReply(Protocol):
    """A weft client that hands the first bytes it receives to a Trio task."""

    def __init__(self) -> None:
        self.reply = b""
        self.arrived = trio.Event()

    def data_received(self, data: bytes) -> None:
        self.reply = data
        self.arrived.set()


async def shout(stream: trio.abc.HalfCloseableStream, text: bytes) -> bytes:
    """Trio code that knows nothing of weft: send, half-close, read to the end."""
    await stream.send_all(text)
    await stream.send_eof()
    answer = b""
    while chunk := await stream.receive_some():
        answer += chunk
    return answer


async def main() -> None:
    async with open_trio_runtime() as runtime:  # weft, inside this Trio program
        listener = runtime.listen_tcp(EchoProtocol, "127.0.0.1", 0)

        stream = await trio.open_tcp_stream("127.0.0.1", listener.port)  # plain Trio
        await stream.send_all(b"hello, weft")
        print("echoed:", (await stream.receive_some()).decode())
        await stream.aclose()

        client = FirstReply()
        transport = await from_weft(runtime, runtime.connect_tcp(lambda: client, "127.0.0.1", listener.port))
        transport.write(b"and back")
        await client.arrived.wait()
        print("weft client got:", client.reply.decode())
        transport.close()

        weft_stream = await from_weft(runtime, open_tcp(runtime, "127.0.0.1", listener.port))
        async with TrioStream(weft_stream, runtime) as as_trio:
            print("trio code over a weft stream:", (await shout(as_trio, b"as trio")).decode())

        listener.close()


trio.run(main)

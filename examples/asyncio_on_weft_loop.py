"""An ordinary asyncio program on weft's loop: one line changes.

asyncio's streams, a subprocess, a timeout and a task group run unchanged
on weft's reactor, and a weft protocol (EchoProtocol) is served by the
same loop's reactor beside them.

Run: python examples/asyncio_on_weft_loop.py
"""

import asyncio
import sys

from weft.drivers.reactor import EventLoop, run
from weft.protocols import EchoProtocol


async def shout(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An asyncio streams handler: answer each line in capitals."""
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
    writer.close()


async def ask(port: int, line: bytes) -> bytes:
    """Send one line to ``port`` and return the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(line)
    answer = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return answer


async def main() -> None:
    loop = asyncio.get_running_loop()
    if not isinstance(loop, EventLoop):
        raise SystemExit("not on weft's loop")
    server = await asyncio.start_server(shout, "127.0.0.1", 0)
    echo = loop.reactor.listen_tcp(EchoProtocol, "127.0.0.1", 0)
    async with asyncio.timeout(10), asyncio.TaskGroup() as group:
        shouted = group.create_task(ask(server.sockets[0].getsockname()[1], b"hello asyncio\n"))
        echoed = group.create_task(ask(echo.port, b"hello weft\n"))
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "print('hello child')", stdout=asyncio.subprocess.PIPE
        )
        output, _ = await child.communicate()
    print(f"asyncio server: {shouted.result().decode().strip()}")
    print(f"weft protocol on the same loop: {echoed.result().decode().strip()}")
    print(f"subprocess: {output.decode().strip()}, exit status {child.returncode}")
    echo.close()
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    run(main())  # instead of asyncio.run(main())

"""weft tasks and asyncio tasks on one loop, each awaiting the other.

An asyncio-streams server answers each line in capitals.  A weft task talks
to it with weft's streams and timeouts, and awaits asyncio code on the way;
the asyncio program awaits that weft task (``to_asyncio``), cancels another
one with ``asyncio.wait_for``, and hands callback code a weft Future made
from an asyncio coroutine (``from_asyncio``).

Run: python examples/coroutines_with_asyncio.py
"""

from __future__ import annotations

import asyncio

from weft.drivers import Future
from weft.drivers.asyncio import AsyncioRuntime
from weft.drivers.coroutines import fail_after, from_asyncio, open_tcp, sleep, spawn, to_asyncio


async def shout(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """asyncio style: answer each line in capitals."""
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
    writer.close()


async def ask(runtime: AsyncioRuntime, port: int) -> str:
    """weft style: a weft task, with weft's streams and timeout, that awaits asyncio too."""
    await asyncio.sleep(0.01)  # an asyncio coroutine, awaited in a weft task
    with fail_after(5):
        async with await open_tcp(runtime, "127.0.0.1", port) as stream:
            await stream.send(b"hello from weft\n")
            answer = await stream.readline()
    return answer.decode().strip()


async def main() -> None:
    runtime = AsyncioRuntime(asyncio.get_running_loop())  # weft on this program's loop
    server = await asyncio.start_server(shout, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    answer = await to_asyncio(spawn(runtime, ask(runtime, port)))  # asyncio awaits a weft task
    print("the weft task heard:", answer)

    slow = spawn(runtime, sleep(60))
    try:
        await asyncio.wait_for(to_asyncio(slow), 0.01)  # the timeout cancels the weft task too
    except TimeoutError:
        await asyncio.wait([to_asyncio(slow)])  # until its cleanup has run
    print("asyncio.wait_for cancelled the weft task:", slow.cancelled())

    later: Future[str] = from_asyncio(asyncio.sleep(0.01, "later"), runtime)  # for callback code
    later.add_done_callback(lambda done: print("a weft callback got:", done.result()))
    await to_asyncio(later)

    server.close()
    await server.wait_closed()
    runtime.close()  # the loop stays asyncio.run's


if __name__ == "__main__":
    asyncio.run(main())

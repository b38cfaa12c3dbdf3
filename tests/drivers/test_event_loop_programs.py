"""Real asyncio programs, unchanged, on each asyncio event loop: asyncio's, uvloop and weft's.

Issue 11 asks that asyncio programs run on weft's reactor by changing one
line, the loop factory.  Each test here is such a program, run once per
loop of ``tests/support/event_loops.py`` with
``asyncio.Runner(loop_factory=...)`` under one bounded timeout; asyncio's own
loop is the reference that shows the program itself is right.  Loopback
only, no sleeps: every wait is for an event, bounded by the timeout.

* an aiohttp web server and an aiohttp client talking to it (GET, POST with
  a body, a streamed response, a websocket echo);
* asyncio streams echo over TCP and UNIX sockets (``start_server``,
  ``open_connection``, ``readline``, ``readexactly``, ``drain``, EOF,
  ``close``/``wait_closed``), with concurrent clients;
* subprocesses through asyncio's subprocess API (a pipeline of two
  processes, ``communicate``, exit codes, a killed child);
* Twisted code through Twisted's own ``asyncioreactor`` installed on the
  loop, each program in a process of its own (installing a reactor is
  global and for good): ``tests/support/twisted_on_loop.py``;
* Trio in guest mode hosted by the loop, talking TCP to an asyncio server
  on the same loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import TIMEOUT
from tests.support.event_loops import loop_params, run_program
from tests.support.processes import Children

pytestmark = pytest.mark.parametrize("loop_name", loop_params())

KIB = 1024
MIB = 1024 * KIB


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A fresh directory with a short path (a UNIX socket's path must fit in 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="weft-") as made:
        yield Path(made)


def pattern(size: int, seed: int = 0) -> bytes:
    """``size`` bytes that differ at every offset of any short run (so a lost,
    repeated or reordered piece shows), without the cost of random bytes."""
    block = bytes((seed + index * 7) % 251 for index in range(251))
    return (block * (size // len(block) + 1))[:size]


# ------------------------------------------------------------------ aiohttp


def test_aiohttp_server_and_client(loop_name: str) -> None:
    """An aiohttp application and an aiohttp client session on one loop: a GET,
    a POST whose 1 MiB body the server reads and answers reversed, a chunked
    response streamed in 64 pieces and read as it comes, and a websocket that
    echoes text (upper-cased) and binary (reversed) messages, then closes
    with 1000.  Every byte is checked, and the runner cleans up."""
    from aiohttp import ClientSession, WSMsgType, web

    body = pattern(MIB)
    piece = pattern(1000, seed=3)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello {request.query.get('name', '?')}")

    async def reverse(request: web.Request) -> web.Response:
        received = await request.read()
        return web.Response(body=received[::-1], headers={"x-received": str(len(received))})

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for index in range(64):
            await response.write(b"%02d" % index + piece)
        await response.write_eof()
        return response

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        async for message in socket:
            if message.type is WSMsgType.TEXT:
                await socket.send_str(message.data.upper())
            elif message.type is WSMsgType.BINARY:
                await socket.send_bytes(message.data[::-1])
        return socket

    async def program() -> dict[str, object]:
        app = web.Application(client_max_size=2 * MIB)
        app.add_routes(
            [
                web.get("/hello", hello),
                web.post("/reverse", reverse),
                web.get("/stream", stream),
                web.get("/ws", websocket),
            ]
        )
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            base = f"http://{host}:{port}"
            seen: dict[str, object] = {}
            async with ClientSession() as session:
                async with session.get(f"{base}/hello", params={"name": "weft"}) as response:
                    seen["get"] = (response.status, await response.text())
                async with session.post(f"{base}/reverse", data=body) as response:
                    seen["post"] = (
                        response.status,
                        response.headers["x-received"],
                        await response.read() == body[::-1],
                    )
                async with session.get(f"{base}/stream") as response:
                    streamed = bytearray()
                    async for chunk in response.content.iter_any():
                        streamed += chunk
                    seen["stream"] = (
                        response.status,
                        response.headers.get("transfer-encoding"),
                        bytes(streamed) == b"".join(b"%02d" % index + piece for index in range(64)),
                    )
                async with session.ws_connect(f"{base}/ws") as socket:
                    await socket.send_str("hello, websocket")
                    text = await socket.receive_str()
                    await socket.send_bytes(body[: 100 * KIB])
                    binary = await socket.receive_bytes()
                    await socket.close()
                    seen["ws"] = (text, binary == body[: 100 * KIB][::-1], socket.close_code)
            return seen
        finally:
            await runner.cleanup()

    seen = run_program(loop_name, program)
    assert seen == {
        "get": (200, "hello weft"),
        "post": (200, str(MIB), True),
        "stream": (200, "chunked", True),
        "ws": ("HELLO, WEBSOCKET", True, 1000),
    }


# ------------------------------------------------------------------ streams


async def echo_handler(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, finished: list[str]
) -> None:
    """A line server: each line comes back upper-cased; ``frame N`` is followed
    by N bytes that come back reversed after their length; at EOF it closes."""
    try:
        while line := await reader.readline():
            if line.startswith(b"frame "):
                payload = await reader.readexactly(int(line.split()[1]))
                writer.write(b"%d\n" % len(payload))
                writer.write(payload[::-1])
            else:
                writer.write(line.upper())
            await writer.drain()
        finished.append("eof")
    finally:
        writer.close()
        await writer.wait_closed()


async def echo_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> bool:
    """Talk to :func:`echo_handler`: lines, one big frame, EOF; True if every answer was right."""
    payload = pattern(512 * KIB + index, seed=index)
    right = True
    for number in range(5):
        writer.write(b"line %d of client %d\n" % (number, index))
        await writer.drain()
        right &= await reader.readline() == b"LINE %d OF CLIENT %d\n" % (number, index)
    writer.writelines([b"frame %d\n" % len(payload), payload])
    await writer.drain()
    right &= await reader.readline() == b"%d\n" % len(payload)
    right &= await reader.readexactly(len(payload)) == payload[::-1]
    writer.write_eof()
    right &= await reader.read() == b""  # the server closes on our EOF
    right &= reader.at_eof()
    writer.close()
    await writer.wait_closed()
    return right


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_streams_echo(loop_name: str, family: str, short_dir: Path) -> None:
    """asyncio streams, over TCP and over a UNIX socket: eight concurrent
    clients each exchange lines (readline), a 512 KiB frame (readexactly,
    with drain as flow control), then half-close; the server sees every
    EOF, closes each connection, and the server closes and is waited for."""

    async def program() -> tuple[list[bool], list[str]]:
        finished: list[str] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await echo_handler(reader, writer, finished)

        if family == "tcp":
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]

            async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
                return await asyncio.open_connection("127.0.0.1", port)

        else:
            path = str(short_dir / "echo.sock")
            server = await asyncio.start_unix_server(handle, path)

            async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
                return await asyncio.open_unix_connection(path)

        async with server:
            async with asyncio.TaskGroup() as group:
                clients = [group.create_task(echo_client(*await connect(), index)) for index in range(8)]
            server.close()
            await server.wait_closed()
        return [client.result() for client in clients], finished

    results, finished = run_program(loop_name, program)
    assert results == [True] * 8
    assert finished == ["eof"] * 8


# --------------------------------------------------------------- processes

#: A producer: numbers 0..N-1, one a line, then exit 0.
PRODUCER = "import sys\nfor n in range(int(sys.argv[1])): sys.stdout.write(f'{n}\\n')\n"
#: A consumer: the count and sum of the numbers on stdin, a note on stderr, exit 3.
CONSUMER = (
    "import sys\nnumbers = [int(line) for line in sys.stdin]\n"
    "print(len(numbers), sum(numbers))\nsys.stderr.write('consumed\\n')\nsys.exit(3)\n"
)


def test_subprocess_pipeline_pumped_by_the_loop(loop_name: str) -> None:
    """Two processes connected through the loop: the producer's stdout is read
    and written to the consumer's stdin (with drain: 100 000 lines are far
    more than a pipe holds), then ``communicate`` collects the consumer's
    stdout and stderr; both exit codes come back (0 and 3)."""
    count = 100_000

    async def program() -> tuple[int | None, int | None, bytes, bytes]:
        producer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PRODUCER, str(count), stdout=asyncio.subprocess.PIPE
        )
        consumer = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CONSUMER,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert producer.stdout is not None
        assert consumer.stdin is not None

        async def pump() -> None:
            assert producer.stdout is not None
            assert consumer.stdin is not None
            while chunk := await producer.stdout.read(16 * KIB):
                consumer.stdin.write(chunk)
                await consumer.stdin.drain()
            consumer.stdin.close()
            await consumer.stdin.wait_closed()

        _, (out, err) = await asyncio.gather(pump(), consumer.communicate())
        return await producer.wait(), consumer.returncode, out, err

    produced, consumed, out, err = run_program(loop_name, program)
    assert (produced, consumed) == (0, 3)
    assert out.split() == [b"%d" % count, b"%d" % (count * (count - 1) // 2)]
    assert err == b"consumed\n"


def test_subprocess_pipeline_through_an_os_pipe(loop_name: str) -> None:
    """A shell-style pipeline: the producer's stdout is an OS pipe whose other
    end is the consumer's stdin, so the bytes never pass through the loop;
    the loop watches both children and collects the consumer's output."""
    count = 10_000

    async def program() -> tuple[int, int | None, bytes]:
        read_end, write_end = os.pipe()
        try:
            producer = await asyncio.create_subprocess_exec(
                sys.executable, "-c", PRODUCER, str(count), stdout=write_end
            )
            consumer = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CONSUMER, stdin=read_end, stdout=asyncio.subprocess.PIPE
            )
        finally:
            # The children hold their ends; ours would keep the consumer's stdin open.
            os.close(read_end)
            os.close(write_end)
        out, _ = await consumer.communicate()
        return await producer.wait(), consumer.returncode, out

    produced, consumed, out = run_program(loop_name, program)
    assert (produced, consumed) == (0, 3)
    assert out.split() == [b"%d" % count, b"%d" % (count * (count - 1) // 2)]


def test_subprocess_communicate_a_large_input(loop_name: str) -> None:
    """``communicate(input)`` with 4 MiB in both directions (a filter that
    reverses every line), which deadlocks unless the loop writes stdin while
    it reads stdout; and ``create_subprocess_shell`` runs through /bin/sh."""
    lines = [b"%06d %s\n" % (index, pattern(40, seed=index % 200).hex().encode()) for index in range(50_000)]
    data = b"".join(lines)

    async def program() -> tuple[int | None, bytes, int | None, bytes]:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys\nfor line in sys.stdin.buffer: sys.stdout.buffer.write(line[-2::-1] + b'\\n')\n",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await child.communicate(data)
        shell = await asyncio.create_subprocess_shell(
            "echo one two | tr a-z A-Z; exit 7", stdout=asyncio.subprocess.PIPE
        )
        shell_out, _ = await shell.communicate()
        return child.returncode, out, shell.returncode, shell_out

    status, out, shell_status, shell_out = run_program(loop_name, program)
    assert len(data) > 4 * MIB
    assert status == 0
    assert out == b"".join(line[-2::-1] + b"\n" for line in lines)
    assert (shell_status, shell_out) == (7, b"ONE TWO\n")


def test_subprocess_killed_child(loop_name: str) -> None:
    """A child that waits forever on its stdin is killed: ``wait()`` gives
    -SIGKILL, its stdout reaches EOF, and a second ``kill()`` after it is reaped
    raises ProcessLookupError as asyncio's contract says."""

    async def program() -> tuple[bytes, int, bytes, bool]:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys\nprint('ready', flush=True)\nsys.stdin.read()\n",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert child.stdout is not None
        ready = await child.stdout.readline()
        child.kill()
        status = await child.wait()
        rest = await child.stdout.read()
        try:
            child.kill()
        except ProcessLookupError:
            refused = True
        else:
            refused = False
        assert child.stdin is not None
        child.stdin.close()
        return ready, status, rest, refused

    ready, status, rest, refused = run_program(loop_name, program)
    assert ready == b"ready\n"
    assert status == -signal.SIGKILL
    assert rest == b""
    assert refused


# ------------------------------------------------------------------ Twisted


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        pytest.param(
            "tcp-echo",
            {"echoed": True, "sizes": [256 * KIB, 256 * KIB], "server_lost": True, "client_lost": True},
            id="tcp-echo",
        ),
        pytest.param(
            "deferreds",
            {
                "chain": 42,
                "errback": "ValueError: refused 7",
                "from_future": "asyncio said 5",
                "cancelled": True,
            },
            id="deferreds",
        ),
        pytest.param(
            "reactor-run",
            {"timer": "later", "thread": True, "asyncio": "from asyncio", "exit": 0, "stopped": True},
            id="reactor-run",
        ),
    ],
)
def test_twisted_on_the_loop(loop_name: str, program: str, expected: object, children: Children) -> None:
    """Twisted's own asyncioreactor installed on the loop, in a process of
    its own (see tests/support/twisted_on_loop.py for each program): a Twisted
    TCP echo server and client; a Deferred chain (callbacks, a Deferred
    returned from a callback, an errback, a Future turned into a Deferred,
    cancellation) awaited from asyncio; and Twisted owning the loop
    (``reactor.run()``: timers, a thread's result, an asyncio task, stop).
    The child prints its findings as JSON and must write nothing on stderr."""
    child = children.start(sys.executable, "-m", "tests.support.twisted_on_loop", loop_name, program)
    child.close_stdin()
    status = child.wait(TIMEOUT)
    assert (status, child.stderr) == (0, "")
    assert json.loads(child.stdout) == expected


# --------------------------------------------------------------------- Trio


def wakeup_fd_in_use() -> bool:
    """Whether something (the running loop) has set ``signal.set_wakeup_fd``."""
    current = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(current)
    return current != -1


def test_trio_guest_mode(loop_name: str) -> None:
    """Trio in guest mode hosted by the loop: a Trio task opens a TCP stream to
    an asyncio server on the same loop and exchanges 256 KiB both ways;
    ``trio.sleep`` returns, ``move_on_after`` cancels a ``sleep_forever``,
    ``fail_after`` raises TooSlowError, and a trio.Event set from asyncio
    (through the Trio token) wakes the Trio task.  The run's outcome comes
    back through ``done_callback``."""
    import trio

    payload = pattern(256 * KIB, seed=9)

    async def program() -> dict[str, object]:
        loop = asyncio.get_running_loop()
        served: list[int] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received = await reader.readexactly(len(payload))
            served.append(len(received))
            writer.write(received[::-1])
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        # The Trio task says here when it waits for asyncio to wake it.
        waiting: asyncio.Future[tuple[trio.lowlevel.TrioToken, trio.Event]] = loop.create_future()

        async def trio_main() -> dict[str, object]:
            seen: dict[str, object] = {}
            async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
                await stream.send_all(payload)
                received = bytearray()
                while chunk := await stream.receive_some():
                    received += chunk
                seen["exchange"] = bytes(received) == payload[::-1]
            before = trio.current_time()
            await trio.sleep(0.01)
            seen["slept"] = trio.current_time() - before >= 0.01
            with trio.move_on_after(0.01) as scope:
                await trio.sleep_forever()
            seen["moved_on"] = scope.cancelled_caught
            try:
                with trio.fail_after(0.01):
                    await trio.sleep_forever()
            except trio.TooSlowError:
                seen["failed_after"] = True
            woken = trio.Event()
            loop.call_soon_threadsafe(waiting.set_result, (trio.lowlevel.current_trio_token(), woken))
            with trio.fail_after(TIMEOUT):
                await woken.wait()
            seen["woken"] = woken.is_set()
            return seen

        done: asyncio.Future[object] = loop.create_future()

        def finished(outcome: object) -> None:
            if not done.done():
                done.set_result(outcome)

        async with server:
            trio.lowlevel.start_guest_run(
                trio_main,
                run_sync_soon_threadsafe=loop.call_soon_threadsafe,
                run_sync_soon_not_threadsafe=loop.call_soon,
                done_callback=finished,
                # Trio must know whether the host watches signals through the
                # wakeup fd (uvloop does, while it runs; asyncio's loop only
                # once a signal handler is added), or the two collide.
                host_uses_signal_set_wakeup_fd=wakeup_fd_in_use(),
            )
            token, woken = await waiting
            # Wake the Trio task from asyncio's side, through Trio's own door.
            token.run_sync_soon(woken.set)
            outcome = await done
            server.close()
            await server.wait_closed()
        seen: dict[str, object] = outcome.unwrap()  # type: ignore[attr-defined]
        return {**seen, "served": served}

    seen = run_program(loop_name, program)
    assert seen == {
        "exchange": True,
        "slept": True,
        "moved_on": True,
        "failed_after": True,
        "woken": True,
        "served": [256 * KIB],
    }

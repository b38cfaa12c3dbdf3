"""asyncio's own helpers on the asyncio driver's transports: ``loop.start_tls``
(through ``asyncio.StreamWriter.start_tls``) and ``loop.sendfile``, and what
they rely on (a BufferedProtocol's delivery, flow control across
``set_protocol``).

On asyncio's default loop both work on a weft transport.  uvloop's
``start_tls`` takes only uvloop's own transports and uvloop has no
``sendfile``: the uvloop tests pin that down and show what works there
instead (weft's own ``start_tls``).  Real loopback sockets; every wait is
an event bounded by TIMEOUT.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest

from tests.support import TIMEOUT
from tests.support.tls import HOSTNAME, certificates, client_context, server_context
from weft.drivers.asyncio import AsyncioRuntime, AsyncioTransport
from weft.drivers.testing import RecordingProtocol
from weft.protocols.tls import start_tls

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def new_uvloop() -> asyncio.AbstractEventLoop:
    uvloop = pytest.importorskip("uvloop")
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_factory(request: pytest.FixtureRequest) -> LoopFactory:
    """asyncio's default loop, then uvloop's."""
    return new_uvloop if request.param == "uvloop" else asyncio.new_event_loop


def run(
    main: Callable[[AsyncioRuntime], Awaitable[T]], loop_factory: LoopFactory = asyncio.new_event_loop
) -> T:
    """Run ``main(runtime)`` with an AsyncioRuntime on a new loop, for at most TIMEOUT seconds."""

    async def bounded() -> T:
        runtime = AsyncioRuntime(asyncio.get_running_loop())
        try:
            return await asyncio.wait_for(main(runtime), TIMEOUT)
        finally:
            runtime.close()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(bounded())


async def connect(runtime: AsyncioRuntime, factory: Callable[[], Any], port: int) -> AsyncioTransport:
    """A weft transport (the asyncio driver's) to 127.0.0.1:``port``."""
    transport = await runtime.wrap_future(runtime.connect_tcp(factory, "127.0.0.1", port))
    assert isinstance(transport, AsyncioTransport)
    return transport


async def weft_streams(
    runtime: AsyncioRuntime, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """asyncio's streams over a weft transport: asyncio.open_connection, the weft way."""
    reader = asyncio.StreamReader()
    protocol = asyncio.StreamReaderProtocol(reader)
    transport = await connect(runtime, lambda: protocol, port)
    return reader, asyncio.StreamWriter(transport, protocol, reader, asyncio.get_running_loop())


async def starttls_server(context: ssl.SSLContext) -> tuple[asyncio.Server, int]:
    """A plain asyncio server speaking a STARTTLS dialect: a line in plaintext
    and ``OK``, then TLS (asyncio's own start_tls), then each line back in
    upper case."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readline()
            writer.write(b"OK\n")
            await writer.drain()
            await writer.start_tls(context)
            while line := await reader.readline():
                writer.write(line.upper())
                await writer.drain()
        except (ssl.SSLError, ConnectionError):
            pass  # the client gave up on the handshake
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


# ------------------------------------------------------------------ start_tls


def test_streamwriter_start_tls_upgrades_a_weft_client_connection() -> None:
    """A client on a weft transport says STARTTLS in plaintext, then
    StreamWriter.start_tls (so loop.start_tls) switches it to TLS: the
    certificate is checked, and lines go both ways encrypted."""

    async def main(runtime: AsyncioRuntime) -> tuple[bytes, bytes, bool]:
        server, port = await starttls_server(server_context())
        async with server:
            reader, writer = await weft_streams(runtime, port)
            writer.write(b"STARTTLS\n")
            ok = await reader.readline()
            await writer.start_tls(client_context(), server_hostname=HOSTNAME)
            writer.write(b"hello over tls\n")
            answer = await reader.readline()
            encrypted = writer.get_extra_info("ssl_object") is not None
            writer.close()
            return ok, answer, encrypted

    assert run(main) == (b"OK\n", b"HELLO OVER TLS\n", True)


def test_streamwriter_start_tls_upgrades_a_weft_server_connection() -> None:
    """The server side: a weft listener runs asyncio's StreamReaderProtocol,
    whose handler calls StreamWriter.start_tls(server_side) on the weft
    transport; asyncio's own client upgrades its side."""

    async def main(runtime: AsyncioRuntime) -> bytes:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readline()
            writer.write(b"OK\n")
            await writer.drain()
            await writer.start_tls(server_context())
            writer.write((await reader.readline()).upper())
            await writer.drain()
            writer.close()

        listener = runtime.listen_tcp(lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader(), serve))
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"STARTTLS\n")
        assert await reader.readline() == b"OK\n"
        await writer.start_tls(client_context(), server_hostname=HOSTNAME)
        writer.write(b"served by weft\n")
        answer = await reader.readline()
        writer.close()
        listener.close()
        return answer

    assert run(main) == b"SERVED BY WEFT\n"


def test_a_failed_start_tls_ends_the_weft_connection() -> None:
    """A certificate the client does not trust: start_tls raises the
    verification error, and the weft connection ends."""

    async def main(runtime: AsyncioRuntime) -> tuple[BaseException, bool]:
        server, port = await starttls_server(server_context(certificates().expired))
        async with server:
            reader, writer = await weft_streams(runtime, port)
            writer.write(b"STARTTLS\n")
            await reader.readline()
            try:
                await writer.start_tls(client_context(), server_hostname=HOSTNAME)
            except ssl.SSLError as error:
                transport = writer.transport
                return error, transport.is_closing()
            raise AssertionError("the handshake succeeded with an expired certificate")

    error, closing = run(main)
    assert isinstance(error, ssl.SSLCertVerificationError)
    assert closing


# ------------------------------------------------------------------- sendfile


@pytest.fixture
def big_file() -> Iterator[tuple[IO[bytes], bytes]]:
    """A 3 MiB file of random bytes, and its bytes."""
    payload = os.urandom(3 * 1024 * 1024)
    with tempfile.TemporaryFile() as file:
        file.write(payload)
        file.seek(0)
        yield file, payload


async def sink_server() -> tuple[asyncio.Server, int, asyncio.Future[bytes], asyncio.Event]:
    """A server that, once ``start`` is set, reads everything until EOF (the
    future gets it) after sending ``after sendfile``."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[bytes] = loop.create_future()
    start = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await start.wait()
        writer.write(b"after sendfile")
        received.set_result(await reader.read())
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], received, start


def test_loop_sendfile_sends_a_file_over_a_weft_transport(big_file: tuple[IO[bytes], bytes]) -> None:
    """loop.sendfile on a weft transport sends the file (asyncio's fallback),
    in order with what is written before and after; then the protocol is
    back in place, reading again, and the file's position is past what was
    sent."""
    file, payload = big_file

    async def main(runtime: AsyncioRuntime) -> tuple[int, bytes, RecordingProtocol, int]:
        loop = asyncio.get_running_loop()
        server, port, received, start = await sink_server()
        async with server:
            protocol = RecordingProtocol()
            transport = await connect(runtime, lambda: protocol, port)
            start.set()
            transport.write(b"<")
            sent = await loop.sendfile(transport, file)
            transport.write(b">")
            assert transport.get_protocol() is protocol
            transport.write_eof()
            data = await received
            transport.close()
            return sent, data, protocol, file.tell()

    sent, data, protocol, position = run(main)
    assert sent == len(payload) == position
    assert data == b"<" + payload + b">"
    assert protocol.received == b"after sendfile"


def test_loop_sendfile_sends_a_slice(big_file: tuple[IO[bytes], bytes]) -> None:
    """offset and count are honoured."""
    file, payload = big_file

    async def main(runtime: AsyncioRuntime) -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        server, port, received, start = await sink_server()
        async with server:
            transport = await connect(runtime, RecordingProtocol, port)
            start.set()
            sent = await loop.sendfile(transport, file, offset=1000, count=70_000)
            transport.write_eof()
            data = await received
            transport.close()
            return sent, data

    assert run(main) == (70_000, payload[1000:71_000])


class Flow(RecordingProtocol):
    """Records events and says when writing is paused."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = asyncio.get_running_loop().create_future()

    def pause_writing(self) -> None:
        super().pause_writing()
        if not self.paused.done():
            self.paused.set_result(None)


def test_loop_sendfile_on_a_paused_transport_waits_and_pairs_flow_control(
    big_file: tuple[IO[bytes], bytes],
) -> None:
    """loop.sendfile started while writing is paused waits for the peer
    (asyncio's fallback takes the pause over); the protocol, paused before,
    hears resume_writing once, and the peer gets everything in order."""
    file, payload = big_file
    backlog = os.urandom(8 * 1024 * 1024)  # more than the kernel buffers: asyncio holds the rest

    async def main(runtime: AsyncioRuntime) -> tuple[int, bytes, list[str]]:
        loop = asyncio.get_running_loop()
        server, port, received, start = await sink_server()
        async with server:
            protocol = Flow()
            transport = await connect(runtime, lambda: protocol, port)
            transport.write(backlog)
            await protocol.paused  # the peer reads nothing yet
            sending = asyncio.ensure_future(loop.sendfile(transport, file))
            start.set()  # the peer reads: the backlog drains, the file follows
            sent = await sending
            transport.write_eof()
            data = await received
            transport.close()
            return sent, data, protocol.names

    sent, data, names = run(main)
    assert sent == len(payload)
    assert data == backlog + payload
    flow = [name for name in names if name.endswith("_writing")]
    assert flow == ["pause_writing", "resume_writing"]


# ----------------------------------------------------- what the helpers rely on


async def writer_peer(payload: bytes) -> tuple[asyncio.Server, int, asyncio.Event, asyncio.Future[bytes]]:
    """A server that writes ``payload`` once ``go`` is set, then reads all it is sent."""
    loop = asyncio.get_running_loop()
    go = asyncio.Event()
    got: asyncio.Future[bytes] = loop.create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await go.wait()
        writer.write(payload)
        await writer.drain()
        got.set_result(await reader.read())
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], go, got


class SmallBuffers(asyncio.BufferedProtocol):
    """A BufferedProtocol lending 7 bytes at a time, which pauses reading in
    the middle of a chunk once and resumes on the next turn."""

    def __init__(self, transport: AsyncioTransport, size: int) -> None:
        self.transport = transport
        self.buffer = bytearray(7)
        self.received = bytearray()
        self.size = size
        self.paused_once = False
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.received += self.buffer[:nbytes]
        if not self.paused_once:
            self.paused_once = True
            self.transport.pause_reading()
            asyncio.get_running_loop().call_soon(self.transport.resume_reading)
        if len(self.received) >= self.size and not self.done.done():
            self.done.set_result(bytes(self.received))


def test_a_buffered_protocol_gets_every_byte_in_order(loop_factory: LoopFactory) -> None:
    """A weft transport handed an asyncio.BufferedProtocol (asyncio's TLS
    protocol is one) fills the buffers it lends, chunk after chunk, and a
    pause in the middle of a chunk holds the rest back, in order."""
    payload = os.urandom(100_000)

    async def main(runtime: AsyncioRuntime) -> bytes:
        server, port, go, _ = await writer_peer(payload)
        async with server:
            transport = await connect(runtime, RecordingProtocol, port)
            protocol = SmallBuffers(transport, len(payload))
            transport.set_protocol(protocol)
            go.set()
            received = await protocol.done
            transport.close()
            return received

    assert run(main, loop_factory) == payload


def test_a_protocol_set_while_writing_is_paused_hears_no_unpaired_resume(loop_factory: LoopFactory) -> None:
    """pause_writing and resume_writing stay in pairs for each protocol: one
    set while writing is paused hears no resume_writing for a pause it never
    heard, unless it took the pause over by reading _protocol_paused first
    (as loop.sendfile's fallback does), in which case it does."""
    backlog = os.urandom(8 * 1024 * 1024)

    async def scenario(runtime: AsyncioRuntime, adopt: bool) -> tuple[list[str], list[str]]:
        server, port, go, got = await writer_peer(b"")
        async with server:
            first = Flow()
            transport = await connect(runtime, lambda: first, port)
            transport.write(backlog)
            await first.paused
            second = RecordingProtocol()
            if adopt:
                assert transport._protocol_paused
            transport.set_protocol(second)
            go.set()
            transport.write_eof()
            assert await got == backlog  # all sent: writing resumed before the last byte went
            transport.close()
            return first.names, second.names

    async def main(runtime: AsyncioRuntime) -> list[tuple[list[str], list[str]]]:
        return [await scenario(runtime, adopt=False), await scenario(runtime, adopt=True)]

    (first, second), (first_adopted, second_adopted) = run(main, loop_factory)
    assert first == first_adopted == ["connection_made", "pause_writing"]
    assert "resume_writing" not in second
    assert second_adopted.count("resume_writing") == 1


# ------------------------------------------------------------------- uvloop


class Awaiting(RecordingProtocol):
    """Records, and lets a coroutine wait until what it received ends a certain way."""

    def __init__(self) -> None:
        super().__init__()
        self.waiters: list[tuple[bytes, asyncio.Future[None]]] = []

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        for ending, waiter in self.waiters:
            if self.received.endswith(ending) and not waiter.done():
                waiter.set_result(None)

    def until(self, ending: bytes) -> asyncio.Future[None]:
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append((ending, waiter))
        return waiter


def test_on_uvloop_asyncio_helpers_refuse_and_weft_start_tls_works() -> None:
    """What uvloop does with a weft transport: its loop.start_tls accepts only
    uvloop's own transports (TypeError), and it has no loop.sendfile at all
    (NotImplementedError).  weft's own start_tls upgrades the same connection."""

    async def main(runtime: AsyncioRuntime) -> tuple[bytes, str | None]:
        loop = asyncio.get_running_loop()
        server, port = await starttls_server(server_context())
        async with server:
            app = Awaiting()
            transport = await connect(runtime, lambda: app, port)
            with pytest.raises(TypeError, match="not supported by start_tls"):
                await loop.start_tls(
                    transport, asyncio.Protocol(), client_context(), server_hostname=HOSTNAME
                )
            with tempfile.TemporaryFile() as file, pytest.raises(NotImplementedError):
                await loop.sendfile(transport, file)
            assert not transport.is_closing()
            transport.write(b"STARTTLS\n")
            await app.until(b"OK\n")
            tls = start_tls(transport, app, client_context(), server_side=False, server_hostname=HOSTNAME)
            tls.write(b"weft's own tls\n")
            await app.until(b"WEFT'S OWN TLS\n")
            version = tls.get_extra_info("version")
            tls.abort()
            return app.received, version

    received, version = run(main, new_uvloop)
    assert received == b"OK\nWEFT'S OWN TLS\n"
    assert version is not None
    assert version.startswith("TLS")


def test_the_example_in_docs_runs() -> None:
    """The example under "start_tls and sendfile on weft's asyncio driver" in
    docs/asyncio.md runs as written."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "asyncio.md").read_text()
    section = text.split("## start_tls and sendfile on weft's asyncio driver\n", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None
    result = subprocess.run(
        [sys.executable, "-c", found.group(1)], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "plain: a line from a file\ntls: hello\n"

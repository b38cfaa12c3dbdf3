"""Stream.start_tls: STARTTLS on coroutine streams, on the memory driver with a fake
clock and over loopback on the reactor and asyncio, with trustme certificates."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from tests.support import TIMEOUT
from tests.support.streams import go, pair, settle
from tests.support.tls import HOSTNAME, certificates, client_context, server_context
from weft.drivers import Future, TCPRuntime, open_runtime
from weft.drivers.coroutines import (
    Stream,
    TimedOutError,
    checkpoint,
    fail_after,
    open_tcp,
    run,
    serve_tcp,
    spawn,
)
from weft.drivers.reactor import Reactor
from weft.drivers.testing import Pump
from weft.protocols.errors import ArgumentError, BusyResourceError, ClosedResourceError, InvalidStateError
from weft.protocols.tls import TLSHandshakeError, TLSHandshakeTimeoutError, TLSTransport

_T = TypeVar("_T")


def both(pump: Pump, client: Coroutine[Any, Any, _T], server: Coroutine[Any, Any, Any]) -> tuple[_T, Any]:
    """Run the two sides as tasks until the pump settles; both results."""
    tasks = spawn(pump.clock, client), spawn(pump.clock, server)
    settle(pump)
    assert all(task.done() for task in tasks), "a side is still waiting"
    return tasks[0].result(), tasks[1].result()


async def client_starttls(client: Stream) -> None:
    """STARTTLS, then the ClientHello at once, without waiting for an answer."""
    await client.send(b"STARTTLS\r\n")
    await client.start_tls(client_context(), server_hostname=HOSTNAME)


# ------------------------------------------------------------ memory driver


def test_starttls_with_the_client_hello_right_behind_the_command() -> None:
    """The ClientHello arrives in the same read as the STARTTLS line: readline
    returns the line, start_tls hands the rest to TLS, and lines go on inside
    TLS both ways, down to a half-close with close_notify."""
    pump, client, server = pair()

    async def client_side() -> list[bytes]:
        await client.send(b"HELLO\r\n")
        replies = [await client.readline()]
        await client_starttls(client)
        assert client.get_extra_info("peercert")["subjectAltName"] == (
            ("DNS", HOSTNAME),
            ("IP Address", "127.0.0.1"),
        )
        assert isinstance(client.transport, TLSTransport)
        await client.send(b"INSIDE\r\n")
        replies.append(await client.readline())
        client.send_eof()  # close_notify; reading goes on
        replies.append(await client.readline())
        replies.append(await client.receive())
        await client.close()
        return replies

    async def server_side() -> tuple[list[bytes], int, tuple[Any, ...]]:
        lines = [await server.readline()]
        await server.send(b"ECHO " + lines[0])
        lines.append(await server.readline())
        read_past_the_line = len(server.protocol._buffer)  # the ClientHello, read with the line
        await server.start_tls(server_context(), server_side=True)
        lines.append(await server.readline())
        await server.send(b"ECHO " + lines[-1])
        lines.append(await server.receive())  # the client's close_notify
        await server.send(b"BYE\r\n")
        cipher = server.get_extra_info("cipher")
        await server.close()
        return lines, read_past_the_line, cipher

    replies, (lines, read_past_the_line, cipher) = both(pump, client_side(), server_side())
    assert replies == [b"ECHO HELLO\r\n", b"ECHO INSIDE\r\n", b"BYE\r\n", b""]
    assert lines == [b"HELLO\r\n", b"STARTTLS\r\n", b"INSIDE\r\n", b""]
    assert read_past_the_line > 0
    assert cipher is not None
    assert pump.client_transport.connection_lost_called
    assert pump.server_transport.connection_lost_called


def test_the_tls_facts_come_from_get_extra_info() -> None:
    """After start_tls, get_extra_info gives the TLS values and passes the rest below."""
    pump, client, server = pair()

    async def server_side() -> None:
        await server.readline()
        await server.start_tls(server_context(), server_side=True)

    async def client_side() -> dict[str, Any]:
        assert client.get_extra_info("ssl_object") is None
        await client_starttls(client)
        names = ("version", "cipher", "ssl_object", "sslcontext", "peername", "peercert_binary")
        return {name: client.get_extra_info(name) for name in names}

    facts, _ = both(pump, client_side(), server_side())
    assert facts["version"] in ("TLSv1.2", "TLSv1.3")
    assert facts["cipher"] is not None
    assert facts["ssl_object"].server_hostname == HOSTNAME
    assert facts["sslcontext"] is not None
    assert facts["peername"] == ("memory", "server")
    assert facts["peercert_binary"]


def test_an_untrusted_certificate_fails_the_handshake_on_both_sides() -> None:
    """A client that does not trust the server's CA: start_tls raises
    TLSHandshakeError saying why on the client and on the server; the
    connection is gone, and the error stays the stream's."""
    pump, client, server = pair()

    async def client_side() -> BaseException:
        await client.send(b"STARTTLS\r\n")
        with pytest.raises(TLSHandshakeError) as failure:
            await client.start_tls(client_context(certificates().other_ca), server_hostname=HOSTNAME)
        with pytest.raises(TLSHandshakeError):
            await client.receive()
        with pytest.raises(TLSHandshakeError):
            await client.start_tls(client_context(), server_hostname=HOSTNAME)
        return failure.value

    async def server_side() -> BaseException:
        await server.readline()
        with pytest.raises(TLSHandshakeError) as failure:
            await server.start_tls(server_context(), server_side=True)
        return failure.value

    client_error, server_error = both(pump, client_side(), server_side())
    assert "certificate verify failed" in str(client_error)
    assert client_error.__cause__ is not None
    assert "TLS handshake failed" in str(server_error)
    assert pump.client_transport.connection_lost_called


def test_a_misnamed_certificate_fails_the_handshake() -> None:
    """A server_hostname the certificate does not carry fails the handshake."""
    pump, client, server = pair()

    async def client_side() -> str:
        with pytest.raises(TLSHandshakeError) as failure:
            await client.start_tls(client_context(), server_hostname="other.test")
        return str(failure.value)

    async def server_side() -> None:
        with pytest.raises(TLSHandshakeError):
            await server.start_tls(server_context(), server_side=True)

    message, _ = both(pump, client_side(), server_side())
    assert "other.test" in message


def test_start_tls_is_refused_when_it_cannot_apply() -> None:
    """Refused: on a closed stream (ClosedResourceError), a second time
    (InvalidStateError), while another task reads (BusyResourceError), and
    without server_hostname on a checking client (ArgumentError), which
    leaves the stream in plaintext."""
    pump, client, server = pair()
    with pytest.raises(ArgumentError, match="server_hostname"):
        go(pump, client.start_tls(client_context()))
    go(pump, client.send(b"still plaintext\r\n"))
    assert go(pump, server.readline()) == b"still plaintext\r\n"

    reading = spawn(pump.clock, server.receive())
    settle(pump)
    with pytest.raises(BusyResourceError):
        go(pump, server.start_tls(server_context(), server_side=True))
    go(pump, client.send(b"x"))
    assert reading.result() == b"x"

    starting = spawn(pump.clock, client.start_tls(client_context(), server_hostname=HOSTNAME))
    settle(pump)
    assert not starting.done()  # the server has not started TLS
    with pytest.raises(InvalidStateError):
        go(pump, client.start_tls(client_context(), server_hostname=HOSTNAME))
    go(pump, server.start_tls(server_context(), server_side=True))
    assert starting.result() is None
    with pytest.raises(InvalidStateError):
        go(pump, server.start_tls(server_context(), server_side=True))

    client.abort()
    with pytest.raises(ClosedResourceError):
        go(pump, client.start_tls(client_context(), server_hostname=HOSTNAME))


def test_sending_waits_for_the_peer_inside_tls() -> None:
    """Backpressure works through TLS: a send over the TLS transport's high-water
    mark waits until the peer has read, then every byte arrives."""
    pump, client, server = pair()

    async def server_side() -> None:
        await server.readline()
        await server.start_tls(server_context(), server_side=True)

    both(pump, client_starttls(client), server_side())
    client.transport.set_write_buffer_limits(high=1000, low=100)
    pump.stall("server")
    sending = spawn(pump.clock, client.send(b"z" * 50_000))
    settle(pump)
    assert not sending.done()
    pump.unstall("server")
    settle(pump)
    assert sending.done()
    assert sending.result() is None

    async def read(count: int) -> bytes:
        data = b""
        while len(data) < count:
            data += await server.receive()
        return data

    assert go(pump, read(50_000)) == b"z" * 50_000


def test_a_send_waiting_on_the_transport_below_goes_on_after_the_switch() -> None:
    """A plaintext send is waiting for the peer to read when start_tls switches:
    the transport's resume_writing now goes to the TLS layer, which passes it
    on, so the send completes once the peer reads."""
    pump, client, server = pair()
    # Marks above the size of the server's handshake flight: only the
    # plaintext pauses writing, so only the hand-over can resume it.
    pump.server_transport.set_write_buffer_limits(high=8000, low=1000)
    big = b"G" * 50_000 + b"\r\n"

    async def server_side() -> None:
        await server.readline()
        sending = spawn(pump.clock, server.send(big))
        await checkpoint()  # the send starts, and waits: the client is stalled
        assert server.protocol._writing_paused
        await server.start_tls(server_context(), server_side=True)
        await sending

    async def client_side() -> bytes:
        await client.send(b"STARTTLS\r\n")
        line = await client.readline(limit=60_000)  # the plaintext, then TLS
        await client.start_tls(client_context(), server_hostname=HOSTNAME)
        return line

    pump.stall("client")
    tasks = spawn(pump.clock, client_side()), spawn(pump.clock, server_side())
    settle(pump)
    assert not tasks[1].done()
    pump.unstall("client")
    settle(pump)
    assert tasks[0].result() == big
    assert tasks[1].result() is None


def test_a_read_paused_below_is_resumed_by_the_switch() -> None:
    """A ClientHello bigger than read_limit pauses the plaintext stream's reading;
    start_tls hands the bytes to TLS and resumes reading, so the handshake
    completes, and a tiny read_limit still works inside TLS."""
    pump, client, server = pair(read_limit=8)

    async def server_side() -> bytes:
        await server.readline()
        assert not pump.server_transport.is_reading()
        await server.start_tls(server_context(), server_side=True)
        return await server.readline()

    async def client_side() -> None:
        await client_starttls(client)
        await client.send(b"a line much longer than eight bytes\r\n")

    _, line = both(pump, client_side(), server_side())
    assert line == b"a line much longer than eight bytes\r\n"


def test_eof_before_start_tls_fails_the_handshake() -> None:
    """A peer that sent STARTTLS and then EOF cannot handshake: start_tls raises
    TLSHandshakeError."""
    pump, client, server = pair()

    async def client_side() -> None:
        await client.send(b"STARTTLS\r\n")
        client.send_eof()

    go(pump, client_side())

    async def server_side() -> str:
        assert await server.readline() == b"STARTTLS\r\n"
        with pytest.raises(TLSHandshakeError) as failure:
            await server.start_tls(server_context(), server_side=True)
        return str(failure.value)

    assert "closed the connection during the TLS handshake" in go(pump, server_side())


def test_a_handshake_that_never_completes_times_out() -> None:
    """A peer that never answers: start_tls raises TLSHandshakeTimeoutError after
    handshake_timeout on the fake clock, and the connection is aborted."""
    pump, client, _server = pair()
    pump.stall("server")

    async def client_side() -> float:
        start = pump.clock.now()
        with pytest.raises(TLSHandshakeTimeoutError):
            await client.start_tls(client_context(), server_hostname=HOSTNAME, handshake_timeout=5)
        return pump.clock.now() - start

    assert run(pump.clock, client_side()) == 5
    assert pump.client_transport.connection_lost_called


def test_cancelling_the_handshake_aborts_the_connection() -> None:
    """A task cancelled while start_tls waits (here by fail_after) aborts the
    connection: a stream half-way into TLS is of no use."""
    pump, client, _server = pair()
    pump.stall("server")

    async def client_side() -> None:
        with fail_after(2):
            await client.start_tls(client_context(), server_hostname=HOSTNAME)

    with pytest.raises(TimedOutError):
        run(pump.clock, client_side())
    pump.clock.advance(0)
    assert pump.client_transport.connection_lost_called
    with pytest.raises(ClosedResourceError):
        go(pump, client.send(b"x"))


# ------------------------------------------------------------------ loopback


@pytest.mark.drivers(requires={TCPRuntime})
def test_starttls_over_loopback(driver: str) -> None:
    """On real sockets: a serve_tcp handler upgrades on STARTTLS (server side),
    the open_tcp client sends its ClientHello right behind the command, and
    lines flow inside TLS; both sides see the session's facts."""
    runtime = open_runtime(driver)
    served: Future[tuple[list[bytes], Any]] = Future(runtime.call_soon)

    async def handler(stream: Stream) -> None:
        lines = [await stream.readline()]
        await stream.send(b"ECHO " + lines[0])
        lines.append(await stream.readline())
        await stream.start_tls(server_context(), server_side=True)
        while line := await stream.readline():
            lines.append(line)
            await stream.send(b"ECHO " + line)
        served.set_result((lines, stream.get_extra_info("version")))

    async def client(port: int) -> tuple[list[bytes], Any, Any]:
        stream = await open_tcp(runtime, "127.0.0.1", port)
        async with stream:
            await stream.send(b"HELLO\r\n")
            replies = [await stream.readline()]
            await client_starttls(stream)
            for word, count in ((b"one\r\n", 1), (b"two\r\n", 20_000)):
                await stream.send(word * count)
                got = b""
                while len(got) < len(b"ECHO " + word) * count:
                    got += await stream.receive()
                replies.append(got)
            stream.send_eof()
            assert await stream.receive() == b""
            peercert = stream.get_extra_info("peercert")
            peername = stream.get_extra_info("peername")
        return replies, peercert, peername

    try:
        listener = serve_tcp(runtime, handler)
        port = listener.addresses[0][1]
        replies, peercert, peername = run(runtime, client(port), timeout=TIMEOUT)
        lines, version = run(runtime, _wait(served), timeout=TIMEOUT)
        listener.close()
    finally:
        runtime.close()
    assert replies == [b"ECHO HELLO\r\n", b"ECHO one\r\n", b"ECHO two\r\n" * 20_000]
    assert lines == [b"HELLO\r\n", b"STARTTLS\r\n", b"one\r\n", *[b"two\r\n"] * 20_000]
    assert ("DNS", HOSTNAME) in peercert["subjectAltName"]
    assert peername[:2] == ("127.0.0.1", port)
    assert version in ("TLSv1.2", "TLSv1.3")


def test_an_untrusted_certificate_over_loopback() -> None:
    """On the reactor: an untrusted server certificate makes the client's
    start_tls raise TLSHandshakeError with the reason, and the server's too."""
    reactor = Reactor()
    served: Future[BaseException] = Future(reactor.call_soon)

    async def handler(stream: Stream) -> None:
        await stream.readline()
        try:
            await stream.start_tls(server_context(), server_side=True)
        except TLSHandshakeError as exc:
            served.set_result(exc)

    async def client(port: int) -> str:
        stream = await open_tcp(reactor, "127.0.0.1", port)
        await stream.send(b"STARTTLS\r\n")
        with pytest.raises(TLSHandshakeError) as failure:
            await stream.start_tls(client_context(certificates().other_ca), server_hostname=HOSTNAME)
        await stream.close()
        return str(failure.value)

    try:
        listener = serve_tcp(reactor, handler)
        message = run(reactor, client(listener.addresses[0][1]), timeout=TIMEOUT)
        server_error = run(reactor, _wait(served), timeout=TIMEOUT)
        listener.close()
    finally:
        reactor.close()
    assert "certificate verify failed" in message
    assert isinstance(server_error, TLSHandshakeError)


async def _wait(future: Future[_T]) -> _T:
    return await future

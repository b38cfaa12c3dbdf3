"""The contract: asyncio's names, both ways round, and the clock rule."""

from __future__ import annotations

import asyncio
import socket

import pytest

from weft.drivers import Runtime
from weft.drivers.reactor import Reactor
from weft.drivers.testing import MemoryTransport, RecordingProtocol, connect
from weft.protocols import EchoProtocol, contract
from weft.protocols.contract import Protocol, Transport, clock_of
from weft.protocols.errors import NoClockError, WeftError
from weft.protocols.framing import LineProtocol


def static_checks(memory: MemoryTransport, aio: asyncio.Transport) -> None:
    """Never run: mypy --strict checks these assignments, which is the test.

    A weft memory transport and an asyncio transport are both weft Transports;
    a weft protocol class is a weft Protocol.
    """
    _memory: Transport = memory
    _aio: Transport = aio
    _protocol: Protocol = EchoProtocol()


def test_transport_names_are_asyncios() -> None:
    """Every method of weft's Transport exists on asyncio.Transport with the same
    name, so the two are interchangeable."""
    names = {
        name
        for klass in (
            contract.BaseTransport,
            contract.ReadTransport,
            contract.WriteTransport,
            contract.Transport,
        )
        for name in vars(klass)
        if not name.startswith("_")
    }
    assert names >= {
        "write",
        "writelines",
        "write_eof",
        "can_write_eof",
        "close",
        "abort",
        "pause_reading",
        "resume_reading",
        "is_reading",
        "is_closing",
        "get_extra_info",
        "set_write_buffer_limits",
        "get_write_buffer_size",
        "get_write_buffer_limits",
    }
    for name in names:
        assert callable(getattr(asyncio.Transport, name)), name
    protocol_names = {
        name for name in vars(contract.Protocol) | vars(contract.BaseProtocol) if not name.startswith("_")
    }
    for name in protocol_names:
        assert callable(getattr(asyncio.Protocol, name)), name


class Upper(LineProtocol):
    """A weft line protocol that answers each line in upper case."""

    def line_received(self, line: bytes) -> None:
        self.send_line(line.upper())


def test_a_weft_protocol_runs_on_asyncio_unchanged() -> None:
    """A weft LineProtocol, given to asyncio as is, serves a real asyncio
    connection (over a loopback socket pair)."""

    async def scenario() -> bytes:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        with theirs:
            transport, _ = await loop.connect_accepted_socket(Upper, ours)
            reader, writer = await asyncio.open_connection(sock=theirs)
            writer.write(b"hello\nweft\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.readexactly(11), timeout=10)
            writer.close()
            transport.close()
            return answer

    assert asyncio.run(scenario()) == b"HELLO\nWEFT\n"


def test_an_asyncio_protocol_runs_on_a_weft_transport_unchanged() -> None:
    """An asyncio.Protocol subclass gets data and EOF from a weft transport."""

    class Collect(asyncio.Protocol):
        def __init__(self) -> None:
            self.data = b""
            self.eof = False

        def data_received(self, data: bytes) -> None:
            self.data += data

        def eof_received(self) -> bool:
            self.eof = True
            return False

    protocol = Collect()
    conn = connect(protocol)
    conn.deliver(b"abc")
    conn.deliver_eof()
    assert (protocol.data, protocol.eof, conn.closed) == (b"abc", True, True)


def test_protocol_defaults_do_nothing() -> None:
    """Subclassing the contract's Protocol gives do-nothing defaults; eof_received
    returns None, so the transport closes."""

    class Bare(Protocol):
        pass

    conn = connect(Bare())
    conn.deliver(b"ignored")
    conn.deliver_eof()
    assert conn.closed
    assert conn.written == b""


def test_clock_of_finds_the_clock_or_says_why_not() -> None:
    """clock_of returns the transport's clock; a transport without one raises
    NoClockError (a WeftError) naming the transport."""
    protocol = RecordingProtocol()
    connect(protocol)
    assert clock_of(protocol.transport) is protocol.transport.get_extra_info("clock")

    class NoClock:
        def get_extra_info(self, name: str, default: object = None) -> object:
            return default

    with pytest.raises(NoClockError, match="NoClock offers no clock") as caught:
        clock_of(NoClock())  # type: ignore[arg-type]
    assert isinstance(caught.value, WeftError)


def runtime_static_check(reactor: Reactor) -> Runtime:
    """Never run: mypy checks that the reactor is a Runtime."""
    return reactor

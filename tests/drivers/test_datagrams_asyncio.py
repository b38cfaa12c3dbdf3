"""The asyncio driver's datagram endpoints: weft's contract in front of asyncio's (and uvloop's).

The contract is checked on both loops by tests/conformance; here: flow
control through asyncio's own queue (its socket mocked to refuse), an
asyncio program's running loop, uvloop's padded UNIX addresses, and what
the adapter changes about asyncio (an empty datagram, errors that end the
endpoint rather than being logged).
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import TIMEOUT
from weft.drivers.asyncio import AsyncioDatagramTransport, AsyncioRuntime
from weft.drivers.testing import RecordingDatagramProtocol
from weft.protocols.errors import DatagramAddressError

pytestmark = pytest.mark.drivers(only=("asyncio", "uvloop"))


@pytest.fixture
def runtime(driver: str) -> Iterator[AsyncioRuntime]:
    made = AsyncioRuntime.with_uvloop() if driver == "uvloop" else AsyncioRuntime()
    yield made
    made.close()


def open_endpoint(runtime: AsyncioRuntime, protocol: RecordingDatagramProtocol, *args: Any) -> Any:
    opening = runtime.open_udp(lambda: protocol, *args)
    assert runtime.run_until(opening.done, TIMEOUT)
    transport = opening.result()
    assert isinstance(transport, AsyncioDatagramTransport)
    return transport


class RefusingSocket:
    """asyncio's socket, but send() refuses while ``full`` (a full kernel buffer)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.full = True

    def send(self, data: bytes) -> int:
        if self.full:
            raise BlockingIOError(errno.EAGAIN, "would block")
        return self.sock.send(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


@pytest.mark.drivers(only=("asyncio",))
def test_flow_control_comes_from_asyncios_queue(runtime: AsyncioRuntime) -> None:
    """asyncio keeps the queue: with its socket refusing, the weft protocol gets
    pause_writing over the marks weft set, resume_writing once asyncio has
    sent, and every datagram arrives.  (uvloop's socket is libuv's: not mocked.)"""
    server = RecordingDatagramProtocol()
    server_transport = open_endpoint(runtime, server, ("127.0.0.1", 0))
    client = RecordingDatagramProtocol()
    client_transport = open_endpoint(runtime, client, None, server_transport.get_extra_info("sockname"))
    client_transport.set_write_buffer_limits(high=2500, low=500)
    under = client_transport._under
    refusing = RefusingSocket(under._sock)
    under._sock = refusing
    for index in range(4):
        client_transport.sendto(b"%d" % index + b"." * 999)
    assert client.count("pause_writing") == 1
    assert client_transport.get_write_buffer_size() == 4000
    refusing.full = False
    assert runtime.run_until(lambda: client.count("resume_writing") == 1, TIMEOUT)
    assert runtime.run_until(lambda: len(server.datagrams) == 4, TIMEOUT)
    assert [data[:1] for data in server.payloads] == [b"0", b"1", b"2", b"3"]


def test_a_runtime_on_an_asyncio_programs_loop(driver: str) -> None:
    """An asyncio program opens weft endpoints on its own running loop and
    awaits them with wrap_future; weft's errors come from sendto there too."""

    async def main() -> list[tuple[bytes, Any]]:
        runtime = AsyncioRuntime(asyncio.get_running_loop())
        server = RecordingDatagramProtocol()
        await runtime.wrap_future(runtime.open_udp(lambda: server, ("127.0.0.1", 0)))
        address = server.transport.get_extra_info("sockname")
        client = RecordingDatagramProtocol()
        transport = await runtime.wrap_future(runtime.open_udp(lambda: client, None, address))
        with pytest.raises(DatagramAddressError):
            transport.sendto(b"x", ("127.0.0.1", 9))
        transport.sendto(b"from asyncio")
        for _ in range(1000):
            if server.datagrams:
                break
            await asyncio.sleep(0)  # a loop turn, not a wait on time
        runtime.close()
        return server.datagrams

    if driver == "uvloop":
        import uvloop

        received = uvloop.run(main())
    else:
        received = asyncio.run(main())
    assert [data for data, _ in received] == [b"from asyncio"]


def test_an_abstract_unix_sender_is_reported_as_asyncio_reports_it(
    runtime: AsyncioRuntime, tmp_path: Path
) -> None:
    """A sender autobound to an abstract name is seen with that name alone (uvloop
    pads it with NULs to the size of sun_path), and can be answered there."""
    path = str(tmp_path / "server")
    server = RecordingDatagramProtocol()
    opening = runtime.open_unix_datagram(lambda: server, path)
    assert runtime.run_until(opening.done, TIMEOUT)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.bind("")  # Linux: an abstract name of its own
        sender.settimeout(TIMEOUT)
        sender.sendto(b"hello", path)
        assert runtime.run_until(lambda: bool(server.datagrams), TIMEOUT)
        [(data, address)] = server.datagrams
        assert (data, address) == (b"hello", sender.getsockname())
        opening.result().sendto(b"answer", address)  # sent at once: nothing queued
        assert sender.recv(100) == b"answer"


def test_an_unbound_unix_sender_is_none(runtime: AsyncioRuntime, tmp_path: Path) -> None:
    """A datagram from an unbound UNIX socket has no address: None, on both loops."""
    path = str(tmp_path / "server")
    server = RecordingDatagramProtocol()
    opening = runtime.open_unix_datagram(lambda: server, path)
    assert runtime.run_until(opening.done, TIMEOUT)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.sendto(b"anonymous", path)
        assert runtime.run_until(lambda: bool(server.datagrams), TIMEOUT)
    assert server.datagrams == [(b"anonymous", None)]

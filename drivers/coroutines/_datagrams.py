"""Datagram sockets for coroutines: ``await sock.send(data, address)``, ``await sock.receive()``.

A :class:`DatagramSocket` wraps a :class:`DatagramSocketProtocol`, an
ordinary weft datagram protocol that any driver runs (the memory network
included); :func:`open_udp` and :func:`open_unix_datagram` hand one to a
runtime's ``open_udp``/``open_unix_datagram`` and return the socket::

    async with await open_udp(runtime, remote_address=("127.0.0.1", 5300)) as sock:
        await sock.send(b"ping")
        with fail_after(1.0):                  # the deadline helpers work as on streams
            data, address = await sock.receive()

Receiving is bounded: at most ``max_queued`` datagrams (256 by default)
wait for :meth:`DatagramSocket.receive`; one that arrives when that many
wait is dropped and counted in :attr:`DatagramSocket.dropped`, as the
kernel drops what a slow reader's buffer cannot hold.  Datagrams are
never reordered by the queue.  An error the network reports
(``error_received``: ``ConnectionRefusedError`` on a connected socket
whose peer's port is closed) takes its place in the queue and is raised by
the ``receive`` that reaches it; the socket stays usable.

Sending waits only for flow control: :meth:`DatagramSocket.send` hands the
datagram to the transport (weft's errors, such as
:class:`~weft.protocols.errors.DatagramAddressError`, raise at once) and,
while the transport has told the protocol to pause (more than its
high-water mark waits for the kernel), waits until it resumes.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any, Self

from weft.drivers._core.futures import Future
from weft.drivers._runtime import DatagramRuntime
from weft.drivers.coroutines._errors import Cancelled
from weft.drivers.coroutines._task import current_task
from weft.protocols.contract import DatagramTransport
from weft.protocols.errors import ArgumentError, ClosedResourceError

__all__ = [
    "DEFAULT_MAX_QUEUED",
    "DatagramSocket",
    "DatagramSocketProtocol",
    "open_udp",
    "open_unix_datagram",
]

#: Datagrams a :class:`DatagramSocket` holds for ``receive`` before it drops new ones.
DEFAULT_MAX_QUEUED = 256


def _waiter() -> Future[None]:
    """A future the current task can wait on, resolved on its own host."""
    return Future(current_task().host.call_soon)


def _wake_all(waiters: list[Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
    waiters.clear()


class DatagramSocketProtocol:
    """The protocol under a :class:`DatagramSocket`: a bounded queue of what arrives, and flow control.

    Give it (or a factory making it) to any driver's ``open_udp``; its
    :attr:`socket` is the coroutine side.
    """

    def __init__(self, *, max_queued: int = DEFAULT_MAX_QUEUED) -> None:
        if type(max_queued) is not int or max_queued < 1:
            raise ArgumentError(f"max_queued must be an int of at least 1, not {max_queued!r}")
        self.max_queued = max_queued
        self.transport: DatagramTransport | None = None
        self.socket = DatagramSocket(self)
        # Datagrams as (data, address), and errors, in the order they came.
        self._queue: deque[tuple[bytes, Any] | Exception] = deque()
        self._dropped = 0
        self._lost = False
        self._exception: BaseException | None = None
        self._writing_paused = False
        self._receivers: list[Future[None]] = []
        self._senders: list[Future[None]] = []
        self._lost_waiters: list[Future[None]] = []

    # ------------------------------------------------------------ callbacks

    def connection_made(self, transport: DatagramTransport) -> None:
        """Keep the transport."""
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """Queue the datagram, or drop and count it when ``max_queued`` wait."""
        self._put((data, addr))

    def error_received(self, exc: Exception) -> None:
        """Queue the error: the ``receive`` that reaches it raises it."""
        self._put(exc)

    def pause_writing(self) -> None:
        """The transport holds more than its high-water mark: senders wait."""
        self._writing_paused = True

    def resume_writing(self) -> None:
        """The transport drained to its low-water mark: senders go on."""
        self._writing_paused = False
        _wake_all(self._senders)

    def connection_lost(self, exc: BaseException | None) -> None:
        """Note the end (and its error); wake every waiter."""
        self._lost = True
        self._exception = exc
        self._writing_paused = False
        for waiters in (self._receivers, self._senders, self._lost_waiters):
            _wake_all(waiters)

    # ------------------------------------------------------------ internals

    def _put(self, item: tuple[bytes, Any] | Exception) -> None:
        if len(self._queue) >= self.max_queued:
            self._dropped += 1
            return
        self._queue.append(item)
        _wake_all(self._receivers)


class DatagramSocket:
    """A datagram endpoint for coroutines: send, receive, close.

    Made by :func:`open_udp` and :func:`open_unix_datagram` (or as the
    :attr:`DatagramSocketProtocol.socket` of a protocol you hand to a driver
    yourself).  Any number of tasks may send and receive at once; each
    datagram goes to one receiver.  ``async with sock:`` closes it at the
    end of the block.
    """

    def __init__(self, protocol: DatagramSocketProtocol) -> None:
        self._protocol = protocol
        self._closed = False

    @property
    def protocol(self) -> DatagramSocketProtocol:
        """The protocol under this socket."""
        return self._protocol

    @property
    def transport(self) -> DatagramTransport:
        """The transport (:class:`ClosedResourceError` before the endpoint is made)."""
        transport = self._protocol.transport
        if transport is None:
            raise ClosedResourceError("the datagram socket is not open yet")
        return transport

    @property
    def dropped(self) -> int:
        """Datagrams (and errors) dropped because ``max_queued`` already waited."""
        return self._protocol._dropped

    @property
    def local_address(self) -> Any:
        """Where the socket is bound (``get_extra_info("sockname")``)."""
        return self.transport.get_extra_info("sockname")

    @property
    def remote_address(self) -> Any:
        """The peer of a connected socket, else ``None``."""
        return self.transport.get_extra_info("peername")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The transport's extra info (``"sockname"``, ``"peername"``, ``"clock"``...)."""
        return self.transport.get_extra_info(name, default)

    # -------------------------------------------------------------- sending

    async def send(self, data: bytes | bytearray | memoryview, address: Any = None) -> None:
        """Send ``data`` as one datagram to ``address`` (``None`` on a connected
        socket); return at once, or, while the transport holds more than its
        high-water mark, once it has drained to its low-water mark.

        The transport's errors raise at once
        (:class:`~weft.protocols.errors.DatagramAddressError`,
        :class:`~weft.protocols.errors.DatagramTooLargeError`); after
        :meth:`close` or the end of the endpoint, :class:`ClosedResourceError`.
        """
        self._check_open().sendto(data, address)
        protocol = self._protocol
        while protocol._writing_paused and not protocol._lost:
            waiter = _waiter()
            protocol._senders.append(waiter)
            try:
                await waiter
            finally:
                _forget(protocol._senders, waiter)

    # ------------------------------------------------------------ receiving

    async def receive(self) -> tuple[bytes, Any]:
        """The next datagram and where it came from, as soon as one is there.

        An error the network reported in its place (``ConnectionRefusedError``
        ...) is raised instead, once.  After :meth:`close`, or once the
        endpoint has ended and nothing is left to receive,
        :class:`ClosedResourceError` (or the endpoint's own error, if it
        ended with one).
        """
        protocol = self._protocol
        while True:
            if self._closed:
                raise ClosedResourceError("the datagram socket is closed")
            if protocol._queue:
                item = protocol._queue.popleft()
                if isinstance(item, Exception):
                    raise item
                return item
            if protocol._lost:
                if protocol._exception is not None:
                    raise protocol._exception
                raise ClosedResourceError("the datagram socket's endpoint has ended")
            waiter = _waiter()
            protocol._receivers.append(waiter)
            try:
                await waiter
            finally:
                _forget(protocol._receivers, waiter)

    # -------------------------------------------------------------- closing

    def abort(self) -> None:
        """Close at once, dropping what waits to be sent."""
        self._closed = True
        if self._protocol.transport is not None:
            self._protocol.transport.abort()

    async def close(self) -> None:
        """Send what waits, close, and wait until the endpoint has ended.

        If the task is cancelled while it waits, the endpoint is aborted and
        the cancellation goes on.
        """
        self._closed = True
        protocol = self._protocol
        if protocol.transport is None or protocol._lost:
            return
        protocol.transport.close()  # connection_lost never comes from inside it
        waiter = _waiter()
        protocol._lost_waiters.append(waiter)
        try:
            await waiter
        except Cancelled:
            protocol.transport.abort()
            raise

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "lost" if self._protocol._lost else "open"
        return (
            f"<DatagramSocket {state} queued={len(self._protocol._queue)} dropped={self._protocol._dropped}>"
        )

    def _check_open(self) -> DatagramTransport:
        protocol = self._protocol
        if self._closed:
            raise ClosedResourceError("the datagram socket is closed")
        if protocol._lost:
            if protocol._exception is not None:
                raise protocol._exception
            raise ClosedResourceError("the datagram socket's endpoint has ended")
        return self.transport


def _forget(waiters: list[Future[None]], waiter: Future[None]) -> None:
    """Take a waiter off its list (a cancelled wait leaves none behind)."""
    if waiter in waiters:
        waiters.remove(waiter)


# ----------------------------------------------------------------- opening


async def open_udp(
    runtime: DatagramRuntime,
    local_address: tuple[Any, ...] | None = None,
    remote_address: tuple[Any, ...] | None = None,
    *,
    family: int = 0,
    reuse_port: bool = False,
    allow_broadcast: bool = False,
    max_queued: int = DEFAULT_MAX_QUEUED,
) -> DatagramSocket:
    """A UDP socket on ``runtime`` (the arguments are its ``open_udp``'s), once open."""
    protocol = DatagramSocketProtocol(max_queued=max_queued)
    await runtime.open_udp(
        lambda: protocol,
        local_address,
        remote_address,
        family=family,
        reuse_port=reuse_port,
        allow_broadcast=allow_broadcast,
    )
    return protocol.socket


async def open_unix_datagram(
    runtime: DatagramRuntime,
    local_path: str | bytes | os.PathLike[str] | None = None,
    remote_path: str | bytes | os.PathLike[str] | None = None,
    *,
    max_queued: int = DEFAULT_MAX_QUEUED,
) -> DatagramSocket:
    """A UNIX datagram socket on ``runtime`` bound to ``local_path`` and
    connected to ``remote_path`` (either may be ``None``), once open."""
    protocol = DatagramSocketProtocol(max_queued=max_queued)
    await runtime.open_unix_datagram(lambda: protocol, local_path, remote_path)
    return protocol.socket

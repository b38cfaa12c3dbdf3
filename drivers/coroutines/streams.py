"""Streams: ``await stream.receive()`` and ``await stream.send(data)``, built on a protocol.

A :class:`Stream` wraps a :class:`StreamProtocol`, an ordinary weft protocol
that any driver runs (the reactor, asyncio, the memory driver): the driver
calls the protocol's callbacks, the protocol buffers what arrived and wakes
the task waiting for it.  The coroutine layer sits on the callback layer,
never the reverse.

Flow control is automatic both ways:

* :meth:`Stream.send` writes, and if that took the transport's write buffer
  over its high-water mark (``pause_writing``) it waits until the buffer has
  drained to its low-water mark (``resume_writing``);
* when more than ``read_limit`` bytes sit unread, the protocol pauses the
  transport's reading, and resumes it once the reader has taken them.

Waiting happens on the host of the task that waits (``current_task().host``),
so the protocol needs no clock or loop of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from weft.drivers.coroutines.errors import Cancelled
from weft.drivers.coroutines.task import Task, current_task, spawn
from weft.drivers.futures import Future
from weft.drivers.runtime import ListenerLike, Runtime
from weft.protocols.contract import Transport
from weft.protocols.errors import ArgumentError, BusyResourceError, ClosedResourceError, LineTooLongError

__all__ = [
    "DEFAULT_READ_LIMIT",
    "Stream",
    "StreamHandler",
    "StreamProtocol",
    "open_pipes",
    "open_tcp",
    "open_unix",
    "serve_tcp",
]

logger = logging.getLogger("weft.drivers.coroutines")

#: Unread bytes a stream buffers before it pauses the transport's reading.
DEFAULT_READ_LIMIT = 256 * 1024

#: What :func:`serve_tcp` runs for each connection.
StreamHandler = Callable[["Stream"], Awaitable[object]]


def _waiter() -> Future[None]:
    """A future the current task can wait on, resolved on its own host."""
    return Future(current_task().host.call_soon)


def _wake(future: Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class StreamProtocol:
    """The protocol under a :class:`Stream`: buffers what arrives, tracks flow control.

    Give it (or a factory making it) to any driver; its :attr:`stream` is the
    coroutine side.  ``on_connection(stream)``, if given, is called from
    ``connection_made`` (:func:`serve_tcp` starts its handler task there).
    """

    def __init__(
        self,
        *,
        read_limit: int = DEFAULT_READ_LIMIT,
        on_connection: Callable[[Stream], object] | None = None,
    ) -> None:
        if read_limit < 1:
            raise ArgumentError(f"read_limit must be at least 1, not {read_limit!r}")
        self.read_limit = read_limit
        self._on_connection = on_connection
        self.transport: Transport | None = None
        self.stream = Stream(self)
        self._buffer = bytearray()
        self._eof = False
        self._lost = False
        self._exception: BaseException | None = None
        self._reading_paused = False
        self._writing_paused = False
        # A pending readline may need more than read_limit buffered to find its end.
        self._wanted = 0
        self._read_waiter: Future[None] | None = None
        self._write_waiters: list[Future[None]] = []
        self._lost_waiters: list[Future[None]] = []

    # ------------------------------------------------------------ callbacks

    def connection_made(self, transport: Any) -> None:
        """Keep the transport; call ``on_connection``."""
        self.transport = transport
        if self._on_connection is not None:
            self._on_connection(self.stream)

    def data_received(self, data: bytes) -> None:
        """Buffer ``data``, wake the reader, pause reading if too much is unread."""
        self._buffer += data
        self._update_reading()
        _wake(self._read_waiter)

    def eof_received(self) -> bool:
        """Note the end of input; keep the connection half-open (the stream closes it)."""
        self._eof = True
        _wake(self._read_waiter)
        return True

    def connection_lost(self, exc: BaseException | None) -> None:
        """Note the end (and its error); wake every waiter."""
        self._lost = True
        self._eof = True
        self._exception = exc
        self._writing_paused = False
        _wake(self._read_waiter)
        for waiter in (*self._write_waiters, *self._lost_waiters):
            _wake(waiter)
        self._write_waiters.clear()
        self._lost_waiters.clear()

    def pause_writing(self) -> None:
        """The write buffer is over its high-water mark: senders wait."""
        self._writing_paused = True

    def resume_writing(self) -> None:
        """The write buffer drained to its low-water mark: senders go on."""
        self._writing_paused = False
        waiters, self._write_waiters = self._write_waiters, []
        for waiter in waiters:
            _wake(waiter)

    # ------------------------------------------------------------ internals

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or self._lost:
            return
        too_much = len(self._buffer) > max(self.read_limit, self._wanted)
        if too_much and not self._reading_paused:
            self._reading_paused = True
            transport.pause_reading()
        elif not too_much and self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()

    def _take(self, count: int) -> bytes:
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        self._update_reading()
        return data

    async def _wait_for_data(self) -> None:
        if self._read_waiter is not None and not self._read_waiter.done():
            raise BusyResourceError("another task is already reading from this stream")
        self._read_waiter = waiter = _waiter()
        try:
            await waiter
        finally:
            self._read_waiter = None


class Stream:
    """A byte stream for coroutines: receive, readline, send, send_eof, close.

    Made by :func:`open_tcp`, :func:`open_unix`, :func:`open_pipes` and
    :func:`serve_tcp`, or as the :attr:`StreamProtocol.stream` of a protocol
    you hand to a driver yourself.  One task may read and one or more may send
    at a time.  ``async with stream:`` closes it at the end of the block.
    """

    def __init__(self, protocol: StreamProtocol) -> None:
        self._protocol = protocol
        self._closed = False

    @property
    def protocol(self) -> StreamProtocol:
        """The protocol under this stream."""
        return self._protocol

    @property
    def transport(self) -> Transport:
        """The transport (:class:`ClosedResourceError` before the connection is made)."""
        transport = self._protocol.transport
        if transport is None:
            raise ClosedResourceError("the stream is not connected yet")
        return transport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The transport's extra info (``"peername"``, ``"sockname"``, ...)."""
        return self.transport.get_extra_info(name, default)

    # -------------------------------------------------------------- reading

    def _check_readable(self) -> None:
        if self._closed:
            raise ClosedResourceError("the stream is closed")

    def _end_of_input(self) -> bytes:
        exc = self._protocol._exception
        if exc is not None:
            raise exc
        return b""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Up to ``max_bytes`` bytes, as soon as any have arrived; ``b""`` at EOF.

        Once the buffered data is used up, a connection lost with an error
        raises that error (every time it is called).
        """
        if max_bytes < 1:
            raise ArgumentError(f"max_bytes must be at least 1, not {max_bytes!r}")
        protocol = self._protocol
        while True:
            self._check_readable()
            if protocol._buffer:
                return protocol._take(max_bytes)
            if protocol._eof:
                return self._end_of_input()
            await protocol._wait_for_data()

    async def readline(self, limit: int = 65536) -> bytes:
        """The next line, up to and including ``b"\\n"``; ``b""`` at EOF.

        At EOF a last line without ``b"\\n"`` is returned as it is.  A line
        longer than ``limit`` bytes (counting the ``b"\\n"``) raises
        :class:`~weft.protocols.errors.LineTooLongError` and consumes nothing:
        the stream stays usable, and the bytes are still there for
        :meth:`receive` (to skip the line, or to read it in pieces).
        """
        if limit < 1:
            raise ArgumentError(f"limit must be at least 1, not {limit!r}")
        protocol = self._protocol
        while True:
            self._check_readable()
            buffer = protocol._buffer
            end = buffer.find(b"\n", 0, limit)
            if end >= 0:
                return protocol._take(end + 1)
            if len(buffer) > limit:
                raise LineTooLongError(
                    f"line longer than the limit of {limit} bytes", limit=limit, length=len(buffer)
                )
            if protocol._eof:
                return protocol._take(len(buffer)) if buffer else self._end_of_input()
            protocol._wanted = limit
            protocol._update_reading()
            try:
                await protocol._wait_for_data()
            finally:
                protocol._wanted = 0
                protocol._update_reading()

    # -------------------------------------------------------------- writing

    def _check_writable(self) -> Transport:
        protocol = self._protocol
        if self._closed:
            raise ClosedResourceError("the stream is closed")
        if protocol._lost:
            if protocol._exception is not None:
                raise protocol._exception
            raise ClosedResourceError("the connection is closed")
        return self.transport

    async def send(self, data: bytes | bytearray | memoryview) -> None:
        """Write ``data``; if that put the write buffer over its high-water
        mark, return only once it has drained to its low-water mark.

        Raises :class:`ClosedResourceError` after :meth:`close` or the end of
        the connection (or the connection's error, if it was lost with one).
        """
        self._check_writable().write(data)
        protocol = self._protocol
        while protocol._writing_paused:
            waiter = _waiter()
            protocol._write_waiters.append(waiter)
            await waiter
        self._check_writable()

    def send_eof(self) -> None:
        """Half-close: the peer reads EOF once what was sent is flushed; receiving goes on.

        Sending after this raises :class:`~weft.protocols.errors.WriteAfterEofError`.
        """
        self._check_writable().write_eof()

    # -------------------------------------------------------------- closing

    def abort(self) -> None:
        """Close at once, dropping whatever is still unsent."""
        self._closed = True
        if self._protocol.transport is not None:
            self._protocol.transport.abort()

    async def close(self) -> None:
        """Close after flushing what was sent, and wait until the connection is gone.

        Calling it again waits again (and does nothing else).  If the task
        is cancelled while it waits (a peer that never reads), the connection
        is aborted and the cancellation goes on.
        """
        self._closed = True
        protocol = self._protocol
        if protocol.transport is None:
            return
        protocol.transport.close()
        if protocol._lost:
            return
        waiter = _waiter()
        protocol._lost_waiters.append(waiter)
        try:
            await waiter
        except Cancelled:
            protocol.transport.abort()
            raise

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "lost" if self._protocol._lost else "open"
        return f"<Stream {state} buffered={len(self._protocol._buffer)}>"


# ----------------------------------------------------------- opening


async def open_tcp(
    runtime: Runtime, host: str, port: int, *, timeout: float = 30.0, read_limit: int = DEFAULT_READ_LIMIT
) -> Stream:
    """Connect to ``host:port`` on ``runtime``; the stream once connected (or the error)."""
    protocol = StreamProtocol(read_limit=read_limit)
    await runtime.connect_tcp(lambda: protocol, host, port, timeout=timeout)
    return protocol.stream


async def open_unix(
    runtime: Runtime, path: str, *, timeout: float = 30.0, read_limit: int = DEFAULT_READ_LIMIT
) -> Stream:
    """Connect to the UNIX-domain socket at ``path``; the stream once connected."""
    protocol = StreamProtocol(read_limit=read_limit)
    await runtime.connect_unix(lambda: protocol, path, timeout=timeout)
    return protocol.stream


def open_pipes(
    runtime: Runtime,
    read_fd: int,
    write_fd: int,
    *,
    close_fds: bool = True,
    read_limit: int = DEFAULT_READ_LIMIT,
) -> Stream:
    """A stream over two file descriptors (pipes, stdio); synchronous, as the
    runtime's ``connect_pipes`` is."""
    protocol = StreamProtocol(read_limit=read_limit)
    runtime.connect_pipes(lambda: protocol, read_fd, write_fd, close_fds=close_fds)
    return protocol.stream


def serve_tcp(
    runtime: Runtime,
    handler: StreamHandler,
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    read_limit: int = DEFAULT_READ_LIMIT,
) -> ListenerLike:
    """Accept TCP connections and run ``await handler(stream)`` as one task each.

    When the handler returns, its stream is closed.  An exception in a
    handler is logged (``weft.drivers.coroutines`` logger) and aborts that
    connection only.  Closing the listener stops accepting; running
    handlers go on.
    """
    tasks: set[Task[None]] = set()

    async def handle(stream: Stream) -> None:
        try:
            await handler(stream)
        except Exception:
            logger.exception("stream handler %r failed; closing its connection", handler)
            stream.abort()
            return
        await stream.close()

    def start(stream: Stream) -> None:
        task = spawn(runtime, handle(stream), name=f"serve_tcp handler {stream.get_extra_info('peername')!r}")
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return runtime.listen_tcp(lambda: StreamProtocol(read_limit=read_limit, on_connection=start), host, port)

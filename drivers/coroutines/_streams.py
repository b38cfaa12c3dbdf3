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

:meth:`Stream.start_tls` upgrades a plaintext stream in place (STARTTLS): the
TLS layer of :mod:`weft.protocols.tls` slides in between the transport and
the protocol, and what the protocol had buffered past the switch point goes
to it first.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Self

from weft.drivers._core.futures import Future
from weft.drivers.coroutines._errors import Cancelled
from weft.drivers.coroutines._task import current_task
from weft.protocols.contract import Transport
from weft.protocols.errors import (
    ArgumentError,
    BusyResourceError,
    ClosedResourceError,
    InvalidStateError,
    LineTooLongError,
)
from weft.protocols.tls import DEFAULT_CLOSE_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, TLSProtocol, start_tls

__all__ = [
    "DEFAULT_READ_LIMIT",
    "DEFAULT_WRITE_LOW_WATER",
    "Stream",
    "StreamHandler",
    "StreamProtocol",
]

logger = logging.getLogger("weft.drivers.coroutines")

#: Unread bytes a stream buffers before it pauses the transport's reading.
DEFAULT_READ_LIMIT = 256 * 1024

#: :meth:`Stream.send` returns once at most this many bytes wait to be sent
#: (asyncio's default low-water mark).
DEFAULT_WRITE_LOW_WATER = 16 * 1024

#: What :func:`~weft.drivers.coroutines.serve_tcp` runs for each connection.
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
        write_low_water: int = DEFAULT_WRITE_LOW_WATER,
        on_connection: Callable[[Stream], object] | None = None,
    ) -> None:
        if read_limit < 1:
            raise ArgumentError(f"read_limit must be at least 1, not {read_limit!r}")
        if write_low_water < 0:
            raise ArgumentError(f"write_low_water must be at least 0, not {write_low_water!r}")
        self.read_limit = read_limit
        self.write_low_water = write_low_water
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
        """Keep the transport, set its water marks; call ``on_connection``."""
        self.transport = transport
        self._set_water_marks(transport)
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

    def _set_water_marks(self, transport: Transport) -> None:
        # Both marks at the low-water mark: the transport pauses as soon as
        # more than that waits, and resumes once no more than that does.  So
        # a send() that leaves more than the low-water mark queued waits
        # until it is back under, as the stream promises; a transport only
        # reports crossings of its marks, and with the usual two (64 KiB and
        # 16 KiB) a buffer between them would never be reported.
        transport.set_write_buffer_limits(high=self.write_low_water, low=self.write_low_water)

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
    """A byte stream for coroutines: receive, readline, send, send_eof, close, start_tls.

    Made by :func:`open_tcp`, :func:`open_unix`, :func:`open_pipes` and
    :func:`serve_tcp` (and, for a child process,
    :func:`~weft.drivers.coroutines.open_process`), or as the
    :attr:`StreamProtocol.stream` of a protocol you hand to a driver yourself.
    One task may read and one or more may send at a time.  ``async with
    stream:`` closes it at the end of the block.
    """

    def __init__(self, protocol: StreamProtocol) -> None:
        self._protocol = protocol
        self._closed = False
        self._tls = False  # start_tls was called (and got past its arguments)

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
        """The transport's extra info (``"peername"``, ``"sockname"``, ...).

        After :meth:`start_tls`, the TLS values too (``"peercert"``,
        ``"cipher"``, ``"version"``, ``"ssl_object"``...), and every other
        name from the transport below.
        """
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
        """Write ``data``; return once no more than the low-water mark
        (``write_low_water``, 16 KiB by default) waits to be sent.

        So a sender never runs ahead of a slow peer by more than that:
        backpressure needs no ``drain()``.

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

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "lost" if self._protocol._lost else "open"
        tls = " tls" if self._tls else ""
        return f"<{type(self).__name__} {state}{tls} buffered={len(self._protocol._buffer)}>"

    # ------------------------------------------------------------------ TLS

    async def start_tls(
        self,
        context: ssl.SSLContext,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        truncation_is_eof: bool = False,
    ) -> None:
        """Switch this plaintext stream to TLS, in place, and wait for the handshake.

        Call it at the switch point (after reading or sending a STARTTLS
        command).  Bytes already received past that point (a ClientHello
        that came in the same packet as the command) go to the TLS layer,
        not to the next ``receive``.  From then on ``receive``, ``readline``
        and ``send`` carry plaintext inside TLS, ``send_eof`` sends
        ``close_notify``, and :meth:`get_extra_info` answers the TLS names.

        A failed handshake raises the TLS layer's error
        (:class:`~weft.protocols.tls.TLSHandshakeError`, with the ssl error as
        its cause; :class:`~weft.protocols.tls.TLSHandshakeTimeoutError`
        after ``handshake_timeout``), and the connection is gone.  If the
        waiting task is cancelled, the connection is aborted.  The options
        are :class:`~weft.protocols.tls.TLSProtocol`'s; ``server_hostname``
        is required on a client whose context checks hostnames.

        Raises :class:`ClosedResourceError` on a closed or lost stream,
        :class:`InvalidStateError` on one already upgraded, and
        :class:`BusyResourceError` while another task is reading from it
        (the switch point would be undefined).
        """
        protocol = self._protocol
        below = self._check_writable()  # closed, or lost (a failed handshake): its error
        if self._tls:
            raise InvalidStateError("the stream already runs TLS (start_tls was called before)")
        if protocol._read_waiter is not None and not protocol._read_waiter.done():
            raise BusyResourceError("another task is reading from this stream: start TLS from the reader")
        handshake = _waiter()
        # What was read past the switch point is the peer's first TLS bytes.
        leftover = bytes(protocol._buffer)
        protocol._buffer.clear()
        # EOF on the plaintext stream is no EOF of the TLS session to come.
        had_eof, protocol._eof = protocol._eof, False
        try:
            transport = start_tls(
                below,
                protocol,
                context,
                server_side=server_side,
                server_hostname=server_hostname,
                leftover=leftover,
                handshake_timeout=handshake_timeout,
                close_timeout=close_timeout,
                truncation_is_eof=truncation_is_eof,
                on_handshake=lambda _transport: _wake(handshake),
            )
        except BaseException:
            # The layer refused its arguments before taking the transport
            # over: the stream is the plaintext stream it was.
            protocol._buffer[:0] = leftover
            protocol._eof = had_eof
            raise
        self._tls = True
        protocol.transport = transport
        protocol._set_water_marks(transport)
        layer = below.get_protocol()  # start_tls made the layer the transport's protocol
        if not isinstance(layer, TLSProtocol):
            raise TypeError(f"{below!r} did not take the TLS layer as its protocol")
        _hand_over_flow_control(protocol, below, layer)
        if had_eof and not layer.eof_received():
            below.close()  # the layer failed the handshake: the peer hung up first
        await self._await_handshake(handshake, layer)

    async def _await_handshake(self, handshake: Future[None], layer: TLSProtocol) -> None:
        protocol = self._protocol
        if not layer.handshake_complete and not protocol._lost:
            # A failed handshake ends the connection: connection_lost wakes us.
            protocol._lost_waiters.append(handshake)
            try:
                await handshake
            except Cancelled:
                self.abort()  # half-way into TLS, the stream is of no use
                raise
            finally:
                if handshake in protocol._lost_waiters:
                    protocol._lost_waiters.remove(handshake)
        if layer.handshake_complete:
            return
        if protocol._exception is not None:
            raise protocol._exception
        raise ClosedResourceError("the connection closed during the TLS handshake")


def _hand_over_flow_control(protocol: StreamProtocol, below: Transport, layer: TLSProtocol) -> None:
    """Make the TLS layer's flow-control state match what the stream had below.

    The transport below told the stream protocol, not the layer, that it
    paused: without this a sender waiting on that pause would never hear
    ``resume_writing`` (it now goes to the layer), and a transport paused
    for reading is resumed through the TLS transport, which now holds that pause.
    """
    if protocol._writing_paused:
        layer.pause_writing()
    if protocol._reading_paused and protocol.transport is not None:
        # The stream's pause came across as a pause of the TLS transport (see
        # weft.protocols.tls.start_tls); the buffer went to the layer, so lift it.
        protocol._reading_paused = False
        protocol.transport.resume_reading()

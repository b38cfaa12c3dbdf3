"""The reactor's transports as asyncio's event loop hands them out.

:class:`~weft.drivers.reactor.EventLoop` gives asyncio code (``create_connection``,
``create_server``, streams, ``start_tls``) the reactor's own
:class:`~weft.drivers.reactor.DescriptorTransport`, so asyncio protocols get
weft's write path (send at once, no registration change per message) and
weft's promises (flow control on ``writelines``, ``close()`` never losing
queued bytes).  :class:`LoopStreamTransport` adds what asyncio's loop
expects of its transports on top:

* ``connection_made`` runs on a later turn, through the loop, and the
  ``waiter`` future is resolved after it (asyncio's order);
* an error raised by the protocol goes to the loop's exception handler
  (asyncio's contract; the bare reactor logs it), then ends the connection;
* a :class:`asyncio.BufferedProtocol` (``get_buffer``/``buffer_updated``, as
  ``sslproto`` is) is read into its own buffers;
* the attributes asyncio's ``start_tls`` and ``sendfile`` look for, and the
  server bookkeeping behind ``Server.wait_closed``;
* where asyncio's contract and weft's differ, asyncio's, but only on the
  transports the loop's asyncio API makes (``follow_asyncio``): ``abort()``
  closes without a reset, bytes written after ``close()`` still go out
  while it flushes, ``connection_lost`` waits behind ``connection_made``
  on the loop's queue.  Those ``loop.reactor``'s own API makes keep weft's.

:class:`LoopReadPipeTransport` and :class:`LoopWritePipeTransport` are the
same for ``connect_read_pipe`` and ``connect_write_pipe`` (a subprocess's
pipes), and :class:`LoopDatagramTransport` for ``create_datagram_endpoint``.
"""

from __future__ import annotations

import asyncio
import asyncio.constants
import asyncio.trsock
import errno
import logging
import os
import socket
import stat
from functools import partial
from typing import Any

from weft.drivers._core import accelerator
from weft.drivers._core.child_processes import ReadOnly
from weft.drivers._core.connection_log import log_closed
from weft.drivers._core.file_region import FileSlice
from weft.drivers._core.lifecycle import ConnectionState, Event
from weft.drivers._core.socket_defaults import READ_SIZE
from weft.drivers.reactor._datagrams import ReactorDatagramTransport
from weft.drivers.reactor._descriptor_transport import DescriptorTransport
from weft.drivers.reactor._loop import Reactor
from weft.drivers.reactor._plumbing import InlineReader

__all__ = [
    "LoopDatagramTransport",
    "LoopReactor",
    "LoopReadPipeTransport",
    "LoopStreamTransport",
    "LoopWritePipeTransport",
    "pipe_transport_for_loop",
    "transport_socket",
]

logger = logging.getLogger("weft.drivers.reactor")

# asyncio's sendfile modes (asyncio.constants._SendfileMode): TRY_NATIVE
# makes loop.sendfile() call the loop's _sendfile_native, which sends with
# os.sendfile through write_file.
_SENDFILE_NATIVE = asyncio.constants._SendfileMode.TRY_NATIVE


class LoopStreamTransport(DescriptorTransport):
    """A reactor transport serving an asyncio protocol (see the module docstring)."""

    __slots__ = ("__weakref__", "_asyncio_rules", "_drained", "_loop", "_made", "_sendfile_busy", "_server")

    #: asyncio's start_tls() takes only transports that say so.
    _start_tls_compatible = True
    #: loop.sendfile() sends with os.sendfile, through write_file.
    _sendfile_compatible = _SENDFILE_NATIVE

    _loop: asyncio.AbstractEventLoop | None
    _made: bool
    _server: Any
    # Made through the loop's asyncio API (create_connection, create_server):
    # where asyncio's contract and weft's differ, asyncio's holds.  Made
    # through the reactor's own (loop.reactor.listen_tcp): weft's holds.
    _asyncio_rules: bool
    # The future sendfile waits on: resolved once the queue is empty, failed
    # if the connection ends first.
    _drained: asyncio.Future[None] | None
    # A sendfile is under way: a bare write() would land in the middle of
    # the file, so it raises (asyncio's rule).
    _sendfile_busy: bool

    def __init__(self, reactor: Any, protocol: Any, **parts: Any) -> None:
        super().__init__(reactor, protocol, **parts)
        self._loop = getattr(reactor, "event_loop", None)
        self._made = False
        self._server = None
        self._asyncio_rules = False
        self._drained = None
        self._sendfile_busy = False

    def follow_asyncio(self, server: Any) -> None:
        """Keep asyncio's contract where it differs from weft's, and count this
        connection in ``server`` (an ``asyncio.Server``) until it ends."""
        self._asyncio_rules = True
        self._server = server
        if server is not None:
            server._attach()

    def start(self) -> None:
        """``connection_made``, then reading (asyncio calls this on a later turn)."""
        self._made = True
        if not self._lifecycle.closing:
            super().start()
            return
        # Closed before it began (a cancelled connect or subprocess): as on
        # asyncio's loop, the protocol still hears connection_made, and then
        # the connection_lost already scheduled after this call.
        try:
            self._protocol.connection_made(self)
        except Exception as exc:
            self._callback_failed(exc)

    def _finish(self, exc: BaseException | None) -> None:
        loop = self._loop
        if not self._asyncio_rules or loop is None or loop.is_closed():
            super()._finish(exc)
            return
        # On the asyncio loop's queue, behind the start() asyncio scheduled
        # when it made the transport: connection_made always comes first.
        self._lifecycle.apply(Event.LOST)
        loop.call_soon(self._connection_lost, exc)

    @property
    def _protocol_paused(self) -> bool:
        """Whether the protocol was told to pause writing (asyncio's sendfile fallback reads it)."""
        return self._flow.paused

    def set_protocol(self, protocol: Any) -> None:
        """Hand the connection to ``protocol`` (its kind decides how it is read)."""
        self._protocol = protocol
        if self._made and self._lifecycle.reading:
            self._reactor._set_stream_reader(self._read_fd, self)

    # ----------------------------------------------------------- sendfile

    async def sendfile(self, region: FileSlice) -> None:
        """Send ``region`` after what is queued (with ``os.sendfile``) and
        return once all of it is out; ``write()`` raises meanwhile.  Raises
        the error that ended the connection if it ends first."""
        if self._sendfile_busy:
            raise RuntimeError("another sendfile is in progress on this transport")
        self._sendfile_busy = True
        try:
            self.write_file(region)
            # Even when the kernel took it all at once, writes take the
            # slow path (which refuses them) until this returns.
            self._idle_writer = False
            await self.drained()
        finally:
            self._sendfile_busy = False
            lifecycle = self._lifecycle
            self._idle_writer = lifecycle.writable and not self._buffer and not self._file_queue

    def drained(self) -> asyncio.Future[None]:
        """A future resolved once nothing is queued (at once if nothing is),
        failed with the error that ends the connection if it ends first."""
        drained = self._drained
        if drained is None or drained.done():
            drained = self._drained = asyncio.get_running_loop().create_future()
        if self._lifecycle.lost:
            drained.set_exception(ConnectionResetError("the connection is lost"))
        elif not self._buffer_size:
            drained.set_result(None)
        return drained

    def _write_otherwise(self, data: bytes | bytearray | memoryview) -> None:
        if self._sendfile_busy:
            raise RuntimeError("unable to write; sendfile is in progress")
        lifecycle = self._lifecycle
        if (
            self._asyncio_rules
            and lifecycle.connection_state is ConnectionState.CLOSING
            and not lifecycle.eof_written
        ):
            # asyncio's transports still send what is written after close()
            # while they flush, and asyncio's TLS relies on it: its
            # close_notify can come after it asked for the close.  (While
            # closing with a flush, something is queued and write interest
            # is armed, or the connection would be lost already.)
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"data must be a bytes-like object, not {type(data).__name__}")
            if data:
                self._write_to.append(bytes(data))
                self._buffer_size += len(data)
            return
        super()._write_otherwise(data)

    def _write_ready(self) -> None:
        super()._write_ready()
        if self._sendfile_busy:
            self._idle_writer = False
        drained = self._drained
        if drained is not None and not self._buffer_size and not drained.done():
            drained.set_result(None)

    def _force_close(self, exc: BaseException | None) -> None:
        super()._force_close(exc)
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_exception(
                exc if isinstance(exc, Exception) else ConnectionAbortedError("the transport was aborted")
            )

    # ------------------------------------------------------------ reading

    def _read_ready(self) -> None:
        protocol = self._protocol
        if not isinstance(protocol, asyncio.BufferedProtocol):
            super()._read_ready()
            return
        try:
            buffer = memoryview(protocol.get_buffer(-1))
            if not len(buffer):
                raise RuntimeError("get_buffer() returned an empty buffer")
        except Exception as exc:
            self._fatal(exc, "Fatal error: protocol.get_buffer() call failed.")
            return
        # Straight into the protocol's buffer where the transport can
        # (a socket: asyncio's sslproto lends 256 KiB); else bytes, copied in.
        recv_into = self._recv_into
        try:
            if recv_into is not None:
                count = recv_into(buffer)
            else:
                data = self._recv(min(len(buffer), READ_SIZE))
                count = len(data)
                buffer[:count] = data
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._recv_failed(exc)
            return
        if not count:
            self._eof()
            return
        try:
            protocol.buffer_updated(count)
        except Exception as exc:
            self._fatal(exc, "Fatal error: protocol.buffer_updated() call failed.")

    # ------------------------------------------------------------ endings

    def _callback_failed(self, exc: Exception) -> None:
        self._fatal(exc, "Fatal error: protocol callback failed.")

    def _fatal(self, exc: Exception, message: str) -> None:
        """asyncio's rule: an error the protocol raised goes to the loop's
        exception handler (an OSError only to the debug log), and the
        connection ends with it (closed, not reset, as ``abort``)."""
        if not self._asyncio_rules or self._loop is None:
            super()._callback_failed(exc)
            return
        if isinstance(exc, OSError):
            logger.debug("%r: %s", self, message, exc_info=exc)
        else:
            self._loop.call_exception_handler(
                {"message": message, "exception": exc, "transport": self, "protocol": self._protocol}
            )
        self._force_close(exc)

    def abort(self) -> None:
        """Drop the queue and close now.  As on asyncio's loop the socket is
        simply closed (a TCP peer reads EOF), where the bare reactor's abort
        resets the connection."""
        if not self._asyncio_rules:
            super().abort()
        elif not self._lifecycle.lost:
            self._force_close(None)

    def _connection_lost(self, exc: BaseException | None) -> None:
        log_closed(self._logger, self, exc)
        try:
            if self._made:
                self._protocol.connection_lost(exc)
        finally:
            self._release()
            server, self._server = self._server, None
            if server is not None:
                server._detach()
            # Let go of the protocol as asyncio's transports do: what it holds
            # (an SSL context, a stream's buffers) is freed as soon as the
            # application drops it, not at the next garbage collection.
            self._protocol = None


class LoopReadPipeTransport(ReadOnly, LoopStreamTransport):
    """``loop.connect_read_pipe``: the reactor's transport reading a pipe (a
    child's stdout), read inline like a socket."""

    # A __dict__, as asyncio's pipe transports have: programs (and asyncio's
    # own tests) set attributes on them, such as a wrapped pause_reading.
    __slots__ = ("__dict__",)

    def _eof(self) -> None:
        # asyncio's read pipe ends at EOF whatever eof_received answers:
        # there is nothing left to do with a pipe whose writer is gone.
        self._stop_reading()
        try:
            self._protocol.eof_received()
        finally:
            self.close()


class LoopWritePipeTransport(LoopStreamTransport):
    """``loop.connect_write_pipe``: the reactor's transport writing a pipe (a
    child's stdin).  It watches the pipe for the reader going away (the
    kernel reports an error on the write end), and ends then, as asyncio's
    write pipe does: with ``BrokenPipeError`` if bytes were still queued."""

    __slots__ = ("__dict__",)

    # Watched for its reader going away only where the kernel says so on the
    # write end (a FIFO, a socket); a terminal would look readable whenever
    # its other side writes (asyncio's rule too).
    _watch_reader: bool

    def start(self) -> None:
        """``connection_made``; then the watch for the reader going away, where there is one."""
        super().start()
        if not self._watch_reader and not self._lifecycle.lost:
            self._reactor._set_stream_reader(self._read_fd, None)

    def pause_reading(self) -> None:
        """Nothing is read from a write pipe."""

    def resume_reading(self) -> None:
        """Nothing is read from a write pipe."""

    def is_reading(self) -> bool:
        """False: a write pipe delivers no data."""
        return False

    def write_eof(self) -> None:
        """A pipe's only EOF is its end: flush, then close (asyncio's rule)."""
        self.close()

    def can_write_eof(self) -> bool:
        """True (``write_eof`` closes the pipe)."""
        return True

    def _recv_failed(self, exc: OSError) -> None:
        broken = BrokenPipeError(exc.errno, "the pipe's reader is gone")
        self._force_close(broken if self._buffer_size else None)


def _reader_gone(size: int, /) -> bytes:
    """The "read" of a write pipe's end, called only when the poller reports
    it: its reader closed."""
    raise BrokenPipeError(errno.EPIPE, "the pipe's reader is gone")


def pipe_transport_for_loop(
    reactor: LoopReactor, protocol: Any, pipe: Any, *, writing: bool, extra: dict[str, Any]
) -> LoopStreamTransport:
    """A read or write pipe transport over the file object ``pipe`` (which it
    closes when the connection ends), as asyncio's ``connect_*_pipe`` makes."""
    fd = pipe.fileno()
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
        raise ValueError("Pipe transport is for pipes/sockets only.")
    os.set_blocking(fd, False)
    info = {"pipe": pipe, "sockname": ("pipe", fd), "peername": ("pipe", "peer"), **extra}
    kind: type[LoopStreamTransport] = LoopWritePipeTransport if writing else LoopReadPipeTransport
    transport = kind(
        reactor,
        protocol,
        read_fd=fd,
        write_fd=fd,
        # A pipe, socket or character device (refused otherwise, above): the
        # C accelerator's calls where it is built, else os's.
        recv=_reader_gone if writing else accelerator.reader(fd),
        send=accelerator.writer(fd),
        sendv=partial(os.writev, fd),
        extra=info,
        close=pipe.close,
        half_close=None,
    )
    if isinstance(transport, LoopWritePipeTransport):
        transport._watch_reader = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
    return transport


class LoopDatagramTransport(ReactorDatagramTransport):
    """A reactor datagram transport serving an asyncio protocol
    (``loop.create_datagram_endpoint``)."""

    __slots__ = ("__weakref__", "_loop")

    _loop: asyncio.AbstractEventLoop

    def _callback_failed(self, exc: Exception) -> None:
        # asyncio's rule for datagrams: an error the protocol raised goes to
        # the loop's exception handler and the endpoint goes on (the bare
        # reactor ends the endpoint).
        self._loop.call_exception_handler(
            {
                "message": "Exception in a datagram protocol callback",
                "exception": exc,
                "transport": self,
                "protocol": self._protocol,
            }
        )

    def _connection_lost(self, exc: BaseException | None) -> None:
        try:
            super()._connection_lost(exc)
        finally:
            self._protocol = None


class LoopReactor(Reactor):
    """The reactor under an :class:`~weft.drivers.reactor.EventLoop`: its
    stream transports are :class:`LoopStreamTransport`, and a
    :class:`asyncio.BufferedProtocol` is read by the transport, not inline."""

    stream_transport_class = LoopStreamTransport

    def __init__(self, event_loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        #: The asyncio loop this reactor runs under.
        self.event_loop = event_loop

    def _set_stream_reader(self, fd: int, stream: InlineReader | None) -> None:
        if stream is not None and isinstance(stream._protocol, asyncio.BufferedProtocol):
            # Not in the inline table: the loop calls _read_ready, which
            # fills the protocol's own buffer.
            self._streams.pop(fd, None)
            self._set_reader(fd, stream._read_ready, stream)
        else:
            super()._set_stream_reader(fd, stream)


def transport_socket(sock: socket.socket) -> Any:
    """What ``get_extra_info("socket")`` gives on asyncio's loop: a view of
    the socket that refuses what would disturb the transport."""
    return asyncio.trsock.TransportSocket(sock)

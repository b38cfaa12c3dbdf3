"""The reactor's byte-stream transport: over a socket, a pair of pipes, or a PTY.

One class for all three, since they differ only in which system calls move
the bytes (``recv``/``send``/``sendmsg`` on a socket, ``read``/``write``/
``writev`` on pipes and PTYs, which cannot ``recv``) and in how the write side
half-closes.  Those calls are bound once, at construction, so the hot path
never asks what kind of file it is on.

The write path tries to send at once when nothing is queued, and only when
the kernel takes less than everything does it queue the rest and ask the
poller for write readiness.  ``write_file`` queues a file region, sent with
``os.sendfile`` once the bytes ahead of it are out (see
:mod:`weft.drivers._core.file_sending`); the queue from a region on is kept
apart, so the byte paths never look at regions.  Reads are 64 KiB: big
enough for bulk transfer, and under glibc's mmap threshold (128 KiB), so
reading never costs an mmap/munmap pair (asyncio's 256 KiB reads do, until
the first such buffer is freed whole).

A protocol that takes its bytes in a lent buffer (it has
``buffer_received(view)``: weft's TLS layer, which copies them into its
``MemoryBIO`` at once) is read differently on a socket: ``recv_into`` the
reactor's own buffer of :data:`LENT_READ_SIZE` (256 KiB, as asyncio's TLS
reads), no allocation at all, and ``buffer_received`` gets a view of what
arrived, valid for that call only.  Bulk TLS then costs one read, one
wake-up and one pass of the layer per 256 KiB instead of per 64 KiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections import deque
from collections.abc import Callable
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar

from weft.drivers._core import accelerator
from weft.drivers._core.connection_clock import ConnectionClock
from weft.drivers._core.connection_log import log_closed, log_opened
from weft.drivers._core.file_sending import PIECE_SIZE, send_from_file, sendfile_refused
from weft.drivers._core.lifecycle import Event, TransportLifecycle, WriteState
from weft.drivers._core.socket_defaults import LINGER_ZERO, READ_SIZE, name_or_none
from weft.drivers._core.transport_base import TransportBookkeeping, drop_sent
from weft.protocols._flow_control import WriteFlowControl
from weft.protocols.contract import FileRegion
from weft.protocols.errors import WriteAfterEofError

if TYPE_CHECKING:
    from weft.drivers.reactor._plumbing import TransportLoop

__all__ = ["LENT_READ_SIZE", "READ_SIZE", "DescriptorTransport"]

logger = logging.getLogger("weft.drivers.reactor")


# sendmsg and writev take at most this many buffers (Linux's IOV_MAX).
_MAX_BUFFERS = 1024

#: How much one read into the reactor's lent buffer asks for (see the module docstring).
LENT_READ_SIZE = 256 * 1024



class DescriptorTransport(TransportBookkeeping, asyncio.Transport):
    """A :class:`weft.protocols.contract.Transport` driven by a :class:`Reactor`.

    Made by the reactor (``listen_tcp``, ``connect_tcp``, ``connect_pipes``,
    ``spawn_process``...), never by applications.  It is also an
    ``asyncio.Transport`` (asyncio code checks for one), its methods all
    weft's own: the bookkeeping base comes first in the method order.
    """

    #: Where the connection's start and end are logged (debug level): its driver's logger.
    _logger: ClassVar[logging.Logger] = logger

    # Slots: no per-instance dict, and the hot path's attribute reads are
    # plain descriptor loads.  (_extra is asyncio.BaseTransport's slot.)
    __slots__ = (
        "_buffer",
        "_buffer_size",
        "_close_files",
        "_eio_is_eof",
        "_file_queue",
        "_flow",
        "_half_close",
        "_idle_writer",
        "_lifecycle",
        "_protocol",
        "_reactor",
        "_read_fd",
        "_recv",
        "_recv_into",
        "_reset",
        "_reset_on_close",
        "_send",
        "_sendfile_refused",
        "_sendv",
        "_write_fd",
        "_write_to",
        "on_lost",
    )

    def __init__(
        self,
        reactor: TransportLoop,
        protocol: Any,
        *,
        read_fd: int,
        write_fd: int,
        recv: Callable[[int], bytes],
        send: Callable[[Any], int],
        sendv: Callable[[list[Any]], int],
        extra: dict[str, Any],
        close: Callable[[], None],
        half_close: Callable[[], None] | None,
        reset: Callable[[], None] | None = None,
        eio_is_eof: bool = False,
        recv_into: Callable[[memoryview], int] | None = None,
    ) -> None:
        self._reactor = reactor
        self._protocol = protocol
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._recv = recv
        # Reads into a lent buffer (sockets only; see the module docstring).
        self._recv_into = recv_into
        self._send = send
        self._sendv = sendv
        self._close_files = close
        self._half_close = half_close
        self._reset = reset
        # A PTY's master reads EIO once the other side is gone: that is EOF.
        self._eio_is_eof = eio_is_eof
        self._extra = {**extra, "clock": ConnectionClock(reactor, self._run_callback)}
        self._flow = WriteFlowControl()
        # Bytes to send, in order, ahead of any file region.
        self._buffer: deque[bytes | memoryview] = deque()
        # From the first file region on: that region (sent once _buffer is
        # empty), then what was written after it, bytes and regions.  Kept
        # apart so that _buffer only ever holds bytes.
        self._file_queue: deque[FileRegion | bytes] = deque()
        # Where a write that cannot be sent at once goes: _buffer, or
        # _file_queue while a region waits (one attribute either way, so
        # queueing costs the same with or without regions).
        self._write_to: deque[Any] = self._buffer
        # Everything queued: bytes, and what is left of each region.
        self._buffer_size = 0
        # The kernel refused sendfile for a region here: regions are read
        # in pieces from now on.
        self._sendfile_refused = False
        self._lifecycle = TransportLifecycle()
        # The write path's own flag: nothing queued, and the lifecycle
        # writable (set false on every transition that ends that, true again
        # when the queue drains while still writable): write() may send at once.
        self._idle_writer = True
        self._reset_on_close = False
        #: Called with this transport once the connection is lost.
        self.on_lost: list[Callable[[DescriptorTransport], object]] = []

    # --------------------------------------------------------------- start

    def start(self) -> None:
        """Call ``connection_made``, then start reading (unless it paused)."""
        self._reactor._open[self] = self.abort
        log_opened(self._logger, self)
        try:
            self._protocol.connection_made(self)
        except Exception as exc:
            self._callback_failed(exc)
            return
        if self._lifecycle.wants_data:
            self._reactor._set_stream_reader(self._read_fd, self)

    # ------------------------------------------------------- BaseTransport

    def close(self) -> None:
        """Flush, then close; ``connection_lost(None)`` follows on a later turn."""
        if self._lifecycle.closing:
            return
        self._lifecycle.apply(Event.CLOSE)
        self._idle_writer = False
        self._stop_reading()
        if not self._buffer and not self._file_queue:
            self._finish(None)

    # ------------------------------------------------------- ReadTransport

    def pause_reading(self) -> None:
        """Stop reading; the kernel's buffers and flow control slow the peer."""
        if not self._lifecycle.reading:  # paused already, or closing
            return
        self._lifecycle.apply(Event.PAUSE)
        self._stop_reading()

    def resume_reading(self) -> None:
        """Read again."""
        lifecycle = self._lifecycle
        if not lifecycle.paused:  # not paused, or closing
            return
        lifecycle.apply(Event.RESUME)
        if lifecycle.wants_data:  # not at EOF
            self._reactor._set_stream_reader(self._read_fd, self)

    # ------------------------------------------------------ WriteTransport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` now if the kernel takes it, else queue the rest."""
        if self._idle_writer and type(data) is bytes:
            # The hot path: nothing queued, still open, and bytes.
            if not data:
                return
            try:
                sent = self._send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._force_close(exc)
                return
            if sent != len(data):
                self._queue_first(memoryview(data)[sent:])
            return
        self._write_otherwise(data)

    def _write_otherwise(self, data: bytes | bytearray | memoryview) -> None:
        """write() for everything but the hot path: other types, a queue, an end."""
        # A copy of anything but plain bytes: the caller may change a
        # bytearray later, and a plain copy takes the hot path next time.
        admitted = self._admit(data)
        if admitted is None:
            return
        data = admitted
        if self._idle_writer:
            self.write(data)
            return
        self._write_to.append(data)
        self._buffer_size += len(data)
        if self._flow.should_pause(self._buffer_size):
            self._protocol.pause_writing()

    def _queue_first(self, rest: memoryview) -> None:
        """The kernel took only part of a write: queue the rest, wait for writability."""
        self._buffer.append(rest)
        self._buffer_size = len(rest)
        self._idle_writer = False
        self._reactor._set_writer(self._write_fd, self._write_ready, self)
        if self._flow.should_pause(self._buffer_size):
            self._protocol.pause_writing()

    def write_file(self, region: FileRegion) -> None:
        """Queue ``region`` after what was written (see the contract); it is sent
        with ``os.sendfile``, straight from the file.

        A region over the high-water mark makes ``pause_writing`` come at
        once.  Otherwise, with nothing queued, the kernel is asked at once,
        as by ``write()``.
        """
        was_idle = self._idle_writer
        if not self._queue_file(region):
            return
        if not was_idle or self._lifecycle.lost:
            return  # already waiting for writability (or gone)
        if not self._flow.paused:
            if self._send_file() is None:
                return
            if not self._buffer and not self._file_queue:
                # All sent.  (Not paused, so no callback ran: the state is
                # still what made this transport idle.)
                self._idle_writer = True
                return
        self._reactor._set_writer(self._write_fd, self._write_ready, self)

    def _queue_file(self, region: FileRegion) -> bool:
        """Add ``region`` to the queue, with flow control; whether it was queued.

        What ``write_file`` does on every runtime built on this transport;
        sending it is each one's own business.
        """
        if self._lifecycle.eof_written:
            region.close()
            raise WriteAfterEofError("write_file() after write_eof()")
        if self._lifecycle.closing or not len(region):
            region.close()
            return False
        self._file_queue.append(region)
        self._write_to = self._file_queue
        # Before pause_writing: a write() it makes must queue behind the region.
        self._idle_writer = False
        self._buffer_size += len(region)
        if self._flow.should_pause(self._buffer_size):
            self._protocol.pause_writing()
        return True

    def write_eof(self) -> None:
        """Half-close once the queue is sent."""
        if not self._lifecycle.writable:  # EOF asked already, or closing
            return
        if self._half_close is None:
            raise NotImplementedError("this transport cannot half-close (see can_write_eof)")
        self._lifecycle.apply(Event.WRITE_EOF)
        self._idle_writer = False
        if not self._buffer and not self._file_queue:
            self._lifecycle.apply(Event.EOF_SENT)
            self._half_close()

    def can_write_eof(self) -> bool:
        """Sockets and pipe pairs can half-close; a PTY cannot."""
        return self._half_close is not None

    def abort(self) -> None:
        """Drop the queue and close now; a TCP peer gets a reset."""
        if self._lifecycle.lost:
            return
        self._reset_on_close = True
        self._force_close(None)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the water marks (asyncio's defaults and rules)."""
        self._flow.set_limits(high, low)
        if self._flow.should_pause(self._buffer_size):
            self._protocol.pause_writing()

    def get_write_buffer_size(self) -> int:
        """Bytes queued and not yet taken by the kernel."""
        return self._buffer_size

    def __repr__(self) -> str:
        lifecycle = self._lifecycle
        state = "lost" if lifecycle.lost else "closing" if lifecycle.closing else "open"
        fds = f"{self._read_fd}/{self._write_fd}"
        return f"<{type(self).__name__} fd={fds} {state} buffered={self._buffer_size}>"

    # ---------------------------------------------------- readiness events

    def _read_ready(self) -> None:
        # The reactor's loop runs an inlined copy of this for plain readable
        # events (see Reactor._loop); this one serves the rest (a hang-up or
        # an error reported with readability).
        try:
            data = self._recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._recv_failed(exc)
            return
        if data:
            self._protocol.data_received(data)
        else:
            self._eof()

    def _read_into_ready(self) -> None:
        # A protocol that takes a lent buffer (buffer_received): the read
        # goes into the reactor's, and the protocol copies what it keeps.
        # (Its protocol may have been replaced since: bytes then, as inline.)
        view = self._reactor._read_buffer
        try:
            count = self._recv_into(view)  # type: ignore[misc]  # set, or not registered so
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._recv_failed(exc)
            return
        if not count:
            self._eof()
            return
        protocol = self._protocol
        try:
            receive = getattr(protocol, "buffer_received", None)
            if receive is not None:
                receive(view[:count])
            else:
                protocol.data_received(bytes(view[:count]))
        except Exception as exc:
            self._callback_failed(exc)

    def _recv_failed(self, exc: OSError) -> None:
        if self._eio_is_eof and exc.errno == errno.EIO:
            self._eof()
        else:
            self._force_close(exc)

    def _write_ready(self) -> None:
        buffer = self._buffer
        if buffer:
            if self._send_buffered() is None:
                return
        elif self._file_queue and self._send_file() is None:  # a region heads the queue
            return
        lifecycle = self._lifecycle
        if not buffer and not self._file_queue and lifecycle.writable:
            # Drained, and open.  Back to sending at once *before*
            # resume_writing, so that what the protocol writes from it goes
            # straight to the kernel (asyncio's order), not into the queue to
            # wait for the next writable event: a protocol that refills from
            # resume_writing (a bulk sender, the TLS layer) would otherwise
            # make a turn of the loop, an epoll_wait, per write.
            self._reactor._set_writer(self._write_fd, None, self)
            self._idle_writer = True
        if self._flow.should_resume(self._buffer_size):
            try:
                self._protocol.resume_writing()
            except Exception as exc:
                # Here, not in the loop: the fd may have left the poller
                # just now (a pipe's write end), and with it its owner.
                self._callback_failed(exc)
                return
        if self._idle_writer or buffer or self._file_queue or lifecycle.lost:
            return
        # Drained while closing or half-closing: after resume_writing, whose
        # writes still go out first (asyncio's TLS writes its close_notify
        # from there, after asking for the close).
        self._reactor._set_writer(self._write_fd, None, self)
        if lifecycle.closing:
            self._finish(None)
        elif lifecycle.write_state is WriteState.EOF_PENDING:
            lifecycle.apply(Event.EOF_SENT)
            if self._half_close is not None:
                self._half_close()
        elif lifecycle.writable:
            self._idle_writer = True

    def _send_buffered(self) -> int | None:
        """One ``send`` (``sendmsg``/``writev`` for several pieces) of the queue.

        Drops what the kernel took from the queue and returns how much that
        was (0: it took nothing, try when writable); None after an error,
        with the connection ending.
        """
        buffer = self._buffer
        try:
            if len(buffer) == 1:
                sent = self._send(buffer[0])
            else:
                sent = self._sendv(list(islice(buffer, _MAX_BUFFERS)))
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            self._force_close(exc)
            return None
        self._buffer_size -= sent
        drop_sent(buffer, sent)
        return sent

    def _send_file(self) -> int | None:
        """Send from the region at the head of ``_file_queue`` (``_buffer`` is empty).

        One ``sendfile``; or, once the kernel refused it here, one piece read
        into ``_buffer`` and sent as bytes.  Returns how much left the region
        (0: the kernel is full, try when writable); None after an error,
        with the connection ending.
        """
        region: FileRegion = self._file_queue[0]  # type: ignore[assignment]
        if not self._sendfile_refused:
            try:
                sent = send_from_file(self._write_fd, region)
            except (BlockingIOError, InterruptedError):
                return 0
            except OSError as exc:
                if not sendfile_refused(exc):
                    self._force_close(exc)
                    return None
                self._sendfile_refused = True
                return self._send_file()
            self._buffer_size -= sent
        else:
            try:
                piece = region.read(PIECE_SIZE)
            except OSError as exc:
                self._force_close(exc)
                return None
            sent = len(piece)
            self._buffer.append(piece)  # still counted in _buffer_size
            if self._send_buffered() is None:
                return None
        if not len(region):
            self._file_sent()
        return sent

    def _file_sent(self) -> None:
        """The head region is all out: close it, and move the bytes written
        after it (up to the next region) into ``_buffer``."""
        queue = self._file_queue
        region: FileRegion = queue.popleft()  # type: ignore[assignment]
        region.close()
        buffer = self._buffer
        while queue and isinstance(queue[0], bytes):
            buffer.append(queue.popleft())  # type: ignore[arg-type]
        if not queue:
            self._write_to = buffer

    def _drop_files(self) -> None:
        """Close every queued region (the connection is ending)."""
        queue = self._file_queue
        while queue:
            item = queue.popleft()
            if not isinstance(item, bytes):
                item.close()
        self._write_to = self._buffer

    def _eof(self) -> None:
        self._lifecycle.apply(Event.EOF_RECEIVED)
        self._stop_reading()
        if not self._protocol.eof_received():
            self.close()

    # ------------------------------------------------------------- endings

    def _callback_failed(self, exc: Exception) -> None:
        """A protocol callback raised: log it and end this connection with it."""
        logger.error("exception in a callback of %r; closing %r", self._protocol, self, exc_info=exc)
        self._reset_on_close = True
        self._force_close(exc)

    def _stop_reading(self) -> None:
        self._reactor._set_stream_reader(self._read_fd, None)

    def _force_close(self, exc: BaseException | None) -> None:
        """End at once (an error, an abort): drop the queue, connection_lost(exc) soon."""
        if self._lifecycle.lost:
            return
        self._buffer.clear()
        if self._file_queue:
            self._drop_files()
        self._buffer_size = 0
        self._lifecycle.apply(Event.ABORT)
        self._idle_writer = False
        self._stop_reading()
        self._reactor._set_writer(self._write_fd, None, self)
        self._finish(exc)

    def _finish(self, exc: BaseException | None) -> None:
        self._lifecycle.apply(Event.LOST)
        self._reactor.call_soon(self._connection_lost, exc)

    def _connection_lost(self, exc: BaseException | None) -> None:
        log_closed(self._logger, self, exc)
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._release()

    def _release(self) -> None:
        """The connection is over: let go of the descriptors and tell ``on_lost``."""
        self._reactor._open.pop(self, None)
        if self._reset_on_close and self._reset is not None:
            self._reset()
        self._close_files()
        for callback in self.on_lost:
            callback(self)
        self.on_lost.clear()


#: DescriptorTransport.write as written above, kept for the tests that hold the
#: accelerator's copy to it.
python_write = DescriptorTransport.write
python_is_closing = DescriptorTransport.is_closing

if accelerator.transport_write is not None:
    # The accelerator's copy of write() (weft/_speedups.c): the same steps,
    # without the Python frame each call would cost; subclasses that define
    # their own write() are unaffected.
    DescriptorTransport.write = accelerator.transport_write  # type: ignore[method-assign,assignment]
if accelerator.transport_is_closing is not None:
    # And of is_closing(), which a StreamWriter's drain() asks every time.
    DescriptorTransport.is_closing = accelerator.transport_is_closing  # type: ignore[method-assign,assignment]


# ------------------------------------------------------------ constructors


def socket_transport(
    reactor: TransportLoop, protocol: Any, sock: socket.socket, extra: dict[str, Any]
) -> DescriptorTransport:
    """A transport over a connected, non-blocking stream socket."""
    fd = sock.fileno()
    info = {
        "socket": sock,
        "sockname": name_or_none(sock.getsockname),
        "peername": name_or_none(sock.getpeername),
        **extra,
    }

    def half_close() -> None:
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the peer is gone; reading will tell

    def reset() -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.fileno() >= 0:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)

    transport: DescriptorTransport = reactor.stream_transport_class(
        reactor,
        protocol,
        read_fd=fd,
        write_fd=fd,
        # read(2) and write(2) on the socket's descriptor: what recv and send
        # with no flags do, through calls whose arguments cost far less to
        # pass than socket's: the C accelerator's, or os's (the performance
        # page, "Instructions per message" and "The C accelerator":
        # https://github.com/weft-project/weft/blob/main/docs/performance.md).
        recv=accelerator.reader(fd),
        recv_into=sock.recv_into,
        send=accelerator.writer(fd),
        sendv=sock.sendmsg,
        extra=info,
        close=sock.close,
        half_close=half_close,
        reset=reset,
    )
    return transport


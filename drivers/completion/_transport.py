"""The completion driver's byte-stream transport: operations submitted, completions acted on.

A :class:`CompletionTransport` is the reactor's
:class:`~weft.drivers.reactor.DescriptorTransport` (the same lifecycle, flow
control, file regions and endings) whose bytes move by io_uring operations
instead of readiness and ``recv``/``send``:

Receiving
    one receive is kept armed (``RECV`` on a socket, ``READ`` on a pipe or
    terminal) into the transport's own buffer (a page at first, 64 KiB once a
    receive fills it), which the kernel owns until the completion.  The
    completion hands the bytes to the protocol and arms the next receive
    (the common case is handled in the poller's loop itself, see
    :meth:`~weft.drivers.completion._ring_poller.RingPoller.poll`).
    ``pause_reading`` arms no more; a receive still in the kernel completes
    anyway and its bytes (or the EOF) are held until ``resume_reading``,
    which delivers them on a later turn and only then arms again
    (:class:`~weft.drivers._core.held_delivery.HeldDelivery`, as Twisted's
    iocpreactor does).
Sending
    at most one send in flight, holding its ``bytes`` alive until the
    completion: writes can never interleave.  ``write()`` with nothing in
    flight submits at once; later writes queue, and the completion sends
    the whole queue as one operation.  Bytes in flight count in
    ``get_write_buffer_size()`` (the kernel has not taken them yet), so the
    water marks work as on the reactor.  A file region is read in pieces and
    each piece sent the same way.  On a socket, a send is *quick* where the
    kernel allows (:meth:`~weft.drivers.completion._uring.Ring.quick_send_entry`):
    it is over when the ``io_uring_enter`` that hands it over returns, and
    posts a completion only if the socket did not take every byte; the
    poller finishes it right after that enter
    (:meth:`~weft.drivers.completion._ring_poller.RingPoller.poll`), and
    what was not taken goes as an ordinary send, which waits for room.
Ending
    ``close()`` sends what is queued, then cancels the receive; ``abort()``
    and errors cancel both.  ``connection_lost`` runs only once every
    operation the kernel owned has completed or been cancelled, and the
    descriptor is closed after it (reset first, ``SO_LINGER`` 0, for an
    aborted TCP connection), so the kernel never writes into a buffer that
    was let go, nor touches a descriptor number that was reused.

The submissions are only queued here; the loop's next turn hands them all to
the kernel in one ``io_uring_enter`` (:class:`~weft.drivers.completion._ring_poller.RingPoller`).
"""

from __future__ import annotations

import errno
import logging
import os
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from weft.drivers._core.accelerator import unfilled_bytes
from weft.drivers._core.child_processes import ReadOnly
from weft.drivers._core.connection_log import log_opened
from weft.drivers._core.file_sending import PIECE_SIZE, send_from_file, sendfile_refused
from weft.drivers._core.held_delivery import HeldDelivery
from weft.drivers._core.lifecycle import Event, WriteState
from weft.drivers.completion._ring_poller import IGNORED, QUICK, RingPoller
from weft.drivers.completion._uring import writable_address
from weft.drivers.reactor._descriptor_transport import READ_SIZE, DescriptorTransport
from weft.protocols.contract import FileRegion

if TYPE_CHECKING:
    from weft.drivers.reactor._plumbing import TransportLoop

__all__ = ["CompletionReadPipeTransport", "CompletionTransport"]

logger = logging.getLogger("weft.drivers.completion")

# What _in_flight holds while a poll waits for writability (a file region).
_WRITABLE = b""
_POLLOUT = 0x004

#: The receive buffer a connection starts with (see CompletionTransport._new_recv_buffer).
FIRST_READ_SIZE = 4096

# Results that mean "try again", not "broken".
_RETRY = frozenset({-errno.EINTR, -errno.EAGAIN})


class CompletionTransport(HeldDelivery, DescriptorTransport):
    """A :class:`weft.protocols.contract.Transport` whose I/O is io_uring operations.

    Made by the :class:`~weft.drivers.completion.CompletionRuntime`
    (``listen_tcp``, ``connect_tcp``, ``connect_pipes``, ``spawn_process``...),
    never by applications.  See the module docstring.
    """

    _logger: ClassVar[logging.Logger] = logger

    __slots__ = (
        "_delivery",
        "_held",
        "_in_flight",
        "_lost_exc",
        "_poller",
        "_quick",
        "_quick_entry",
        "_quick_sends",
        "_recv_address",
        "_recv_buffer",
        "_recv_id",
        "_recv_pending",
        "_recv_seq",
        "_recv_entry",
        "_recv_grow_at",
        "_recv_size",
        "_recv_view",
        "_bytes_receives",
        "_ring",
        "_send_entry",
        "_send_id",
        "_send_seq",
        "_on_socket",
    )

    def __init__(self, reactor: TransportLoop, protocol: Any, **kwargs: Any) -> None:
        super().__init__(reactor, protocol, **kwargs)
        poller: RingPoller = reactor.poller  # type: ignore[attr-defined]
        self._poller = poller
        self._ring = poller.ring
        self._recv_id = poller.new_ids(2)
        self._send_id = self._recv_id + 1
        # RECV/SEND on a socket (SEND with MSG_NOSIGNAL); READ/WRITE on
        # anything else (pipes, terminals, files, a socket given as stdio).
        # Each is a submission entry made once (the receive's at its first
        # arming, with its buffer), so the hot paths copy 64 bytes into the
        # ring and patch a send's address and length, never pack an entry.
        self._on_socket = "socket" in kwargs["extra"]
        self._send_entry = poller.ring.send_entry(self._write_fd, self._send_id, on_socket=self._on_socket)
        # A quick send's entry (b"" where there is none: not a socket, or a
        # kernel that does not finish such sends in the enter), its
        # user_data marked so that its failure is told from an ordinary
        # send's completion; and the poller's list of quick sends to finish.
        quick = self._on_socket and poller.quick_sends_work
        self._quick_entry = b""
        if quick:
            self._quick_entry = poller.ring.quick_send_entry(self._write_fd, self._send_id | QUICK)
        self._quick_sends = poller.quick_sends
        # Whether the send in flight is a quick one.
        self._quick = False
        self._recv_entry = b""
        # Where receives go (see _arm_recv): into a bytes object made for
        # each, delivered as it is (the C accelerator's turn), or into a
        # bytearray of the transport's own, copied out of at each delivery.
        self._bytes_receives: bool = poller.receives_into_bytes
        if self._bytes_receives:
            # The entry's address and length are patched at each push.
            self._recv_entry = poller.ring.recv_entry(
                self._read_fd, 0, 0, self._recv_id, on_socket=self._on_socket
            )
        # The size of the next receive's buffer (into bytes).
        self._recv_size = FIRST_READ_SIZE
        self._recv_buffer: bytearray | bytes | None = None
        self._recv_view: memoryview | None = None
        self._recv_address = 0
        # A receive of this many bytes filled the buffer: the next one gets a
        # bigger buffer (-1: it is as big as it gets).
        self._recv_grow_at = -1
        self._recv_pending = False
        # Where the last receive and send were prepared (Ring.withdraw).
        self._recv_seq = 0
        self._send_seq = 0
        # The bytes the kernel is sending: referenced until the completion.
        self._in_flight: bytes | None = None
        self._held: deque[bytes | None] = deque()
        self._delivery: Any = None
        self._lost_exc: BaseException | None = None

    # --------------------------------------------------------------- start

    def start(self) -> None:
        """Call ``connection_made``, then arm the first receive (unless it paused)."""
        streams = self._poller.streams
        streams[self._recv_id] = self
        streams[self._send_id] = self
        self._reactor._open[self] = self.abort
        log_opened(self._logger, self)
        try:
            self._protocol.connection_made(self)
        except Exception as exc:
            self._callback_failed(exc)
            return
        if self._lifecycle.wants_data:
            self._arm_recv()

    # ------------------------------------------------------------ receiving

    def _arm_recv(self) -> None:
        if self._recv_pending:
            return
        if self._bytes_receives:
            # Into a bytes object of its own, not zeroed, which the kernel
            # owns from the enter that hands this receive over until its
            # completion: the transport holds it until then (and after, if
            # the ring closes first: RingPoller.close keeps the transport).
            # The completion lets go of it and delivers it, shrunk to what
            # arrived (weft/_speedups.c, RingTurn; _recv_done on the cold
            # paths); the next receive gets a new one.
            buffer = self._recv_buffer
            if buffer is None:
                buffer = self._recv_buffer = unfilled_bytes(self._recv_size)
            self._recv_pending = True
            self._recv_seq = self._ring.push_bytes(self._recv_entry, buffer)  # type: ignore[arg-type]
            return
        if self._recv_buffer is None:
            self._new_recv_buffer(FIRST_READ_SIZE)
        self._recv_pending = True
        self._recv_seq = self._ring.push(self._recv_entry)

    def _new_recv_buffer(self, size: int) -> None:
        """Receive into a new buffer of ``size`` bytes from the next receive on.

        Called only with no receive in flight: the buffer it replaces is
        the kernel's no longer.  The kernel writes into the new one until the
        transport is released, after the last completion (or until a receive
        fills it and it is replaced by a bigger one).  A connection starts
        with :data:`FIRST_READ_SIZE` bytes, so an idle or chatty one costs a
        page, not 64 KiB zeroed; the first receive that fills it moves it to
        ``READ_SIZE``, what the reactor reads at a time.
        """
        buffer = bytearray(size)
        self._recv_buffer = buffer
        self._recv_view = memoryview(buffer)
        self._recv_address = writable_address(buffer)
        self._recv_entry = self._ring.recv_entry(
            self._read_fd, self._recv_address, size, self._recv_id, on_socket=self._on_socket
        )
        self._recv_grow_at = size if size < READ_SIZE else -1

    def _recv_done(self, res: int, flags: int) -> None:
        """A receive completed: ``res`` bytes, 0 for EOF, or ``-errno``."""
        self._recv_pending = False
        lifecycle = self._lifecycle
        if self._bytes_receives:
            self._bytes_received(res)
            return
        if res > 0 and lifecycle.wants_data and not self._held:
            # The hot path (wants_data: open, reading, not paused): deliver,
            # and arm the same receive again (_arm_recv, inlined).
            try:
                self._protocol.data_received(self._recv_view[:res].tobytes())  # type: ignore[index]
            except Exception as exc:
                self._callback_failed(exc)
                return
            if lifecycle.wants_data and not self._recv_pending:
                if res == self._recv_grow_at:  # filled: a bigger buffer from now on
                    self._new_recv_buffer(READ_SIZE)
                self._recv_pending = True
                self._recv_seq = self._ring.push(self._recv_entry)
            return
        if lifecycle.closing:
            # Reading stopped (close, abort): what came is dropped, as the
            # reactor would leave it unread.
            if lifecycle.lost:
                self._operation_ended()
            return
        self._received(res, self._recv_view[:res].tobytes() if res > 0 else None)  # type: ignore[index]

    def _received(self, res: int, data: bytes | None) -> None:
        """The end of a receive's completion, reading not stopped: ``data``
        (what arrived, when ``res`` > 0) delivered or held while paused; else
        the EOF, a receive armed again, or the error."""
        if data is not None:
            if self._lifecycle.wants_data and not self._held:
                try:
                    self._protocol.data_received(data)
                except Exception as exc:
                    self._callback_failed(exc)
                    return
                if self._lifecycle.wants_data:
                    self._arm_recv()
            else:
                self._held.append(data)  # paused: delivered after resume_reading
        elif res == 0:
            self._eof()
        elif res in _RETRY or res == -errno.ECANCELED:
            if self._lifecycle.wants_data:
                self._arm_recv()
        else:
            self._recv_failed(OSError(-res, os.strerror(-res)))

    def _bytes_received(self, res: int) -> None:
        """:meth:`_recv_done` for a receive into bytes (the C accelerator's
        turn, which handles the common case itself and hands the rest here):
        the kernel is done with the buffer, so the transport lets go of it
        whatever the result, and delivers what arrived (or holds it, or
        drops it, as :meth:`_recv_done` does)."""
        buffer = self._recv_buffer
        self._recv_buffer = None
        lifecycle = self._lifecycle
        if lifecycle.closing:
            # Reading stopped (close, abort): what came is dropped.
            if lifecycle.lost:
                self._operation_ended()
            return
        data = None
        if res > 0:
            if buffer is None:  # never: a receive into bytes is armed with its buffer
                self._recv_failed(OSError(errno.EFAULT, "a receive completed with no buffer of its own"))
                return
            if res == len(buffer) < READ_SIZE:  # filled: a bigger buffer from now on
                self._recv_size = READ_SIZE
            data = bytes(buffer[:res])  # (a copy, unless whole: this path is not the hot one)
        self._received(res, data)

    # HeldDelivery's hooks: how this transport pauses, resumes and delivers.

    def _pause_source(self) -> None:
        """Nothing to do: no receive is armed again; one in flight is held when it completes."""

    def _resume_source(self) -> None:
        if self._lifecycle.wants_data and not self._lifecycle.closing:
            self._arm_recv()

    def _soon_deliver(self, callback: Callable[[], object]) -> Any:
        return self._reactor.call_soon(callback)

    def _hand_over(self, data: bytes) -> None:
        self._protocol.data_received(data)

    def _stop_reading(self) -> None:
        """Reading ends (close, abort, an error): cancel the receive in flight."""
        self._stop_delivering()
        if self._recv_pending and not self._ring.closed:
            self._cancel(self._recv_seq, self._recv_id)

    def _cancel(self, sequence: int, user_data: int) -> None:
        """End an operation: withdrawn if the kernel has not seen it yet (its
        completion comes back as a no-op), else cancelled."""
        if not self._ring.withdraw(sequence):
            self._ring.prep_cancel(user_data, IGNORED)

    # -------------------------------------------------------------- sending

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` (one operation) if nothing is in flight, else queue it."""
        if self._idle_writer and type(data) is bytes:
            # The hot path: nothing in flight or queued, still open, and bytes
            # (_submit_send, inlined).
            if data:
                self._in_flight = data
                self._idle_writer = False
                self._buffer_size += len(data)
                quick = self._quick_entry
                if quick:
                    self._quick = True
                    self._send_seq = self._ring.push_bytes(quick, data)
                    self._quick_sends.append(self)
                else:
                    self._send_seq = self._ring.push_bytes(self._send_entry, data)
                if self._buffer_size > self._flow.high and self._flow.should_pause(self._buffer_size):
                    self._protocol.pause_writing()
            return
        self._write_otherwise(data)

    def _submit_send(self, data: bytes, *, counted: bool = False, quick: bool = True) -> None:
        """Hand ``data`` to the kernel; it stays referenced until the completion
        (a quick send's: until the poller finishes it after the enter)."""
        self._in_flight = data
        self._idle_writer = False
        if not counted:
            self._buffer_size += len(data)
        if quick and self._quick_entry:
            self._quick = True
            self._send_seq = self._ring.push_bytes(self._quick_entry, data)
            self._quick_sends.append(self)
        else:
            self._quick = False
            self._send_seq = self._ring.push_bytes(self._send_entry, data)

    def _quick_failed(self, res: int) -> None:
        """The quick send in flight did not go whole: ``res`` bytes were sent
        (``-EAGAIN``: none, the socket was full), or ``-errno``.  The rest
        goes first, as an ordinary send that waits for room."""
        data = self._in_flight
        self._quick = False
        if data is None:
            return
        lifecycle = self._lifecycle
        if lifecycle.dropped:
            self._in_flight = None
            if lifecycle.lost:
                self._operation_ended()
            return
        if res in _RETRY:
            res = 0
        if res < 0:
            self._in_flight = None
            self._force_close(OSError(-res, os.strerror(-res)))
            return
        self._buffer_size -= res
        self._submit_send(data[res:] if res else data, counted=True, quick=False)

    def _send_done(self, res: int, flags: int) -> None:
        """The send in flight completed: ``res`` bytes taken, or ``-errno``."""
        data = self._in_flight
        self._in_flight = None
        lifecycle = self._lifecycle
        if (
            data
            and res == len(data)
            and lifecycle.writable
            and not self._flow.paused
            and not self._buffer
            and not self._file_queue
        ):
            # The hot path: all taken, nothing queued behind it, still open,
            # no resume_writing due: idle again (_all_sent's case).
            self._buffer_size -= res
            self._idle_writer = True
            return
        if lifecycle.dropped or data is None:
            if lifecycle.lost:
                self._operation_ended()
            return
        if res < 0:
            if res in _RETRY:
                self._submit_send(data, counted=True)
                return
            self._force_close(OSError(-res, os.strerror(-res)))
            return
        if data is _WRITABLE:  # a poll's completion: res is its mask
            if (self._buffer or self._file_queue) and not self._send_queued():
                return
        elif res < len(data):
            self._buffer_size -= res
            # Taken in part (a socket buffer filled): the rest goes first.
            self._submit_send(data[res:], counted=True)
        else:
            self._buffer_size -= res
            if (self._buffer or self._file_queue) and not self._send_queued():
                return
        if self._flow.should_resume(self._buffer_size):
            try:
                self._protocol.resume_writing()
            except Exception as exc:
                self._callback_failed(exc)
                return
        if self._in_flight is not None or self._lifecycle.dropped:
            return
        if self._buffer or self._file_queue:  # resume_writing wrote
            self._send_queued()
        else:
            self._all_sent()

    def _send_queued(self) -> bool:
        """Send the whole queue as one operation (or the next piece of a file
        region at its head); False after an error, with the connection ending."""
        buffer = self._buffer
        if buffer:
            if len(buffer) == 1:
                head = buffer.popleft()
                data = head if type(head) is bytes else bytes(head)
            else:
                data = b"".join(buffer)
                buffer.clear()
            self._submit_send(data, counted=True)
            return True
        region: FileRegion = self._file_queue[0]  # type: ignore[assignment]
        if not self._sendfile_refused:
            return self._send_from_file(region)
        try:
            piece = region.read(PIECE_SIZE)
        except OSError as exc:
            self._force_close(exc)
            return False
        if not len(region):
            self._file_sent()  # the bytes written after it move to _buffer
        if not piece:  # the file was shorter than the region said
            self._buffer_size -= len(region)
            return self._send_queued() if (self._buffer or self._file_queue) else True
        self._submit_send(piece, counted=True)
        return True

    def _send_from_file(self, region: FileRegion) -> bool:
        """One ``sendfile`` of the region at the head of the queue, straight
        from the file (zero copy), then a poll operation for writability in
        place of a send in flight: its completion sends the next part.

        sendfile has no io_uring operation of its own; the poll keeps the
        one-operation-at-a-time rule, and one sendfile (at most 2 MiB) per
        turn keeps a fast reader of a big file from holding the loop."""
        try:
            sent = send_from_file(self._write_fd, region)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            if not sendfile_refused(exc):
                self._force_close(exc)
                return False
            self._sendfile_refused = True
            return self._send_queued()
        self._buffer_size -= sent
        if not len(region):
            self._file_sent()
        self._wait_writable()
        return True

    def _wait_writable(self) -> None:
        """A poll operation in place of a send: its completion sends what is queued."""
        self._in_flight = _WRITABLE
        self._quick = False
        self._idle_writer = False
        self._send_seq = self._ring.prep_poll_add(self._write_fd, _POLLOUT, self._send_id)

    def _all_sent(self) -> None:
        lifecycle = self._lifecycle
        if lifecycle.closing:
            self._finish(None)
        elif lifecycle.write_state is WriteState.EOF_PENDING:
            lifecycle.apply(Event.EOF_SENT)
            if self._half_close is not None:
                self._half_close()
        else:
            self._idle_writer = True

    def write_file(self, region: FileRegion) -> None:
        """Queue ``region`` after what was written (see the contract); it is
        read in pieces, each sent as one operation."""
        was_idle = self._idle_writer
        if not self._queue_file(region):
            return
        if not was_idle or self._lifecycle.lost:
            return  # a send is in flight: its completion sends the region
        if self._flow.paused:
            # Over the high-water mark: pause_writing saw all of it counted;
            # the sending starts on the next turn.
            self._wait_writable()
        else:
            self._send_queued()

    def write_eof(self) -> None:
        """Half-close once what is queued and in flight is sent."""
        if not self._lifecycle.writable:  # EOF asked already, or closing
            return
        if self._half_close is None:
            raise NotImplementedError("this transport cannot half-close (see can_write_eof)")
        self._lifecycle.apply(Event.WRITE_EOF)
        self._idle_writer = False
        if self._in_flight is None and not self._buffer and not self._file_queue:
            self._lifecycle.apply(Event.EOF_SENT)
            self._half_close()

    # -------------------------------------------------------------- endings

    def close(self) -> None:
        """Send what is queued, then close; ``connection_lost(None)`` follows
        once the kernel has given back every operation."""
        if self._lifecycle.closing:
            return
        self._lifecycle.apply(Event.CLOSE)
        self._idle_writer = False
        self._stop_reading()
        if self._in_flight is None and not self._buffer and not self._file_queue:
            self._finish(None)

    def _finish(self, exc: BaseException | None) -> None:
        """The connection is over: cancel what the kernel still owns;
        ``connection_lost`` once it has all come back."""
        self._lifecycle.apply(Event.LOST)
        self._lost_exc = exc
        self._stop_delivering()
        ring = self._ring
        if not ring.closed:
            if self._recv_pending:
                self._cancel(self._recv_seq, self._recv_id)
            if self._in_flight is not None and self._lifecycle.dropped:
                if self._quick:
                    # Withdrawn if the kernel has not seen it; if it has, it
                    # is over already (the poller finishes it after the enter).
                    ring.withdraw(self._send_seq)
                else:
                    self._cancel(self._send_seq, self._send_id)
        self._operation_ended()

    def _operation_ended(self) -> None:
        """Once lost: when no operation is left in the kernel, schedule ``connection_lost``."""
        if self._recv_pending or self._in_flight is not None:
            return
        self._reactor.call_soon(self._connection_lost, self._lost_exc)

    def _release(self) -> None:
        """After ``connection_lost``: forget the handlers and buffer, close the descriptors."""
        streams = self._poller.streams
        streams.pop(self._recv_id, None)
        streams.pop(self._send_id, None)
        self._recv_view = None
        self._recv_buffer = None
        super()._release()


class CompletionReadPipeTransport(ReadOnly, CompletionTransport):
    """The completion driver's transport for a descriptor it only reads (a child's stderr)."""

    __slots__ = ()

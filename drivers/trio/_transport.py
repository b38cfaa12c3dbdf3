"""The weft transport over a Trio stream: one task per connection moves its bytes.

A :class:`TrioTransport` runs a weft protocol over any ``trio.abc.Stream``:
a ``trio.SocketStream`` (TCP, UNIX sockets), a pipe pair, a PTY, or a
stream a Trio program made itself.  Its bytes are moved by one task per
connection, :meth:`TrioTransport.run`, which is two loops side by side in a
nursery of its own::

    receiving:  data = await stream.receive_some(READ_SIZE);  protocol.data_received(data)
    sending:    await stream.send_all(what write() queued)

``write()`` never blocks and never awaits, as weft's contract says: it
queues and wakes the sending loop (over a socket the driver made, a write
that finds the loop idle is first tried on the socket at once, as asyncio
does, which spares a task switch per reply).  So what Trio's streams do with an
``await`` (backpressure), the transport does with weft's flow control:
the bytes queued *and* those ``send_all`` is still sending count in
``get_write_buffer_size()``, and ``pause_writing``/``resume_writing`` come
at the water marks, from every write path (``write``, ``writelines``,
``write_file``).  ``send_all`` hands the kernel at most
:data:`MAX_SEND` bytes at a time, so the buffer drains, and
``resume_writing`` comes, in steps the protocol can see.

``pause_reading()`` stops the receiving loop before its next
``receive_some``: the kernel's buffers fill and TCP slows the peer.  A
receive already under way when the pause came (a pause from another
connection, or a timer) finishes, and its bytes are held for
``resume_reading()``; Trio streams cannot be asked to un-receive.

Endings, in the connection's own task:

* ``close()`` stops delivering, lets the sending loop flush, then stops
  the receiving loop (cancelling its ``receive_some``) and ``aclose()``\\ s
  the stream: ``connection_lost(None)``;
* ``abort()`` cancels both loops, drops what was queued, resets a TCP peer
  (``SO_LINGER`` 0) and closes the stream at once;
* an error from the stream (``trio.BrokenResourceError``) ends the
  connection with the ``OSError`` under it (``ConnectionResetError``,
  ``BrokenPipeError``), as on every weft driver: the protocol never sees
  Trio's wrapper (a stream that broke with no ``OSError`` under it, a
  Trio program's own, gives a ``ConnectionResetError`` reading and a
  ``BrokenPipeError`` writing, caused by Trio's error);
* a protocol callback that raises is logged and ends that connection
  alone, with the exception.

:func:`weft.drivers.trio._files.send_region` sends a file region: with
``os.sendfile`` where the stream has a descriptor, else a piece at a time.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

import trio

from weft.drivers._core.connection_clock import ConnectionClock, DriverClock
from weft.drivers._core.connection_log import log_closed, log_opened
from weft.drivers._core.lifecycle import Event, TransportLifecycle, WriteState
from weft.drivers._core.socket_defaults import LINGER_ZERO, READ_SIZE
from weft.drivers._core.transport_base import TransportBookkeeping
from weft.drivers.trio._files import send_region
from weft.drivers.trio._plumbing import TaskHost
from weft.drivers.trio._task_loops import TwoLoopTask
from weft.protocols._flow_control import WriteFlowControl
from weft.protocols.contract import FileRegion
from weft.protocols.errors import WriteAfterEofError

__all__ = ["MAX_SEND", "READ_SIZE", "TrioTransport"]

logger = logging.getLogger("weft.drivers.trio")

#: The most one ``send_all`` is handed: writes queued meanwhile are joined up
#: to it, and a bigger write goes in pieces of it, so that flow control sees
#: the buffer drain while a slow peer takes a big write.
MAX_SEND = 256 * 1024

#: Seconds a graceful ``aclose()`` of the stream may take before it is
#: closed forcefully (a socket's is immediate; a stream of a Trio program's
#: own, a TLS one say, may wait for its peer).
ACLOSE_TIMEOUT = 5.0

# What the sending loop's queue holds: whole writes, and file regions.
_Piece = bytes | FileRegion


class TrioTransport(TransportBookkeeping, TwoLoopTask):
    """A :class:`weft.protocols.contract.Transport` (a ``FileWriteTransport`` too) over a Trio stream.

    Made by :class:`~weft.drivers.trio.TrioRuntime` (listening,
    connecting, ``connect_pipes``, ``connect_stream``), never by
    applications.  Its methods belong to the thread of the runtime's Trio
    run, as protocol code does.

    ``can_write_eof`` says whether the stream can half-close (a
    ``trio.abc.HalfCloseableStream``, or a pipe pair); ``reset`` is called
    before an abortive close (a TCP socket's ``SO_LINGER`` 0).
    """

    def __init__(
        self,
        runtime: TaskHost,
        protocol: Any,
        stream: trio.abc.Stream,
        extra: dict[str, Any],
        *,
        can_write_eof: bool | None = None,
        reset: Callable[[], object] | None = None,
        send_now: Callable[[bytes], int] | None = None,
        eof_errors: frozenset[int] = frozenset(),
    ) -> None:
        self._runtime = runtime
        self._protocol = protocol
        self._stream = stream
        clock: DriverClock = runtime
        self._extra: dict[str, Any] = {**extra, "clock": ConnectionClock(clock, self._run_callback)}
        self._flow = WriteFlowControl()
        self._lifecycle = TransportLifecycle()
        self._can_write_eof = (
            isinstance(stream, trio.abc.HalfCloseableStream) if can_write_eof is None else can_write_eof
        )
        self._reset = reset
        # A non-blocking send straight to the socket under the stream, for a
        # write that finds the sending loop idle (see write()).
        self._send_now = send_now
        # errnos that mean EOF here (EIO from a PTY's master once the child is gone).
        self._eof_errors = eof_errors
        self._queue: deque[_Piece] = deque()
        self._buffer_size = 0  # queued, plus what send_all is still sending
        self._held: deque[bytes | None] = deque()  # received while paused (None: the EOF)
        self._error: BaseException | None = None
        self._reset_on_close = False
        # Each loop while it waits for something to do (None while it runs).
        self._sender_parked: trio.lowlevel.Task | None = None
        self._receiver_parked: trio.lowlevel.Task | None = None
        # The connection's whole task (abort cancels it) and its receiving loop (close does).
        self._scope = trio.CancelScope()
        self._receive_scope = trio.CancelScope()
        self._started = False
        #: Called with this transport once the connection has ended.
        self.on_lost: list[Callable[[TrioTransport], object]] = []

    # --------------------------------------------------------------- start

    def start(self) -> None:
        """Call ``connection_made``, then start the connection's task in the runtime's nursery."""
        self._started = True
        self._runtime._spawn(self.run)
        log_opened(logger, self)
        try:
            self._protocol.connection_made(self)
        except Exception as exc:
            self._callback_failed(exc)

    @property
    def stream(self) -> trio.abc.Stream:
        """The Trio stream under this transport (for what weft does not offer; do not read or write it)."""
        return self._stream

    # ------------------------------------------------------- BaseTransport

    def close(self) -> None:
        """Stop reading, flush what was written, then close; ``connection_lost(None)`` follows."""
        if self._lifecycle.closing:
            return
        self._lifecycle.apply(Event.CLOSE)
        self._held.clear()
        self._wake_sender()  # it flushes, then stops the receiving loop

    # ------------------------------------------------------- ReadTransport

    def pause_reading(self) -> None:
        """Receive nothing more until :meth:`resume_reading` (the kernel's buffers then slow the peer)."""
        if not self._lifecycle.reading:  # paused already, or closing
            return
        self._lifecycle.apply(Event.PAUSE)

    def resume_reading(self) -> None:
        """Deliver again: first, on a later turn, whatever was held meanwhile."""
        if not self._lifecycle.paused:  # not paused, or closing
            return
        self._lifecycle.apply(Event.RESUME)
        parked = self._receiver_parked
        if parked is not None:
            self._receiver_parked = None
            trio.lowlevel.reschedule(parked)

    # ------------------------------------------------------ WriteTransport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` now if the socket takes it and nothing waits; queue the
        rest for the connection's task."""
        admitted = self._admit(data)
        if admitted is None:
            return
        send_now = self._send_now
        if send_now is not None and self._sender_parked is not None:
            # The sending loop is idle, so nothing is queued or being sent:
            # try the socket at once, as asyncio's write does, and spare the
            # task switch (the loop's send_all would make this same call).
            try:
                sent = send_now(admitted)
            except OSError:  # full (EAGAIN), or broken: the loop meets it through Trio
                sent = 0
            if sent == len(admitted):
                return
            admitted = admitted[sent:]
        self._queue.append(admitted)
        self._buffer_size += len(admitted)
        # The sender is woken (no longer idle) before pause_writing: a write
        # made from inside it must queue behind this one, not go at once.
        parked = self._sender_parked
        if parked is not None:
            self._sender_parked = None
            trio.lowlevel.reschedule(parked)
        if self._flow.should_pause(self._buffer_size):
            self._pause_protocol()

    def write_file(self, region: FileRegion) -> None:
        """Queue ``region`` after what was written (see the contract's ``write_file``)."""
        if self._lifecycle.eof_written:
            region.close()
            raise WriteAfterEofError("write_file() after write_eof()")
        size = len(region)
        if not size or self._lifecycle.closing:
            region.close()
            return
        self._queue.append(region)
        self._buffer_size += size
        self._wake_sender()  # before pause_writing: see write()
        if self._flow.should_pause(self._buffer_size):
            self._pause_protocol()

    def write_eof(self) -> None:
        """Half-close once what was written is sent; reading goes on."""
        if not self._lifecycle.writable:  # EOF asked already, or closing
            return
        if not self._can_write_eof:
            raise NotImplementedError("this transport cannot half-close (see can_write_eof)")
        self._lifecycle.apply(Event.WRITE_EOF)
        self._wake_sender()

    def can_write_eof(self) -> bool:
        """Whether the stream can half-close: a ``trio.abc.HalfCloseableStream`` or a pipe pair."""
        return self._can_write_eof

    def abort(self) -> None:
        """Drop what is queued and close now; a TCP peer gets a reset."""
        if self._lifecycle.lost:
            return
        # A close() that has flushed everything is as good as done: a reset
        # now could destroy bytes the peer has not read yet.
        if not (self._lifecycle.closing and self._buffer_size == 0):
            self._reset_on_close = True
        self._drop()

    def __repr__(self) -> str:
        lifecycle = self._lifecycle
        state = "lost" if lifecycle.lost else "closing" if lifecycle.closing else "open"
        return f"<TrioTransport {self._extra.get('peername')!r} {state} buffered={self._buffer_size}>"

    # ------------------------------------------------------------ the task

    async def _receive_loop(self) -> None:
        lifecycle, held = self._lifecycle, self._held
        receive = self._stream.receive_some
        while True:
            if held and lifecycle.reading:
                if not self._deliver_held():
                    return
                continue
            if not lifecycle.wants_data:
                if lifecycle.closing or not lifecycle.paused:  # stopped, or at EOF
                    return
                self._receiver_parked = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(self._unpark_receiver)
                continue
            try:
                data = await receive(READ_SIZE)
            except trio.BrokenResourceError as exc:
                cause = _os_error(exc)
                if cause is not None and cause.errno in self._eof_errors:
                    data = b""
                else:
                    self._fail(cause or _connection_error(exc, errno.ECONNRESET))
                    return
            except trio.ClosedResourceError:
                return  # closed under it: the end is on its way
            if lifecycle.closing:
                return
            if type(data) is not bytes:  # a stream of a Trio program's own may hand out bytearrays
                data = bytes(data)
            if not data:
                lifecycle.apply(Event.EOF_RECEIVED)
                if lifecycle.paused or held:
                    held.append(None)
                    continue
                self._deliver_eof()
                return
            if lifecycle.paused:  # paused while the receive was under way
                held.append(data)
                continue
            try:
                self._protocol.data_received(data)
            except Exception as exc:
                self._callback_failed(exc)
                return

    def _deliver_held(self) -> bool:
        """Deliver what was held while paused (the EOF last); False once the connection is ending."""
        held, lifecycle = self._held, self._lifecycle
        while held and lifecycle.reading:
            data = held.popleft()
            if data is None:
                self._deliver_eof()
                return False
            try:
                self._protocol.data_received(data)
            except Exception as exc:
                self._callback_failed(exc)
                return False
        return not lifecycle.closing

    def _deliver_eof(self) -> None:
        try:
            keep_open = self._protocol.eof_received()
        except Exception as exc:
            self._callback_failed(exc)
            return
        if not keep_open:
            self.close()

    async def _send_loop(self) -> None:
        lifecycle, queue = self._lifecycle, self._queue
        stream = self._stream
        while True:
            if lifecycle.dropped:
                return
            if not queue:
                if lifecycle.write_state is WriteState.EOF_PENDING:
                    await self._send_eof()
                    continue
                if lifecycle.closing:
                    # Flushed: stop receiving (until now what came was read
                    # and dropped, which keeps a stream whose receive cannot
                    # be cancelled cleanly whole while it flushed), and the
                    # task closes the stream.
                    self._receive_scope.cancel()
                    return
                self._sender_parked = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(self._unpark_sender)
                continue
            piece = self._next_piece()
            try:
                if isinstance(piece, bytes):
                    await stream.send_all(piece)
                    self._sent(len(piece))
                else:
                    await send_region(stream, piece, self._sent)
            except trio.BrokenResourceError as exc:
                self._fail(_os_error(exc) or _connection_error(exc, errno.EPIPE))
                return
            except OSError as exc:  # a file region that cannot be read
                self._fail(exc)
                return
            except trio.ClosedResourceError:
                return

    def _next_piece(self) -> _Piece:
        """The head of the queue: a file region, or up to MAX_SEND bytes of writes, joined."""
        queue = self._queue
        head = queue.popleft()
        if not isinstance(head, bytes):
            return head
        if len(head) > MAX_SEND:
            queue.appendleft(head[MAX_SEND:])
            return head[:MAX_SEND]
        if not queue or not isinstance(queue[0], bytes) or len(head) + len(queue[0]) > MAX_SEND:
            return head
        pieces, size = [head], len(head)
        while queue and isinstance(piece := queue[0], bytes) and size + len(piece) <= MAX_SEND:
            pieces.append(piece)
            size += len(piece)
            queue.popleft()
        return b"".join(pieces)

    async def _send_eof(self) -> None:
        self._lifecycle.apply(Event.EOF_SENT)
        stream = self._stream
        try:
            if isinstance(stream, trio.abc.HalfCloseableStream):
                await stream.send_eof()
        except trio.BrokenResourceError:
            pass  # the peer is gone already; reading will tell

    def _sent(self, size: int) -> None:
        """``size`` bytes went to the stream: the buffer shrinks, and the protocol may resume."""
        if self._lifecycle.dropped:
            return
        self._buffer_size -= size
        if self._flow.should_resume(self._buffer_size):
            try:
                self._protocol.resume_writing()
            except Exception as exc:
                self._callback_failed(exc)

    def _unpark_receiver(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        self._receiver_parked = None
        return trio.lowlevel.Abort.SUCCEEDED

    # ------------------------------------------------------------- endings

    def _callback_failed(self, exc: Exception) -> None:
        """A protocol callback raised: log it, and end this connection with it (a TCP peer is reset)."""
        logger.error("exception in a callback of %r; closing %r", self._protocol, self, exc_info=exc)
        if self._lifecycle.lost:
            return
        self._reset_on_close = True
        self._fail(exc)

    def _drop(self) -> None:
        """Going away at once: nothing queued is sent, nothing held delivered; both loops cancelled."""
        lifecycle = self._lifecycle
        if lifecycle.dropped:
            return
        lifecycle.apply(Event.ABORT)
        self._held.clear()
        self._buffer_size = 0
        for piece in self._queue:
            if not isinstance(piece, bytes):
                piece.close()
        self._queue.clear()
        self._scope.cancel()

    async def _end(self) -> None:
        """Close the stream (gracefully after a close that flushed), then ``connection_lost``."""
        lifecycle, stream = self._lifecycle, self._stream
        try:
            if lifecycle.dropped:
                if self._reset_on_close and self._reset is not None:
                    self._reset()
                await trio.aclose_forcefully(stream)
            else:
                with trio.move_on_after(ACLOSE_TIMEOUT, shield=True) as waited:
                    await stream.aclose()
                if waited.cancelled_caught:
                    await trio.aclose_forcefully(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # closing what broke: closed all the same
        finally:
            for piece in self._queue:
                if not isinstance(piece, bytes):
                    piece.close()
            self._queue.clear()
            self._buffer_size = 0
            self._held.clear()
            log_closed(logger, self, self._error)
            self._report_lost()


def _os_error(exc: BaseException) -> OSError | None:
    """The ``OSError`` under Trio's ``BrokenResourceError`` (its cause), if there is one."""
    cause = exc.__cause__
    return cause if isinstance(cause, OSError) else None


def _connection_error(exc: trio.BrokenResourceError, code: int) -> ConnectionError:
    """What a stream that broke with no ``OSError`` under it (a Trio program's
    own stream) ends the connection with: the ``ConnectionError`` every weft
    driver reports for a vanished peer (``code``: ECONNRESET reading, EPIPE
    writing), caused by Trio's error."""
    kind = ConnectionResetError if code == errno.ECONNRESET else BrokenPipeError
    error = kind(code, f"the Trio stream broke: {exc or type(exc).__name__}")
    error.__cause__ = exc
    return error


def socket_reset(sock: socket.socket) -> Callable[[], None]:
    """What makes closing ``sock`` abortive: ``SO_LINGER`` 0 on a TCP socket (a reset), nothing else."""

    def reset() -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.fileno() >= 0:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)

    return reset

"""The blocking driver's transport: a reader thread, a writer thread, and the scheduler.

Each connection has two threads of its own:

* the **reader** blocks in ``recv`` and hands each chunk to the scheduler
  thread (:meth:`Scheduler.call_soon_threadsafe`), which calls
  ``data_received``.  At most one chunk waits there undelivered; past
  that, and while reading is paused, the reader stops calling ``recv``, so
  the kernel's buffers fill and TCP slows the peer, as on every driver;
* the **writer** sends, in order, what ``write()`` queued.  ``write()`` only
  appends to that queue under a lock, so it never blocks its caller and two
  threads' writes never interleave: each ``write`` is one piece of the queue.

Protocol callbacks (``connection_made``, ``data_received``, ``eof_received``,
``pause_writing``/``resume_writing``, ``connection_lost``, clock timers) run
only on the scheduler thread, so they never run on two threads at once.
The buffer size the protocol sees changes only there too: the writer reports
what it sent, and the scheduler subtracts it, so flow control
(:class:`~weft.protocols._flow_control.WriteFlowControl`) decides on a
stable number.

``write_file(region)`` queues a :class:`~weft.protocols.contract.FileRegion`
among the writes: the writer sends it with ``os.sendfile`` (a pipe: a piece
at a time), so it holds no memory, and its unsent length counts in the
buffer size, so flow control sees it as it sees written bytes.

``close()`` stops reading, lets the writer flush, then closes; ``abort()``
drops the queue and wakes both threads (a TCP peer gets a reset).  The
descriptors are closed, and ``connection_lost`` called, only once both
threads have left them.

With an ``idle_timeout``, a connection on which no byte has moved either way
for that long is closed (aborted if bytes wait that the peer is not taking):
one timer per connection, re-armed only when it fires, against the time the
channel last moved bytes, so reads and writes pay nothing for it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from weft.drivers._core.child_processes import ReadOnly
from weft.drivers._core.connection_clock import ConnectionClock
from weft.drivers._core.connection_log import log_closed, log_opened
from weft.drivers._core.lifecycle import Event, TransportLifecycle
from weft.drivers._core.socket_defaults import READ_SIZE
from weft.drivers._core.timers import Timer
from weft.drivers._core.transport_base import TransportBookkeeping
from weft.drivers.blocking._channels import Channel
from weft.drivers.blocking._scheduler import Scheduler
from weft.protocols._flow_control import WriteFlowControl
from weft.protocols.contract import FileRegion
from weft.protocols.errors import WriteAfterEofError

__all__ = ["READ_SIZE", "ReadOnlyThreadedTransport", "ThreadedTransport"]

logger = logging.getLogger("weft.drivers.blocking")


# Chunks read and not yet delivered before the reader waits.  One is
# enough to keep the reader's recv overlapping the protocol's work (a chunk
# counts as delivered as data_received starts), and it is what a paused
# protocol's connection holds: with 4, 200 never-reading echo clients held
# 85 MiB, with 1 38 MiB, at the same throughput (the kernel's own buffers
# do the reading ahead).
_MAX_UNDELIVERED = 1

# The most the writer joins into one send, and sends of a file per call.
_MAX_BATCH = 256 * 1024

# What the writer's queue holds: whole writes, and file regions.
_Piece = bytes | FileRegion


class ThreadedTransport(TransportBookkeeping):
    """A :class:`weft.protocols.contract.Transport` over a blocking :class:`Channel`.

    Made by :class:`~weft.drivers.blocking.BlockingRuntime`, never by
    applications.  ``write``/``writelines``/``write_file`` may be called from
    any thread; the other methods belong to the scheduler thread, as
    protocol code does.  ``idle_timeout`` (seconds, or ``None`` for none)
    closes the connection once no byte has moved either way for that long.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        protocol: Any,
        channel: Channel,
        extra: dict[str, Any],
        *,
        idle_timeout: float | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._protocol = protocol
        self._channel = channel
        self._extra = {**extra, "clock": ConnectionClock(scheduler, self._run_callback)}
        self._flow = WriteFlowControl()
        # Shared with the I/O threads: under _lock (and _changed, its condition).
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # Changed only on the scheduler thread, and only under the lock (see
        # _apply), so that the I/O threads can read it under the lock: it is
        # what tells the reader to wait or stop and the writer to half-close,
        # flush and close, or drop everything.  Other threads' write() reads
        # its flags without the lock, as a hint (the lock decides).
        self._lifecycle = TransportLifecycle()
        self._queue: deque[_Piece] = deque()
        self._buffer_size = 0  # written and not yet reported sent
        self._sent_unreported = 0
        self._report_posted = False
        self._undelivered = 0
        self._sending = False
        self._threads_left = 2
        # The scheduler thread's own.
        self._pending: deque[bytes] = deque()  # read while paused
        # The peer's EOF came while data was held: it follows that data.
        # (Part of what is held, as the other drivers' None after their
        # held data; the read side's state says the EOF came.)
        self._eof_pending = False
        self._end_exc: BaseException | None = None
        self._reset_on_close = False
        self._idle_timeout = idle_timeout
        self._idle_timer: Timer | None = None
        #: Called with this transport once the connection is lost.
        self.on_lost: list[Callable[[ThreadedTransport], object]] = []

    # --------------------------------------------------------------- start

    def start(self) -> None:
        """Start the I/O threads and call ``connection_made`` (scheduler thread)."""
        name = self._extra.get("peername")
        for role, target in (("reader", self._read_loop), ("writer", self._write_loop)):
            threading.Thread(target=target, name=f"weft-{role} {name}", daemon=True).start()
        if self._idle_timeout is not None:
            self._idle_timer = self._scheduler.call_later(self._idle_timeout, self._check_idle)
        log_opened(logger, self)
        self._call(self._protocol.connection_made, self)

    def _apply(self, event: Event) -> None:
        """Move the lifecycle (scheduler thread), under the lock, and wake the I/O threads."""
        with self._changed:
            self._lifecycle.apply(event)
            self._changed.notify_all()

    # ------------------------------------------------------- BaseTransport

    def close(self) -> None:
        """Stop reading, flush, then close; ``connection_lost(None)`` follows on a later turn."""
        if self._lifecycle.closing:
            return
        self._apply(Event.CLOSE)
        self._channel.wake_reader()

    # ------------------------------------------------------- ReadTransport

    def pause_reading(self) -> None:
        """Deliver nothing more, and let the reader stop reading until resumed."""
        if not self._lifecycle.reading:  # paused already, or closing
            return
        self._apply(Event.PAUSE)

    def resume_reading(self) -> None:
        """Deliver what came meanwhile, on a later turn, and read again."""
        if not self._lifecycle.paused:  # not paused, or closing
            return
        self._apply(Event.RESUME)
        if self._pending or self._eof_pending:
            self._scheduler.call_soon(self._deliver_pending)

    # ------------------------------------------------------ WriteTransport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` for the writer thread; never blocks (any thread may call it)."""
        admitted = self._admit(data)
        if admitted is None:
            return
        data = admitted
        with self._changed:
            self._queue.append(data)
            self._buffer_size += len(data)
            size = self._buffer_size
            self._changed.notify_all()
        if self._scheduler.on_scheduler_thread():
            if self._flow.should_pause(size):
                self._call(self._protocol.pause_writing)
        else:
            self._scheduler.call_soon_threadsafe(self._check_pause)

    def write_file(self, region: FileRegion) -> None:
        """Queue ``region`` after what was written so far; the writer sends it
        straight from the file (see the contract's ``write_file``).  Any
        thread may call it."""
        if self._lifecycle.eof_written:
            region.close()
            raise WriteAfterEofError("write_file() after write_eof()")
        size = len(region)
        if not size or self._lifecycle.closing:
            region.close()
            return
        with self._changed:
            # Ending meanwhile (seen from another thread): nobody would take it from the queue.
            if self._lifecycle.dropped:
                region.close()
                return
            self._queue.append(region)
            self._buffer_size += size
            total = self._buffer_size
            self._changed.notify_all()
        if self._scheduler.on_scheduler_thread():
            if self._flow.should_pause(total):
                self._call(self._protocol.pause_writing)
        else:
            self._scheduler.call_soon_threadsafe(self._check_pause)

    def write_eof(self) -> None:
        """Half-close once the queue is sent."""
        if not self._lifecycle.writable:  # EOF asked already, or closing
            return
        if not self._channel.can_half_close():
            raise NotImplementedError("this transport cannot half-close (see can_write_eof)")
        self._apply(Event.WRITE_EOF)

    def can_write_eof(self) -> bool:
        """Sockets and pipe pairs can half-close; a single descriptor that is not a socket cannot."""
        return self._channel.can_half_close()

    def abort(self) -> None:
        """Drop the queue and close now; a TCP peer gets a reset."""
        if self._lifecycle.lost:
            return
        self._reset_on_close = True
        self._force_close(None)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the water marks (asyncio's defaults and rules)."""
        self._flow.set_limits(high, low)
        self._check_pause()

    def get_write_buffer_size(self) -> int:
        """Bytes written (and file regions' unsent bytes) not yet reported sent by the writer thread."""
        return self._buffer_size

    def __repr__(self) -> str:
        lifecycle = self._lifecycle
        state = "lost" if lifecycle.lost else "closing" if lifecycle.closing else "open"
        return f"<ThreadedTransport {self._extra.get('peername')} {state} buffered={self._buffer_size}>"

    # ------------------------------------------- on the scheduler thread

    def _call(self, method: Callable[..., object], *args: Any) -> bool:
        """Call into the protocol; if it raises, end the connection with the error."""
        try:
            method(*args)
        except Exception as exc:
            self._callback_failed(exc)
            return False
        return True

    def _callback_failed(self, exc: Exception) -> None:
        logger.error("exception in a callback of %r; closing %r", self._protocol, self, exc_info=exc)
        self._reset_on_close = True
        self._force_close(exc)

    def _check_pause(self) -> None:
        if not self._lifecycle.lost and self._flow.should_pause(self._buffer_size):
            self._call(self._protocol.pause_writing)

    def _report_sent(self) -> None:
        with self._changed:
            self._report_posted = False
            self._buffer_size -= self._sent_unreported
            self._sent_unreported = 0
            size = self._buffer_size
        if not self._lifecycle.lost and self._flow.should_resume(size):
            self._call(self._protocol.resume_writing)

    def _deliver(self, data: bytes) -> None:
        if self._lifecycle.closing:
            return
        if self._lifecycle.paused or self._pending:
            # Still undelivered: the reader stays held back until the
            # protocol has taken it (see _read_loop).
            self._pending.append(data)
            return
        self._delivered()
        self._call(self._protocol.data_received, data)

    def _delivered(self) -> None:
        """A chunk read went to the protocol: the reader may read one more."""
        with self._changed:
            self._undelivered -= 1
            self._changed.notify_all()

    def _reader_ended(self) -> None:
        if self._lifecycle.closing:
            return
        self._apply(Event.EOF_RECEIVED)
        if self._lifecycle.paused or self._pending:
            self._eof_pending = True  # after the data read before it
            return
        self._eof()

    def _deliver_pending(self) -> None:
        pending, lifecycle = self._pending, self._lifecycle
        while pending and lifecycle.reading:
            self._delivered()
            if not self._call(self._protocol.data_received, pending.popleft()):
                return
        if self._eof_pending and not pending and lifecycle.reading:
            self._eof_pending = False
            self._eof()

    def _eof(self) -> None:
        try:
            keep_open = self._protocol.eof_received()
        except Exception as exc:
            self._callback_failed(exc)
            return
        if not keep_open:
            self.close()

    def _io_failed(self, exc: OSError) -> None:
        self._force_close(exc)

    def _check_idle(self) -> None:
        """The idle timer fired: close if nothing moved for ``idle_timeout``, else re-arm."""
        self._idle_timer = None
        timeout = self._idle_timeout
        if self._lifecycle.lost or timeout is None:
            return
        quiet = self._scheduler.now() - self._channel.last_io
        if quiet < timeout:
            self._idle_timer = self._scheduler.call_later(timeout - quiet, self._check_idle)
            return
        # Armed again: a close that cannot flush is bounded by it too.
        self._idle_timer = self._scheduler.call_later(timeout, self._check_idle)
        if not self._lifecycle.closing and not self._buffer_size:
            logger.debug("closing %r: no bytes either way for %g s", self, timeout)
            self.close()
            return
        # Bytes wait and the peer takes none: closing would wait for ever.
        logger.debug("aborting %r: %d bytes unsent and none taken for %g s", self, self._buffer_size, timeout)
        self._reset_on_close = True
        self._force_close(TimeoutError(f"the peer took no bytes for {timeout:g} s"))

    def _force_close(self, exc: BaseException | None) -> None:
        """End at once (an error, an abort): drop the queue, wake both threads."""
        lifecycle = self._lifecycle
        if lifecycle.lost:
            return
        self._pending.clear()
        self._eof_pending = False
        with self._changed:
            if lifecycle.dropped:
                return
            lifecycle.apply(Event.ABORT)
            dropped = _take_regions(self._queue)
            self._buffer_size = 0
            self._sent_unreported = 0
            self._changed.notify_all()
            writer_busy = self._sending
        self._end_exc = exc
        for region in dropped:
            region.close()
        self._channel.wake_all(writer_busy=writer_busy)

    def _release(self) -> None:
        """Both threads have left: close the descriptors, then tell the protocol."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        with self._changed:  # a writer that failed left its queue
            self._lifecycle.apply(Event.LOST)
            dropped = _take_regions(self._queue)
        for region in dropped:
            region.close()
        try:
            self._channel.close(reset=self._reset_on_close)
        except OSError:
            logger.exception("closing %r", self)
        log_closed(logger, self, self._end_exc)
        try:
            self._protocol.connection_lost(self._end_exc)
        except Exception:
            logger.exception("exception in connection_lost of %r", self._protocol)
        finally:
            for callback in self.on_lost:
                callback(self)
            self.on_lost.clear()

    # ------------------------------------------------------ the I/O threads

    def _read_loop(self) -> None:
        post = self._scheduler.call_soon_threadsafe
        lifecycle = self._lifecycle  # read under the lock only
        try:
            while True:
                with self._changed:
                    # Wait while paused, or while a chunk waits undelivered;
                    # stop once closing.
                    while not lifecycle.closing and (
                        lifecycle.paused or self._undelivered >= _MAX_UNDELIVERED
                    ):
                        self._changed.wait()
                    if lifecycle.closing:
                        return
                try:
                    data = self._channel.recv(READ_SIZE)
                except OSError as exc:
                    with self._changed:
                        if not lifecycle.closing:
                            post(self._io_failed, exc)
                    return
                if not self._count_read(data):
                    return
                if not data:
                    post(self._reader_ended)
                    return
                post(self._deliver, data)
        finally:
            self._thread_left()

    def _write_loop(self) -> None:
        lifecycle = self._lifecycle  # read under the lock only
        eof_sent = False
        try:
            while True:
                with self._changed:
                    # Wait for something to send, the EOF to send, a close
                    # (flush, then close) or an abort (drop everything).
                    while not (self._queue or lifecycle.closing or (lifecycle.eof_written and not eof_sent)):
                        self._changed.wait()
                    if lifecycle.dropped:
                        return
                    batch = self._take_batch()
                    self._sending = batch is not None
                    if batch is None:
                        if lifecycle.eof_written and not eof_sent:
                            eof_sent = True
                        else:
                            return  # flushed: close
                if batch is None:
                    self._channel.half_close()
                    self._scheduler.call_soon_threadsafe(self._apply, Event.EOF_SENT)
                    continue
                if not (self._send(batch) if isinstance(batch, bytes) else self._send_file(batch)):
                    return
        finally:
            self._thread_left()

    def _send(self, data: bytes) -> bool:
        """Send ``data`` (writer thread); False if the writer must stop.

        A big write goes ``_MAX_BATCH`` bytes at a time, each reported as it
        goes: flow control sees the buffer drain, and the idle timeout sees
        bytes move, while a slow peer takes it.
        """
        view = memoryview(data) if len(data) > _MAX_BATCH else None
        start = 0
        while True:
            piece = data if view is None else view[start : start + _MAX_BATCH]
            try:
                self._channel.send_all(piece)
            except OSError as exc:
                self._send_failed(exc)
                return False
            start += len(piece)
            more = start < len(data)
            if not self._sent(len(piece), more=more):
                return False
            if not more:
                return True

    def _send_file(self, region: FileRegion) -> bool:
        """Send the whole region, reporting as it goes (writer thread); False
        if the writer must stop.  The region is closed either way."""
        try:
            while len(region):
                try:
                    size = self._channel.send_file(region, _MAX_BATCH)
                except OSError as exc:
                    self._send_failed(exc)
                    return False
                if not self._sent(size, more=bool(len(region))):
                    return False
            return True
        finally:
            region.close()

    def _send_failed(self, exc: OSError) -> None:
        with self._changed:
            self._sending = False
            if not self._lifecycle.dropped:
                self._scheduler.call_soon_threadsafe(self._io_failed, exc)

    def _sent(self, size: int, *, more: bool = False) -> bool:
        """Count ``size`` bytes sent and post a report if none is pending;
        False if aborted meanwhile (``more``: the writer goes on sending)."""
        with self._changed:
            self._sending = more
            if self._lifecycle.dropped:
                return False
            self._sent_unreported += size
            report = not self._report_posted
            self._report_posted = True
        if report:
            self._scheduler.call_soon_threadsafe(self._report_sent)
        return True

    def _count_read(self, data: bytes) -> bool:
        """Count a chunk read as undelivered; False if the reader must stop instead."""
        with self._changed:
            if self._lifecycle.closing:
                return False
            if data:
                self._undelivered += 1
            return True

    def _take_batch(self) -> _Piece | None:
        """Pop a file region, or up to ``_MAX_BATCH`` bytes of whole writes,
        joined (under the lock); None when the queue is empty."""
        queue = self._queue
        if not queue:
            return None
        head = queue[0]
        if not isinstance(head, bytes) or len(queue) == 1 or len(head) >= _MAX_BATCH:
            return queue.popleft()
        pieces: list[bytes] = []
        size = 0
        while queue and isinstance(piece := queue[0], bytes) and size + len(piece) <= _MAX_BATCH:
            pieces.append(piece)
            size += len(piece)
            queue.popleft()
        return b"".join(pieces)

    def _thread_left(self) -> None:
        with self._changed:
            self._threads_left -= 1
            last = self._threads_left == 0
        if last:
            self._scheduler.call_soon_threadsafe(self._release)


def _take_regions(queue: deque[_Piece]) -> list[FileRegion]:
    """Empty ``queue``, returning the file regions it held (to be closed outside the lock)."""
    regions = [piece for piece in queue if not isinstance(piece, bytes)]
    queue.clear()
    return regions


class ReadOnlyThreadedTransport(ReadOnly, ThreadedTransport):
    """The blocking driver's transport for a descriptor it only reads (a child's stderr)."""

    def write_file(self, region: FileRegion) -> None:
        """Refused, as ``write`` (the region is closed: the transport was handed it)."""
        region.close()
        raise NotImplementedError("this transport only reads")

"""The coroutine driver's transport: one task per connection moves its bytes.

A :class:`TaskTransport` is the reactor's :class:`~weft.drivers.reactor.DescriptorTransport`
(the same contract, the same bookkeeping, the same system calls bound at
construction) with the byte moving taken out of the readiness callbacks and
put in a :class:`~weft.drivers.coroutines.Task`, the connection's *pump*::

    while the connection is open:
        await wake-up                 # readable, writable, or something to do
        if readable:  data = recv();  protocol.data_received(data)
        if queued:    send what the kernel takes

The readiness callbacks only note what became ready and wake the pump.
Registration stays as persistent as the reactor's own: the descriptor is
registered for reading once, and write interest is added only while the
kernel has not taken everything, so a steady exchange of small messages
makes no ``epoll_ctl`` call.

``write()`` only queues and wakes the pump, which sends on its next step;
a write made inside ``data_received`` (the pump's own step) is sent before
the step ends, so an echo costs one ``recv`` and one ``send``, as on the
reactor.  Because the queue is checked against the high-water mark at once,
a large write can make ``pause_writing`` come (and ``resume_writing``
follow) before the kernel was even asked: the contract allows it.

``write_file`` queues a file region as the reactor's transport does, and the
pump sends it with ``os.sendfile`` once the bytes ahead of it are out: one
``sendfile`` (at most 2 MiB) per step, so a fast reader of a big file
cannot keep the pump from the other tasks.
"""

from __future__ import annotations

import logging
from typing import Any

from weft.drivers._core.child_processes import ReadOnly
from weft.drivers._core.connection_log import log_opened
from weft.drivers._core.futures import Future
from weft.drivers._core.lifecycle import Event, WriteState
from weft.drivers.coroutines._task import Task
from weft.drivers.reactor._descriptor_transport import READ_SIZE, DescriptorTransport
from weft.protocols.contract import FileRegion

__all__ = ["TaskReadPipeTransport", "TaskTransport"]

logger = logging.getLogger("weft.drivers.coroutine")


class TaskTransport(DescriptorTransport):
    """A stream transport whose bytes one task moves (see the module docstring).

    Made by the :class:`~weft.drivers.coroutine._runtime.CoroutineRuntime`
    (``listen_tcp``, ``connect_tcp``, ``connect_pipes``, ``spawn_process``...),
    never by applications.
    """

    _logger = logger

    __slots__ = ("_pump_task", "_readable", "_reader_on", "_waiter", "_writer_on")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The bytes are moved by the pump, never straight from write().
        self._idle_writer = False
        self._readable = False
        self._reader_on = False
        self._writer_on = False
        # The future the pump awaits; None while the pump is running.
        self._waiter: Future[None] | None = None
        self._pump_task: Task[None] | None = None

    # --------------------------------------------------------------- start

    def start(self) -> None:
        """Call ``connection_made``, then start the connection's task."""
        self._reactor._open[self] = self.abort
        log_opened(logger, self)
        try:
            self._protocol.connection_made(self)
        except Exception as exc:
            self._callback_failed(exc)
            return
        self._pump_task = Task(self._reactor, self._pump(), name=f"pump {self._extra.get('peername')!r}")

    @property
    def task(self) -> Task[None] | None:
        """The task moving this connection's bytes (``None`` before ``start``)."""
        return self._pump_task

    # ------------------------------------------------------- what changes

    def close(self) -> None:
        """Flush, then close (the task sends what is queued first)."""
        super().close()
        self._wake()

    def resume_reading(self) -> None:
        """Read again (the pump does, on its next step)."""
        if not self._lifecycle.paused:  # not paused, or closing
            return
        self._lifecycle.apply(Event.RESUME)
        self._wake()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data``; the connection's task sends it on its next step."""
        admitted = self._admit(data)
        if admitted is None:
            return
        data = admitted
        self._write_to.append(data)  # _buffer, or behind a queued file region
        self._buffer_size += len(data)
        if self._flow.should_pause(self._buffer_size):
            self._protocol.pause_writing()
        self._wake()

    def write_file(self, region: FileRegion) -> None:
        """Queue ``region`` (see the contract); the connection's task sends it with ``os.sendfile``."""
        if self._queue_file(region):
            self._wake()

    def write_eof(self) -> None:
        """Half-close once the queue is sent."""
        if not self._lifecycle.writable:  # EOF asked already, or closing
            return
        if self._half_close is None:
            raise NotImplementedError("this transport cannot half-close (see can_write_eof)")
        self._lifecycle.apply(Event.WRITE_EOF)
        self._wake()

    def __repr__(self) -> str:
        lifecycle = self._lifecycle
        state = "lost" if lifecycle.lost else "closing" if lifecycle.closing else "open"
        return f"<TaskTransport fd={self._read_fd}/{self._write_fd} {state} buffered={self._buffer_size}>"

    # ----------------------------------------------- readiness: note, wake

    def _on_readable(self) -> None:
        self._readable = True
        self._wake()

    def _on_writable(self) -> None:
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _stop_reading(self) -> None:
        # Called by the parent's pause_reading, close, EOF and forced close.
        if self._reader_on:
            self._reader_on = False
            self._reactor._set_reader(self._read_fd, None, self)
        self._readable = False

    def _finish(self, exc: BaseException | None) -> None:
        if self._writer_on:
            self._writer_on = False
            self._reactor._set_writer(self._write_fd, None, self)
        super()._finish(exc)
        self._wake()  # the pump sees the end and returns

    # ------------------------------------------------------------ the pump

    async def _pump(self) -> None:
        """Move the bytes until the connection is lost."""
        lifecycle = self._lifecycle
        try:
            while True:
                if self._readable:
                    self._readable = False
                    self._read_once()
                if not lifecycle.lost:
                    self._send_queued()
                if lifecycle.lost:
                    return
                self._want_reading()
                waiter = self._waiter = Future(self._reactor.call_soon)
                await waiter
                self._waiter = None
        except Exception as exc:  # a bug here must end the connection, never hang it
            logger.error("the task of %r failed", self, exc_info=exc)
            self._reset_on_close = True
            self._force_close(exc)

    def _want_reading(self) -> None:
        """Be registered for reading exactly while the protocol wants data."""
        if self._reader_on or not self._lifecycle.wants_data:  # paused, closing or at EOF
            return
        self._reader_on = True
        self._reactor._set_reader(self._read_fd, self._on_readable, self)

    def _read_once(self) -> None:
        if not self._reader_on:
            return  # paused, closing or at EOF since the event
        try:
            data = self._recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._recv_failed(exc)
            return
        try:
            if data:
                self._protocol.data_received(data)
            else:
                self._eof()
        except Exception as exc:
            self._callback_failed(exc)

    def _send_queued(self) -> None:
        """Send what the kernel takes; wait for writability for the rest."""
        buffer = self._buffer
        while buffer:
            # Until the kernel takes nothing (then it is full): a send it only
            # partly took costs one EAGAIN more, on a path that waits anyway.
            sent = self._send_buffered()
            if sent is None:
                return
            if not sent:
                break
        # A file region at the head: one sendfile a step (the writable
        # event brings the next), so a fast reader cannot hog the pump.
        if self._file_queue and not buffer and self._send_file() is None:
            return
        if self._flow.should_resume(self._buffer_size):
            try:
                self._protocol.resume_writing()
            except Exception as exc:
                self._callback_failed(exc)
        lifecycle = self._lifecycle
        if lifecycle.lost:
            return
        if buffer or self._file_queue:
            if not self._writer_on:
                self._writer_on = True
                self._reactor._set_writer(self._write_fd, self._on_writable, self)
            return
        if self._writer_on:
            self._writer_on = False
            self._reactor._set_writer(self._write_fd, None, self)
        if lifecycle.closing:
            self._finish(None)
        elif lifecycle.write_state is WriteState.EOF_PENDING and self._half_close is not None:
            lifecycle.apply(Event.EOF_SENT)
            self._half_close()


class TaskReadPipeTransport(ReadOnly, TaskTransport):
    """The coroutine driver's transport for a descriptor it only reads (a child's stderr)."""

    __slots__ = ()

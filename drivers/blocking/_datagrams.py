"""Datagrams on the blocking driver: an I/O thread per endpoint, callbacks on the scheduler thread.

The shape is the byte streams' (:mod:`weft.drivers.blocking._transport`):
the I/O never calls the protocol, it hands what it read (and what became
of what it sent) to the scheduler thread, which runs every callback; and
``sendto`` never blocks its caller.  One thread does both directions
rather than a reader and a writer: a datagram socket never blocks half-way
through a datagram, so the thread waits in ``poll`` on the socket (for
reading while it may deliver, for writing while datagrams wait) and on a
wake-up pipe of its own, and every send is a non-blocking one, made under
the endpoint's lock so that datagrams leave in the order ``sendto`` was
called, whichever thread called it.

``sendto`` sends at once when nothing waits (from any thread: the socket
is non-blocking), and queues otherwise; the thread sends the queue as the
socket takes it and reports what went, so that the buffer size the
protocol sees changes only on the scheduler thread, where flow control
decides.  At most :data:`MAX_UNDELIVERED` datagrams wait for the scheduler
thread; past that the thread stops reading, and the kernel holds (then
drops) what comes, as it does for any slow UDP reader.

``close()`` stops reading and lets the thread send what is queued;
``abort()`` drops the queue.  The socket is closed, and ``connection_lost``
called, once the thread has left it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from weft.drivers._core.connection_clock import ConnectionClock
from weft.drivers._core.datagrams import (
    UDP_READ_SIZE,
    UNIX_READ_SIZE,
    SendRules,
    as_datagram,
    datagram_error,
    max_datagram_size,
)
from weft.drivers._core.lifecycle import ConnectionState, Event, TransportLifecycle
from weft.drivers._core.socket_defaults import name_or_none
from weft.drivers._core.transport_base import EndpointBookkeeping
from weft.drivers.blocking._scheduler import Scheduler
from weft.protocols._flow_control import WriteFlowControl

__all__ = ["MAX_UNDELIVERED", "ThreadedDatagramTransport"]

logger = logging.getLogger("weft.drivers.blocking")

#: Datagrams read and not yet delivered by the scheduler thread before the
#: I/O thread stops reading.
MAX_UNDELIVERED = 64

# Datagrams read per poll, at most, so that sending is never kept waiting.
_READS_PER_POLL = 16


class ThreadedDatagramTransport(EndpointBookkeeping):
    """A :class:`weft.protocols.contract.DatagramTransport` served by a thread.

    Made by :class:`~weft.drivers.blocking.BlockingRuntime`'s ``open_udp``
    and ``open_unix_datagram``, never by applications.  ``sendto`` may be
    called from any thread; the other methods belong to the scheduler
    thread, as protocol code does.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        protocol: Any,
        sock: socket.socket,
        peer: Any = None,
        socket_file: str | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._protocol = protocol
        self._sock = sock
        self._socket_file = socket_file
        sock.setblocking(False)
        family = sock.family
        connected_to = name_or_none(sock.getpeername)
        if connected_to is not None:
            self._rules = SendRules(family, connected_to, connected=True, limit=max_datagram_size(family))
        else:
            self._rules = SendRules(family, peer, limit=max_datagram_size(family))
        self._read_size = UNIX_READ_SIZE if family == socket.AF_UNIX else UDP_READ_SIZE
        self._extra: dict[str, Any] = {
            "socket": sock,
            "sockname": name_or_none(sock.getsockname),
            "peername": connected_to,
            "clock": ConnectionClock(scheduler, self._run_callback),
        }
        self._flow = WriteFlowControl()
        # Shared with the I/O thread: under _lock.  The lifecycle changes on
        # the scheduler thread only, and under the lock (see _apply).
        self._lock = threading.Lock()
        self._lifecycle = TransportLifecycle()
        self._queue: deque[tuple[bytes, Any]] = deque()
        self._buffer_size = 0  # queued and not yet reported sent
        self._sent_unreported = 0
        self._report_posted = False
        self._undelivered = 0
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._end_exc: BaseException | None = None
        self._thread: threading.Thread | None = None
        #: Called with this transport once the endpoint is lost.
        self.on_lost: list[Callable[[ThreadedDatagramTransport], object]] = []

    # --------------------------------------------------------------- start

    def start(self) -> None:
        """Start the I/O thread, then call ``connection_made`` (scheduler thread).

        What the thread reads waits for the scheduler thread, which is here:
        nothing is delivered before ``connection_made`` has run.  If it
        raises, the thread is there to wind the endpoint down.
        """
        self._thread = threading.Thread(
            target=self._io_loop, name=f"weft-datagrams {self._extra['sockname']!r}", daemon=True
        )
        self._thread.start()
        self._call(self._protocol.connection_made, self)

    def _apply(self, event: Event) -> None:
        """Move the lifecycle (scheduler thread), under the lock, and wake the I/O thread."""
        with self._lock:
            self._lifecycle.apply(event)
        self._wake()

    # ------------------------------------------------------------ the contract

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        """Send ``data`` as one datagram now if the socket takes it, else queue it (any thread)."""
        if type(data) is not bytes:
            data = as_datagram(data)
        if self._lifecycle.closing:
            return
        target = self._rules.target(len(data), addr)
        with self._lock:
            if self._lifecycle.connection_state is not ConnectionState.OPEN:  # closed meanwhile, elsewhere
                return
            queue = self._queue
            if not queue:
                try:
                    self._send(data, target)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as exc:
                    self._scheduler.call_soon_threadsafe(self._report, datagram_error(exc, len(data)))
                    return
                else:
                    return
            queue.append((data, target))
            self._buffer_size += len(data)
            wake = len(queue) == 1
        if wake:
            self._wake()  # the thread now waits for the socket to be writable too
        if self._scheduler.on_scheduler_thread():
            self._check_pause()
        else:
            self._scheduler.call_soon_threadsafe(self._check_pause)

    def close(self) -> None:
        """Stop reading, send what is queued, then close; ``connection_lost(None)`` follows."""
        if self._lifecycle.closing:
            return
        self._apply(Event.CLOSE)

    def abort(self) -> None:
        """Drop what is queued and close now."""
        self._force_close(None)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the water marks (asyncio's defaults and rules)."""
        self._flow.set_limits(high, low)
        self._check_pause()

    def get_write_buffer_size(self) -> int:
        """Bytes of datagrams queued and not yet reported sent by the I/O thread."""
        return self._buffer_size

    def __repr__(self) -> str:
        lifecycle = self._lifecycle
        state = "lost" if lifecycle.lost else "closing" if lifecycle.closing else "open"
        return f"<ThreadedDatagramTransport {self._extra['sockname']!r} {state} queued={len(self._queue)}>"

    # ------------------------------------------------- on the scheduler thread

    def _call(self, method: Callable[..., object], *args: Any) -> bool:
        """Call into the protocol; if it raises, end the endpoint with the error."""
        try:
            method(*args)
        except Exception as exc:
            self._callback_failed(exc)
            return False
        return True

    def _callback_failed(self, exc: Exception) -> None:
        logger.error("exception in a callback of %r; closing %r", self._protocol, self, exc_info=exc)
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        with self._lock:
            if self._lifecycle.dropped:
                return
            self._lifecycle.apply(Event.ABORT)
            self._queue.clear()
            self._buffer_size = 0
            self._sent_unreported = 0
        self._end_exc = exc
        self._wake()
        if self._thread is None:  # never started: nothing to wait for
            self._scheduler.call_soon(self._release)

    def _check_pause(self) -> None:
        if not self._lifecycle.lost and self._flow.should_pause(self._buffer_size):
            self._call(self._protocol.pause_writing)

    def _report_sent(self) -> None:
        with self._lock:
            self._report_posted = False
            self._buffer_size -= self._sent_unreported
            self._sent_unreported = 0
            size = self._buffer_size
        if not self._lifecycle.lost and self._flow.should_resume(size):
            self._call(self._protocol.resume_writing)

    def _deliver(self, data: bytes, addr: Any) -> None:
        with self._lock:
            self._undelivered -= 1
            wake = self._undelivered == MAX_UNDELIVERED - 1
        if wake:
            self._wake()  # the thread stopped reading at the bound
        if not self._lifecycle.closing:
            self._call(self._protocol.datagram_received, data, addr)

    def _report(self, exc: Exception) -> None:
        if not self._lifecycle.closing:
            self._call(self._protocol.error_received, exc)

    def _release(self) -> None:
        """The I/O thread has left: close the socket, then tell the protocol."""
        lifecycle = self._lifecycle
        with self._lock:
            if lifecycle.lost:
                return
            lifecycle.apply(Event.LOST)
        self._sock.close()
        for fd in (self._wake_read, self._wake_write):
            os.close(fd)
        if self._socket_file is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._socket_file)
        try:
            self._protocol.connection_lost(self._end_exc)
        except Exception:
            logger.exception("exception in connection_lost of %r", self._protocol)
        finally:
            for callback in self.on_lost:
                callback(self)
            self.on_lost.clear()

    # ------------------------------------------------------- the I/O thread

    def _send(self, data: bytes, target: Any) -> None:
        """One non-blocking send (under the lock, so datagrams keep their order)."""
        if target is None:
            self._sock.send(data)
        else:
            self._sock.sendto(data, target)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_write, b"\0")

    def _io_loop(self) -> None:
        post = self._scheduler.call_soon_threadsafe
        lifecycle = self._lifecycle  # read under the lock only
        poller = select.poll()
        fd = self._sock.fileno()
        poller.register(self._wake_read, select.POLLIN)
        try:
            while True:
                with self._lock:
                    if lifecycle.dropped or (lifecycle.closing and not self._queue):
                        return  # aborted, or closed and flushed
                    reading = lifecycle.wants_data and self._undelivered < MAX_UNDELIVERED
                    writing = bool(self._queue)
                if reading or writing:
                    poller.register(
                        fd, (select.POLLIN if reading else 0) | (select.POLLOUT if writing else 0)
                    )
                else:
                    # Not even for errors: one reported now (ICMP's) would
                    # wake the thread for ever, since only a read or a send
                    # clears it.
                    with contextlib.suppress(KeyError):
                        poller.unregister(fd)
                ready = dict(poller.poll())
                if ready.get(self._wake_read):
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_read, 4096)
                events = ready.get(fd, 0)
                if events & (select.POLLOUT | select.POLLERR) and writing:
                    self._send_queued(post)
                if events & (select.POLLIN | select.POLLERR | select.POLLHUP) and reading:
                    self._read_some(post)
        except Exception as exc:  # a bug here must end the endpoint, never hang it
            logger.error("the I/O thread of %r failed", self, exc_info=exc)
            self._end_exc = exc
        finally:
            post(self._release)

    def _send_queued(self, post: Callable[..., object]) -> None:
        sent = 0
        with self._lock:
            queue = self._queue
            while queue and not self._lifecycle.dropped:
                data, target = queue[0]
                try:
                    self._send(data, target)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:  # this datagram is lost; the rest go on
                    post(self._report, datagram_error(exc, len(data)))
                queue.popleft()
                sent += len(data)
            if not sent or self._lifecycle.dropped:
                return
            self._sent_unreported += sent
            report = not self._report_posted
            self._report_posted = True
        if report:
            post(self._report_sent)

    def _read_some(self, post: Callable[..., object]) -> None:
        recvfrom, size = self._sock.recvfrom, self._read_size
        for _ in range(_READS_PER_POLL):
            try:
                data, addr = recvfrom(size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                post(self._report, exc)
                return
            with self._lock:
                if self._lifecycle.closing:
                    return
                self._undelivered += 1
                full = self._undelivered >= MAX_UNDELIVERED
            post(self._deliver, data, addr)
            if full:
                return

"""The completion driver's runtime: the reactor on an io_uring, with completion transports.

:class:`CompletionRuntime` is :class:`~weft.drivers.reactor.Reactor` with two
things changed: its poller is a :class:`~weft.drivers.completion._ring_poller.RingPoller`
(so timers, ``call_soon_threadsafe``, signals, child processes, datagrams and
``add_reader`` work as on the reactor, through polls on the ring), and its
stream transports (TCP, UNIX, pipes, stdio, processes) are
:class:`~weft.drivers.completion._transport.CompletionTransport`, whose
bytes move by receive and send operations.  Listeners accept with one
multishot ``ACCEPT`` each (:mod:`weft.drivers.completion._listener`).

Closing the runtime aborts what is still open, as the reactor's close does,
and then turns the ring until the kernel has given back every operation, so
that no buffer is let go while the kernel may still write into it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from weft.drivers.completion._listener import CompletionListener, listen_tcp, listen_unix
from weft.drivers.completion._ring_poller import RingPoller
from weft.drivers.completion._transport import CompletionReadPipeTransport, CompletionTransport
from weft.drivers.completion._uring import Ring
from weft.drivers.reactor._descriptor_transport import DescriptorTransport
from weft.drivers.reactor._loop import Reactor, logger

__all__ = ["CLOSE_WAIT", "CompletionRuntime"]

#: Seconds :meth:`CompletionRuntime.close` waits for the kernel to give back
#: operations cancelled at close (it takes microseconds; this bounds a stuck one).
CLOSE_WAIT = 5.0


class CompletionRuntime(Reactor):
    """The reactor on io_uring: every operation submitted, every result a completion.

    Conforms to :class:`weft.drivers._runtime.Runtime`.  Raises
    :class:`~weft.drivers.completion._uring.RingUnavailableError` (a
    ``WeftError``) when the kernel refuses io_uring; ``open_runtime`` turns
    that into :class:`~weft.drivers.UnavailableDriverError`.

    One thread: where the kernel makes the ring single-issuer (Linux 6.1
    and later), the first thread that turns the loop (``run``,
    ``run_once``...) owns it, and running, turning or closing it on another
    raises :class:`~weft.drivers.completion.RingThreadError`.  It may be
    made on one thread and run on another; other threads reach it through
    ``call_soon_threadsafe`` (and ``stop``), which only write an eventfd.
    """

    name = "completion"
    stream_transport_class: type[DescriptorTransport] = CompletionTransport
    read_only_transport_class: type[DescriptorTransport] = CompletionReadPipeTransport

    def __init__(self, ring: Ring | None = None) -> None:
        self._ring_poller = RingPoller(ring)
        super().__init__(self._ring_poller)

    @property
    def ring(self) -> Ring:
        """The ring (``ring.enters`` counts the ``io_uring_enter`` calls made)."""
        return self._ring_poller.ring

    def listen_tcp(
        self, factory: Callable[[], Any], host: str | None = "127.0.0.1", port: int = 0
    ) -> CompletionListener:
        """Accept TCP connections on ``host:port`` (a multishot accept per socket)."""
        return listen_tcp(self, self._ring_poller, factory, host, port)

    def listen_unix(self, factory: Callable[[], Any], path: str) -> CompletionListener:
        """Accept connections on a UNIX-domain socket at ``path`` (a multishot accept)."""
        return listen_unix(self, self._ring_poller, factory, path)

    def close(self) -> None:
        """As the reactor's close, and first: abort what is open and turn the
        ring until every operation the kernel owned has come back (at most
        :data:`CLOSE_WAIT` seconds; what is still out then is kept, never freed)."""
        if self._running:
            raise RuntimeError("cannot close a running reactor")
        if self._closed:
            return
        # Closing turns the ring: on its own thread only, checked before
        # anything is ended (RingThreadError).
        self._ring_poller.ring.check_thread()
        if self._run_before_close():
            return
        for end in list(self._open.values()):
            end()
        poller = self._ring_poller
        deadline = time.monotonic() + CLOSE_WAIT
        while self._open and time.monotonic() < deadline:
            poller.poll(0.0 if self._ready else 0.01)
            for _ in range(len(self._ready)):
                timer = self._ready.popleft()
                try:
                    timer.run()
                except Exception as exc:
                    logger.error("exception in callback %r", timer, exc_info=exc)
            for end in list(self._open.values()):
                end()
        super().close()

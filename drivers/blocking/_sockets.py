"""TCP and UNIX-domain sockets on the blocking driver: listening with a bounded pool, and connecting.

A :class:`BlockingListener` has one **accept thread**, which waits in ``poll`` on its
listening sockets (and on a wake-up pipe, so that :meth:`BlockingListener.close`
stops it at once) and hands each accepted socket to the scheduler thread,
where the protocol is made and the connection started.

The pool is bounded: at most ``max_connections`` connections are served at
once, each with its reader and writer threads.  A client over the bound is
not left waiting unaccepted (where it cannot tell a full server from a dead
one): the accept thread goes on accepting, and answers it at once with the
listener's ``busy_reply`` on a cheap path that starts no thread
(:mod:`weft.drivers.blocking._refusals`).  The limit is logged when reached
and when service is back under it (:class:`~weft.drivers._core.connection_limit.LimitReport`).

Each accepted connection gets the listener's ``idle_timeout``: one on which
no byte moves either way for that long is closed, so idle clients cannot
hold the pool for ever.

Connecting over TCP is Happy Eyeballs (RFC 8305) with a short-lived thread
per attempt, the name looked up on weft's shared resolver pool
(:mod:`weft.drivers.blocking._connecting`); over a UNIX-domain socket, one
blocking ``connect`` in a thread.  Either resolves a
:class:`~weft.drivers._core.futures.Future` from the scheduler thread.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from weft.drivers._core.accepting import ACCEPT_PAUSE, RESOURCE_ERRORS
from weft.drivers._core.connection_limit import LimitReport, checked_idle_timeout, checked_max_connections
from weft.drivers._core.futures import Future
from weft.drivers._core.listeners import ListeningSockets
from weft.drivers._core.socket_binding import format_address
from weft.drivers._core.socket_defaults import DEFAULT_CONNECT_TIMEOUT
from weft.drivers._core.unix_connecting import UnixConnect, connect_unix_blocking
from weft.drivers.blocking._channels import SocketChannel
from weft.drivers.blocking._connecting import TCPConnect
from weft.drivers.blocking._refusals import Refusals
from weft.drivers.blocking._transport import ThreadedTransport
from weft.protocols.contract import Transport
from weft.protocols.errors import ArgumentError, ClosedResourceError

if TYPE_CHECKING:
    from weft.drivers.blocking._plumbing import PoolRuntime

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "BlockingListener",
    "connect",
]

logger = logging.getLogger("weft.drivers.blocking")

#: Connections a listener serves at once; more get its busy reply.
DEFAULT_MAX_CONNECTIONS = 256

#: Seconds with no byte either way after which a served connection closes.
#: Apache's ``Timeout`` was 300 s for years (60 s since 2.4); nginx's
#: per-phase timeouts are 60 s; Twisted has none by default.  Five minutes
#: frees a pool slot held by a client that went silent, yet leaves a quiet
#: but live client (a pub/sub subscriber on a slow topic) alone for long.
DEFAULT_IDLE_TIMEOUT = 300.0


class BlockingListener(ListeningSockets):
    """Listening sockets, an accept thread, and the connections it started.

    ``max_connections`` bounds the pool; a connection over it gets
    ``busy_reply`` (``None``: it is closed at once, with no reply) and a
    lingering close, from the accept thread.  ``idle_timeout`` (seconds, or
    ``None``) closes a connection on which nothing moved for that long.
    """

    def __init__(
        self,
        runtime: PoolRuntime,
        factory: Callable[[], Any],
        sockets: list[socket.socket],
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        busy_reply: bytes | None = None,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        checked_max_connections(max_connections)
        if busy_reply is not None and not isinstance(busy_reply, bytes):
            raise TypeError(f"busy_reply must be bytes or None, not {type(busy_reply).__name__}")
        self._idle_timeout = None if idle_timeout is None else checked_idle_timeout(idle_timeout)
        self._runtime = runtime
        self._factory = factory
        self._keep_sockets(sockets)
        #: The most connections served at once.
        self.max_connections = max_connections
        #: What a connection over the bound is answered.
        self.busy_reply = busy_reply
        #: The transports of the connections accepted and still open.
        self.connections: set[ThreadedTransport] = set()
        self._slots = threading.Lock()
        self._open = 0  # accepted and not yet lost: guarded by _slots
        self.limit_report = LimitReport(
            "the listener on " + ", ".join(format_address(address) for address in self.addresses),
            max_connections,
            time.monotonic,
            logger,
        )
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._accept_loop, name="weft-accept", daemon=True)
        self._thread.start()

    @property
    def idle_timeout(self) -> float | None:
        """Seconds with no byte either way before a connection closes (None: never)."""
        return self._idle_timeout

    @property
    def refused(self) -> int:
        """How many connections were refused with the busy reply so far."""
        return self.limit_report.refused_total

    def close(self) -> None:
        """Stop accepting now (new clients are refused); open connections are left alone."""
        if self._closed:
            return
        self._closed = True
        os.write(self._wake_write, b"\0")
        self._thread.join(5.0)
        self._close_sockets()
        for fd in (self._wake_read, self._wake_write):
            os.close(fd)
        self._runtime._listeners.discard(self)

    # ------------------------------------------------------- accept thread

    def _accept_loop(self) -> None:
        poller = select.poll()
        by_fd = {sock.fileno(): sock for sock in self.sockets}
        refusals = Refusals(poller, self.busy_reply)
        paused_until: float | None = None  # out of descriptors: not accepting until then

        def listen(on: bool) -> None:
            for fd in by_fd:
                if on:
                    poller.register(fd, select.POLLIN)
                else:
                    poller.unregister(fd)

        listen(True)
        poller.register(self._wake_read, select.POLLIN)
        try:
            while not self._closed:
                timeout = refusals.poll_timeout()
                if paused_until is not None:
                    resume_in = max(0, math.ceil((paused_until - time.monotonic()) * 1000))
                    timeout = resume_in if timeout is None else min(timeout, resume_in)
                ready = poller.poll(timeout)
                for fd, _event in ready:
                    if fd == self._wake_read:
                        return
                    listening = by_fd.get(fd)
                    if listening is None:
                        refusals.readable(fd)
                    elif paused_until is None and not self._accept(listening, refusals):
                        # Out of descriptors: free the lingering ones and
                        # let the backlog hold new clients for a while.
                        refusals.close()
                        listen(False)
                        paused_until = time.monotonic() + ACCEPT_PAUSE
                refusals.expire()
                if paused_until is not None and time.monotonic() >= paused_until:
                    paused_until = None
                    listen(True)
        finally:
            refusals.close()

    def _accept(self, listening: socket.socket, refusals: Refusals) -> bool:
        """Accept one connection, and serve it or refuse it; False when out of resources."""
        try:
            sock, _address = listening.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return True
        except OSError as exc:
            if exc.errno not in RESOURCE_ERRORS:
                logger.exception("accept failed on %s", listening.getsockname())
                return True
            logger.error("cannot accept (%s); pausing for %.0f s", exc, ACCEPT_PAUSE)
            return False
        with self._slots:
            admitted = self._open < self.max_connections
            if admitted:
                self._open += 1
        if not admitted:
            self.limit_report.refused()
            refusals.refuse(sock)
            return True
        self.limit_report.admitted()
        # Not call_soon_threadsafe alone: a runtime closed before the start
        # runs must still close the socket (see _hand_over.py).
        self._runtime._hand_over.send(sock, self._start)
        return True

    # ------------------------------------------------------ scheduler thread

    def _start(self, sock: socket.socket) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            protocol = self._factory()
        except Exception as exc:
            logger.error("the protocol factory raised; closing the connection", exc_info=exc)
            sock.close()
            self._slot_freed()
            return
        transport = self._runtime._transport(protocol, SocketChannel(sock), idle_timeout=self._idle_timeout)
        self.connections.add(transport)
        transport.on_lost.append(self._lost)
        transport.start()

    def _lost(self, transport: ThreadedTransport) -> None:
        self.connections.discard(transport)
        self._slot_freed()

    def _slot_freed(self) -> None:
        with self._slots:
            self._open -= 1


# -------------------------------------------------------------- connecting


def connect(
    runtime: PoolRuntime,
    factory: Callable[[], Any],
    family: int,
    address: Any,
    target: str,
    timeout: float,
    delay: float | None = None,
) -> Future[Transport]:
    """Connect; the future gets the transport once ``connection_made`` ran, or the error.

    TCP: Happy Eyeballs every ``delay`` seconds (:mod:`weft.drivers.blocking._connecting`),
    begun on the scheduler thread, as its timers must be.  UNIX: a thread
    that connects, and while the listener's backlog is full waits a moment
    and tries again (1 ms, doubling to 50 ms), for up to ``timeout``
    seconds, as a blocking ``connect`` waits for room
    (:mod:`weft.drivers._core.unix_connecting`); then ``ListenerBacklogFullError``.
    """
    result: Future[Transport] = Future(runtime.call_soon)
    if timeout != timeout:
        raise ArgumentError("timeout is NaN")
    closed = ClosedResourceError(f"cannot connect to {target}: the runtime was closed")
    if family != socket.AF_UNIX:
        host, port = address
        tcp = TCPConnect(runtime, factory, result, target, timeout, delay)
        # Closing the runtime ends the connect (its threads woken, their sockets closed).
        runtime._connecting[tcp] = functools.partial(tcp.fail, closed)
        result.add_done_callback(lambda _result: runtime._connecting.pop(tcp, None))
        runtime.call_soon(tcp.start, host, port)
        return result
    given_up = threading.Event()

    def wait(delay: float) -> None:
        if given_up.wait(delay):
            raise _GivenUp

    def attempt() -> None:
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                connect_unix_blocking(sock, UnixConnect(address), timeout, time.monotonic, wait)
            except BaseException:
                sock.close()
                raise
        except _GivenUp:
            return  # the runtime was closed: the future says so already
        except TimeoutError as exc:  # the backlog stayed full: its own message
            error: BaseException = exc
        except OSError as exc:
            error = OSError(exc.errno, f"cannot connect to {target}: {exc.strerror}") if exc.errno else exc
        else:
            if given_up.is_set():  # the runtime closed as it connected: no one will take it
                sock.close()
                return
            runtime.call_soon_threadsafe(connected, sock)
            return
        runtime.call_soon_threadsafe(ended, error)

    def ended(error: BaseException) -> None:
        runtime._connecting.pop(attempt, None)
        if not result.done():
            result.set_exception(error)

    def runtime_closed() -> None:
        runtime._connecting.pop(attempt, None)
        given_up.set()
        if not result.done():
            result.set_exception(closed)

    def connected(sock: socket.socket) -> None:
        runtime._connecting.pop(attempt, None)
        if result.done():  # the runtime closed meanwhile
            sock.close()
            return
        sock.setblocking(True)
        try:
            protocol = factory()
        except Exception as exc:
            sock.close()
            result.set_exception(exc)
            return
        transport = runtime._transport(protocol, SocketChannel(sock))
        transport.start()
        result.set_result(transport)

    runtime._connecting[attempt] = runtime_closed
    threading.Thread(target=attempt, name=f"weft-connect {target}", daemon=True).start()
    return result


class _GivenUp(ClosedResourceError):
    """(a connect thread) The runtime was closed: stop trying."""

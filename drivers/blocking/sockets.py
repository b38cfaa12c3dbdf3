"""TCP and UNIX-domain sockets on the blocking driver: listening with a bounded pool, and connecting.

A :class:`Listener` has one **accept thread**, which waits in ``poll`` on its
listening sockets (and on a wake-up pipe, so that :meth:`Listener.close`
stops it at once) and hands each accepted socket to the scheduler thread,
where the protocol is made and the connection started.

The pool is bounded: with ``max_connections`` connections open, the accept
thread stops accepting until one ends.  A client over the bound **waits**:
its connection sits in the kernel's listen backlog (TCP's handshake is done
by the kernel, so its ``connect`` succeeds) and is served, in order, as
soon as a slot frees.  Nothing is refused; a client that cannot wait uses
its own timeout.

Connecting runs in a thread (``socket.create_connection``: name resolution,
each address in turn, the timeout) and resolves a
:class:`~weft.drivers.futures.Future` from the scheduler thread.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from weft.drivers.blocking.channels import SocketChannel
from weft.drivers.blocking.transport import ThreadedTransport
from weft.drivers.futures import Future
from weft.drivers.socket_binding import remove_socket_file, tcp_port
from weft.protocols.contract import Transport
from weft.protocols.errors import ArgumentError

if TYPE_CHECKING:
    from weft.drivers.blocking.runtime import BlockingRuntime

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "DEFAULT_MAX_CONNECTIONS", "Listener", "connect"]

logger = logging.getLogger("weft.blocking")

#: Connections a listener serves at once; more wait in the kernel's backlog.
DEFAULT_MAX_CONNECTIONS = 256

#: Seconds a connect may take before it fails with TimeoutError.
DEFAULT_CONNECT_TIMEOUT = 30.0

_RESOURCE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_RESOURCE_PAUSE = 1.0


class Listener:
    """Listening sockets, an accept thread, and the connections it started."""

    def __init__(
        self,
        runtime: BlockingRuntime,
        factory: Callable[[], Any],
        sockets: list[socket.socket],
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        if max_connections < 1:
            raise ArgumentError(f"max_connections must be >= 1, not {max_connections!r}")
        self._runtime = runtime
        self._factory = factory
        self.sockets = sockets
        #: The most connections served at once.
        self.max_connections = max_connections
        #: The transports of the connections accepted and still open.
        self.connections: set[ThreadedTransport] = set()
        self._slots = threading.Condition()
        self._open = 0  # accepted and not yet lost: guarded by _slots
        self._closed = False
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._accept_loop, name="weft-accept", daemon=True)
        self._thread.start()

    @property
    def addresses(self) -> list[Any]:
        """What each socket is bound to: ``(host, port)`` pairs, or paths."""
        return [sock.getsockname() for sock in self.sockets]

    @property
    def port(self) -> int:
        """The TCP port (the real one when 0 was asked for)."""
        return tcp_port(self.addresses)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Stop accepting now (new clients are refused); open connections are left alone."""
        if self._closed:
            return
        addresses = self.addresses
        with self._slots:
            self._closed = True
            self._slots.notify_all()
        os.write(self._wake_write, b"\0")
        self._thread.join(5.0)
        for sock, address in zip(self.sockets, addresses, strict=True):
            if sock.family == socket.AF_UNIX:
                remove_socket_file(address)
            sock.close()
        for fd in (self._wake_read, self._wake_write):
            os.close(fd)
        self._runtime._listeners.discard(self)

    # ------------------------------------------------------- accept thread

    def _accept_loop(self) -> None:
        poller = select.poll()
        by_fd = {sock.fileno(): sock for sock in self.sockets}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        poller.register(self._wake_read, select.POLLIN)
        while True:
            with self._slots:
                # The bound: accept nothing more until a connection ends.
                while not self._closed and self._open >= self.max_connections:
                    self._slots.wait()
                if self._closed:
                    return
            ready = [fd for fd, _event in poller.poll()]
            if self._wake_read in ready:
                return
            for fd in ready:
                self._accept(by_fd[fd])

    def _accept(self, listening: socket.socket) -> None:
        try:
            sock, _address = listening.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as exc:
            if exc.errno not in _RESOURCE_ERRORS:
                logger.exception("accept failed on %s", listening.getsockname())
            else:
                logger.error("cannot accept (%s); pausing for %.0f s", exc, _RESOURCE_PAUSE)
            with self._slots:
                self._slots.wait(_RESOURCE_PAUSE)
            return
        with self._slots:
            self._open += 1
        self._runtime.call_soon_threadsafe(self._start, sock)

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
        transport = self._runtime._transport(protocol, SocketChannel(sock))
        self.connections.add(transport)
        transport.on_lost.append(self._lost)
        transport.start()

    def _lost(self, transport: ThreadedTransport) -> None:
        self.connections.discard(transport)
        self._slot_freed()

    def _slot_freed(self) -> None:
        with self._slots:
            self._open -= 1
            self._slots.notify_all()


# -------------------------------------------------------------- connecting


def connect(
    runtime: BlockingRuntime,
    factory: Callable[[], Any],
    family: int,
    address: Any,
    target: str,
    timeout: float,
) -> Future[Transport]:
    """Connect in a thread; the future gets the transport once ``connection_made`` ran, or the error."""
    result: Future[Transport] = Future(runtime.call_soon)

    def attempt() -> None:
        try:
            if family == socket.AF_UNIX:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(timeout)
                    sock.connect(address)
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection(address, timeout=timeout)
        except TimeoutError:
            error: BaseException = TimeoutError(
                errno.ETIMEDOUT, f"cannot connect to {target}: no answer in {timeout:g} s"
            )
        except socket.gaierror as exc:
            error = exc
        except OSError as exc:
            error = OSError(exc.errno, f"cannot connect to {target}: {exc.strerror}") if exc.errno else exc
        else:
            runtime.call_soon_threadsafe(connected, sock)
            return
        runtime.call_soon_threadsafe(result.set_exception, error)

    def connected(sock: socket.socket) -> None:
        sock.settimeout(None)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            protocol = factory()
        except Exception as exc:
            sock.close()
            result.set_exception(exc)
            return
        transport = runtime._transport(protocol, SocketChannel(sock))
        transport.start()
        result.set_result(transport)

    threading.Thread(target=attempt, name=f"weft-connect {target}", daemon=True).start()
    return result

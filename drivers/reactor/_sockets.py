"""TCP and UNIX-domain sockets on the reactor: listening and connecting.

Applications never touch a socket: they give a protocol factory and get
transports.  A :class:`ReactorListener` accepts until closed and keeps the set of
live connections, which a graceful stop waits on; its accepting (batches,
and a pause when out of descriptors) is :mod:`weft.drivers._core.accepting`'s,
shared with the asyncio driver.  Connecting returns a
:class:`~weft.drivers._core.futures.Future` of the transport; a refused connection
fails it with ``ConnectionRefusedError``, an expired timeout with
``TimeoutError``, each with the address in the message.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from weft.drivers._core.accepting import Acceptor
from weft.drivers._core.connecting import AddressByAddress
from weft.drivers._core.futures import Future
from weft.drivers._core.listeners import ListeningSockets
from weft.drivers._core.socket_binding import (
    DEFAULT_BACKLOG,
    bind_tcp,
    bind_unix,
)
from weft.drivers._core.socket_defaults import DEFAULT_CONNECT_TIMEOUT
from weft.drivers.reactor._descriptor_transport import DescriptorTransport, socket_transport
from weft.protocols.contract import Transport

if TYPE_CHECKING:
    from weft.drivers.reactor._plumbing import TransportLoop

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "ReactorListener",
    "connect_tcp",
    "connect_unix",
    "listen_tcp",
    "listen_unix",
]

logger = logging.getLogger("weft.drivers.reactor")

ProtocolFactory = Callable[[], Any]


class ReactorListener(ListeningSockets):
    """Sockets accepting connections for one protocol factory."""

    def __init__(
        self, reactor: TransportLoop, factory: ProtocolFactory, sockets: list[socket.socket]
    ) -> None:
        self._reactor = reactor
        self._factory = factory
        reactor._open[self] = self.close
        self._keep_sockets(sockets)
        #: The transports of the connections accepted and still open.
        self.connections: set[DescriptorTransport] = set()
        self._acceptor = Acceptor(
            sockets, self._start, watch=self._watch, call_later=reactor.call_later, logger=logger
        )

    def close(self) -> None:
        """Stop accepting; open connections are left alone."""
        if self._closed:
            return
        self._closed = True
        self._reactor._open.pop(self, None)
        self._acceptor.close()
        self._close_sockets()

    def _watch(self, sock: socket.socket, reader: Callable[[], object] | None) -> None:
        self._reactor._set_reader(sock.fileno(), reader, None)

    def _start(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            protocol = self._factory()
        except Exception as exc:
            logger.error("the protocol factory raised; closing the connection", exc_info=exc)
            sock.close()
            return
        transport = socket_transport(self._reactor, protocol, sock, {})
        self.connections.add(transport)
        transport.on_lost.append(self.connections.discard)
        transport.start()


# --------------------------------------------------------------- listening


def listen_tcp(
    reactor: TransportLoop,
    factory: ProtocolFactory,
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    backlog: int = DEFAULT_BACKLOG,
) -> ReactorListener:
    """Listen on every address ``host`` resolves to (all interfaces for ``None``
    or ``""``), IPv4 and IPv6 alike; port 0 picks a free one.

    Errors (a port in use, an unknown host) raise at once, as ``OSError``.
    """
    return ReactorListener(reactor, factory, bind_tcp(host, port, backlog=backlog))


def listen_unix(
    reactor: TransportLoop, factory: ProtocolFactory, path: str, *, backlog: int = DEFAULT_BACKLOG
) -> ReactorListener:
    """Listen on a UNIX-domain socket at ``path``.

    A stale socket file left by a dead server is replaced; a live one is
    ``OSError(EADDRINUSE)``; any other file at ``path`` is ``FileExistsError``,
    never overwritten.
    """
    return ReactorListener(reactor, factory, [bind_unix(path, backlog=backlog)])


# -------------------------------------------------------------- connecting


def connect_tcp(
    reactor: TransportLoop,
    factory: ProtocolFactory,
    host: str,
    port: int,
    *,
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> Future[Transport]:
    """Connect to ``host:port`` (trying each address it resolves to in turn).

    The future gets the transport once ``connection_made`` has run, or the
    error: ``ConnectionRefusedError``, ``TimeoutError`` after ``timeout``
    seconds in all, ``socket.gaierror`` for a name that does not resolve.
    Name resolution runs in a thread, so it never blocks the loop.
    """
    result: Future[Transport] = Future(reactor.call_soon)
    _Connect(reactor, factory, result, f"{host}:{port}", timeout).start_tcp(host, port)
    return result


def connect_unix(
    reactor: TransportLoop, factory: ProtocolFactory, path: str, *, timeout: float = DEFAULT_CONNECT_TIMEOUT
) -> Future[Transport]:
    """Connect to the UNIX-domain socket at ``path``."""
    result: Future[Transport] = Future(reactor.call_soon)
    _Connect(reactor, factory, result, path, timeout).start_unix(path)
    return result


class _Connect(AddressByAddress):
    """One connect: each address in turn (:class:`AddressByAddress`), a non-blocking
    ``connect`` the reactor watches for each, the timeout."""

    def __init__(
        self,
        reactor: TransportLoop,
        factory: ProtocolFactory,
        result: Future[Transport],
        target: str,
        timeout: float,
    ) -> None:
        super().__init__(reactor.call_soon_threadsafe, target)
        self.reactor = reactor
        self.factory = factory
        self.result = result
        self.sock: socket.socket | None = None
        self.timer = reactor.call_later(timeout, self.expire, timeout)

    def _attempt(self, family: int, address: Any) -> None:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        self.sock = sock
        code = sock.connect_ex(address)
        if code in (0, errno.EINPROGRESS, errno.EAGAIN):
            self.reactor._set_writer(sock.fileno(), self.connected, None)
        else:
            self.give_up_on_address(OSError(code, os.strerror(code)))

    def connected(self) -> None:
        sock = self.sock
        if sock is None:  # already failed (timed out)
            return
        self.reactor._set_writer(sock.fileno(), None, None)
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.give_up_on_address(_os_error(code))
            return
        self.timer.cancel()
        self.sock = None
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            protocol = self.factory()
        except Exception as exc:
            sock.close()
            self.result.set_exception(exc)
            return
        transport = socket_transport(self.reactor, protocol, sock, {})
        transport.start()
        self.result.set_result(transport)

    def give_up_on_address(self, error: OSError) -> None:
        self.errors.append(error)
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.next_address()

    def expire(self, timeout: float) -> None:
        self.fail(self.timeout_error(timeout))

    def fail(self, error: BaseException) -> None:
        if self.result.done():
            return
        self.timer.cancel()
        if self.sock is not None:
            self.reactor._set_writer(self.sock.fileno(), None, None)
            self.sock.close()
            self.sock = None
        self.result.set_exception(error)


def _os_error(code: int) -> OSError:
    """The OSError subclass Python raises for ``code`` (ConnectionRefusedError...)."""
    return OSError(code, os.strerror(code))

"""TCP and UNIX-domain sockets on the reactor: listening and connecting.

Applications never touch a socket: they give a protocol factory and get
transports.  A :class:`ReactorListener` accepts until closed and keeps the set of
live connections, which a graceful stop waits on; its accepting (batches,
and a pause when out of descriptors) is :mod:`weft.drivers._core.accepting`'s,
shared with the asyncio driver.  Connecting returns a
:class:`~weft.drivers._core.futures.Future` of the transport; a refused connection
fails it with ``ConnectionRefusedError``, an expired timeout with
``TimeoutError``, each with the address in the message.  A UNIX connect
whose listener's backlog is full is tried again on timers until it connects
or its timeout passes (:mod:`weft.drivers._core.unix_connecting`), then fails
with ``ListenerBacklogFullError``: never a transport over a socket that is
not connected.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from weft.drivers._core.accepting import Acceptor
from weft.drivers._core.connecting import HAPPY_EYEBALLS_DELAY, AddressByAddress
from weft.drivers._core.futures import Future
from weft.drivers._core.listeners import ListeningSockets
from weft.drivers._core.socket_binding import (
    DEFAULT_BACKLOG,
    bind_tcp,
    bind_unix,
)
from weft.drivers._core.socket_defaults import DEFAULT_CONNECT_TIMEOUT
from weft.drivers._core.unix_connecting import RetriedUnixConnect
from weft.drivers.reactor._descriptor_transport import DescriptorTransport, socket_transport
from weft.protocols.contract import Transport
from weft.protocols.errors import ClosedResourceError

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
    happy_eyeballs_delay: float | None = HAPPY_EYEBALLS_DELAY,
) -> Future[Transport]:
    """Connect to ``host:port``, with Happy Eyeballs (RFC 8305) across the
    addresses it resolves to.

    The future gets the transport once ``connection_made`` has run, or the
    error: ``ConnectionRefusedError``, ``TimeoutError`` after ``timeout``
    seconds in all, ``socket.gaierror`` for a name that does not resolve.
    The lookup runs on the shared resolver pool, so it never blocks the
    loop.  The addresses are tried families interleaved, the next one
    ``happy_eyeballs_delay`` seconds after the previous (or at once when it
    fails), the first to connect winning; ``None``: one after another (see
    :mod:`weft.drivers._core.connecting`).
    """
    result: Future[Transport] = Future(reactor.call_soon)
    _Connect(reactor, factory, result, f"{host}:{port}", timeout, happy_eyeballs_delay).start_tcp(host, port)
    return result


def connect_unix(
    reactor: TransportLoop, factory: ProtocolFactory, path: str, *, timeout: float = DEFAULT_CONNECT_TIMEOUT
) -> Future[Transport]:
    """Connect to the UNIX-domain socket at ``path``.

    While the listener's accept backlog is full the connect is tried again,
    1 ms later, then 2, 4... up to 50 ms apart, until it connects or
    ``timeout`` passes: then ``ListenerBacklogFullError`` (a ``TimeoutError``).
    """
    result: Future[Transport] = Future(reactor.call_soon)
    _Connect(reactor, factory, result, path, timeout, None).start_unix(path)
    return result


class _Connect(AddressByAddress):
    """One connect: attempts to the addresses (:class:`AddressByAddress`), a
    non-blocking ``connect`` the reactor watches for each, the timeout."""

    def __init__(
        self,
        reactor: TransportLoop,
        factory: ProtocolFactory,
        result: Future[Transport],
        target: str,
        timeout: float,
        delay: float | None,
    ) -> None:
        super().__init__(reactor.call_soon_threadsafe, target, call_later=reactor.call_later, delay=delay)
        self.reactor = reactor
        self.factory = factory
        self.result = result
        #: The attempts under way, by socket.
        self.socks: set[socket.socket] = set()
        #: A UNIX connect's tries (its listener's backlog may be full).
        self.unix: RetriedUnixConnect | None = None
        self.timer = reactor.call_later(timeout, self.expire, timeout)
        # Closing the reactor ends a connect still under way, as it ends
        # what is open: its sockets closed, its future failed.
        reactor._open[self] = self.reactor_closed

    def _attempt(self, family: int, address: Any) -> None:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:  # out of descriptors, a family the host lacks
            self.address_failed(exc)
            return
        sock.setblocking(False)
        if family == socket.AF_UNIX:
            self.unix = RetriedUnixConnect(
                sock, address, self.reactor.call_later, self._won, self._unix_failed
            )
            self.unix.start()
            return
        code = sock.connect_ex(address)
        if code in (0, errno.EINPROGRESS, errno.EAGAIN):
            self.socks.add(sock)
            self.reactor._set_writer(sock.fileno(), functools.partial(self.connected, sock), None)
        else:
            sock.close()
            self.address_failed(OSError(code, os.strerror(code)))

    def _drop(self, sock: socket.socket) -> None:
        self.socks.discard(sock)
        self.reactor._set_writer(sock.fileno(), None, None)
        sock.close()

    def connected(self, sock: socket.socket) -> None:
        if sock not in self.socks:  # already given up (another won, or timed out)
            return
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._drop(sock)
            self.address_failed(_os_error(code))
            return
        self.socks.discard(sock)
        self.reactor._set_writer(sock.fileno(), None, None)
        self._won(sock)

    def _unix_failed(self, error: OSError) -> None:
        unix, self.unix = self.unix, None
        if unix is not None:
            unix.sock.close()
        self.address_failed(error)

    def _won(self, sock: socket.socket) -> None:
        """``sock`` is connected: the transport, made now."""
        self.reactor._open.pop(self, None)
        self.unix = None
        self.address_won()
        for other in list(self.socks):  # the attempts that lost the race
            self._drop(other)
        self.timer.cancel()
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

    def expire(self, timeout: float) -> None:
        unix = self.unix
        self.fail(self.timeout_error(timeout) if unix is None else unix.connect.timeout_error(timeout))

    def reactor_closed(self) -> None:
        """The reactor is closing with this connect under way."""
        self.fail(ClosedResourceError(f"cannot connect to {self.target}: the runtime was closed"))

    def fail(self, error: BaseException) -> None:
        self.reactor._open.pop(self, None)
        if self.result.done():
            return
        self.timer.cancel()
        self.stop_trying()
        for sock in list(self.socks):
            self._drop(sock)
        unix, self.unix = self.unix, None
        if unix is not None:
            unix.cancel()
            unix.sock.close()
        self.result.set_exception(error)


def _os_error(code: int) -> OSError:
    """The OSError subclass Python raises for ``code`` (ConnectionRefusedError...)."""
    return OSError(code, os.strerror(code))

"""TCP and UNIX-domain sockets on a Twisted reactor: listening and connecting.

Listening binds at once, in :mod:`weft.drivers._core.socket_binding`, so
errors raise ``OSError`` from the call, as on every weft driver (Twisted's
``listenTCP`` raises its own ``CannotListenError``).  Accepting is weft's
:class:`~weft.drivers._core.accepting.Acceptor` on the reactor: it accepts
in batches and pauses for a second, with one line logged, when descriptors
run out, where Twisted's ``Port`` logs a line per attempt and, the socket
still readable, tries again at once.  Each accepted socket is handed to
Twisted with ``adoptStreamConnection``, which makes it one of Twisted's own
TCP (or UNIX) transports.

Connecting over TCP is Twisted's ``connectTCP``, one per attempt: a
name is looked up first, on weft's shared resolver pool, and the addresses
it resolves to are tried with Happy Eyeballs (RFC 8305, as on the reactor:
:mod:`weft.drivers._core.connecting`), the first to connect winning, under
one deadline on the runtime's clock.  The
future gets the transport once ``connection_made`` has run, or the error as
every weft driver gives it: ``ConnectionRefusedError`` and the rest (built
from the errno Twisted reports) with the address in the message,
``TimeoutError`` after ``timeout`` seconds, ``socket.gaierror`` for a name
that does not resolve, or what the protocol factory raised.

Connecting over a UNIX-domain socket is weft's own, and the connected
socket is handed to Twisted as an accepted one is (:func:`adopt_socket`):
while the listener's backlog is full, ``connect`` fails with ``EAGAIN``, and
Twisted's ``connectUNIX`` gives up at once: the unconnected socket polls
with a hang-up, which Twisted reports as a failed connect whose reason is
``ConnectionDone`` ("closed cleanly").  weft tries again
on the runtime's timers, 1 ms later, then 2, 4... up to 50 ms apart
(:mod:`weft.drivers._core.unix_connecting`), until it connects or the
timeout passes: ``ListenerBacklogFullError``.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from twisted.internet import error as twisted_error
from twisted.internet import tcp, unix
from twisted.internet.interfaces import IProtocolFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from weft.drivers._core.accepting import Acceptor
from weft.drivers._core.connecting import HAPPY_EYEBALLS_DELAY, AddressByAddress
from weft.drivers._core.futures import Future
from weft.drivers._core.listeners import ListeningSockets, kept_listener
from weft.drivers._core.socket_binding import (
    bind_tcp,
    bind_unix,
)
from weft.drivers._core.timers import Timer
from weft.drivers._core.unix_connecting import RetriedUnixConnect
from weft.drivers.twisted._transport import TwistedSide, TwistedTransport
from weft.protocols.contract import Transport
from weft.protocols.errors import ArgumentError, ClosedResourceError

if TYPE_CHECKING:
    from weft.drivers.twisted._plumbing import TwistedHost

__all__ = ["TwistedListener", "adopt_socket", "connect_tcp", "connect_unix", "listen_tcp", "listen_unix"]

logger = logging.getLogger("weft.drivers.twisted")

ProtocolFactory = Callable[[], Any]


def adopt_socket(host: TwistedHost, sock: socket.socket, transport: TwistedTransport) -> None:
    """Make Twisted's own server-side transport (``tcp.Server``, ``unix.Server``)
    over the connected ``sock``, which Twisted owns from now on: ``transport``'s
    protocol is made now.

    What ``reactor.adoptStreamConnection`` does, without the duplicate of the
    descriptor it makes: out of descriptors, an accepted connection would be
    lost to that ``dup``, where the listener's pause keeps it waiting in the
    kernel's backlog (and each connection would cost two system calls more).
    """
    sock.setblocking(False)
    side = transport.side
    peer = sock.getpeername()
    # Twisted's classes, typed loosely: zope's interfaces mean nothing to mypy.
    make: Any = unix.Server if sock.family == socket.AF_UNIX else tcp.Server
    server = make(sock, side, peer, None, 0 if sock.family == socket.AF_UNIX else peer[1], host.reactor)
    server.repstr = f"<weft connection on {sock.getsockname()!r}>"  # Twisted sets it only for its ports
    side.makeConnection(server)


class TwistedListener(ListeningSockets):
    """Sockets accepting connections for one protocol factory, on a Twisted reactor.

    Conforms to :class:`weft.drivers._runtime.Listener`.
    """

    def __init__(self, host: TwistedHost, factory: ProtocolFactory, sockets: list[socket.socket]) -> None:
        self._host = host
        self._factory = factory
        self._keep_sockets(sockets)
        #: The transports of the connections accepted and still open.
        self.connections: set[TwistedTransport] = set()
        self._acceptor = Acceptor(
            sockets, self._start, watch=self._watch, call_later=host.call_later, logger=logger
        )

    def close(self) -> None:
        """Stop accepting; open connections are left alone."""
        if self._closed:
            return
        self._closed = True
        self._acceptor.close()
        self._close_sockets()
        self._host._listeners.discard(self)

    def __repr__(self) -> str:
        return f"<TwistedListener {self._addresses!r}{' closed' if self._closed else ''}>"

    def _watch(self, sock: socket.socket, reader: Callable[[], object] | None) -> None:
        self._host._set_reader(sock.fileno(), reader, None)

    def _start(self, sock: socket.socket) -> None:
        """A connection came in: Twisted's transport for it, and the weft transport over that."""
        transport = self._host._new_transport(self._factory)
        transport.on_made.append(self.connections.add)
        transport.on_lost.append(self.connections.discard)
        try:
            adopt_socket(self._host, sock, transport)
        except OSError as exc:  # the peer is gone already (getpeername)
            logger.debug("an accepted connection was gone before it started: %s", exc)
            sock.close()


# --------------------------------------------------------------- listening


def listen_tcp(
    host: TwistedHost, factory: ProtocolFactory, address: str | None = "127.0.0.1", port: int = 0
) -> TwistedListener:
    """Listen on every address ``address`` resolves to; see ``bind_tcp``."""
    return _listen(host, factory, bind_tcp(address, port))


def listen_unix(host: TwistedHost, factory: ProtocolFactory, path: str) -> TwistedListener:
    """Listen on a UNIX-domain socket at ``path``; see ``bind_unix``."""
    return _listen(host, factory, [bind_unix(path)])


def _listen(host: TwistedHost, factory: ProtocolFactory, sockets: list[socket.socket]) -> TwistedListener:
    return kept_listener(partial(TwistedListener, host, factory, sockets), sockets, host._listeners)


# -------------------------------------------------------------- connecting


def connect_tcp(
    host: TwistedHost,
    factory: ProtocolFactory,
    address: str,
    port: int,
    *,
    timeout: float,
    happy_eyeballs_delay: float | None = HAPPY_EYEBALLS_DELAY,
) -> Future[Transport]:
    """Connect to ``address:port``, with Happy Eyeballs across the addresses a
    name resolves to (``happy_eyeballs_delay`` ``None``: one after another)."""
    attempt = _Connect(host, factory, f"{address}:{port}", timeout, happy_eyeballs_delay)
    attempt.start_tcp(address, port)
    return attempt.result


def connect_unix(
    host: TwistedHost, factory: ProtocolFactory, path: str, *, timeout: float
) -> Future[Transport]:
    """Connect to the UNIX-domain socket at ``path``."""
    attempt = _Connect(host, factory, path, timeout)
    attempt.start_unix(path)
    return attempt.result


@implementer(IProtocolFactory)
class _Attempt:
    """Twisted's client factory for one address of a connect: reports to the connect."""

    def __init__(self, connect: _Connect) -> None:
        self._connect = connect

    def doStart(self) -> None:
        """Nothing to start."""

    def doStop(self) -> None:
        """Nothing to stop."""

    def startedConnecting(self, connector: Any) -> None:
        """Nothing to do until it succeeds or fails."""

    def buildProtocol(self, addr: Any) -> TwistedSide | None:
        """Connected: the connection's side, unless this attempt was given up on."""
        return self._connect.connected(self)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        """This address failed: the next one, or the error."""
        self._connect.attempt_failed(self, reason)

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        """The connection's end: its transport hears of it."""


class _Connect(AddressByAddress):
    """One connect: Happy Eyeballs across the addresses (:class:`AddressByAddress`),
    a Twisted ``connectTCP`` (or ``connectUNIX``) per attempt, the deadline.

    Each attempt has its own client factory (:class:`_Attempt`); the first
    whose connection Twisted builds a protocol for gets the connect's one
    transport, and the others are stopped (``stopConnecting``) or, connected
    in the same turn, given no protocol, which makes Twisted close them.
    """

    def __init__(
        self,
        host: TwistedHost,
        factory: ProtocolFactory,
        target: str,
        timeout: float,
        delay: float | None = None,
    ) -> None:
        if timeout != timeout:
            raise ArgumentError("timeout is NaN")
        if host._closed:
            raise ClosedResourceError("the runtime is closed")
        super().__init__(host.call_soon_threadsafe, target, call_later=host.call_later, delay=delay)
        self.host = host
        self.result: Future[Transport] = Future(host.call_soon)
        # The factory runs once connected, as on the reactor; if it raises,
        # the future says so (nobody else would see it: no log).
        self.transport = host._new_transport(factory, log_factory_errors=False)
        self.transport.on_started.append(self._started)
        #: The attempts under way, with their Twisted connectors.
        self.attempts: dict[_Attempt, Any | None] = {}
        #: A UNIX connect's tries (weft's own, not Twisted's).
        self.unix: RetriedUnixConnect | None = None
        self.timer: Timer = host.call_later(timeout, self.expire, timeout)
        host._connecting.add(self)

    def _attempt(self, family: int, address: Any) -> None:
        if family == socket.AF_UNIX:
            self._attempt_unix(address)
            return
        attempt = _Attempt(self)
        # Registered first: Twisted reports some failures (no route, a
        # family the host lacks) before connectTCP returns.
        self.attempts[attempt] = None
        reactor = self.host.reactor
        # No timeout of Twisted's: the deadline is this connect's, across addresses.
        connector = reactor.connectTCP(address[0], address[1], attempt, timeout=None)
        if attempt in self.attempts:
            self.attempts[attempt] = connector

    def _attempt_unix(self, path: str) -> None:
        """Connect to ``path`` with weft's tries (see the module docstring)."""
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError as exc:  # out of descriptors
            self.address_failed(exc)
            return
        sock.setblocking(False)
        self.unix = RetriedUnixConnect(
            sock, path, self.host.call_later, self._unix_connected, self._unix_failed
        )
        self.unix.start()

    def _unix_connected(self, sock: socket.socket) -> None:
        """The UNIX socket is connected: Twisted's transport over it, the protocol made now."""
        self.unix = None
        self.address_won()
        try:
            adopt_socket(self.host, sock, self.transport)
        except OSError as exc:  # the listener closed it already (getpeername)
            sock.close()
            self.fail(OSError(exc.errno, f"cannot connect to {self.target}: {exc.strerror}"))

    def _unix_failed(self, error: OSError) -> None:
        unix, self.unix = self.unix, None
        if unix is not None:
            unix.sock.close()
        self.address_failed(error)

    def connected(self, attempt: _Attempt) -> TwistedSide | None:
        """Twisted connected ``attempt``: its side, or None if another won or it came too late."""
        if self.attempts.pop(attempt, None) is None or self.result.done():
            return None
        self.address_won()
        self._stop_attempts()
        return self.transport.side

    def _started(self, transport: TwistedTransport) -> None:
        """The protocol was made, or its factory raised."""
        if self.result.done():
            return
        self._settled()
        if transport._made:
            self.result.set_result(transport)
        else:
            self.result.set_exception(transport._error or ConnectionError(f"cannot connect to {self.target}"))

    def attempt_failed(self, attempt: _Attempt, reason: Failure) -> None:
        """Twisted could not connect ``attempt``: the next address, or the error."""
        if attempt not in self.attempts or self.result.done():
            return  # given up on already
        del self.attempts[attempt]
        self.address_failed(_os_error(reason.value))

    def _stop_attempts(self) -> None:
        """Give up every attempt under way (their failure reports are ignored)."""
        attempts, self.attempts = self.attempts, {}
        for connector in attempts.values():
            if connector is not None and connector.state == "connecting":
                connector.stopConnecting()

    def expire(self, timeout: float) -> None:
        unix = self.unix
        self.fail(self.timeout_error(timeout) if unix is None else unix.connect.timeout_error(timeout))

    def cancel(self) -> None:
        """The runtime is closing."""
        self.fail(ClosedResourceError(f"cannot connect to {self.target}: the runtime was closed"))

    def fail(self, error: BaseException) -> None:
        if self.result.done():
            return
        self._settled()
        self.stop_trying()
        self._stop_attempts()
        unix, self.unix = self.unix, None
        if unix is not None:
            unix.cancel()
            unix.sock.close()
        self.result.set_exception(error)

    def _settled(self) -> None:
        self.timer.cancel()
        self.host._connecting.discard(self)


def _os_error(value: object) -> OSError:
    """The OSError (ConnectionRefusedError...) for what Twisted reported, from its errno."""
    if isinstance(value, OSError):
        return value
    code = getattr(value, "osError", None)
    if isinstance(code, int):
        return OSError(code, os.strerror(code))
    if isinstance(value, twisted_error.TimeoutError):
        return TimeoutError(errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT))
    return OSError(errno.ECONNREFUSED, str(value))

"""TCP and UNIX-domain sockets on the trio driver: listening and connecting.

Listening sockets are bound by weft's own :func:`~weft.drivers._core.socket_binding.bind_tcp`
(so a port in use raises ``OSError`` from ``listen_tcp`` itself, as on every
driver), and accepted on by one task per socket.  What to do with a
readable socket (accept a batch, and pause for a second when out of
descriptors rather than spin) is :class:`~weft.drivers._core.accepting.Acceptor`'s,
shared with the reactor and asyncio; the task only waits for readability
(``trio.lowlevel.wait_readable``) while the acceptor watches.

Each connection is a :class:`~weft.drivers.trio._transport.TrioTransport`
over a ``trio.SocketStream``.  Connecting is a task too: names are looked
up with ``trio.socket.getaddrinfo`` (in Trio's thread pool, bounded by its
default limiter, and cancelled by the timeout), the addresses are tried with
Happy Eyeballs (RFC 8305) in a nursery, a task per attempt with Trio's
``connect``: families interleaved as on every weft driver
(:func:`~weft.drivers._core.connecting.interleaved`), the next attempt after
the delay or at once when one fails, the first to connect cancelling the
others; and the whole is bounded by the timeout; the :class:`~weft.drivers.Future` gets the transport once
``connection_made`` has run, or the error with the address in its message,
as on the reactor.

A UNIX connect is not Trio's ``connect``, which takes a UNIX socket whose
listener's backlog is full (``EAGAIN``) for one connecting in the
background, waits for it to poll writable (it does at once) and returns a
socket that never connected: weft tries the connect again after
``trio.sleep`` (1 ms, doubling to 50 ms; :mod:`weft.drivers._core.unix_connecting`)
until it connects or the timeout passes, then fails with
``ListenerBacklogFullError``.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import socket
from collections.abc import Callable
from typing import Any, Protocol

import trio

from weft.drivers._core.accepting import Acceptor
from weft.drivers._core.connecting import interleaved
from weft.drivers._core.futures import Future
from weft.drivers._core.listeners import ListeningSockets
from weft.drivers._core.socket_binding import unique_addresses
from weft.drivers._core.socket_defaults import name_or_none
from weft.drivers._core.unix_connecting import UnixConnect, connect_unix_socket
from weft.drivers.trio._plumbing import TaskHost
from weft.drivers.trio._transport import TrioTransport, socket_reset
from weft.protocols.contract import Transport
from weft.protocols.errors import ClosedResourceError

__all__ = ["SocketHost", "TrioListener", "connect", "socket_transport"]

logger = logging.getLogger("weft.drivers.trio")

ProtocolFactory = Callable[[], Any]


class SocketHost(TaskHost, Protocol):
    """The trio runtime, as its listeners and connects see it."""

    @property
    def _listeners(self) -> set[Any]:
        """The listeners still open (closing the runtime closes them)."""
        ...

    def _track(self, transport: TrioTransport) -> TrioTransport:
        """Keep ``transport`` among the runtime's open connections until it ends."""
        ...


def socket_transport(
    runtime: SocketHost, protocol: Any, sock: socket.socket, trio_sock: trio.socket.SocketType | None = None
) -> TrioTransport:
    """A transport over a connected stream socket, through a ``trio.SocketStream``
    (over ``trio_sock``, Trio's socket for ``sock``, made here unless given).

    ``get_extra_info("socket")`` is the standard library's socket (Trio's
    own is the stream's, :attr:`TrioTransport.stream`).
    """
    sock.setblocking(False)
    extra = {
        "socket": sock,
        "sockname": name_or_none(sock.getsockname),
        "peername": name_or_none(sock.getpeername),
    }
    stream = trio.SocketStream(trio_sock or trio.socket.from_stdlib_socket(sock))
    return runtime._track(
        TrioTransport(runtime, protocol, stream, extra, reset=socket_reset(sock), send_now=sock.send)
    )


class TrioListener(ListeningSockets):
    """Sockets accepting connections for one protocol factory, each watched by a task.

    Conforms to :class:`weft.drivers.Listener`.
    """

    def __init__(self, runtime: SocketHost, factory: ProtocolFactory, sockets: list[socket.socket]) -> None:
        self._runtime = runtime
        self._factory = factory
        self._keep_sockets(sockets)
        #: The transports of the connections accepted and still open.
        self.connections: set[TrioTransport] = set()
        # What each socket's task calls when it is readable (None: not watched now).
        self._readers: dict[socket.socket, Callable[[], object] | None] = {}
        self._watched: dict[socket.socket, trio.Event] = {}
        self._scope = trio.CancelScope()
        self._acceptor = Acceptor(
            sockets, self._start, watch=self._watch, call_later=runtime.call_later, logger=logger
        )
        for sock in sockets:
            runtime._spawn(self._serve, sock)

    def close(self) -> None:
        """Stop accepting now (the sockets close: a new client is refused); open connections go on."""
        if self._closed:
            return
        self._closed = True
        self._runtime._listeners.discard(self)
        self._acceptor.close()
        self._scope.cancel()  # the tasks stop waiting on the sockets before they close
        self._close_sockets()

    def _watch(self, sock: socket.socket, reader: Callable[[], object] | None) -> None:
        self._readers[sock] = reader
        event = self._watched.get(sock)
        if reader is not None and event is not None:
            event.set()

    async def _serve(self, sock: socket.socket) -> None:
        """One socket's task: wait until it is readable, let the acceptor accept; until closed."""
        with self._scope:
            while not self._closed:
                if self._readers.get(sock) is None:  # paused (out of descriptors)
                    event = self._watched[sock] = trio.Event()
                    await event.wait()
                    continue
                await trio.lowlevel.wait_readable(sock)
                reader = self._readers.get(sock)
                if reader is None:
                    continue
                try:
                    reader()
                except OSError as exc:
                    logger.error("accepting on %r failed; it stops", sock, exc_info=exc)
                    return

    def _start(self, sock: socket.socket) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            protocol = self._factory()
        except Exception as exc:
            logger.error("the protocol factory raised; closing the connection", exc_info=exc)
            sock.close()
            return
        transport = socket_transport(self._runtime, protocol, sock)
        self.connections.add(transport)
        transport.on_lost.append(self.connections.discard)
        transport.start()


def connect(
    runtime: SocketHost,
    factory: ProtocolFactory,
    family: int,
    address: Any,
    target: str,
    timeout: float,
    delay: float | None = None,
) -> Future[Transport]:
    """Connect to ``address`` (``(host, port)`` for TCP, a path for UNIX) in a
    task, with Happy Eyeballs every ``delay`` seconds (see the module docstring)."""
    result: Future[Transport] = Future(runtime.call_soon)
    runtime._spawn(_connect, runtime, factory, family, address, target, timeout, delay, result)
    return result


async def _connect(
    runtime: SocketHost,
    factory: ProtocolFactory,
    family: int,
    address: Any,
    target: str,
    timeout: float,
    delay: float | None,
    result: Future[Transport],
) -> None:
    connected: tuple[socket.socket, trio.socket.SocketType] | None = None
    unix = UnixConnect(address) if family == socket.AF_UNIX else None
    try:
        with trio.move_on_after(timeout):
            connected = await _connected_socket(family, address, target, delay, unix)
        if connected is None and unix is not None:
            raise unix.timeout_error(timeout)
        if connected is None:
            raise TimeoutError(errno.ETIMEDOUT, f"cannot connect to {target}: no answer in {timeout:g} s")
    except OSError as exc:
        result.set_exception(exc)
        return
    finally:
        if connected is None and not result.done():
            # Ended neither way: cancelled, the runtime closing (its nursery
            # cancelled). The connect ends with it, as on every driver.
            result.set_exception(ClosedResourceError(f"cannot connect to {target}: the runtime was closed"))
    sock, trio_sock = connected
    try:
        protocol = factory()
    except Exception as exc:
        sock.close()
        result.set_exception(exc)
        return
    if family != socket.AF_UNIX:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = socket_transport(runtime, protocol, sock, trio_sock)
    transport.start()
    result.set_result(transport)


async def _connected_socket(
    family: int, address: Any, target: str, delay: float | None, unix: UnixConnect | None = None
) -> tuple[socket.socket, trio.socket.SocketType]:
    """A socket connected to the first of ``address``'s addresses that answers
    (a UNIX path through ``unix``'s tries); OSError naming ``target``."""
    if family == socket.AF_UNIX:
        candidates: list[tuple[int, Any]] = [(socket.AF_UNIX, address)]
    else:
        host, port = address
        infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        candidates = interleaved([(info[0], info[4]) for info in unique_addresses(infos)])
    race = _Race(unix)
    try:
        async with trio.open_nursery() as nursery:
            for each_family, each_address in candidates:
                failed = trio.Event()
                nursery.start_soon(race.attempt, nursery.cancel_scope, each_family, each_address, failed)
                # The next address when this one fails, or after ``delay``
                # (None: only when it fails); a winner cancels the wait.
                with trio.move_on_after(math.inf if delay is None else delay):
                    await failed.wait()
    except BaseException:
        race.close_winner()  # (the caller's timeout, at the very moment one won)
        raise
    if race.winner is not None:
        return race.winner
    last = race.errors[-1] if race.errors else OSError(errno.EADDRNOTAVAIL, "no address")
    # OSError(errno, ...) builds the matching subclass (ConnectionRefusedError...).
    raise OSError(last.errno, f"cannot connect to {target}: {last.strerror or os.strerror(last.errno or 0)}")


class _Race:
    """The attempts of one connect (Happy Eyeballs, RFC 8305): the first to
    connect wins and cancels the others, through the nursery they run in."""

    def __init__(self, unix: UnixConnect | None = None) -> None:
        #: A UNIX connect's tries: its listener's backlog may be full.
        self.unix = unix
        self.winner: tuple[socket.socket, trio.socket.SocketType] | None = None
        #: Each failed address's error, in order.
        self.errors: list[OSError] = []

    async def attempt(
        self, attempts: trio.CancelScope, family: int, address: Any, failed: trio.Event
    ) -> None:
        """Connect to ``address``: win (cancelling ``attempts``), or record the error and set ``failed``."""
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:  # out of descriptors, a family the host lacks
            self.errors.append(exc)
            failed.set()
            return
        sock.setblocking(False)
        trio_sock = trio.socket.from_stdlib_socket(sock)
        try:
            if self.unix is not None:
                await connect_unix_socket(sock, self.unix, trio.sleep)
            else:
                await trio_sock.connect(address)
        except OSError as exc:
            sock.close()
            self.errors.append(exc)
            failed.set()
            return
        except BaseException:  # cancelled: another won, or the timeout
            sock.close()
            raise
        if self.winner is not None:  # (two in one turn: the first keeps it)
            sock.close()
            return
        self.winner = (sock, trio_sock)
        attempts.cancel()

    def close_winner(self) -> None:
        """Close the winner's socket (the connect is given up on after all)."""
        if self.winner is not None:
            self.winner[0].close()
            self.winner = None

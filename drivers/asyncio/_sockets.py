"""TCP and UNIX-domain sockets on asyncio: listening and connecting.

Listening binds at once, in :mod:`weft.drivers._core.socket_binding`, so errors
raise from the call.  Accepting is weft's own, not asyncio's
``create_server``: the loop watches the listening sockets
(``loop.add_reader``), :class:`~weft.drivers._core.accepting.Acceptor` accepts in
batches and pauses for a second, with one line logged, when descriptors run
out (asyncio's server then logs a traceback and schedules a retry once per
backlog slot, a thousand times per readiness event; uvloop's, libuv's,
accepts the waiting connections and closes them at once, silently),
and each accepted socket becomes asyncio's transport with
``loop.connect_accepted_socket``.

Connecting runs asyncio's ``create_connection`` (with Happy Eyeballs; on uvloop,
weft's own attempts, :mod:`weft.drivers.asyncio._eyeballs`) in a task and reports
through a weft :class:`~weft.drivers._core.futures.Future`, with the reactor's
errors: ``ConnectionRefusedError`` and the rest with the address in the
message, ``TimeoutError`` when ``timeout`` passes.

A UNIX connect is weft's own, not ``create_unix_connection``'s: asyncio's
``sock_connect`` takes a UNIX socket whose listener's backlog is full
(``EAGAIN``) for one connecting in the background, waits for it to poll
writable (it does at once) and hands over a socket that never connected
(uvloop fails at once with ``EAGAIN``).  weft tries the connect again on
the loop's timers (:mod:`weft.drivers._core.unix_connecting`) until it
connects or ``timeout`` passes (``ListenerBacklogFullError``), and gives
the connected socket to ``create_unix_connection(sock=...)``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from weft.drivers._core.accepting import Acceptor
from weft.drivers._core.connecting import HAPPY_EYEBALLS_DELAY
from weft.drivers._core.futures import Future
from weft.drivers._core.listeners import ListeningSockets, kept_listener
from weft.drivers._core.socket_binding import bind_tcp, bind_unix
from weft.drivers._core.unix_connecting import UnixConnect, connect_unix_socket
from weft.drivers.asyncio._eyeballs import connected_socket
from weft.drivers.asyncio._transport import AsyncioTransport
from weft.protocols.contract import Transport
from weft.protocols.errors import ArgumentError, ClosedResourceError

if TYPE_CHECKING:
    from weft.drivers.asyncio._plumbing import AdapterRuntime

__all__ = ["AsyncioListener", "connect_tcp", "connect_unix", "listen_tcp", "listen_unix"]

logger = logging.getLogger("weft.drivers.asyncio")

ProtocolFactory = Callable[[], Any]
#: Opens a connection for the asyncio protocol factory it is given.
_Opener = Callable[[Callable[[], asyncio.Protocol]], Awaitable[object]]


class AsyncioListener(ListeningSockets):
    """Sockets accepting connections for one protocol factory, on asyncio's loop.

    Conforms to :class:`weft.drivers._runtime.Listener`.
    """

    def __init__(
        self, runtime: AdapterRuntime, factory: ProtocolFactory, sockets: list[socket.socket]
    ) -> None:
        self._runtime = runtime
        self._factory = factory
        self._keep_sockets(sockets)
        #: The transports of the connections accepted and still open.
        self.connections: set[AsyncioTransport] = set()
        for sock in sockets:
            sock.setblocking(False)
        loop = runtime.loop
        self._acceptor = Acceptor(
            sockets, self._start, watch=self._watch, call_later=loop.call_later, logger=logger
        )

    def close(self) -> None:
        """Stop accepting; open connections are left alone."""
        if self._closed:
            return
        self._closed = True
        if not self._runtime.loop.is_closed():
            self._acceptor.close()
        self._close_sockets()
        self._runtime._listeners.discard(self)

    def _watch(self, sock: socket.socket, reader: Callable[[], object] | None) -> None:
        if reader is None:
            self._runtime.loop.remove_reader(sock.fileno())
        else:
            self._runtime.loop.add_reader(sock.fileno(), reader)

    def _start(self, sock: socket.socket) -> None:
        """A connection came in: its weft transport, then asyncio's transport (in a task)."""
        transport = self._runtime._new_transport(self._factory)
        transport.on_made.append(self.connections.add)
        transport.on_lost.append(self.connections.discard)
        # Whether asyncio was given the socket: closing it is then asyncio's
        # business (uvloop's libuv closes the descriptor itself, unknown to
        # ``sock``, whose number a later socket may then have).
        handed_over = [False]
        # A plain task and one callback: the runtime's _spawn bookkeeping
        # costs a few microseconds more per connection.
        task = self._runtime.loop.create_task(self._set_up(transport, sock, handed_over))
        task.add_done_callback(partial(_set_up_done, transport, sock, handed_over))

    async def _set_up(
        self, transport: AsyncioTransport, sock: socket.socket, handed_over: list[bool]
    ) -> None:
        handed_over[0] = True
        await self._runtime.loop.connect_accepted_socket(lambda: transport.side("both"), sock)


def _set_up_done(
    transport: AsyncioTransport, sock: socket.socket, handed_over: list[bool], task: asyncio.Task[None]
) -> None:
    """An accepted socket's set-up ended: nothing to do, unless it failed or was cancelled."""
    if task.cancelled():
        # The runtime's close() cancelled it, perhaps before it started.
        if not transport.started:
            transport._abandon()
            if not handed_over[0]:
                sock.close()
    elif (exc := task.exception()) is not None:
        logger.error("cannot set up an accepted connection", exc_info=exc)
        transport._abandon()


# --------------------------------------------------------------- listening


def listen_tcp(
    runtime: AdapterRuntime, factory: ProtocolFactory, host: str | None = "127.0.0.1", port: int = 0
) -> AsyncioListener:
    """Listen on every address ``host`` resolves to; see ``bind_tcp``."""
    return _listen(runtime, factory, bind_tcp(host, port))


def listen_unix(runtime: AdapterRuntime, factory: ProtocolFactory, path: str) -> AsyncioListener:
    """Listen on a UNIX-domain socket at ``path``; see ``bind_unix``."""
    return _listen(runtime, factory, [bind_unix(path)])


def _listen(
    runtime: AdapterRuntime, factory: ProtocolFactory, sockets: list[socket.socket]
) -> AsyncioListener:
    return kept_listener(partial(AsyncioListener, runtime, factory, sockets), sockets, runtime._listeners)


# -------------------------------------------------------------- connecting


def connect_tcp(
    runtime: AdapterRuntime,
    factory: ProtocolFactory,
    host: str,
    port: int,
    *,
    timeout: float,
    happy_eyeballs_delay: float | None = HAPPY_EYEBALLS_DELAY,
) -> Future[Transport]:
    """Connect to ``host:port`` with Happy Eyeballs (RFC 8305): families
    interleaved, the next address ``happy_eyeballs_delay`` seconds after the
    previous or at once when it fails (``None``: one after another).

    asyncio's own loops (and weft's reactor as one) do it in
    ``create_connection``, the name looked up on the loop's default
    executor (bounded).  uvloop's ``create_connection`` has no such option:
    there weft makes the attempts itself over ``loop.sock_connect``, the
    lookup on weft's shared resolver pool, and hands the winner to
    ``create_connection(sock=...)`` (:mod:`weft.drivers.asyncio._eyeballs`).
    """
    loop = runtime.loop
    target = f"{host}:{port}"
    if isinstance(loop, asyncio.BaseEventLoop):
        options: dict[str, Any] = {}
        if happy_eyeballs_delay is not None:
            options = {"happy_eyeballs_delay": happy_eyeballs_delay, "interleave": 1}

        def open_(side: Callable[[], asyncio.Protocol]) -> Awaitable[object]:
            return loop.create_connection(side, host, port, **options)

        return _connect(runtime, factory, target, timeout, open_)

    async def open_staggered(side: Callable[[], asyncio.Protocol]) -> object:
        sock = await connected_socket(loop, host, port, target, happy_eyeballs_delay)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            return await loop.create_connection(side, sock=sock)
        finally:
            # libuv owns the descriptor now and closes it.  uvloop detaches
            # ``sock`` when its transport closes, but one closed within
            # connection_made (the protocol factory raised) closes before
            # uvloop attaches ``sock``: collected, it would close the same
            # number again, perhaps another connection's by then.
            sock.detach()

    return _connect(runtime, factory, target, timeout, open_staggered)


def connect_unix(
    runtime: AdapterRuntime, factory: ProtocolFactory, path: str, *, timeout: float
) -> Future[Transport]:
    """Connect to the UNIX-domain socket at ``path``, trying again while its
    listener's backlog is full (see the module docstring)."""
    loop = runtime.loop
    connect = UnixConnect(path)
    owned_by_libuv = not isinstance(loop, asyncio.BaseEventLoop)

    async def open_(side: Callable[[], asyncio.Protocol]) -> object:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await connect_unix_socket(sock, connect, asyncio.sleep)
        except BaseException:  # failed, or the timeout (cancelled)
            sock.close()
            raise
        if not owned_by_libuv:
            return await loop.create_unix_connection(side, sock=sock)
        try:
            return await loop.create_unix_connection(side, sock=sock)
        finally:
            sock.detach()  # libuv's now (see connect_tcp's uvloop case)

    return _connect(runtime, factory, path, timeout, open_, connect.timeout_error)


def _connect(
    runtime: AdapterRuntime,
    factory: ProtocolFactory,
    target: str,
    timeout: float,
    open_: _Opener,
    timeout_error: Callable[[float], TimeoutError] | None = None,
) -> Future[Transport]:
    if timeout != timeout:
        raise ArgumentError("timeout is NaN")
    result: Future[Transport] = Future(runtime.call_soon)
    # The factory runs once connected, as on the reactor; if it raises, the
    # future says so (nobody else would see it: no log).
    transport = runtime._new_transport(factory, log_factory_errors=False)

    async def attempt() -> None:
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                await open_(lambda: transport.side("both"))
        except TimeoutError as exc:
            if scope.expired() and timeout_error is not None:
                result.set_exception(timeout_error(timeout))
            elif scope.expired():
                result.set_exception(
                    TimeoutError(errno.ETIMEDOUT, f"cannot connect to {target}: no answer in {timeout:g} s")
                )
            else:
                result.set_exception(_in_context(exc, target))
        except OSError as exc:
            result.set_exception(_in_context(exc, target))
        except Exception as exc:
            result.set_exception(exc)
        else:
            if transport._made:
                result.set_result(transport)
            else:  # the protocol factory raised
                result.set_exception(transport._error or ConnectionError(f"cannot connect to {target}"))

    def settled(_task: asyncio.Task[None]) -> None:
        # Cancelled by the runtime's close(), perhaps before it ever started.
        if not result.done():
            result.set_exception(ClosedResourceError(f"cannot connect to {target}: the runtime was closed"))

    runtime._spawn(attempt()).add_done_callback(settled)
    return result


def _in_context(exc: OSError, target: str) -> OSError:
    """``exc`` with the address in its message, and the same class (ConnectionRefusedError...).

    A name that does not resolve stays the ``socket.gaierror`` it is.
    """
    if isinstance(exc, socket.gaierror) or str(exc.strerror).startswith(f"cannot connect to {target}:"):
        return exc  # (weft's own attempts name the target already)
    if exc.errno is None:  # asyncio's "Multiple exceptions: ..." for several addresses
        return OSError(f"cannot connect to {target}: {exc}")
    # OSError(errno, ...) builds the matching subclass.
    return OSError(exc.errno, f"cannot connect to {target}: {exc.strerror}")

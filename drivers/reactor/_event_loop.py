"""weft's reactor as an asyncio event loop, the way uvloop is one.

::

    from weft.drivers.reactor import new_event_loop, run

    run(main())                                          # like asyncio.run(main())
    asyncio.Runner(loop_factory=new_event_loop)          # Python 3.11
    asyncio.run(main(), loop_factory=new_event_loop)     # Python 3.12+

:class:`EventLoop` is asyncio's own selector loop for everything above the
I/O (callbacks and timers, tasks, the exception handler, debug mode,
executors, name resolution, ``create_connection``'s happy eyeballs,
``Server``, ``start_tls``, subprocesses, signals), over two of weft's pieces
below it:

* its selector is a :class:`~weft.drivers.reactor._selector.ReactorSelector`,
  so one poller (the reactor's) serves asyncio's readers and writers and the
  reactor's own transports, and each turn of asyncio's loop is one turn of
  the reactor, in asyncio's order (:class:`~weft.drivers.reactor._loop_turn.LoopTurn`,
  which also schedules and runs callbacks with fewer Python calls);
* its stream transports are the reactor's
  (:class:`~weft.drivers.reactor._loop_transports.LoopStreamTransport`), read
  inline from the poll results with no handle per event, writing at once,
  with weft's flow control on every write path, and ``sendfile`` through
  ``os.sendfile``.

Its :attr:`EventLoop.reactor` is a full weft :class:`~weft.drivers.reactor.Reactor`
on the same poller, so weft protocols (``reactor.listen_tcp``) and asyncio
code share one thread and one loop.

``sock_connect`` on a UNIX-domain socket (and so ``create_unix_connection``)
is weft's: asyncio's takes the ``EAGAIN`` of a listener whose backlog is
full for a connect under way and returns a socket that never connected;
this loop tries the connect again, 1 ms later, then 2, 4... up to 50 ms
apart, until it connects (:mod:`weft.drivers._core.unix_connecting`), for
as long as the caller waits (``asyncio.timeout`` around it bounds it).

Where asyncio's contract and weft's differ, this loop's asyncio API follows
asyncio's: ``loop.add_reader`` replaces a reader silently (the reactor's own
``add_reader`` raises), and an exception from a protocol goes to the loop's
exception handler.  See https://github.com/weft-project/weft/blob/main/docs/asyncio.md.
"""

from __future__ import annotations

import asyncio
import asyncio.constants
import asyncio.sslproto
import io
import os
import socket
import ssl
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

from weft.drivers._core.file_region import FileSlice
from weft.drivers._core.unix_connecting import UnixConnect, connect_unix_socket
from weft.drivers.reactor._datagrams import datagram_transport
from weft.drivers.reactor._descriptor_transport import socket_transport
from weft.drivers.reactor._loop_transports import (
    LoopDatagramTransport,
    LoopReactor,
    LoopStreamTransport,
    pipe_transport_for_loop,
    transport_socket,
)
from weft.drivers.reactor._loop_turn import LoopTurn
from weft.drivers.reactor._selector import ReactorSelector

__all__ = ["EventLoop", "EventLoopPolicy", "new_event_loop", "run"]

_T = TypeVar("_T")


class EventLoop(LoopTurn, asyncio.SelectorEventLoop):
    """An asyncio event loop on weft's reactor (see the module docstring)."""

    # asyncio's selector loop keeps its transports by fd, so that add_reader
    # can refuse an fd a transport is using (typeshed does not declare it).
    _transports: weakref.WeakValueDictionary[int, asyncio.BaseTransport]

    def __init__(self) -> None:
        self._reactor = LoopReactor(self)
        super().__init__(ReactorSelector(self._reactor))
        self._make_futures_without_a_frame()

    def close(self) -> None:
        """Close the loop (asyncio's ``close``): its reactor and poller too."""
        self._forget_future_maker()
        super().close()

    @property
    def reactor(self) -> LoopReactor:
        """The reactor underneath: a weft runtime on this loop's poller and thread."""
        return self._reactor

    def run_forever(self) -> None:
        """Run until ``stop()``: asyncio's ``run_forever``, holding the reactor
        running meanwhile (its own ``run`` refuses, as it would inside itself)."""
        self._check_closed()  # type: ignore[attr-defined]
        if self.is_running():
            raise RuntimeError("This event loop is already running")  # asyncio's words
        with self._reactor._hosted():
            super().run_forever()

    def _make_socket_transport(
        self,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        *,
        extra: dict[str, Any] | None = None,
        server: asyncio.Server | None = None,
    ) -> LoopStreamTransport:
        extra = {**(extra or {}), "socket": transport_socket(sock)}
        transport = socket_transport(self._reactor, protocol, sock, extra)
        if not isinstance(transport, LoopStreamTransport):  # the LoopReactor's class
            raise TypeError(f"the loop's reactor made a {type(transport).__name__}")
        transport.follow_asyncio(server)
        self._begin(transport, sock.fileno(), waiter)
        return transport


    def _begin(
        self,
        transport: LoopStreamTransport | LoopDatagramTransport,
        fd: int,
        waiter: asyncio.Future[Any] | None,
    ) -> None:
        """Start ``transport`` as asyncio starts its own: known by its fd (so
        ``add_reader`` refuses that fd), ``connection_made`` on the next turn,
        then the ``waiter`` resolved."""
        self._transports[fd] = transport
        self.call_soon(transport.start)
        if waiter is not None:
            self.call_soon(_resolve, waiter)

    def _make_read_pipe_transport(
        self,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> LoopStreamTransport:
        return self._pipe_transport(pipe, protocol, waiter, extra, writing=False)

    def _make_write_pipe_transport(
        self,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> LoopStreamTransport:
        return self._pipe_transport(pipe, protocol, waiter, extra, writing=True)

    def _pipe_transport(
        self,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None,
        extra: dict[str, Any] | None,
        *,
        writing: bool,
    ) -> LoopStreamTransport:
        """``connect_read_pipe``/``connect_write_pipe`` (and so a subprocess's
        pipes): the reactor's transports, started as asyncio starts its own."""
        transport = pipe_transport_for_loop(self._reactor, protocol, pipe, writing=writing, extra=extra or {})
        transport.follow_asyncio(None)
        self._begin(transport, pipe.fileno(), waiter)
        return transport

    def _make_datagram_transport(
        self,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        address: Any = None,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> LoopDatagramTransport:
        transport = datagram_transport(
            self._reactor, protocol, sock, address, transport_class=LoopDatagramTransport
        )
        if not isinstance(transport, LoopDatagramTransport):
            raise TypeError(f"expected the loop's datagram transport, got {type(transport).__name__}")
        transport._loop = self
        transport._extra.update(extra or {})
        transport._extra["socket"] = transport_socket(sock)
        self._begin(transport, sock.fileno(), waiter)
        return transport

    def _make_ssl_transport(
        self,
        rawsock: socket.socket,
        protocol: asyncio.BaseProtocol,
        sslcontext: ssl.SSLContext,
        waiter: asyncio.Future[Any] | None = None,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
        extra: dict[str, Any] | None = None,
        server: asyncio.Server | None = None,
        ssl_handshake_timeout: float | None = asyncio.constants.SSL_HANDSHAKE_TIMEOUT,
        ssl_shutdown_timeout: float | None = asyncio.constants.SSL_SHUTDOWN_TIMEOUT,
    ) -> asyncio.Transport:
        """``ssl=``: asyncio's TLS protocol over one of the reactor's transports."""
        ssl_protocol = asyncio.sslproto.SSLProtocol(
            self,
            protocol,
            sslcontext,
            waiter,  # type: ignore[arg-type]  # asyncio passes None too
            server_side,
            server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,  # type: ignore[arg-type]  # typeshed says int
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )
        self._make_socket_transport(rawsock, ssl_protocol, extra=extra, server=server)
        app_transport: asyncio.Transport = ssl_protocol._app_transport
        return app_transport

    async def sock_connect(self, sock: socket.socket, address: Any) -> None:
        """asyncio's ``sock_connect``; on a UNIX-domain stream socket, tried
        again while the listener's backlog is full (see the module docstring),
        and done only once the socket has a peer."""
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            await super().sock_connect(sock, address)
        elif self._debug and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")  # (asyncio's check)
        else:
            await connect_unix_socket(sock, UnixConnect(address), asyncio.sleep)

    async def _sendfile_native(
        self, transp: asyncio.BaseTransport, file: Any, offset: int, count: int | None
    ) -> int:
        """``loop.sendfile`` on this loop's own transports: the file goes out
        through ``os.sendfile`` (``write_file``), queued behind what was
        written before, and ``file``'s position moves past what was sent."""
        if not isinstance(transp, LoopStreamTransport):
            raise asyncio.SendfileNotAvailableError(f"not one of this loop's transports: {transp!r}")
        try:
            fileno = file.fileno()
        except (AttributeError, io.UnsupportedOperation) as exc:
            raise asyncio.SendfileNotAvailableError("not a regular file") from exc
        try:
            size = os.fstat(fileno).st_size
        except OSError as exc:
            raise asyncio.SendfileNotAvailableError("not a regular file") from exc
        total = count if count else max(size - offset, 0)
        if not total:
            return 0
        region = FileSlice(os.dup(fileno), offset=offset, count=total)
        try:
            await transp.sendfile(region)
        finally:
            sent = total - len(region)
            if sent:
                file.seek(offset + sent)
            region.close()
        return sent


    async def _sendfile_fallback(
        self, transp: asyncio.BaseTransport, file: Any, offset: int, count: int | None
    ) -> int:
        """``loop.sendfile`` where ``os.sendfile`` cannot serve: the file is
        read in pieces (in the executor, since a read may block) and written,
        waiting for the queue to drain whenever flow control says so."""
        if not isinstance(transp, LoopStreamTransport):
            sent: int = await super()._sendfile_fallback(transp, file, offset, count)  # type: ignore[misc]
            return sent
        if offset:
            file.seek(offset)
        piece = min(count, _FALLBACK_PIECE) if count else _FALLBACK_PIECE
        sent = 0
        try:
            while not count or sent < count:
                size = min(piece, count - sent) if count else piece
                data = await self.run_in_executor(None, file.read, size)
                if not data:
                    break
                if transp._protocol_paused:
                    await transp.drained()
                if transp.is_closing():
                    raise ConnectionError("the connection closed during sendfile")
                transp.write(data)
                sent += len(data)
            await transp.drained()
        finally:
            if sent:
                file.seek(offset + sent)
        return sent


#: How much the sendfile fallback reads at a time.
_FALLBACK_PIECE = 64 * 1024


def _resolve(waiter: asyncio.Future[Any]) -> None:
    if not waiter.cancelled():
        waiter.set_result(None)


def new_event_loop() -> EventLoop:
    """A new :class:`EventLoop` (for ``loop_factory=``)."""
    return EventLoop()


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """An event loop policy whose loops are :class:`EventLoop`\\ s
    (``asyncio.set_event_loop_policy(EventLoopPolicy())``)."""

    _loop_factory = EventLoop


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    """Run the coroutine ``main`` on a new :class:`EventLoop` and return its
    result, as ``asyncio.run(main)`` does on asyncio's loop."""
    with asyncio.Runner(loop_factory=new_event_loop, debug=debug) as runner:
        return runner.run(main)

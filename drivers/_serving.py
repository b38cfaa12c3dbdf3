"""Serving a protocol until told to stop, then stopping gracefully.

``serve(EchoProtocol)`` is a whole server: it listens (on 127.0.0.1:8000
unless told otherwise), says so with one line on stderr
(``listening on 127.0.0.1:8000``), and runs until SIGINT, SIGTERM or SIGHUP.  Then it
stops gracefully:

1. it stops accepting (the listening sockets close at once, so a new client is
   refused rather than left waiting);
2. it tells each open connection's protocol that has a ``server_stopping()``
   method (see :class:`StoppingProtocol`), so a connection that will never
   end by itself can end now (pub/sub closes a connection between commands,
   a subscriber included; HTTP an idle keep-alive one);
3. it lets the open connections finish, for up to ``grace`` seconds;
4. it aborts whatever is still open, and returns.

The factory may also be an ``async def`` handler taking a
:class:`~weft.drivers.coroutines.Stream`: ``serve(echo)`` with ``async def
echo(stream)`` runs one task per connection (see
:func:`weft.drivers.coroutines.stream_handler`).

A second signal cuts the grace period short (SIGHUP is left alone when it
is ignored, as under ``nohup``).  :func:`serve` works
through the :class:`~weft.drivers._runtime.Runtime` interface only, so it runs
on every driver; :class:`Server` is the same machinery on a runtime the caller
owns.

**A connection limit.**  With ``max_connections=N`` the server serves at most
N connections at once (across its listeners; a ``stdio`` connection is not
counted).  A connection over the limit is not left waiting unaccepted: it is
accepted and answered at once with ``busy_reply`` (the protocol's "busy"
answer: ``busy_response()`` from :mod:`weft.protocols.http._busy` for HTTP,
``ERR server busy`` for the line protocols; ``None``: no reply), then closed
without losing that reply (see :mod:`weft.drivers._core.connection_limit`).  The
limit is logged when reached and when service is back under it, never per
connection.  The default is no limit, except on the blocking driver, whose
pool of threads is bounded anyway (``BlockingRuntime.max_connections``, 256
per listener): there the busy reply goes out from the accept thread.
"""

from __future__ import annotations

import inspect
import logging
import math
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from weft.drivers._core.connection_limit import (
    BUSY_LINGER,
    MAX_LINGERING,
    BusyProtocol,
    LimitReport,
    checked_idle_timeout,
    checked_max_connections,
)
from weft.drivers._core.signal_handlers import stop_signals
from weft.drivers._core.socket_binding import format_address
from weft.drivers._core.stdio import STDIN, STDOUT, blocking_modes_restored
from weft.drivers._registry import open_runtime
from weft.drivers._runtime import (
    Listener,
    LoopRuntime,
    PipesRuntime,
    ProtocolFactory,
    TCPRuntime,
    UNIXRuntime,
    lacks,
)
from weft.protocols.contract import Transport
from weft.protocols.errors import ArgumentError

if TYPE_CHECKING:
    from weft.drivers.coroutines._streams import StreamHandler

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "Server",
    "StoppingProtocol",
    "announce",
    "in_context",
    "serve",
]

logger = logging.getLogger("weft.drivers")

#: Where a server listens unless told otherwise: loopback only, so that
#: trying weft out never opens a port to the network.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

#: Seconds open connections get to finish once a stop is asked for.  Under
#: the ten seconds ``docker stop`` and most supervisors wait before SIGKILL,
#: so the server, not the supervisor, ends the stragglers.
DEFAULT_GRACE = 5.0

# Once aborted, connections need only a turn or two to report their end.
_ABORT_WAIT = 1.0

# Told the server is stopping, an idle connection closes itself within a
# turn or two (after flushing what it was sent).  The stop gives them this
# long before it counts the connections it waits for, so that its log line
# counts only those with work to finish.  Taken out of the grace period.
_NOTICE_WAIT = 0.05


@runtime_checkable
class StoppingProtocol(Protocol):
    """A protocol that wants to hear of a graceful stop: ``server_stopping()``
    is called once, on the connection's own thread (through its clock, so an
    exception ends that connection only), right after the listeners close.

    It is a hint, not an order: finish what is in flight and close if
    nothing more is coming (uvicorn's protocols close idle keep-alive
    connections on their ``shutdown()``).  A protocol without the method is
    simply given the grace period.  A :class:`~weft.protocols.tls.TLSProtocol`
    passes it on to the protocol inside.
    """

    def server_stopping(self) -> None:
        """The server is stopping gracefully."""


class Server:
    """Serves one protocol factory (or ``async def`` stream handler) on a runtime, and stops it gracefully.

    Open endpoints with :meth:`listen_tcp`, :meth:`listen_unix` or
    :meth:`serve_pipes` (each needs its capability of the runtime:
    :class:`~weft.drivers.TCPRuntime`, :class:`~weft.drivers.UNIXRuntime`,
    :class:`~weft.drivers.PipesRuntime`; one it lacks raises
    :class:`~weft.drivers.CapabilityError`), then :meth:`run`.  Any runtime
    runs a server, the testing kit's ``MemoryRuntime`` too.  :meth:`stop` (from the runtime's
    thread: a callback, a timer, or a signal handler set with the runtime's
    ``add_signal_handler``) makes :meth:`run` stop gracefully and return.

    ``max_connections`` (default: no limit, but see the blocking driver's
    pool in the module docstring) bounds the connections served at once
    across the listeners; one over it gets ``busy_reply`` at once and is
    closed.  The reply goes out as it is, before any protocol runs: behind
    TLS (a factory of ``TLSProtocol``), give ``None``, and the connection is
    closed with no reply.
    """

    def __init__(
        self,
        runtime: LoopRuntime,
        factory: ProtocolFactory | StreamHandler,
        *,
        grace: float = DEFAULT_GRACE,
        max_connections: int | None = None,
        busy_reply: bytes | None = None,
    ) -> None:
        self.runtime = runtime
        if inspect.iscoroutinefunction(factory):
            # Imported here: a server of callback protocols needs no coroutines.
            from weft.drivers.coroutines._endpoints import stream_handler

            self.factory: ProtocolFactory = stream_handler(runtime, factory)
        else:
            self.factory = cast("ProtocolFactory", factory)
        self.grace = _checked_grace(grace)
        #: The most connections served at once (None: no limit of the server's own).
        self.max_connections = None if max_connections is None else checked_max_connections(max_connections)
        if busy_reply is not None and not isinstance(busy_reply, bytes):
            raise TypeError(f"busy_reply must be bytes or None, not {type(busy_reply).__name__}")
        #: What a connection over the limit is answered (None: nothing, it is closed).
        self.busy_reply = busy_reply
        # Refused connections still open: they are in their listener's
        # connections too, but do not count against the limit.
        self._busy_open = 0
        self._limit_report: LimitReport | None = None
        #: The listening endpoints, in the order they were opened.
        self.listeners: list[Listener] = []
        self._pipes: list[_PipeConnection] = []
        self._stopping = False
        self._hurry = False
        # Its last pipe connection ended: nobody asked it to stop.
        self._ended_by_itself = False

    # ------------------------------------------------------------ endpoints

    def listen_tcp(self, host: str | None = DEFAULT_HOST, port: int = DEFAULT_PORT) -> Listener:
        """Accept TCP connections (``host`` ``None`` or ``""``: every interface; port 0: a free one).

        A port in use or an unknown host raises ``OSError`` at once, with the
        address in the message.
        """
        runtime = self.runtime
        if not isinstance(runtime, TCPRuntime):
            raise lacks(runtime, TCPRuntime, "listen on TCP")
        where = format_address((host or "*", port))
        factory = self._listener_factory()
        if (pool := _blocking(runtime)) is not None:
            options = self._pool_options()
            return self._listen(where, lambda: pool.listen_tcp(factory, host, port, **options))
        return self._listen(where, lambda: runtime.listen_tcp(factory, host, port))

    def listen_unix(self, path: str) -> Listener:
        """Accept connections on a UNIX-domain socket at ``path``."""
        runtime = self.runtime
        if not isinstance(runtime, UNIXRuntime):
            raise lacks(runtime, UNIXRuntime, "listen on a UNIX socket")
        factory = self._listener_factory()
        if (pool := _blocking(runtime)) is not None:
            options = self._pool_options()
            return self._listen(path, lambda: pool.listen_unix(factory, path, **options))
        return self._listen(path, lambda: runtime.listen_unix(factory, path))

    def serve_pipes(self, read_fd: int = STDIN, write_fd: int = STDOUT) -> Transport:
        """Serve one connection over two file descriptors, stdin and stdout by default (inetd style).

        The descriptors are left open.  Once this connection has ended and no
        listener is open, the server stops.
        """
        runtime = self.runtime
        if not isinstance(runtime, PipesRuntime):
            raise lacks(runtime, PipesRuntime, "serve pipes")
        connection = _PipeConnection(self.factory(), self._pipe_ended)
        transport = runtime.connect_pipes(lambda: connection, read_fd, write_fd, close_fds=False)
        # Known at once, though a driver may call connection_made on a later turn.
        connection.transport = transport
        self._pipes.append(connection)
        return transport

    def _listener_factory(self) -> ProtocolFactory:
        """What the listeners call per connection: the factory itself, or,
        with a limit, :meth:`_admit` (a call per connection, none per read)."""
        return self.factory if self.max_connections is None else self._admit

    def _pool_options(self) -> dict[str, Any]:
        """The blocking driver's listener options: its pool is the limit, and
        its accept thread sends the busy reply without starting a thread."""
        options: dict[str, Any] = {}
        if self.max_connections is not None:
            options["max_connections"] = self.max_connections
        if self.busy_reply is not None:
            options["busy_reply"] = self.busy_reply
        return options

    def _admit(self) -> Any:
        """The protocol for a new connection: the factory's, or a busy reply over the limit."""
        limit = self.max_connections
        # The new connection is not among its listener's yet, on every driver.
        served = sum(len(listener.connections) for listener in self.listeners) - self._busy_open
        report = self._limit_report
        if limit is None or served < limit:
            if report is not None:
                report.admitted()
            return self.factory()
        if report is None:
            where = "the server on " + (", ".join(self.addresses) or "its pipes")
            report = self._limit_report = LimitReport(where, limit, self.runtime.now, logger)
        report.refused()
        # A flood of refusals lingers no more than MAX_LINGERING at once.
        linger = BUSY_LINGER if self._busy_open < MAX_LINGERING else 0.0
        self._busy_open += 1
        return BusyProtocol(self.busy_reply, linger=linger, on_lost=self._busy_ended)

    def _busy_ended(self) -> None:
        self._busy_open -= 1

    @property
    def refused(self) -> int:
        """How many connections this server answered with its busy reply
        (on the blocking driver, its listeners count their own: ``listener.refused``)."""
        return 0 if self._limit_report is None else self._limit_report.refused_total

    def _listen(self, where: str, listen: Callable[[], Listener]) -> Listener:
        try:
            listener = listen()
        except OSError as exc:
            raise in_context(exc, f"cannot listen on {where}") from exc
        self.listeners.append(listener)
        return listener

    # ---------------------------------------------------------------- facts

    @property
    def addresses(self) -> list[str]:
        """Every listening address, formatted (``127.0.0.1:8000``, a path...)."""
        return [format_address(address) for listener in self.listeners for address in listener.addresses]

    @property
    def port(self) -> int | None:
        """The first TCP port listened on (the real one when 0 was asked for), or None."""
        for listener in self.listeners:
            for address in listener.addresses:
                if isinstance(address, tuple):
                    return int(address[1])
        return None

    def open_connections(self) -> list[Transport]:
        """The transports of every connection still open."""
        open_ = [transport for listener in self.listeners for transport in list(listener.connections)]
        open_.extend(pipe.transport for pipe in self._pipes if not pipe.ended and pipe.transport is not None)
        return open_

    # -------------------------------------------------------------- running

    def run(self) -> None:
        """Serve until :meth:`stop`, then stop gracefully (see the module docstring) and return."""
        if not self._stopping:
            self.runtime.run()
        self._stopping = True
        for listener in self.listeners:
            listener.close()
        grace = self.grace
        if self._tell_stopping() and not self._hurry:
            notice = min(_NOTICE_WAIT, grace)
            self.runtime.run_until(self._drained, timeout=notice)
            grace -= notice
        waiting = len(self.open_connections())
        if waiting:
            logger.info(
                "stopping: waiting up to %g s for %d open connection%s (stop again to cut them off)",
                self.grace,
                waiting,
                "" if waiting == 1 else "s",
            )
            if not self._hurry:
                self.runtime.run_until(self._drained, timeout=grace)
        elif not self._ended_by_itself:
            logger.info("stopping")
        # Not run_until's answer: a second stop() ends run_until early too.
        if rest := self.open_connections():
            logger.warning(
                "cut off %d connection%s still open %s",
                len(rest),
                "" if len(rest) == 1 else "s",
                "(asked to stop again)" if self._hurry else "after the grace period",
            )
            for transport in rest:
                transport.abort()
            self.runtime.run_until(self._drained, timeout=_ABORT_WAIT)

    def _tell_stopping(self) -> int:
        """Call ``server_stopping()`` (soon) on each open connection's protocol that
        has one; how many were told."""
        told = 0
        for transport in self.open_connections():
            protocol = transport.get_protocol()
            if isinstance(protocol, _PipeConnection):
                protocol = protocol.protocol
            if isinstance(protocol, StoppingProtocol):
                clock = transport.get_extra_info("clock")
                if clock is not None:
                    clock.call_later(0, protocol.server_stopping)
                    told += 1
        return told

    def stop(self) -> None:
        """Stop gracefully; called again while connections finish, cut them off now."""
        if self._stopping:
            self._hurry = True
        self._stopping = True
        self.runtime.stop()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called (or :meth:`run` has finished serving)."""
        return self._stopping

    def _drained(self) -> bool:
        return not self.open_connections()

    def _pipe_ended(self) -> None:
        if not self.listeners and all(pipe.ended for pipe in self._pipes) and not self._stopping:
            self._ended_by_itself = True
            self.stop()


class _PipeConnection:
    """Stands between a pipe transport and its protocol, to learn when the
    connection ends: a listener keeps its open connections, pipes have no
    listener, and the Runtime interface offers no other hook."""

    def __init__(self, protocol: Any, on_end: Callable[[], object]) -> None:
        self.protocol = protocol
        self.on_end = on_end
        self.transport: Transport | None = None
        self.ended = False

    def connection_made(self, transport: Transport) -> None:
        self.transport = transport
        self.protocol.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.protocol.data_received(data)

    def eof_received(self) -> bool | None:
        return self.protocol.eof_received()  # type: ignore[no-any-return]

    def pause_writing(self) -> None:
        self.protocol.pause_writing()

    def resume_writing(self) -> None:
        self.protocol.resume_writing()

    def connection_lost(self, exc: BaseException | None) -> None:
        try:
            self.protocol.connection_lost(exc)
        finally:
            self.ended = True
            self.on_end()


# ------------------------------------------------------------------- serve


def announce(server: Server) -> None:
    """Print ``listening on ADDRESS`` on stderr (nothing for a server on pipes only)."""
    if addresses := server.addresses:
        print("listening on " + ", ".join(addresses), file=sys.stderr, flush=True)


def serve(
    factory: ProtocolFactory | StreamHandler,
    *,
    host: str | None = DEFAULT_HOST,
    port: int | None = None,
    unix: str | None = None,
    stdio: bool = False,
    driver: str = "reactor",
    grace: float = DEFAULT_GRACE,
    on_ready: Callable[[Server], object] | None = announce,
    max_connections: int | None = None,
    busy_reply: bytes | None = None,
    idle_timeout: float | None = None,
) -> None:
    """Serve ``factory`` until SIGINT, SIGTERM or SIGHUP, then stop gracefully and return.

    ``factory`` makes a protocol per connection, or is an ``async def``
    handler awaited with a :class:`~weft.drivers.coroutines.Stream` per
    connection.

    Listens on ``host:port`` (port 8000 unless ``port``, ``unix`` or
    ``stdio`` says otherwise; port 0 picks a free one), on the UNIX socket
    ``unix``, or serves one connection over stdin and stdout (``stdio``) and
    returns when it ends.  ``driver`` names the driver (see
    :data:`weft.drivers._registry.DRIVERS`).  Once ready, ``on_ready(server)``
    runs: by default :func:`announce`, which prints ``listening on
    127.0.0.1:8000`` on stderr; ``server.port`` is the real port.

    ``max_connections`` bounds the connections served at once; one over it
    is answered ``busy_reply`` at once and closed (see the module
    docstring).  Default: no limit, except the blocking driver's pool of 256.

    ``idle_timeout`` is the blocking driver's alone (ArgumentError on any
    other): seconds without a byte either way after which a connection is
    closed (default 300; ``math.inf``: never).  On the event-loop drivers an
    idle connection holds no thread and no pool slot, and each protocol keeps
    its own deadlines (HTTP's keep-alive and request timeouts).

    Raises ``OSError`` when it cannot listen (with the address in the
    message) and :class:`~weft.protocols.errors.ArgumentError` for a bad
    argument or a driver that cannot run here.  Signal handlers are set only
    when called from the main thread; elsewhere, stop it some other way.
    """
    if (port is not None) + (unix is not None) + stdio > 1:
        raise ArgumentError("serve on one of port, unix or stdio, not several")
    _checked_grace(grace)
    if max_connections is not None:
        checked_max_connections(max_connections)
    idle: float | None = None
    if idle_timeout is not None:
        if driver != "blocking":
            raise ArgumentError(f"idle_timeout is an option of the blocking driver, not of {driver!r}")
        idle = checked_idle_timeout(idle_timeout)
    runtime = open_runtime(driver)
    try:
        if idle_timeout is not None and (pool := _blocking(runtime)) is not None:
            pool.idle_timeout = idle
        with blocking_modes_restored(*((STDIN, STDOUT) if stdio else ())):
            server = Server(
                runtime, factory, grace=grace, max_connections=max_connections, busy_reply=busy_reply
            )
            if unix is not None:
                server.listen_unix(unix)
            elif stdio:
                server.serve_pipes(STDIN, STDOUT)
            else:
                server.listen_tcp(host, DEFAULT_PORT if port is None else port)
            # Before announcing: whoever reads the line may signal at once.
            if threading.current_thread() is threading.main_thread():
                for signum in stop_signals():
                    runtime.add_signal_handler(signum, server.stop)
            if on_ready is not None:
                on_ready(server)
            server.run()
    finally:
        runtime.close()


@runtime_checkable
class _PooledRuntime(Protocol):
    """A runtime whose listeners hold a bounded pool of connections (the
    blocking driver's): they take the limit, the busy reply and the idle
    timeout themselves, and the server leaves the counting to them."""

    max_connections: int
    idle_timeout: float | None

    def listen_tcp(
        self,
        factory: ProtocolFactory,
        host: str | None = ...,
        port: int = ...,
        *,
        max_connections: int | None = None,
        busy_reply: bytes | None = None,
    ) -> Listener: ...

    def listen_unix(
        self,
        factory: ProtocolFactory,
        path: str,
        *,
        max_connections: int | None = None,
        busy_reply: bytes | None = None,
    ) -> Listener: ...


def _blocking(runtime: LoopRuntime) -> _PooledRuntime | None:
    """``runtime`` if its listeners keep a pool of their own (the blocking driver's)."""
    return runtime if isinstance(runtime, _PooledRuntime) else None


def _checked_grace(grace: float) -> float:
    if not grace >= 0 or math.isinf(grace):  # NaN fails the first test
        raise ArgumentError(f"grace must be a finite number of seconds >= 0, not {grace!r}")
    return grace


def in_context(exc: OSError, context: str) -> OSError:
    """``exc`` again, of the same class, with ``context`` in front of its message:
    ``cannot listen on 127.0.0.1:8000: Address already in use``."""
    if exc.errno is None:
        return OSError(f"{context}: {exc}")
    # OSError(errno, message) builds the subclass (ConnectionRefusedError...).
    return OSError(exc.errno, f"{context}: {exc.strerror}")

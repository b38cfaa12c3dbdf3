"""weft protocols on asyncio's event loop, or uvloop's: the asyncio driver.

:class:`AsyncioRuntime` is a :class:`~weft.drivers._runtime.Runtime` over an
asyncio event loop: one it makes (the default policy's, or uvloop's with
:meth:`AsyncioRuntime.with_uvloop`), or one an asyncio program already runs,
so that weft protocols and coroutines share it::

    async def main() -> None:
        runtime = AsyncioRuntime(asyncio.get_running_loop())
        listener = runtime.listen_tcp(EchoProtocol, "127.0.0.1", 8000)
        ...                        # asyncio code runs on as before
        listener.close()
        runtime.close()            # never closes a loop it did not make

Protocols get :class:`~weft.drivers.asyncio._transport.AsyncioTransport`\\ s,
which keep weft's contract where asyncio's transports do not; see
https://github.com/weft-project/weft/blob/main/docs/asyncio.md for what the adapter changes and why.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, TypeVarTuple, Unpack

from weft.drivers._core.connecting import HAPPY_EYEBALLS_DELAY
from weft.drivers._core.futures import Future
from weft.drivers._core.loop_polling import run_polling
from weft.drivers._core.signal_handlers import SignalHandlers
from weft.drivers._core.socket_defaults import DEFAULT_CONNECT_TIMEOUT
from weft.drivers._core.timers import Timer
from weft.drivers.asyncio import _datagrams as asyncio_datagrams
from weft.drivers.asyncio import _pipes as asyncio_pipes
from weft.drivers.asyncio import _sockets as asyncio_sockets
from weft.drivers.asyncio._clock import LoopTimers
from weft.drivers.asyncio._datagrams import AsyncioDatagramTransport
from weft.drivers.asyncio._sockets import AsyncioListener
from weft.drivers.asyncio._transport import AsyncioTransport, Role
from weft.protocols.contract import DatagramTransport, Transport
from weft.protocols.errors import ArgumentError, ClosedResourceError

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "AsyncioRuntime"]

logger = logging.getLogger("weft.drivers.asyncio")

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


# How long close() lets aborted connections and cancelled tasks finish.
_CLOSE_WAIT = 2.0


class AsyncioRuntime:
    """weft's driver interface over an asyncio event loop.

    ``AsyncioRuntime()`` makes a loop with asyncio's default policy;
    ``AsyncioRuntime(loop)`` uses ``loop``, typically the running loop of an
    asyncio program.  :meth:`close` closes the loop only if the runtime made
    it (or ``close_loop=True``).  :meth:`run`, :meth:`run_until` and
    :meth:`stop` run the loop as the reactor's do; a loop that an asyncio
    program already runs needs none of them.

    ``name`` is ``"uvloop"`` on a uvloop loop and ``"asyncio"`` otherwise.
    Conforms to :class:`weft.drivers._runtime.Runtime` and, for its
    ``now``/``call_later``, to :class:`weft.protocols.contract.Clock`.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop | None = None, *, close_loop: bool | None = None
    ) -> None:
        self._loop = asyncio.new_event_loop() if loop is None else loop
        self._close_loop = loop is None if close_loop is None else close_loop
        self.name = "uvloop" if type(self._loop).__module__.startswith("uvloop") else "asyncio"
        self._timers = LoopTimers(self._loop)
        self._connections: set[AsyncioTransport] = set()
        self._endpoints: set[AsyncioDatagramTransport] = set()
        self._listeners: set[AsyncioListener] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        # Our signal handlers, with the ones they replaced.
        self._signals = SignalHandlers(self._loop.call_soon_threadsafe, self._watch_signal_wakeup)
        self._running = False
        self._thread_id: int | None = None
        self._closed = False

    @classmethod
    def with_uvloop(cls) -> AsyncioRuntime:
        """A runtime on a new uvloop loop (``pip install 'weft[uvloop]'``)."""
        import uvloop

        return cls(uvloop.new_event_loop(), close_loop=True)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio event loop: schedule coroutines on it beside weft's protocols."""
        return self._loop

    # ------------------------------------------------------------- clock

    def now(self) -> float:
        """Monotonic seconds (``time.monotonic``), the clock of every timer here."""
        return self._timers.now()

    def call_soon(self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> asyncio.Handle:
        """Run ``callback(*args)`` on the next turn, in call order (asyncio's ``call_soon``)."""
        return self._loop.call_soon(callback, *args)

    def call_later(self, delay: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """Run ``callback(*args)`` after ``delay`` seconds; see :mod:`weft.drivers.asyncio._clock`."""
        return self._timers.call_later(delay, callback, *args)

    def call_soon_threadsafe(self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> asyncio.Handle:
        """:meth:`call_soon` from any thread (or a signal handler); wakes the loop."""
        return self._loop.call_soon_threadsafe(callback, *args)

    # ----------------------------------------------------------- transports

    def listen_tcp(
        self, factory: Callable[[], Any], host: str | None = "127.0.0.1", port: int = 0
    ) -> AsyncioListener:
        """Accept TCP connections on every address ``host`` resolves to (all
        interfaces for ``None``); port 0 picks a free one.  A port in use or an
        unknown host raises ``OSError`` now."""
        self._check_open()
        return asyncio_sockets.listen_tcp(self, factory, host, port)

    def listen_unix(self, factory: Callable[[], Any], path: str) -> AsyncioListener:
        """Accept connections on a UNIX-domain socket at ``path`` (a stale socket file is replaced)."""
        self._check_open()
        return asyncio_sockets.listen_unix(self, factory, path)

    def connect_tcp(
        self,
        factory: Callable[[], Any],
        host: str,
        port: int,
        *,
        timeout: float = DEFAULT_CONNECT_TIMEOUT,
        happy_eyeballs_delay: float | None = HAPPY_EYEBALLS_DELAY,
    ) -> Future[Transport]:
        """Connect to ``host:port``, with Happy Eyeballs across its addresses
        (the next one ``happy_eyeballs_delay`` seconds after the previous;
        ``None``: one after another).  The future gets the transport once
        ``connection_made`` has run, or the error: ``ConnectionRefusedError``
        and others with the address in the message, ``TimeoutError`` after
        ``timeout`` seconds, ``socket.gaierror`` for a name that does not
        resolve, or what the protocol factory raised."""
        self._check_open()
        return asyncio_sockets.connect_tcp(
            self, factory, host, port, timeout=timeout, happy_eyeballs_delay=happy_eyeballs_delay
        )

    def connect_unix(
        self, factory: Callable[[], Any], path: str, *, timeout: float = DEFAULT_CONNECT_TIMEOUT
    ) -> Future[Transport]:
        """Connect to the UNIX-domain socket at ``path`` (errors as :meth:`connect_tcp`),
        waiting for room while the listener's backlog is full, up to
        ``timeout``: then ``ListenerBacklogFullError``."""
        self._check_open()
        return asyncio_sockets.connect_unix(self, factory, path, timeout=timeout)

    def connect_pipes(
        self, factory: Callable[[], Any], read_fd: int, write_fd: int, *, close_fds: bool = True
    ) -> AsyncioTransport:
        """Run a protocol over two file descriptors (stdio, pipes) as one transport.

        ``connection_made`` runs on the loop's first turns (asyncio sets pipes
        up there).  Regular files and ``/dev/null`` work too, as on the
        reactor; a directory raises ArgumentError now.  See
        :mod:`weft.drivers.asyncio._pipes`.
        """
        self._check_open()
        return asyncio_pipes.connect_pipes(self, factory, read_fd, write_fd, close_fds=close_fds)

    def open_udp(
        self,
        factory: Callable[[], Any],
        local_address: tuple[Any, ...] | None = None,
        remote_address: tuple[Any, ...] | None = None,
        *,
        family: int = 0,
        reuse_port: bool = False,
        allow_broadcast: bool = False,
    ) -> Future[DatagramTransport]:
        """A UDP endpoint (IPv4 or IPv6), over ``loop.create_datagram_endpoint``.

        The arguments and the future are the reactor's
        (:meth:`weft.drivers.reactor.Reactor.open_udp`): ``local_address``
        to bind, ``remote_address`` to connect to, ``family`` when neither
        says; names are looked up in the loop's default executor.  The
        transport keeps weft's contract over asyncio's (see
        :mod:`weft.drivers.asyncio._datagrams` and https://github.com/weft-project/weft/blob/main/docs/datagrams.md).
        """
        self._check_open()
        return asyncio_datagrams.open_udp(
            self,
            factory,
            local_address,
            remote_address,
            family=family,
            reuse_port=reuse_port,
            allow_broadcast=allow_broadcast,
        )

    def open_unix_datagram(
        self,
        factory: Callable[[], Any],
        local_path: str | bytes | os.PathLike[str] | None = None,
        remote_path: str | bytes | os.PathLike[str] | None = None,
    ) -> Future[DatagramTransport]:
        """A UNIX datagram endpoint bound to ``local_path`` and connected to
        ``remote_path`` (either may be ``None``), as on the reactor; uvloop
        included, whose own ``create_datagram_endpoint`` takes no path."""
        self._check_open()
        return asyncio_datagrams.open_unix_datagram(self, factory, local_path, remote_path)

    def wrap_future(self, future: Future[_T]) -> asyncio.Future[_T]:
        """An asyncio future that settles as the weft ``future`` does, for
        coroutines: ``transport = await runtime.wrap_future(runtime.connect_tcp(...))``."""
        wrapped: asyncio.Future[_T] = self._loop.create_future()

        def settle(done: Future[_T]) -> None:
            if wrapped.cancelled():
                return
            exc = done.exception()
            if exc is None:
                wrapped.set_result(done.result())
            else:
                wrapped.set_exception(exc)

        future.add_done_callback(settle)
        return wrapped

    # ------------------------------------------------------------ signals

    def add_signal_handler(self, signum: int, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> None:
        """Run ``callback(*args)`` in the loop when signal ``signum`` arrives.

        Only from the main thread (Python delivers signals there).  As on the
        reactor, a signal that comes while the runtime is stopped runs its
        callback on the next run: uvloop's own ``add_signal_handler`` loses
        it.  Replaces a handler this runtime set earlier for the signal.
        """
        self._check_open()
        # Python runs the handler between bytecodes on the main thread; the
        # handlers' wake-up pipe, watched here, wakes the loop when the
        # signal lands on another thread (uvloop sets its own while it runs).
        self._signals.add(signum, callback, *args)

    def remove_signal_handler(self, signum: int) -> bool:
        """Restore the handler that was there before; return whether there was one of ours."""
        return self._signals.remove(signum)

    def _watch_signal_wakeup(self, fd: int, callback: Callable[[], object] | None) -> None:
        """Watch (or stop watching) the signal handlers' wake-up pipe on the loop."""
        if callback is None:
            self._loop.remove_reader(fd)
        else:
            self._loop.add_reader(fd, callback)

    # ------------------------------------------------------------ running

    def run(self) -> None:
        """Run the loop until :meth:`stop`; then return (it can be run again)."""
        self._check_open()
        self._run()

    def _run(self) -> None:
        if self._running:
            raise RuntimeError("the runtime is already running")
        if self._loop.is_running():
            # Refused here, not by asyncio: Python 3.13's run_forever() on a
            # running loop unsets the running loop on its way out.
            raise RuntimeError("the event loop is already running (an asyncio program runs it)")
        self._running = True
        self._thread_id = threading.get_ident()
        try:
            self._loop.run_forever()
        finally:
            self._running = False
            self._thread_id = None

    def stop(self) -> None:
        """Make :meth:`run` return after the current turn (any thread may call it).

        Does nothing unless :meth:`run` is running: a loop an asyncio program
        runs is not this runtime's to stop.
        """
        if not self._running:
            return
        if self._thread_id == threading.get_ident():
            self._loop.stop()
        else:
            self._loop.call_soon_threadsafe(self._loop.stop)

    @property
    def running(self) -> bool:
        """Whether :meth:`run` is running."""
        return self._running

    def run_until(self, condition: Callable[[], bool], timeout: float | None = None) -> bool:
        """Run until ``condition()`` holds or ``timeout`` seconds pass; whether it held.

        The condition is asked after each callback at first, then every
        couple of milliseconds at most.  For tests and scripts.
        """
        self._check_open()
        return self._run_until(condition, timeout)

    def _run_until(self, condition: Callable[[], bool], timeout: float | None) -> bool:
        if condition():
            return True
        if timeout is not None and timeout != timeout:
            raise ArgumentError("timeout is NaN")
        deadline = None if timeout is None else time.monotonic() + timeout
        # Asked after each callback at first, then less and less often
        # (asyncio has no after-each-turn hook): see weft.drivers._core.loop_polling.
        held = run_polling(self._loop, condition, deadline, self._run)
        return held or condition()

    # ------------------------------------------------------------ closing

    def close(self) -> None:
        """Release everything this runtime made: listeners, connections
        (aborted), pending connects, signal handlers; and the loop, if the
        runtime made it.  Not while :meth:`run` is running."""
        if self._running:
            raise RuntimeError("cannot close a running runtime")
        if self._closed:
            return
        self._closed = True
        for listener in list(self._listeners):
            listener.close()
        self._signals.remove_all()
        for transport in list(self._connections):
            transport.abort()
        for endpoint in list(self._endpoints):
            endpoint.abort()
        for task in list(self._tasks):
            task.cancel()
        if not self._close_loop or self._loop.is_closed():
            self._timers.close()
            return
        loop = self._loop
        if not loop.is_running():
            # Let the aborts reach connection_lost and the cancelled tasks end,
            # as asyncio.run does for its own loop.
            for task in asyncio.all_tasks(loop):
                task.cancel()
            self._run_until(self._all_ended, _CLOSE_WAIT)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        self._timers.close()
        loop.close()

    def __enter__(self) -> AsyncioRuntime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------- for the driver's modules

    def _new_transport(
        self,
        factory: Callable[[], Any],
        *,
        roles: tuple[Role, ...] = ("both",),
        extra: dict[str, Any] | None = None,
        snapshot: tuple[str, ...] = ("peername", "sockname", "socket"),
        write_eof_closes: bool = False,
        can_write_eof: bool = True,
        log_factory_errors: bool = True,
    ) -> AsyncioTransport:
        """A transport this runtime keeps track of while it is open."""
        transport = AsyncioTransport(
            self._loop,
            self._timers,
            factory,
            roles=roles,
            extra=extra,
            snapshot=snapshot,
            write_eof_closes=write_eof_closes,
            can_write_eof=can_write_eof,
            log_factory_errors=log_factory_errors,
        )
        transport.on_made.append(self._connections.add)
        transport.on_lost.append(self._connections.discard)
        return transport

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coroutine`` as a task this runtime cancels when it closes."""
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._loop.call_exception_handler(
                {"message": "a weft task failed", "exception": exc, "task": task}
            )

    def _all_ended(self) -> bool:
        """No connection, endpoint or task left: what close() waits for."""
        return not self._connections and not self._endpoints and not self._pending_tasks()

    def _pending_tasks(self) -> bool:
        return any(not task.done() for task in asyncio.all_tasks(self._loop))

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedResourceError("the runtime is closed")

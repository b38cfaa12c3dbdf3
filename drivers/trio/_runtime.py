"""weft protocols on Trio: the trio driver's runtime.

:class:`TrioRuntime` is a :class:`~weft.drivers._runtime.Runtime` (and a
:class:`~weft.drivers._runtime.ProcessRuntime`) whose connections are Trio
tasks: each listener, connection and datagram endpoint is a task in the
runtime's nursery, moving bytes with Trio's streams and sockets; weft's
callbacks and timers are run by two more (:mod:`weft.drivers.trio._scheduler`).

It runs in one of two ways:

* ``TrioRuntime()``: a runtime of its own, driven as every weft runtime is
  (``run()``, ``run_until()``, ``stop()``, as often as you like).  It holds
  one Trio run for its whole life, in *guest mode*, hosted by a small loop
  that ``run()`` turns (see :mod:`weft.drivers.trio._guest`); its clock is
  ``time.monotonic()``, which ``trio.current_time()`` then agrees with.
* ``async with open_trio_runtime() as runtime:`` inside a Trio program:
  the runtime's tasks run in a nursery of the program's own run, beside
  its other tasks, and on its clock.  Nothing is to be run then: the
  program's ``await``\\ s do it (``run()`` raises).

Trio allows one run per thread, so a thread has at most one
``TrioRuntime()`` open at a time, and none inside a Trio program (use
``open_trio_runtime`` there).  See https://github.com/weft-project/weft/blob/main/docs/drivers-trio.md.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeVar

import outcome
import trio

from weft.drivers._core.child_processes import Process, StderrOption
from weft.drivers._core.connecting import HAPPY_EYEBALLS_DELAY
from weft.drivers._core.futures import Future
from weft.drivers._core.listeners import kept_listener
from weft.drivers._core.signal_handlers import SignalHandlers
from weft.drivers._core.socket_binding import DEFAULT_BACKLOG, bind_tcp, bind_unix, format_address
from weft.drivers._core.socket_defaults import DEFAULT_CONNECT_TIMEOUT
from weft.drivers._core.timers import Timer
from weft.drivers.trio import _datagrams as trio_datagrams
from weft.drivers.trio._datagrams import TrioDatagramTransport
from weft.drivers.trio._guest import GuestHost
from weft.drivers.trio._pipes import close_unstarted, pipe_stream
from weft.drivers.trio._processes import spawn
from weft.drivers.trio._scheduler import CallbackScheduler, MonotonicClock
from weft.drivers.trio._sockets import TrioListener, connect
from weft.drivers.trio._transport import TrioTransport
from weft.protocols.contract import DatagramTransport, Transport
from weft.protocols.errors import ArgumentError, ClosedResourceError, InvalidStateError

__all__ = ["TrioRuntime", "open_trio_runtime"]

logger = logging.getLogger("weft.drivers.trio")

_T = TypeVar("_T")

# How long close() lets aborted connections reach connection_lost, and then
# lets the Trio run wind down.
_CLOSE_WAIT = 5.0


class TrioRuntime:
    """weft's driver interface on Trio (see the module docstring).

    ``TrioRuntime()`` starts a Trio run of its own, in this thread;
    :func:`open_trio_runtime` gives one inside a running Trio program.
    Conforms to :class:`weft.drivers._runtime.Runtime` and
    :class:`~weft.drivers._runtime.ProcessRuntime`, and, for its
    ``now``/``call_later``, to :class:`weft.protocols.contract.Clock`.
    """

    name = "trio"

    def __init__(self) -> None:
        if trio.lowlevel.in_trio_run():
            raise InvalidStateError(
                "a Trio run is already going on in this thread (Trio allows one per thread): "
                "inside a Trio program use `async with weft.drivers.trio.open_trio_runtime()`, "
                "and close any other TrioRuntime of this thread first"
            )
        self._setup(time.monotonic)
        self._host: GuestHost | None = GuestHost()
        self._host.start(self._guest_main, clock=MonotonicClock())
        # The main task opens the nursery on the run's first steps.
        while self._nursery is None and self._host.outcome is None:
            self._host.step(None)
        if self._nursery is None:
            raise InvalidStateError(f"the Trio run ended as it started: {self._host.outcome!r}")

    @classmethod
    def _in_nursery(cls, nursery: trio.Nursery) -> TrioRuntime:
        """A runtime whose tasks run in ``nursery``, of the Trio run going on in this thread."""
        runtime = cls.__new__(cls)
        runtime._setup(trio.current_time)
        runtime._host = None
        runtime._begin(nursery)
        return runtime

    def _setup(self, now: Callable[[], float]) -> None:
        self._thread_id = threading.get_ident()
        self._now = now
        self._scheduler = CallbackScheduler(now)
        self._nursery: trio.Nursery | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._connections: set[TrioTransport] = set()
        self._endpoints: set[TrioDatagramTransport] = set()
        self._listeners: set[TrioListener] = set()
        # Children still running (see spawn_process).
        self._processes: set[Process] = set()
        self._signals = SignalHandlers(self.call_soon_threadsafe)
        self._running = False
        self._stopping = False
        self._closed = False
        # Set when the last connection ends, for aclose() to wait on.
        self._emptied: trio.Event | None = None

    def _begin(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._token = trio.lowlevel.current_trio_token()
        nursery.start_soon(self._scheduler.run_ready, name="weft callbacks")
        nursery.start_soon(self._scheduler.run_timers, name="weft timers")

    async def _guest_main(self) -> None:
        async with trio.open_nursery() as nursery:
            self._begin(nursery)

    # ------------------------------------------------------------- clock

    def now(self) -> float:
        """Monotonic seconds: ``trio.current_time()`` (``time.monotonic()`` on a run of its own)."""
        return self._now()

    def call_soon(self, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` on a next turn, in call order (from another thread too)."""
        if threading.get_ident() != self._thread_id:
            return self.call_soon_threadsafe(callback, *args)
        return self._scheduler.call_soon(callback, *args)

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` after ``delay`` seconds (from the runtime's thread)."""
        return self._scheduler.call_later(delay, callback, *args)

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> Timer:
        """:meth:`call_soon` from any thread or a signal handler, through Trio's
        ``TrioToken.run_sync_soon``; it wakes the run.  Does nothing once the runtime is closed."""
        timer = Timer(0.0, callback, args, None)
        token = self._token
        if token is not None:
            try:
                token.run_sync_soon(self._scheduler.enqueue, timer)
            except trio.RunFinishedError:
                pass  # closed: nothing will run it
        return timer

    # ----------------------------------------------------------- transports

    def listen_tcp(
        self,
        factory: Callable[[], Any],
        host: str | None = "127.0.0.1",
        port: int = 0,
        *,
        backlog: int = DEFAULT_BACKLOG,
    ) -> TrioListener:
        """Accept TCP connections on every address ``host`` resolves to (all
        interfaces for ``None``); port 0 picks a free one.  A port in use or an
        unknown host raises ``OSError`` now."""
        self._check_open()
        return self._listen(factory, bind_tcp(host, port, backlog=backlog))

    def listen_unix(
        self, factory: Callable[[], Any], path: str, *, backlog: int = DEFAULT_BACKLOG
    ) -> TrioListener:
        """Accept connections on a UNIX-domain socket at ``path`` (a stale socket file is replaced)."""
        self._check_open()
        return self._listen(factory, [bind_unix(path, backlog=backlog)])

    def _listen(self, factory: Callable[[], Any], sockets: list[socket.socket]) -> TrioListener:
        return kept_listener(partial(TrioListener, self, factory, sockets), sockets, self._listeners)

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
        target = format_address((host, port))
        return connect(self, factory, socket.AF_INET, (host, port), target, timeout, happy_eyeballs_delay)

    def connect_unix(
        self, factory: Callable[[], Any], path: str, *, timeout: float = DEFAULT_CONNECT_TIMEOUT
    ) -> Future[Transport]:
        """Connect to the UNIX-domain socket at ``path`` (errors as :meth:`connect_tcp`),
        waiting for room while the listener's backlog is full, up to
        ``timeout``: then ``ListenerBacklogFullError``."""
        self._check_open()
        return connect(self, factory, socket.AF_UNIX, path, path, timeout)

    def connect_pipes(
        self, factory: Callable[[], Any], read_fd: int, write_fd: int, *, close_fds: bool = True
    ) -> TrioTransport:
        """Run a protocol over two file descriptors (stdio, pipes, a socket as
        both); ``connection_made`` runs now.  See :mod:`weft.drivers.trio._pipes`.

        With ``close_fds`` they are closed when the connection ends; without,
        they are left open, in the blocking mode they had.
        """
        self._check_open()
        modes = {} if close_fds else {fd: os.get_blocking(fd) for fd in {read_fd, write_fd}}
        stream, extra, can_write_eof = pipe_stream(read_fd, write_fd, close_fds=close_fds)
        try:
            protocol = factory()
        except BaseException:
            close_unstarted(stream)
            raise
        transport = self._track(TrioTransport(self, protocol, stream, extra, can_write_eof=can_write_eof))
        if modes:
            transport.on_lost.append(lambda _transport: _restore_blocking(modes))
        transport.start()
        return transport

    def connect_stream(
        self, factory: Callable[[], Any], stream: trio.abc.Stream, **extra: Any
    ) -> TrioTransport:
        """Run a protocol over ``stream``, any Trio stream a Trio program made
        (``trio.open_tcp_stream``, ``trio.open_ssl_over_tcp_stream``, a
        ``trio.testing.memory_stream_pair`` end...); ``connection_made`` runs now.

        The transport owns the stream from then on: its task reads and
        writes it, and closes it when the connection ends.  ``extra`` adds
        to what ``get_extra_info`` answers (``peername``, ``sockname``).
        See https://github.com/weft-project/weft/blob/main/docs/drivers-trio.md for where a Trio
        stream's contract and weft's differ.
        """
        self._check_open()
        names: dict[str, Any] = {"peername": None, "sockname": None}
        if isinstance(stream, trio.SocketStream):
            sock = stream.socket
            names = {"peername": _name(sock.getpeername), "sockname": _name(sock.getsockname)}
        protocol = factory()
        transport = self._track(TrioTransport(self, protocol, stream, {**names, **extra}))
        transport.start()
        return transport

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
        """A UDP endpoint (IPv4 or IPv6) served by a task of its own.

        The arguments and the future are the reactor's
        (:meth:`weft.drivers.reactor.Reactor.open_udp`): bad arguments raise
        now; names are looked up in Trio's thread pool; the future gets the
        transport once ``connection_made`` has run, or the error.
        """
        self._check_open()
        return trio_datagrams.open_udp(
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
        ``remote_path`` (either may be ``None``), as on the reactor."""
        self._check_open()
        return trio_datagrams.open_unix_datagram(self, factory, local_path, remote_path)

    def spawn_process(
        self,
        factory: Callable[[], Any],
        args: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stderr: StderrOption = None,
        pty: bool = False,
    ) -> Process:
        """Start ``args`` (no shell) with a protocol on its stdin and stdout, or on a PTY.

        As the reactor's ``spawn_process`` (:mod:`weft.drivers._core.child_processes`,
        shared by every driver, so the :class:`~weft.drivers.Process` is the
        same everywhere): ``stderr`` is a choice or a protocol factory for a
        read-only transport; a thread waits for the child's exit.  The
        streams are ``trio.lowlevel.FdStream``\\ s over the pipes (or the PTY's
        master); ``connection_made`` runs now.
        """
        self._check_open()
        return spawn(self, factory, args, env=env, cwd=cwd, stderr=stderr, pty=pty)

    # ------------------------------------------------------- Trio's own code

    def start_soon(
        self, async_fn: Callable[..., Awaitable[object]], *args: Any, name: str | None = None
    ) -> None:
        """Start ``async_fn(*args)`` as a Trio task of the runtime's nursery
        (``nursery.start_soon``), beside weft's connections.  An exception it
        lets out is logged to the ``weft.drivers.trio`` logger, and ends only that task."""
        self._check_open()
        self._spawn(async_fn, *args, name=name)

    def run_trio(
        self, async_fn: Callable[..., Awaitable[_T]], *args: Any, timeout: float | None = None
    ) -> _T:
        """Run ``async_fn(*args)`` as a Trio task, running the runtime until it
        returns (``trio.run``'s role, on a runtime of its own): its result, or
        what it raised.  After ``timeout`` seconds it is cancelled and
        ``TimeoutError`` raised.  Connections and timers go on meanwhile, and
        after it."""
        self._check_open()
        scope = trio.CancelScope()
        ended: list[outcome.Outcome[_T]] = []

        async def task() -> None:
            with scope:
                try:
                    value = await async_fn(*args)
                except Exception as exc:
                    ended.append(outcome.Error(exc))
                else:
                    ended.append(outcome.Value(value))
            if scope.cancelled_caught:
                ended.append(outcome.Error(TimeoutError(f"{async_fn!r} did not return in {timeout:g} s")))

        self._spawn(task, name=getattr(async_fn, "__qualname__", None))
        if not self.run_until(lambda: bool(ended), timeout):
            scope.cancel()
            self.run_until(lambda: bool(ended), _CLOSE_WAIT)
        if not ended:
            raise TimeoutError(f"{async_fn!r} did not end, even cancelled")
        return ended[0].unwrap()

    # ------------------------------------------------------------ signals

    def add_signal_handler(self, signum: int, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` in the runtime when signal ``signum`` arrives (main thread only).

        A signal that comes while the runtime is not running runs its
        callback on the next run.  Replaces a handler this runtime set
        earlier for the signal.
        """
        self._check_open()
        self._signals.add(signum, callback, *args)

    def remove_signal_handler(self, signum: int) -> bool:
        """Restore the handler that was there before; whether there was one of ours."""
        return self._signals.remove(signum)

    # ------------------------------------------------------------ running

    def run(self) -> None:
        """Run until :meth:`stop`; then return (it can be run again).

        A :meth:`stop` made before the run is not lost: the run does what
        is ready, without waiting, and returns.
        """
        self._run_until(None, None)

    def run_until(self, condition: Callable[[], bool], timeout: float | None = None) -> bool:
        """Run until ``condition()`` holds or ``timeout`` seconds pass; whether it held.

        The condition is asked after each step of the Trio run (its tasks
        run, or I/O came).  For tests and scripts.
        """
        if condition():
            return True
        if timeout is not None and not timeout >= 0:  # NaN fails this too
            raise ArgumentError(f"timeout must be None or a number of seconds >= 0, not {timeout!r}")
        return self._run_until(condition, timeout)

    def _run_until(self, condition: Callable[[], bool] | None, timeout: float | None) -> bool:
        self._check_open()
        host = self._host
        if host is None:
            raise InvalidStateError(
                "this runtime runs inside a Trio program, which runs it: await what you are waiting for"
            )
        if self._running:
            raise InvalidStateError("the runtime is already running")
        if threading.get_ident() != self._thread_id:
            raise InvalidStateError("a TrioRuntime runs in the thread that made it (Trio's run lives there)")
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        self._running = True
        try:
            if self._stopping:  # a stop made before the run: do what is ready, then return
                for _ in range(host.ready()):
                    host.step(0)
                    self._check_outcome()
                return condition is not None and condition()
            while not self._stopping:
                wait = None if deadline == math.inf else max(deadline - time.monotonic(), 0.0)
                stepped = host.step(wait)
                self._check_outcome()
                if condition is not None and condition():
                    return True
                if not stepped and time.monotonic() >= deadline:
                    break
        finally:
            self._running = False
            self._stopping = False
        return condition is not None and condition()

    def _check_outcome(self) -> None:
        """The Trio run ended under us (a KeyboardInterrupt, a bug): raise what ended it."""
        host = self._host
        if host is None or host.outcome is None:
            return
        self._closed = True
        self._token = None
        result, host.outcome = host.outcome, None
        error = getattr(result, "error", None)
        if error is None:
            raise ClosedResourceError("the Trio run of this runtime ended")
        interrupt = _interrupt_in(error)
        raise interrupt if interrupt is not None else error

    def stop(self) -> None:
        """Make :meth:`run` return after the current step (any thread may call it)."""
        self._stopping = True
        if self._host is not None:
            self._host.wake()  # a step waiting for Trio returns (a signal handler's stop too)

    @property
    def running(self) -> bool:
        """Whether :meth:`run` is running."""
        return self._running

    @property
    def connections(self) -> set[TrioTransport]:
        """Every stream connection this runtime made that is still open."""
        return self._connections

    # ------------------------------------------------------------ closing

    def close(self) -> None:
        """Release everything: listeners (closed), connections and endpoints
        (aborted, and given the time to reach ``connection_lost``), signal
        handlers; then end the Trio run, on a runtime of its own.  Not while
        :meth:`run` is running."""
        if self._running:
            raise InvalidStateError("cannot close a running runtime")
        if self._closed:
            return
        self._abort_all()
        host = self._host
        if host is None:
            self._closed = True
            if self._nursery is not None:
                self._nursery.cancel_scope.cancel()
            return
        try:
            self._drive(lambda: not self._connections and not self._endpoints)
            if self._nursery is not None:
                self._nursery.cancel_scope.cancel()
            self._drive(lambda: host.outcome is not None)
        finally:
            self._closed = True
            self._token = None
            if host.outcome is None:
                logger.warning("the Trio run of %r did not end in %g s; it is left behind", self, _CLOSE_WAIT)
            self._detach_processes()

    def _abort_all(self) -> None:
        for listener in list(self._listeners):
            listener.close()
        self._signals.remove_all()
        for transport in list(self._connections):
            transport.abort()
        for endpoint in list(self._endpoints):
            endpoint.abort()

    def _drive(self, condition: Callable[[], bool]) -> None:
        """Take the host's steps until ``condition()`` or :data:`_CLOSE_WAIT` seconds (close's own run)."""
        host = self._host
        if host is None:
            return
        deadline = time.monotonic() + _CLOSE_WAIT
        while not condition() and host.outcome is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            host.step(left)

    def _detach_processes(self) -> None:
        for child in list(self._processes):
            child._detach()  # a thread already waits for it: it is reaped whenever it exits

    async def aclose(self) -> None:
        """Close, from inside the Trio program that runs this runtime: listeners
        closed, connections aborted, and ``connection_lost`` called on each
        before this returns (within a few seconds), then the runtime's tasks
        cancelled."""
        if self._closed:
            return
        self._abort_all()
        with trio.move_on_after(_CLOSE_WAIT):
            while self._connections or self._endpoints:
                self._emptied = trio.Event()
                await self._emptied.wait()
        self._closed = True
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        self._detach_processes()

    def __enter__(self) -> TrioRuntime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self._running else "open"
        where = "in a Trio program" if self._host is None else "on its own Trio run"
        return f"<TrioRuntime {where} {state} connections={len(self._connections)}>"

    # ------------------------------------------------- for the driver's modules

    def _spawn(self, async_fn: Callable[..., Awaitable[object]], *args: Any, name: str | None = None) -> None:
        """Run ``async_fn(*args)`` as a task of the runtime's nursery; an exception
        it lets out is logged, never allowed to end the runtime."""
        if self._nursery is None:
            raise ClosedResourceError("the runtime is closed")
        self._nursery.start_soon(
            _guarded, async_fn, args, name=name or getattr(async_fn, "__qualname__", None)
        )

    def _track(self, transport: TrioTransport) -> TrioTransport:
        """Keep ``transport`` among the open connections until it ends."""
        self._connections.add(transport)
        transport.on_lost.append(self._forget)
        return transport

    def _track_endpoint(self, endpoint: TrioDatagramTransport) -> TrioDatagramTransport:
        """Keep ``endpoint`` among the open datagram endpoints until it ends."""
        self._endpoints.add(endpoint)
        endpoint.on_lost.append(self._forget)
        return endpoint

    def _forget(self, transport: TrioTransport | TrioDatagramTransport) -> None:
        """``transport`` ended: no longer open (and aclose may be waiting for the last one)."""
        if isinstance(transport, TrioTransport):
            self._connections.discard(transport)
        else:
            self._endpoints.discard(transport)
        if not self._connections and not self._endpoints and self._emptied is not None:
            self._emptied.set()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedResourceError("the runtime is closed")


@asynccontextmanager
async def open_trio_runtime() -> AsyncIterator[TrioRuntime]:
    """A :class:`TrioRuntime` inside the running Trio program, for the block::

        async with open_trio_runtime() as runtime:
            listener = runtime.listen_tcp(EchoProtocol, "127.0.0.1", 8000)
            await trio.sleep_forever()          # weft serves meanwhile

    Its listeners, connections and timers are tasks of a nursery opened
    here, beside the program's own; the clock is the program's
    (``trio.current_time()``).  Leaving the block closes the runtime
    (:meth:`TrioRuntime.aclose`).
    """
    async with trio.open_nursery() as nursery:
        runtime = TrioRuntime._in_nursery(nursery)
        try:
            yield runtime
        finally:
            with trio.CancelScope(shield=True):
                await runtime.aclose()


async def _guarded(async_fn: Callable[..., Awaitable[object]], args: tuple[Any, ...]) -> None:
    try:
        await async_fn(*args)
    except Exception as exc:
        logger.error("a task of the trio driver failed", exc_info=exc)


def _interrupt_in(error: BaseException) -> BaseException | None:
    """A KeyboardInterrupt (or SystemExit) in ``error`` or the groups it is made of."""
    if isinstance(error, (KeyboardInterrupt, SystemExit)):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _interrupt_in(inner)
            if found is not None:
                return found
    return None


def _name(getter: Callable[[], Any]) -> Any:
    try:
        return getter()
    except OSError:
        return None


def _restore_blocking(modes: dict[int, bool]) -> None:
    for fd, blocking in modes.items():
        try:
            os.set_blocking(fd, blocking)
        except OSError:
            pass  # closed meanwhile

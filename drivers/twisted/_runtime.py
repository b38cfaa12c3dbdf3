"""weft protocols on a Twisted reactor: the Twisted driver's runtime.

:class:`TwistedRuntime` is a :class:`~weft.drivers._runtime.Runtime` (and a
:class:`~weft.drivers._runtime.ProcessRuntime`) over a Twisted reactor: a
new one of its own, of the best kind here (epoll on Linux) or of the kind
asked for, or one a Twisted program already runs::

    runtime = TwistedRuntime()                     # a new epoll reactor
    runtime = TwistedRuntime(reactor="asyncio")    # Twisted's asyncio reactor, on a new loop
    runtime = TwistedRuntime(reactor=reactor)      # the program's (installed) reactor

A reactor the runtime made is never installed as ``twisted.internet.reactor``
and never ``run()`` (``ReactorNotRestartable`` forbids running one twice):
the runtime starts it once and turns it itself for as long as each
:meth:`~TwistedRuntime.run` or :meth:`~TwistedRuntime.run_until` lasts, so
it can be run, stopped and run again like weft's own reactor, and any
number of runtimes may live in one process.  A reactor a Twisted program
runs with ``reactor.run()`` needs none of that: the runtime's listeners,
connections and timers simply ride on it.

The clock is the reactor's (``IReactorTime.callLater`` wakes weft's timers,
see :mod:`weft.drivers.twisted._clock`), or any ``IReactorTime`` given as
``clock=`` (``twisted.internet.task.Clock``, to test timeouts with no real
time passing).  Protocols get
:class:`~weft.drivers.twisted._transport.TwistedTransport`\\ s over Twisted's
own TCP, UNIX and pipe transports; https://github.com/weft-project/weft/blob/main/docs/drivers-twisted.md
says what the driver maps where.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar, TypeVarTuple, Unpack

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from weft.drivers._core import polled_datagrams
from weft.drivers._core.child_processes import Process, StderrOption
from weft.drivers._core.connecting import HAPPY_EYEBALLS_DELAY
from weft.drivers._core.futures import Future
from weft.drivers._core.signal_handlers import SignalHandlers
from weft.drivers._core.socket_defaults import DEFAULT_CONNECT_TIMEOUT
from weft.drivers._core.timers import Timer
from weft.drivers.twisted import _pipes as twisted_pipes
from weft.drivers.twisted import _sockets as twisted_sockets
from weft.drivers.twisted._clock import ReactorClock
from weft.drivers.twisted._datagrams import TwistedDatagramTransport
from weft.drivers.twisted._pipes import TwistedReadTransport
from weft.drivers.twisted._reactors import new_reactor, reactor_kind, release, turner_for
from weft.drivers.twisted._sockets import TwistedListener
from weft.drivers.twisted._transport import Carrier, TwistedTransport
from weft.drivers.twisted._watches import FdOwner, FdWatches
from weft.protocols.contract import DatagramTransport, Transport
from weft.protocols.errors import ArgumentError, ClosedResourceError

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "TwistedRuntime"]

logger = logging.getLogger("weft.drivers.twisted")

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

# How long close() lets aborted connections reach connection_lost, and the
# reactor shut down.
_CLOSE_WAIT = 2.0


class RunState(enum.Enum):
    """Where a :class:`TwistedRuntime` is."""

    #: Not turning its reactor: ready to run, or riding on a reactor its program runs.
    IDLE = "idle"
    #: Inside :meth:`TwistedRuntime.run` or :meth:`TwistedRuntime.run_until`.
    RUNNING = "running"
    #: :meth:`TwistedRuntime.close` was called: nothing more.
    CLOSED = "closed"


class TwistedRuntime:
    """weft's driver interface over a Twisted reactor (see the module docstring).

    ``reactor`` is a Twisted reactor, or the kind of a new one: ``"epoll"``,
    ``"poll"``, ``"select"`` or ``"asyncio"`` (Twisted's
    ``AsyncioSelectorReactor`` over a new asyncio loop); by default a new
    reactor of the best kind here.  ``clock`` is an ``IReactorTime`` for
    weft's timers instead of the reactor (a ``task.Clock`` in tests).
    :meth:`close` shuts down a reactor the runtime started and releases one
    it made; a reactor a program runs is left to the program.

    ``name`` is ``"twisted"``.  Conforms to
    :class:`weft.drivers._runtime.Runtime` and
    :class:`~weft.drivers._runtime.ProcessRuntime` and, for its
    ``now``/``call_later``, to :class:`weft.protocols.contract.Clock`.
    """

    def __init__(self, reactor: Any = None, *, clock: Any = None) -> None:
        self._made_reactor = reactor is None or isinstance(reactor, str)
        self._reactor: Any = new_reactor(reactor or "default") if self._made_reactor else reactor
        #: The driver's name.
        self.name = "twisted"
        self._turner = turner_for(self._reactor)
        if clock is None:
            self._clock = ReactorClock(self._reactor, time.monotonic, self._report)
        else:
            self._clock = ReactorClock(clock, clock.seconds, self._report)
        # call_soon's calls, in order, run by one delayed call of the reactor's.
        self._ready: deque[Timer] = deque()
        self._ready_call: Any = None
        self._watches = FdWatches(self._reactor)
        self._connections: set[TwistedTransport] = set()
        self._endpoints: set[TwistedDatagramTransport] = set()
        self._listeners: set[TwistedListener] = set()
        self._connecting: set[Any] = set()
        self._processes: set[Process] = set()
        self._signals = SignalHandlers(self.call_soon_threadsafe, self._watch_signal_wakeup)
        self._state = RunState.IDLE
        # Whether this runtime started the reactor (startRunning): then it turns it, and shuts it down.
        self._started = False
        self._stopping = False
        self._thread_id: int | None = None
        self._released = False

    @property
    def reactor(self) -> Any:
        """The Twisted reactor: schedule Twisted code on it beside weft's protocols."""
        return self._reactor

    @property
    def reactor_kind(self) -> str:
        """What the reactor is: ``"epoll"``, ``"poll"``, ``"select"``, ``"asyncio"``, or its class's name."""
        return reactor_kind(self._reactor)

    @property
    def running(self) -> bool:
        """Whether :meth:`run` or :meth:`run_until` is running."""
        return self._state is RunState.RUNNING

    @property
    def _closed(self) -> bool:
        return self._state is RunState.CLOSED

    # ------------------------------------------------------------- clock

    def now(self) -> float:
        """Monotonic seconds (or the given clock's ``seconds()``), the clock of every timer here."""
        return self._clock.now()

    def call_soon(self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """Run ``callback(*args)`` on the next turn, in call order."""
        timer = Timer(0.0, callback, args, None)
        self._ready.append(timer)
        if self._ready_call is None and not self._released:
            self._ready_call = self._reactor.callLater(0, self._run_ready)
        return timer

    def call_later(self, delay: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """Run ``callback(*args)`` after ``delay`` seconds; see :mod:`weft.drivers.twisted._clock`."""
        return self._clock.call_later(delay, callback, *args)

    def call_soon_threadsafe(self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """:meth:`call_soon` from any thread (or a signal handler); wakes the reactor."""
        timer = Timer(0.0, callback, args, None)
        self._ready.append(timer)  # deque.append is atomic
        if not self._released:
            self._reactor.callFromThread(self._arm_ready)
        return timer

    def _arm_ready(self) -> None:
        if self._ready and self._ready_call is None and not self._released:
            self._ready_call = self._reactor.callLater(0, self._run_ready)

    def _run_ready(self) -> None:
        self._ready_call = None
        ready = self._ready
        # What is scheduled meanwhile waits for the next turn.
        for _ in range(len(ready)):
            timer = ready.popleft()
            try:
                timer.run()
            except Exception as exc:
                self._report(f"exception in callback {timer!r}", exc)
        self._arm_ready()

    def _report(self, message: str, exc: BaseException) -> None:
        logger.error(message, exc_info=exc)

    # ----------------------------------------------------------- transports

    def listen_tcp(
        self, factory: Callable[[], Any], host: str | None = "127.0.0.1", port: int = 0
    ) -> TwistedListener:
        """Accept TCP connections on every address ``host`` resolves to (all
        interfaces for ``None``); port 0 picks a free one.  A port in use or an
        unknown host raises ``OSError`` now."""
        self._check_open()
        return twisted_sockets.listen_tcp(self, factory, host, port)

    def listen_unix(self, factory: Callable[[], Any], path: str) -> TwistedListener:
        """Accept connections on a UNIX-domain socket at ``path`` (a stale socket file is replaced)."""
        self._check_open()
        return twisted_sockets.listen_unix(self, factory, path)

    def connect_tcp(
        self,
        factory: Callable[[], Any],
        host: str,
        port: int,
        *,
        timeout: float = DEFAULT_CONNECT_TIMEOUT,
        happy_eyeballs_delay: float | None = HAPPY_EYEBALLS_DELAY,
    ) -> Future[Transport]:
        """Connect to ``host:port`` with Twisted's ``connectTCP``, with Happy
        Eyeballs across its addresses (the next one ``happy_eyeballs_delay``
        seconds after the previous; ``None``: one after another).  The future
        gets the transport once ``connection_made`` has run, or the error:
        ``ConnectionRefusedError`` and others with the address in the message,
        ``TimeoutError`` after ``timeout`` seconds, ``socket.gaierror`` for a
        name that does not resolve, or what the protocol factory raised."""
        self._check_open()
        return twisted_sockets.connect_tcp(
            self, factory, host, port, timeout=timeout, happy_eyeballs_delay=happy_eyeballs_delay
        )

    def connect_unix(
        self, factory: Callable[[], Any], path: str, *, timeout: float = DEFAULT_CONNECT_TIMEOUT
    ) -> Future[Transport]:
        """Connect to the UNIX-domain socket at ``path`` (errors as :meth:`connect_tcp`),
        waiting for room while the listener's backlog is full, up to
        ``timeout``: then ``ListenerBacklogFullError``."""
        self._check_open()
        return twisted_sockets.connect_unix(self, factory, path, timeout=timeout)

    def connect_pipes(
        self, factory: Callable[[], Any], read_fd: int, write_fd: int, *, close_fds: bool = True
    ) -> TwistedTransport:
        """Run a protocol over two file descriptors (stdio, pipes) as one transport;
        ``connection_made`` runs now.  Regular files and ``/dev/null`` work
        too; a directory raises ArgumentError.  See :mod:`weft.drivers.twisted._pipes`."""
        self._check_open()
        return twisted_pipes.connect_pipes(self, factory, read_fd, write_fd, close_fds=close_fds)

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

        As the reactor's ``spawn_process`` (:mod:`weft.drivers._core.child_processes`):
        ``stderr`` is a :class:`~weft.drivers.Stderr` choice or a protocol
        factory for a read-only transport; the :class:`~weft.drivers.Process`
        gives the exit status and sends signals.  The child's pipes run through
        the reactor; its exit is learned from a pidfd the reactor watches (see
        :mod:`weft.drivers.twisted._pipes` for why not Twisted's ``spawnProcess``).
        """
        self._check_open()
        return twisted_pipes.spawn_process(self, factory, args, env=env, cwd=cwd, stderr=stderr, pty=pty)

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
        """A UDP endpoint (IPv4 or IPv6); the arguments and the future are the
        reactor's (:meth:`weft.drivers.reactor.Reactor.open_udp`).  See
        :mod:`weft.drivers.twisted._datagrams` and https://github.com/weft-project/weft/blob/main/docs/datagrams.md."""
        self._check_open()
        return polled_datagrams.open_udp(
            self,
            partial(TwistedDatagramTransport, self),
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
        return polled_datagrams.open_unix_datagram(
            self, partial(TwistedDatagramTransport, self), factory, local_path, remote_path
        )

    def wrap_future(self, future: Future[_T]) -> Deferred[_T]:
        """A Twisted ``Deferred`` that fires as the weft ``future`` settles, for
        Twisted code: ``transport = yield runtime.wrap_future(runtime.connect_tcp(...))``."""
        deferred: Deferred[_T] = Deferred()

        def settle(done: Future[_T]) -> None:
            exc = done.exception()
            if exc is None:
                deferred.callback(done.result())
            else:
                deferred.errback(Failure(exc))

        future.add_done_callback(settle)
        return deferred

    # ------------------------------------------------------------ signals

    def add_signal_handler(self, signum: int, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> None:
        """Run ``callback(*args)`` on the reactor when signal ``signum`` arrives.

        Only from the main thread (Python delivers signals there).  A signal
        that comes while the runtime is not running runs its callback on the
        next run.  Replaces a handler this runtime set earlier for the signal.
        Twisted's own signal handlers are never installed.
        """
        self._check_open()
        self._signals.add(signum, callback, *args)

    def remove_signal_handler(self, signum: int) -> bool:
        """Restore the handler that was there before; return whether there was one of ours."""
        return self._signals.remove(signum)

    # ------------------------------------------------------------ running

    def run(self) -> None:
        """Turn the reactor until :meth:`stop`; then return (it can be run again)."""
        self._check_open()
        self._run(_never, None)

    def run_until(self, condition: Callable[[], bool], timeout: float | None = None) -> bool:
        """Run until ``condition()`` holds or ``timeout`` seconds pass; whether it held.

        The condition is asked after each batch of the reactor's callbacks
        (on the asyncio reactor, after each callback at first, then every
        couple of milliseconds at most).  For tests and scripts.
        """
        self._check_open()
        return self._run_until(condition, timeout)

    def _run_until(self, condition: Callable[[], bool], timeout: float | None) -> bool:
        if condition():
            return True
        if timeout is not None and timeout != timeout:
            raise ArgumentError("timeout is NaN")
        deadline = None if timeout is None else time.monotonic() + timeout
        self._run(condition, deadline)
        return condition()

    def _run(self, condition: Callable[[], bool], deadline: float | None) -> None:
        if self._state is RunState.RUNNING:
            raise RuntimeError("the runtime is already running")
        turner = self._turner
        if turner is None:
            raise RuntimeError(
                f"weft cannot turn a {self.reactor_kind} reactor: run it as its program does "
                "(reactor.run()), and the runtime's protocols run on it"
            )
        reactor = self._reactor
        if not self._started:
            if reactor.running:
                raise RuntimeError(
                    "the reactor is already running (a Twisted program runs it): "
                    "weft's protocols run on it without run()"
                )
            self._started = True
            # Without Twisted's signal handlers: they are the process's, not one reactor's.
            reactor.startRunning(installSignalHandlers=False)
        self._state = RunState.RUNNING
        self._stopping = False
        self._thread_id = threading.get_ident()

        def keep_going() -> bool:
            return not self._stopping and not condition()

        try:
            turner.run(keep_going, deadline)
        finally:
            if self._state is RunState.RUNNING:
                self._state = RunState.IDLE
            self._thread_id = None

    def stop(self) -> None:
        """Make :meth:`run` return after the current turn (any thread may call it).

        Does nothing unless :meth:`run` is running: a reactor a Twisted
        program runs is the program's to stop.
        """
        if self._state is not RunState.RUNNING:
            return
        if self._thread_id == threading.get_ident():
            self._stop_here()
        else:
            self.call_soon_threadsafe(self._stop_here)

    def _stop_here(self) -> None:
        if self._state is not RunState.RUNNING or self._turner is None:
            return
        self._stopping = True
        self._turner.interrupt()

    # ------------------------------------------------------------ closing

    def close(self) -> None:
        """Release everything this runtime made: listeners, connections (aborted),
        endpoints, pending connects, signal handlers, children's watches; shut
        down a reactor it started, and release one it made.  Not while
        :meth:`run` is running."""
        if self._state is RunState.RUNNING:
            raise RuntimeError("cannot close a running runtime")
        if self._state is RunState.CLOSED:
            return
        for listener in list(self._listeners):
            listener.close()
        self._signals.remove_all()
        for connecting in list(self._connecting):
            connecting.cancel()
        for transport in list(self._connections):
            transport.abort()
        for endpoint in list(self._endpoints):
            endpoint.abort()
        for child in list(self._processes):
            child._detach()
        reactor = self._reactor
        # A reactor someone else runs (or will) is not this runtime's to start.
        if self._turner is not None and (self._started or (self._made_reactor and not reactor.running)):
            # Let the aborts reach connection_lost, as the other drivers' close does.
            self._run_until(self._all_ended, _CLOSE_WAIT)
        self._state = RunState.CLOSED
        self._clock.close()
        if self._started and self._turner is not None:
            reactor.stop()
            deadline = time.monotonic() + _CLOSE_WAIT
            self._turner.run(lambda: bool(reactor.running), deadline)
        if self._made_reactor:
            self._released = True
            release(reactor)
        self._ready.clear()

    def __enter__(self) -> TwistedRuntime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<TwistedRuntime {self.reactor_kind} {self._state.value}>"

    # ------------------------------------------------- for the driver's modules

    def _new_transport(
        self,
        factory: Callable[[], Any],
        *,
        carrier: Carrier = "socket",
        extra: dict[str, Any] | None = None,
        can_write_eof: bool = True,
        log_factory_errors: bool = True,
        read_only: bool = False,
    ) -> TwistedTransport:
        """A transport this runtime keeps track of while it is open."""
        make = TwistedReadTransport if read_only else TwistedTransport
        transport = make(
            self._clock,
            self.call_soon,
            factory,
            carrier=carrier,
            extra=extra,
            can_write_eof=can_write_eof,
            log_factory_errors=log_factory_errors,
        )
        transport.on_made.append(self._connections.add)
        transport.on_lost.append(self._connections.discard)
        return transport

    def _set_reader(self, fd: int, callback: Callable[[], object] | None, owner: FdOwner | None) -> None:
        """Watch ``fd`` for reading (None: stop); see :mod:`weft.drivers.twisted._watches`."""
        if self._released:
            return
        self._watches.set_reader(fd, callback, owner)

    def _watch_signal_wakeup(self, fd: int, callback: Callable[[], object] | None) -> None:
        """Watch (or stop watching) the signal handlers' wake-up pipe."""
        self._set_reader(fd, callback, None)

    def _set_writer(self, fd: int, callback: Callable[[], object] | None, owner: FdOwner | None) -> None:
        """Watch ``fd`` for writing (None: stop)."""
        if self._released:
            return
        self._watches.set_writer(fd, callback, owner)

    def _all_ended(self) -> bool:
        """No connection or endpoint left, nothing scheduled: what close() waits for."""
        return not self._connections and not self._endpoints and not self._ready

    def _check_open(self) -> None:
        if self._state is RunState.CLOSED:
            raise ClosedResourceError("the runtime is closed")


def _never() -> bool:
    """run()'s condition: never met (only stop() ends it)."""
    return False

"""A Twisted reactor whose every iteration is a turn of weft's reactor.

Twisted's reactors are ``PosixReactorBase`` (TCP, UDP, UNIX sockets, TLS,
processes, threads, system events: all of Twisted's machinery) over a small
core that says when a file descriptor is ready and when the next timed call
is due.  :class:`WeftReactor` supplies that core from a
:class:`weft.drivers.reactor.Reactor`, as Twisted's ``asyncioreactor`` does
from an asyncio loop:

* a Twisted reader or writer becomes a reader or writer of the fd on weft's
  reactor, so one epoll serves Twisted's descriptors and weft's transports;
* Twisted keeps its own heap of delayed calls, and weft's reactor holds one
  timer, for the earliest of them (:meth:`WeftReactor._tick` runs what is
  due and sets the timer for what comes next);
* ``callFromThread`` queues the call as Twisted does and wakes weft's
  reactor with its ``call_soon_threadsafe``; there is no waker pipe of
  Twisted's own.

Writes are where it departs from Twisted's epoll reactor.  There, a write
buffers and registers write interest, and the data goes out on a later
iteration when epoll says the socket is writable, after which write interest
is dropped again: two ``epoll_ctl`` calls per burst of writes.  Here, a
Twisted transport known to cope with a socket that is not writable (its
send returns 0 on ``EWOULDBLOCK``: TCP, UNIX sockets, pipes and PTYs of
processes, stdio) is written at the end of the turn in which it asked to
write, and write interest is registered only if the kernel did not take
everything.  A connection that keeps up makes no registration change at all,
as on weft's own transports.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable
from functools import partial
from typing import Any, cast

from twisted.internet import abstract, error, process, tcp, unix
from twisted.internet.base import DelayedCall
from twisted.internet.interfaces import IReactorFDSet, IReadDescriptor, IWriteDescriptor
from twisted.internet.posixbase import _NO_FILEDESC, PosixReactorBase
from twisted.logger import Logger
from twisted.python import log
from zope.interface import implementer

from weft.drivers._core.timers import Timer
from weft.drivers.reactor import Reactor

__all__ = ["WeftReactor", "install"]

# Twisted's logging functions are untyped: through Any.
_callWithLogger: Any = log.callWithLogger
_log_err: Any = log.err
_log = Logger()

#: The ``writeSomeData`` implementations that return 0 (rather than fail)
#: when the descriptor cannot take data now: a transport whose ``doWrite`` is
#: ``FileDescriptor``'s and whose ``writeSomeData`` is one of these can be
#: written before the poller says it is writable.
_WRITES_WHEN_NOT_READY = frozenset(
    {
        tcp.Connection.writeSomeData,
        unix._SendmsgMixin.writeSomeData,
        process.ProcessWriter.writeSomeData,
        process.PTYProcess.writeSomeData,
    }
)


def _writes_when_not_ready(kind: type) -> bool:
    """Whether descriptors of class ``kind`` may be written before they are known to be writable."""
    return (
        getattr(kind, "doWrite", None) is abstract.FileDescriptor.doWrite
        and getattr(kind, "writeSomeData", None) in _WRITES_WHEN_NOT_READY
    )


def _watch(
    set_watcher: Callable[[int, Callable[[], object] | None, None], None],
    fd: int,
    callback: Callable[[], object],
) -> None:
    """Install ``callback`` on weft's reactor for ``fd``; if the poller refuses
    the fd (closed: ``ClosedResourceError``, or an ``OSError``), leave no trace
    of it and raise."""
    try:
        set_watcher(fd, callback, None)
    except Exception:
        with contextlib.suppress(Exception):
            set_watcher(fd, None, None)
        raise


class _Driver(enum.Enum):
    """What is turning weft's reactor, as far as the Twisted reactor is concerned."""

    #: Nobody, or something other than this Twisted reactor (a host that
    #: runs weft's reactor itself and called ``startRunning``).
    OTHER = "other"
    #: :meth:`WeftReactor.run`: a Twisted ``crash`` stops weft's reactor.
    RUN = "run"


class _Waker:
    """Twisted's waker, made of weft's ``call_soon_threadsafe``.

    ``callFromThread`` (and Twisted's signal handlers, through it) appends to
    ``threadCallQueue`` and calls ``wakeUp``; this schedules a tick, which
    runs the queue in the reactor's thread.  Safe from any thread and from a
    signal handler: weft's thread-safe call is a deque append and a write to
    its eventfd.
    """

    def __init__(self, reactor: Reactor, tick: Callable[[], None]) -> None:
        self._call_soon_threadsafe = reactor.call_soon_threadsafe
        self._tick = tick

    def wakeUp(self) -> None:
        """Have the reactor's thread run Twisted's queued calls soon."""
        self._call_soon_threadsafe(self._tick)

    def connectionLost(self, reason: object) -> None:
        """Nothing to release: the eventfd belongs to weft's reactor."""


@implementer(IReactorFDSet)
class WeftReactor(PosixReactorBase):
    """A Twisted reactor on a :class:`weft.drivers.reactor.Reactor`.

    ``WeftReactor()`` makes a weft reactor of its own; ``WeftReactor(r)``
    runs on ``r``, so that weft protocols served through ``r`` (or through
    :attr:`weft`) and Twisted code share one loop and one epoll.  Install it
    with :func:`install` before ``twisted.internet.reactor`` is imported, or
    pick it with ``twist --reactor=weft`` / ``trial --reactor=weft``.

    ``run()`` turns weft's reactor until ``stop()`` (or ``crash()``).  A
    program whose main loop is weft's own (``weft_reactor.run()``) calls
    ``startRunning()`` instead: Twisted's startup triggers fire, its
    descriptors and delayed calls are served by whatever turns weft's
    reactor, and ``stop()`` fires the shutdown triggers but leaves ending
    the loop to its owner.  A ``weft_reactor.stop()`` made while ``run()``
    is turning the loop is taken as Twisted's ``stop()``: shutdown triggers
    fire, then ``run()`` returns.
    """

    def __init__(self, reactor: Reactor | None = None) -> None:
        self._weft = reactor if reactor is not None else Reactor()
        # Twisted's descriptors, with the fd each was registered under (a
        # descriptor's fileno() is -1 once it is closed; its registration
        # must still be found and removed).
        self._readers: dict[IReadDescriptor, int] = {}
        self._writers: dict[IWriteDescriptor, int] = {}
        # The writers registered with weft's reactor for write readiness;
        # the others in _writers are written at the end of the turn.
        self._armed: set[IWriteDescriptor] = set()
        # Writers to write at the end of this turn, in the order they asked.
        self._pending_writes: dict[Any, None] = {}
        # The end-of-turn write pass, while one is scheduled: one per turn,
        # however many writers a read writes itself and takes off the list.
        self._write_pass: Timer | None = None
        self._early_writers: dict[type, bool] = {}
        # weft's timer for the earliest delayed call, and its deadline on
        # Twisted's clock (seconds()).
        self._tick_timer: Timer | None = None
        self._tick_at: float | None = None
        self._driver = _Driver.OTHER
        super().__init__()

    @property
    def weft(self) -> Reactor:
        """The weft reactor underneath: serve weft protocols on it (``reactor.weft.listen_tcp(...)``)."""
        return self._weft

    # ----------------------------------------------------------- the waker

    def installWaker(self) -> None:
        """Use weft's thread-safe call as Twisted's waker (no pipe of Twisted's own)."""
        if not self.waker:
            self.waker = _Waker(self._weft, self._tick)

    # ------------------------------------------------------------- timers

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: object, **kw: object
    ) -> DelayedCall:
        """See ``IReactorTime.callLater``; sets weft's timer if this call is the earliest."""
        call = super().callLater(delay, callable, *args, **kw)
        self._tick_by(call.getTime())
        return call

    def _moveCallLaterSooner(self, delayedCall: DelayedCall) -> None:
        # A delayed call reset() to an earlier time may now be the earliest.
        super()._moveCallLaterSooner(delayedCall)
        self._tick_by(delayedCall.getTime())

    def _tick_by(self, when: float) -> None:
        """Make sure a tick runs by ``when`` (on Twisted's clock)."""
        if self._tick_at is not None and self._tick_at <= when:
            return
        if self._tick_timer is not None:
            self._tick_timer.cancel()
        self._tick_at = when
        self._tick_timer = self._weft.call_later(max(when - self.seconds(), 0.0), self._tick)

    def _tick(self) -> None:
        """Run Twisted's calls from threads and the delayed calls that are due;
        set weft's timer for the next one.

        A delayed call cancelled or moved later leaves the timer early: the
        tick then finds nothing due and sets the timer again, which is
        cheaper than tracking every change.
        """
        if self._tick_timer is not None:
            self._tick_timer.cancel()
        self._tick_timer = None
        self._tick_at = None
        self.runUntilCurrent()
        delay = self.timeout()
        if delay is not None:
            self._tick_by(self.seconds() + delay)

    # ------------------------------------------------------------- running

    def run(self, installSignalHandlers: bool = True) -> None:
        """Fire the startup triggers and turn weft's reactor until ``stop()`` or ``crash()``."""
        # Twisted's own refusals first (startRunning makes them too, after
        # this check would have been made).
        if self._started:
            raise error.ReactorAlreadyRunning()
        if self._startedBefore:
            raise error.ReactorNotRestartable()
        if self._weft.running:
            raise error.ReactorAlreadyRunning(
                "weft's reactor is already running (another part of the program turns it): "
                "call startRunning() instead of run(), and let that loop serve Twisted"
            )
        self.startRunning(installSignalHandlers=installSignalHandlers)
        try:
            self.mainLoop()
        finally:
            self._signals.uninstall()

    def mainLoop(self) -> None:
        """Turn weft's reactor while this reactor is started (see :meth:`run`)."""
        weft = self._weft
        while self._started:
            # What is already due (calls made before run(), or from threads).
            weft.call_soon(self._tick)
            self._driver = _Driver.RUN
            try:
                weft.run()
            finally:
                self._driver = _Driver.OTHER
            if self._started and not self._stopped:
                # weft's reactor was stopped by weft code, not by crash():
                # end the way a Twisted program ends, shutdown triggers first.
                self.stop()
        _log.info("Main loop terminated.")

    def doIteration(self, delay: float | None) -> None:
        """One turn of weft's reactor, waiting at most ``delay`` seconds for I/O
        (None: until something happens)."""
        self._weft.run_once(None if delay is None else max(delay, 0.0))

    def stop(self) -> None:
        """See ``IReactorCore.stop``: the shutdown triggers fire on the next turn."""
        super().stop()
        # runUntilCurrent is what fires "shutdown"; make it run.
        self._weft.call_soon(self._tick)

    def crash(self) -> None:
        """See ``IReactorCore.crash``: ``run()`` returns after the current turn."""
        super().crash()
        if self._driver is _Driver.RUN:
            self._weft.stop()

    # ---------------------------------------------------- descriptors (FDSet)

    def addReader(self, reader: IReadDescriptor) -> None:
        """Call ``reader.doRead()`` whenever its fd is readable."""
        if reader in self._readers:
            return
        fd: int = cast(Any, reader).fileno()
        callback = partial(_callWithLogger, reader, self._ready, reader, True)
        _watch(self._weft._set_reader, fd, callback)
        self._readers[reader] = fd

    def addWriter(self, writer: IWriteDescriptor) -> None:
        """Call ``writer.doWrite()`` when it can write (for Twisted's own
        transports: at the end of this turn, and on readiness only if the
        kernel did not take everything then)."""
        if writer in self._writers:
            return
        fd: int = cast(Any, writer).fileno()
        kind = type(writer)
        early = self._early_writers.get(kind)
        if early is None:
            early = self._early_writers[kind] = _writes_when_not_ready(kind)
        if early and "doWrite" not in getattr(writer, "__dict__", ()):
            # (A connecting TCP client's doWrite is its doConnect, set on
            # the instance: that one waits for the poller.)
            self._writers[writer] = fd
            if self._write_pass is None:
                self._write_pass = self._weft.call_soon(self._write_pending)
            self._pending_writes[writer] = None
            return
        self._arm(writer, fd)
        self._writers[writer] = fd

    def _arm(self, writer: IWriteDescriptor, fd: int) -> None:
        """Register ``writer`` with weft's reactor for write readiness."""
        callback = partial(_callWithLogger, writer, self._ready, writer, False)
        _watch(self._weft._set_writer, fd, callback)
        self._armed.add(writer)

    def _write_pending(self) -> None:
        """End of a turn: write what was written this turn (see :meth:`_ready`).

        Writes asked for while this runs (a producer resumed by a write
        that emptied its buffer) are done on the next turn.
        """
        self._write_pass = None
        pending, self._pending_writes = self._pending_writes, {}
        writers, armed = self._writers, self._armed
        for writer in pending:
            # One written earlier in this pass may have stopped this one
            # writing (closed it, say), or it may be waiting for the poller.
            if writer in writers and writer not in armed:
                _callWithLogger(writer, self._ready, writer, False)

    def _ready(self, selectable: Any, is_read: bool) -> None:
        """``doRead`` or ``doWrite``, in the descriptor's log context; a
        descriptor that says it is done (or raises) is disconnected.

        A descriptor that wrote while reading (a reply, most often) is
        written right after its read, in the same log context; one written
        before the poller said it was writable is registered for write
        readiness only if the kernel did not take everything.
        """
        why: object
        if selectable.fileno() == -1:
            why = _NO_FILEDESC
        else:
            try:
                if is_read:
                    why = selectable.doRead()
                    if not why and selectable in self._pending_writes:
                        del self._pending_writes[selectable]
                        is_read = False
                        why = selectable.doWrite()
                else:
                    why = selectable.doWrite()
            except Exception as exc:
                why = exc
                _log_err()
        if why:
            self._disconnectSelectable(selectable, why, is_read)  # type: ignore[no-untyped-call]
        elif not is_read and selectable in self._writers and selectable not in self._armed:
            # Still writing: the kernel's buffer is full, wait until it drains.
            try:
                self._arm(selectable, self._writers[selectable])
            except Exception as exc:
                # Its fd cannot be watched (closed under it): it is lost.
                self._disconnectSelectable(selectable, exc, False)  # type: ignore[no-untyped-call]

    def removeReader(self, reader: IReadDescriptor) -> None:
        """Stop calling ``reader.doRead()``."""
        fd = self._readers.pop(reader, None)
        if fd is not None:
            self._weft._set_reader(fd, None, None)

    def removeWriter(self, writer: IWriteDescriptor) -> None:
        """Stop calling ``writer.doWrite()``."""
        fd = self._writers.pop(writer, None)
        self._pending_writes.pop(writer, None)
        if fd is not None and writer in self._armed:
            self._armed.discard(writer)
            self._weft._set_writer(fd, None, None)

    def removeAll(self) -> list[IReadDescriptor | IWriteDescriptor]:
        """Remove every reader and writer but the reactor's own; the ones removed."""
        removed: list[IReadDescriptor | IWriteDescriptor] = self._removeAll(  # type: ignore[no-untyped-call]
            list(self._readers), list(self._writers)
        )
        return removed

    def getReaders(self) -> list[IReadDescriptor]:
        """The descriptors being read."""
        return list(self._readers)

    def getWriters(self) -> list[IWriteDescriptor]:
        """The descriptors that want to write."""
        return list(self._writers)


def install(reactor: Reactor | None = None) -> WeftReactor:
    """Make a :class:`WeftReactor` the global ``twisted.internet.reactor``; return it.

    Call it before anything imports ``twisted.internet.reactor``.  With
    ``reactor``, Twisted runs on that weft reactor (so weft protocols already
    served on it and Twisted code share the loop); without, on a new one.
    """
    from twisted.internet.main import installReactor

    twisted_reactor = WeftReactor(reactor)
    installReactor(twisted_reactor)  # type: ignore[no-untyped-call]
    return twisted_reactor


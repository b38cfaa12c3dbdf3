"""A Trio run in guest mode on a weft reactor, and its life from start to end.

Trio's guest mode (``trio.lowlevel.start_guest_run``) splits Trio's event
loop in two: the waiting for I/O happens in a worker thread of Trio's, and
everything else (every step of every Trio task) runs as callbacks on the host
loop's thread.  All the host has to give is a thread-safe "call this soon",
which weft's reactor has: ``call_soon_threadsafe`` (a deque append and an
eventfd write), and ``call_soon`` for the calls Trio makes from the loop's
own thread.

Trio's one hard rule is that a guest run must finish before its host stops
("you must let the Trio program run to completion", Trio's guest mode
documentation): a host loop that goes away under a run leaves Trio's
internals broken in that thread.  So the run is wrapped in a cancel scope of
ours (what Trio's documentation recommends for a program that must be able
to quit at any time), :meth:`TrioGuest.cancel` cancels it through the run's
``TrioToken``, and the reactor's :meth:`~weft.drivers.reactor.Reactor.call_before_close`
makes ``close()`` cancel a run still going and turn the loop until Trio's
``done_callback`` has come, as ``asyncio.run`` and trio-asyncio's
``open_loop`` cancel what is left and wait for it.  That wait is bounded
(``close_timeout``): a run that ignores its cancellation is abandoned, with
an error logged, rather than holding ``close()`` forever.
"""

from __future__ import annotations

import enum
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar, TypeVarTuple, Unpack

import trio
from outcome import Error, Outcome, Value

from weft.drivers._core.futures import Future
from weft.drivers._core.timers import Timer
from weft.drivers.coroutines import Cancelled
from weft.drivers.reactor import Reactor
from weft.protocols.errors import ArgumentError, BusyResourceError, InvalidStateError

__all__ = ["DEFAULT_CLOSE_TIMEOUT", "TrioGuest", "start_trio_guest"]

logger = logging.getLogger("weft.drivers.trio_guest")

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

#: How long ``Reactor.close()`` waits for a cancelled guest run to finish, in
#: seconds.  Cancellation in Trio is prompt (the next checkpoint), so a run
#: that takes longer is shielded or stuck in a thread that cannot be
#: abandoned; it is then abandoned rather than allowed to hold the close.
DEFAULT_CLOSE_TIMEOUT = 10.0


class _State(enum.Enum):
    """Where a guest run is in its life."""

    #: ``start_guest_run`` has returned; the main task has not run yet.
    STARTING = "starting"
    #: The Trio function is running.
    RUNNING = "running"
    #: Cancelled by the host, not finished yet.
    CANCELLING = "cancelling"
    #: Trio's ``done_callback`` has come: the run is over.
    FINISHED = "finished"


class _Event(enum.Enum):
    """What moves a guest run from one state to the next."""

    ENTER = "the main task runs"
    CANCEL = "the host cancels the run"
    FINISH = "Trio's done_callback"


#: Every move a guest run can make; anything else is a bug of ours.  A run
#: cancelled before its main task runs stays CANCELLING: the task cancels
#: its scope as soon as it enters.
_TRANSITIONS: dict[tuple[_State, _Event], _State] = {
    (_State.STARTING, _Event.ENTER): _State.RUNNING,
    (_State.STARTING, _Event.CANCEL): _State.CANCELLING,
    (_State.STARTING, _Event.FINISH): _State.FINISHED,
    (_State.RUNNING, _Event.CANCEL): _State.CANCELLING,
    (_State.RUNNING, _Event.FINISH): _State.FINISHED,
    (_State.CANCELLING, _Event.ENTER): _State.CANCELLING,
    (_State.CANCELLING, _Event.FINISH): _State.FINISHED,
}

# What the wrapper returns when our cancel scope caught the cancellation.
_CANCELLED = object()
_CANCELLED_BY_HOST = "the Trio guest run was cancelled by its host (TrioGuest.cancel, or the reactor closing)"


class TrioGuest(Generic[_T]):
    """A Trio function running in guest mode on a weft reactor.

    Made by :func:`start_trio_guest`.  :attr:`outcome` is a weft
    :class:`~weft.drivers.Future` that gets what the function returned, or
    the exception it raised (:class:`~weft.drivers.coroutines.Cancelled` if
    the host cancelled it and the function let the cancellation end it).
    Use it from the reactor's thread.
    """

    def __init__(self, reactor: Reactor, close_timeout: float) -> None:
        self._reactor = reactor
        self._close_timeout = close_timeout
        self._state = _State.STARTING
        self._outcome: Future[_T] = Future(reactor.call_soon)
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._before_close: Timer | None = None

    # ---------------------------------------------------------------- API

    @property
    def outcome(self) -> Future[_T]:
        """The function's result, or its exception, once the run is over."""
        return self._outcome

    @property
    def token(self) -> trio.lowlevel.TrioToken | None:
        """The run's ``TrioToken`` (None until the function starts): host code
        calls into Trio with ``token.run_sync_soon(fn)``, from any thread."""
        return self._token

    def done(self) -> bool:
        """Whether the run is over: Trio's ``done_callback`` has come."""
        return self._state is _State.FINISHED

    def cancel(self) -> None:
        """Cancel the Trio function: a ``Cancelled`` is raised at its next
        checkpoint (Trio's own cancellation: ``finally`` blocks and
        ``async with`` exits run).  The run is over only once :meth:`done`
        says so; turn the reactor until then.  Harmless once cancelled or
        done.  From another thread: ``reactor.call_soon_threadsafe(guest.cancel)``.
        """
        if self._state in (_State.CANCELLING, _State.FINISHED):
            return
        self._move(_Event.CANCEL)
        if self._scope is not None and self._token is not None:
            # Into Trio through its own thread-safe door; the run may be
            # finishing right now, and then there is nothing to cancel.
            try:
                self._token.run_sync_soon(self._scope.cancel)
            except trio.RunFinishedError:
                pass

    def __repr__(self) -> str:
        return f"<TrioGuest {self._state.value}>"

    # ------------------------------------------------------ the run itself

    def _move(self, event: _Event) -> None:
        moved = _TRANSITIONS.get((self._state, event))
        if moved is None:
            raise InvalidStateError(f"a Trio guest run {self._state.value} cannot take {event.value}")
        self._state = moved

    async def _main(self, function: Callable[..., Awaitable[_T]], args: tuple[Any, ...]) -> object:
        """Trio's main task: the user's function inside a cancel scope the host can cancel."""
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            self._scope = scope
            if self._state is _State.CANCELLING:
                scope.cancel()  # the host cancelled before the task could run
            self._move(_Event.ENTER)
            return await function(*args)
        return _CANCELLED

    def _finished(self, result: Outcome[object]) -> None:
        """Trio's ``done_callback``, called on the reactor's thread as the run ends."""
        self._move(_Event.FINISH)
        if self._before_close is not None:
            self._before_close.cancel()
            self._before_close = None
        if isinstance(result, Error):
            self._outcome.set_exception(result.error)
        elif isinstance(result, Value) and result.value is not _CANCELLED:
            self._outcome.set_result(result.value)
        else:
            self._outcome.set_exception(Cancelled(_CANCELLED_BY_HOST))

    def _end_before_close(self) -> None:
        """The reactor is closing: cancel the run and turn the loop until it is over."""
        if self.done():
            return
        self.cancel()
        deadline = self._reactor.now() + self._close_timeout
        while not self.done():
            left = deadline - self._reactor.now()
            if left <= 0:
                break
            # run_until returns early if someone stops the reactor meanwhile:
            # keep turning it until the run is over or the time is up.
            self._reactor.run_until(self.done, timeout=left)
        if not self.done():
            logger.error(
                "a Trio guest run was still going %.3g s after its reactor began to close and cancelled "
                "it: it is abandoned, and Trio cannot run again in this thread",
                self._close_timeout,
            )


def _wakeup_fd_in_use() -> bool:
    """Whether something in this process (an asyncio loop, Twisted's SIGCHLD
    handling) has set ``signal.set_wakeup_fd``: Trio must then leave it alone
    (``host_uses_signal_set_wakeup_fd``), or the two fight over it.  weft's
    reactor itself never sets it."""
    if threading.current_thread() is not threading.main_thread():
        return False  # only the main thread has one, and Trio only touches it there
    current = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(current)
    return current != -1


def start_trio_guest(
    reactor: Reactor,
    async_fn: Callable[[Unpack[_Ts]], Awaitable[_T]],
    *args: *_Ts,
    done: Callable[[Future[_T]], object] | None = None,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    clock: trio.abc.Clock | None = None,
    instruments: Sequence[trio.abc.Instrument] = (),
) -> TrioGuest[_T]:
    """Start ``async_fn(*args)`` as a Trio program in guest mode on ``reactor``.

    Returns at once; the program runs while the reactor turns (``run``,
    ``run_until``, ``run_once``, or Twisted's ``reactor.run()`` on it),
    on the reactor's thread, beside weft's protocols and callbacks: call it
    from the thread that runs the reactor.  ``done(future)`` is called
    with the :attr:`TrioGuest.outcome` once the run is over.

    Closing the reactor while the run goes on cancels it and turns the loop
    until it is over (at most ``close_timeout`` seconds; past that it is
    abandoned and an error logged): a guest run must finish before its host
    stops.  ``clock`` and ``instruments`` are ``trio.run``'s.

    Raises :class:`~weft.protocols.errors.BusyResourceError` if a Trio run is
    already going on in this thread (Trio allows one per thread: start the
    other functions as tasks in its nursery),
    :class:`~weft.protocols.errors.ClosedResourceError` if the reactor is
    closed, and :class:`~weft.protocols.errors.ArgumentError` for a negative
    ``close_timeout``.
    """
    if not close_timeout >= 0:  # NaN fails this too
        raise ArgumentError(f"close_timeout must be a number of seconds >= 0, not {close_timeout!r}")
    guest: TrioGuest[_T] = TrioGuest(reactor, close_timeout)
    # First, so that a closed reactor refuses before any Trio run exists.
    guest._before_close = reactor.call_before_close(guest._end_before_close)
    try:
        trio.lowlevel.start_guest_run(
            guest._main,
            async_fn,
            args,
            run_sync_soon_threadsafe=reactor.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=reactor.call_soon,
            done_callback=guest._finished,
            host_uses_signal_set_wakeup_fd=_wakeup_fd_in_use(),
            clock=clock,
            instruments=instruments,
        )
    except RuntimeError as exc:
        guest._before_close.cancel()
        if "inside a run" in str(exc):
            raise BusyResourceError(
                "a Trio run is already going on in this thread, and Trio allows one per thread: "
                "start this function as a task in that run's nursery instead"
            ) from exc
        raise
    except BaseException:
        guest._before_close.cancel()
        raise
    if done is not None:
        guest.outcome.add_done_callback(done)
    return guest

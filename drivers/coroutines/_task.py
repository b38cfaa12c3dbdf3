"""Tasks: a coroutine run on a host, step by step, by callbacks.

A :class:`Task` is a :class:`~weft.drivers._core.futures.Future`: callback code can
add callbacks to it, and coroutine code can await it.  Each step of the
coroutine runs from a callback the task schedules with its host's
``call_soon``; when the coroutine awaits a future, the task adds a done
callback to that future and the step ends.  Nothing blocks, and the host
never knows coroutines exist.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

from weft.drivers._core.futures import Future
from weft.drivers.coroutines._asyncio_wait import check_asyncio_wait
from weft.drivers.coroutines._errors import Cancelled, NotInTaskError
from weft.drivers.coroutines._host import Host
from weft.protocols.errors import InvalidStateError

__all__ = ["Task", "checkpoint", "current_task", "spawn"]

logger = logging.getLogger("weft.drivers.coroutines")

_T = TypeVar("_T")

_running = threading.local()


def current_task() -> Task[Any]:
    """The task whose coroutine is running now; :class:`NotInTaskError` outside one."""
    task: Task[Any] | None = getattr(_running, "task", None)
    if task is None:
        raise NotInTaskError("not inside a weft task (start one with spawn() or run())")
    return task


class _Yield:
    """Awaitable that gives the other ready callbacks a turn, once."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield None


def checkpoint() -> _Yield:
    """``await checkpoint()``: let every other ready task and callback run first
    (the same as ``await sleep(0)``)."""
    return _Yield()


class Task(Future[_T]):
    """A coroutine running on a host; a :class:`Future` of its return value.

    Create one with :func:`spawn` (or :meth:`TaskGroup.spawn`).  It takes its
    first step on the host's next turn.  Its result is the coroutine's return
    value, or the exception that escaped it; :meth:`cancel` throws
    :class:`Cancelled` into it.

    Awaiting a task waits for it and does not own it: cancelling the task
    that awaits does not cancel the task awaited (a :class:`TaskGroup`, and
    :func:`gather`, :func:`race` and :func:`wait_for`, do cancel what they
    were given).

    On a host that runs an asyncio loop, a task can also await that loop's
    asyncio futures and tasks; cancelling the task cancels the asyncio
    future it waits on, by asyncio's rule (see
    :mod:`weft.drivers.coroutines._asyncio_interop`).

    An exception that nobody retrieved (by awaiting the task, or calling
    :meth:`result` or :meth:`exception`) is logged, with its traceback, to
    the ``weft.drivers.coroutines`` logger when the task is garbage-collected.
    """

    __slots__ = (
        "_cancel_message",
        "_cancel_requests",
        "_coro",
        "_detached",
        "_host",
        "_must_cancel",
        "_pending_throw",
        "_unretrieved",
        "_waiting_on",
        "name",
    )

    def __init__(self, host: Host, coro: Coroutine[Any, Any, _T], *, name: str | None = None) -> None:
        if not isinstance(coro, Coroutine):
            raise TypeError(f"a Task runs a coroutine, not {type(coro).__name__}")
        super().__init__(host.call_soon)
        self._host = host
        self._coro: Coroutine[Any, Any, _T] | None = coro
        #: A name for repr() and logs.
        self.name = name if name is not None else getattr(coro, "__qualname__", "task")
        # A weft future, or an asyncio one (on a host that runs an asyncio loop).
        self._waiting_on: Future[Any] | asyncio.Future[Any] | None = None
        # The weft future a cancel() stopped the wait on, until the next step.
        self._detached: Future[Any] | None = None
        self._must_cancel = False
        self._pending_throw: BaseException | None = None
        self._cancel_requests = 0
        self._cancel_message: str | None = None
        self._unretrieved = False
        host.call_soon(self._step)

    @property
    def host(self) -> Host:
        """The host the task runs on."""
        return self._host

    # ------------------------------------------------------------ results

    def result(self) -> _T:
        """The coroutine's return value; raises what escaped it (``Cancelled`` if cancelled)."""
        self._unretrieved = False
        return super().result()

    def exception(self) -> BaseException | None:
        """What escaped the coroutine, or None; ``InvalidStateError`` if still running."""
        self._unretrieved = False
        return super().exception()

    def set_result(self, result: _T) -> None:
        """Refused: a task's result is its coroutine's return value."""
        raise InvalidStateError("a Task's result is set by its coroutine")

    def set_exception(self, exception: BaseException) -> None:
        """Refused: a task's exception is the one that escaped its coroutine."""
        raise InvalidStateError("a Task's exception is set by its coroutine")

    def cancelled(self) -> bool:
        """Whether the task ended with :class:`Cancelled` (or any ``asyncio.CancelledError``)."""
        return self.done() and isinstance(super().exception(), asyncio.CancelledError)

    # ------------------------------------------------------- cancellation

    def cancel(self, message: str | None = None) -> bool:
        """Ask the task to stop: :class:`Cancelled` is thrown into the coroutine
        at its current ``await`` (at once if it is waiting, else at its next
        step), so its ``finally`` blocks run.  ``False`` if already done.
        Each call counts (see :meth:`cancelling` and :meth:`uncancel`)."""
        if self.done():
            return False
        self._cancel_requests += 1
        self._must_cancel = True
        self._cancel_message = message
        self._stop_waiting()
        return True

    def cancelling(self) -> int:
        """How many cancellation requests are outstanding (as asyncio's ``Task.cancelling``)."""
        return self._cancel_requests

    def uncancel(self) -> int:
        """Withdraw one cancellation request; return how many remain.

        Timeouts and task groups use it to tell their own cancellation from
        one that came from outside.  At zero, a cancellation not yet delivered
        is called off.
        """
        if self._cancel_requests > 0:
            self._cancel_requests -= 1
            if self._cancel_requests == 0:
                self._must_cancel = False
        return self._cancel_requests

    # -------------------------------------------------------------- steps

    def _wakeup(self, future: object) -> None:
        if future is not self._waiting_on:
            return  # stale: the task stopped waiting for it (cancelled)
        self._waiting_on = None
        self._step()

    def _stop_waiting(self) -> None:
        """If waiting, stop (the task was cancelled): its next step, at once, throws ``Cancelled``."""
        waiting_on, self._waiting_on = self._waiting_on, None
        if waiting_on is None:
            return
        waiting_on.remove_done_callback(self._wakeup)
        if not isinstance(waiting_on, Future):
            # An asyncio future is cancelled, as asyncio's Task does: asyncio
            # code made it for this wait and cleans up when it is done.
            waiting_on.cancel(msg=self._cancel_message)
        else:
            self._detached = waiting_on  # uncancel() before the step: wait on it again
        self._host.call_soon(self._step)

    def _step(self) -> None:
        coro = self._coro
        if coro is None or self._waiting_on is not None:
            return  # finished, or a stale call
        throw, self._pending_throw = self._pending_throw, None
        detached, self._detached = self._detached, None
        if throw is None and self._must_cancel:
            self._must_cancel = False
            throw = Cancelled() if self._cancel_message is None else Cancelled(self._cancel_message)
        if throw is None and detached is not None:
            # Cancelled, then uncancelled before Cancelled was thrown: the
            # coroutine still waits for that future, so wait on.
            self._wait_for(detached)
            return
        previous = getattr(_running, "task", None)
        _running.task = self
        try:
            yielded = coro.send(None) if throw is None else coro.throw(throw)
        except StopIteration as stop:
            self._finish_with(stop.value, None)
        except BaseException as exc:
            self._finish_with(None, exc)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
        else:
            self._wait_for(yielded)
        finally:
            _running.task = previous

    def _wait_for(self, yielded: object) -> None:
        if yielded is None:  # checkpoint(): another turn
            self._host.call_soon(self._step)
            return
        if isinstance(yielded, Future) and yielded is not self:
            self._waiting_on = yielded
            yielded.add_done_callback(self._wakeup)
            if self._must_cancel:  # cancelled itself during this step
                self._stop_waiting()
            return
        refusal: BaseException
        if asyncio.isfuture(yielded):  # an asyncio future, or a duck-typed one
            problem = check_asyncio_wait(self._host, yielded)
            if problem is None:
                self._waiting_on = yielded
                yielded.add_done_callback(self._wakeup)
                if self._must_cancel:
                    self._stop_waiting()
                return
            refusal = problem
        elif yielded is self:
            refusal = InvalidStateError("a task cannot await itself")
        else:
            refusal = TypeError(
                "a weft task can only await weft futures, coroutines, and (on a host that runs "
                f"an asyncio loop) that loop's asyncio futures, not {yielded!r}"
            )
        self._pending_throw = refusal
        self._host.call_soon(self._step)

    def _finish_with(self, value: Any, exc: BaseException | None) -> None:
        self._coro = None
        if exc is None:
            Future.set_result(self, value)
        else:
            self._unretrieved = not isinstance(exc, asyncio.CancelledError)
            Future.set_exception(self, exc)

    # ------------------------------------------------------------ the end

    def __del__(self) -> None:
        if getattr(self, "_coro", None) is not None:
            logger.error("Task was destroyed but it is pending: %r", self)
        elif getattr(self, "_unretrieved", False):
            exc = Future.exception(self)
            if exc is not None:
                logger.error(
                    "Task exception was never retrieved: %r",
                    self,
                    exc_info=(type(exc), exc, exc.__traceback__),
                )

    def __repr__(self) -> str:
        if not self.done():
            state = "pending"
        elif self.cancelled():
            state = "cancelled"
        elif (exc := Future.exception(self)) is not None:
            state = f"exception={exc!r}"
        else:
            state = f"result={Future.result(self)!r}"
        return f"<Task {self.name!r} {state}>"


def spawn(host: Host, coro: Coroutine[Any, Any, _T], *, name: str | None = None) -> Task[_T]:
    """Start running ``coro`` as a task on ``host`` (its first step is on the
    host's next turn) and return the :class:`Task`.  asyncio calls this
    ``create_task``, Trio ``start_soon``."""
    return Task(host, coro, name=name)

"""Deadlines: ``with fail_after(s):``, ``with move_on_after(s):``, ``await wait_for(aw, s)``.

A deadline is a timer on the task's host.  When it fires, it cancels the task
(one counted request, see :meth:`Task.cancel`), so :class:`Cancelled`
reaches the body at its current ``await`` and its cleanup runs.  Leaving the
``with`` block, the scope withdraws its own request and turns the
cancellation into :class:`TimedOutError` (``fail_after``) or into nothing
(``move_on_after``).  A cancellation that came from outside as well is left
to propagate: a timeout never swallows someone else's cancel.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from types import TracebackType
from typing import Any, Self, TypeVar

from weft.drivers.coroutines._errors import Cancelled, TimedOutError
from weft.drivers.coroutines._task import Task, current_task
from weft.drivers.coroutines._waiting import cancel_and_wait
from weft.protocols.contract import TimerHandle
from weft.protocols.errors import ArgumentError, InvalidStateError

__all__ = ["FailAfterScope", "MoveOnScope", "TimeoutScope", "fail_after", "move_on_after", "wait_for"]

_T = TypeVar("_T")


class TimeoutScope:
    """A deadline on the body of a ``with`` block, in the current task.

    The part :class:`FailAfterScope` and :class:`MoveOnScope` share: use
    :func:`fail_after` or :func:`move_on_after` to make one.  After the
    block, :attr:`expired` says whether the deadline fired and
    :attr:`cancelled_caught` whether the body was cancelled because of it.
    """

    def __init__(self, seconds: float | None) -> None:
        if seconds is not None and (math.isnan(seconds)):
            raise ArgumentError("a timeout cannot be NaN")
        self._seconds = seconds
        self._task: Task[Any] | None = None
        self._timer: TimerHandle | None = None
        self._start = 0.0
        #: Whether the deadline fired.
        self.expired = False
        #: Whether the body ended with the cancellation the deadline caused.
        self.cancelled_caught = False

    @property
    def deadline(self) -> float | None:
        """When the scope expires, on the host's clock (``None``: never, or not entered)."""
        if self._task is None or self._seconds is None:
            return None
        return self._start + self._seconds

    def __enter__(self) -> Self:
        if self._task is not None:
            raise InvalidStateError("a timeout scope can be entered once")
        self._task = task = current_task()
        self._start = task.host.now()
        if self._seconds is not None:
            self._timer = task.host.call_later(self._seconds, self._expire)
        return self

    def _expire(self) -> None:
        task = self._task
        if task is None or self._timer is None:
            return
        self._timer = None
        self.expired = True
        task.cancel("timeout")

    def _leave(self, exc: BaseException | None) -> bool:
        """End the scope; whether the body ended with this scope's own cancellation."""
        task = self._task
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if task is None or not self.expired:
            return False
        remaining = task.uncancel()
        self.cancelled_caught = isinstance(exc, Cancelled) and remaining == 0
        return self.cancelled_caught


class FailAfterScope(TimeoutScope):
    """What :func:`fail_after` returns: its deadline's cancellation leaves the
    block as :class:`TimedOutError`.

    It never swallows an exception, so its ``__exit__`` is typed ``-> None``:
    a type checker knows the code after the block runs only if the body
    finished (a ``return`` inside it is the function's last word).
    """

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._leave(exc):
            raise TimedOutError(f"timed out after {self._seconds} seconds") from exc


class MoveOnScope(TimeoutScope):
    """What :func:`move_on_after` returns: its deadline's cancellation ends the
    block quietly and the task carries on after it.

    Its ``__exit__`` may swallow that cancellation, so it is typed ``-> bool``
    and a type checker treats the code after the block as reachable.
    """

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        return self._leave(exc)


def fail_after(seconds: float | None) -> FailAfterScope:
    """``with fail_after(s):`` -- cancel the body after ``s`` seconds of the
    task's host time and raise :class:`TimedOutError` (a ``TimeoutError``).
    ``None`` means no deadline."""
    return FailAfterScope(seconds)


def move_on_after(seconds: float | None) -> MoveOnScope:
    """``with move_on_after(s) as scope:`` -- cancel the body after ``s``
    seconds and carry on after the block; ``scope.cancelled_caught`` tells."""
    return MoveOnScope(seconds)


async def wait_for(awaitable: Awaitable[_T], seconds: float | None) -> _T:
    """``await wait_for(aw, s)``: ``aw``'s result, or :class:`TimedOutError`
    after ``s`` seconds, with ``aw`` cancelled.

    A coroutine runs inside the calling task, so the cancellation reaches it
    directly; a :class:`Task` given here is cancelled on expiry and waited
    for, so its cleanup has run when ``wait_for`` raises.  A plain
    :class:`~weft.drivers._core.futures.Future` cannot be cancelled: it is only no
    longer waited for.
    """
    try:
        with fail_after(seconds):
            result = await awaitable
    except TimedOutError:
        if isinstance(awaitable, Task) and not awaitable.done():
            await cancel_and_wait([awaitable])
        raise
    return result

"""Structured concurrency: ``async with TaskGroup() as tg: tg.spawn(coro)``.

The block does not end until every child has: the parent waits for its
children.  The first child to fail cancels its siblings and the body of the
block; once all have finished, every failure (the body's included) is raised
together as an ``ExceptionGroup`` (a ``BaseExceptionGroup`` if one of them
is not an ``Exception``).  Children that were cancelled are not failures.
A cancellation of the parent from outside cancels the children too, and
propagates once they have finished.  This is Trio's nursery and asyncio's
``TaskGroup`` (3.11), with one spelling of the method: ``spawn``.
"""

from __future__ import annotations

from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from weft.drivers._core.futures import Future
from weft.drivers.coroutines._errors import Cancelled
from weft.drivers.coroutines._task import Task, current_task
from weft.drivers.coroutines._waiting import wait_done
from weft.protocols.errors import InvalidStateError

__all__ = ["TaskGroup"]

_T = TypeVar("_T")


class TaskGroup:
    """A scope that owns the tasks spawned in it; see the module docstring."""

    def __init__(self) -> None:
        self._parent: Task[Any] | None = None
        # A dict, not a set: children are cancelled in the order they were spawned.
        self._children: dict[Task[Any], None] = {}
        self._errors: list[BaseException] = []
        self._aborting = False
        self._exiting = False
        self._closed = False
        self._cancelled_parent = False

    async def __aenter__(self) -> TaskGroup:
        if self._parent is not None:
            raise InvalidStateError("a TaskGroup can be entered once")
        self._parent = current_task()
        return self

    def spawn(self, coro: Coroutine[Any, Any, _T], *, name: str | None = None) -> Task[_T]:
        """Start ``coro`` as a child task of the group, and return it.

        Allowed from the body and from the children, until the group has
        ended.  A child spawned while the group is being cancelled starts
        cancelled: its coroutine sees :class:`Cancelled` at its first
        ``await``.
        """
        if self._parent is None or self._closed:
            coro.close()
            raise InvalidStateError("spawn() on a TaskGroup that is not running")
        task = Task(self._parent.host, coro, name=name)
        self._children[task] = None
        task.add_done_callback(self._child_done)
        if self._aborting:
            task.cancel()
        return task

    @property
    def tasks(self) -> frozenset[Task[Any]]:
        """The children still running."""
        return frozenset(self._children)

    def cancel(self) -> None:
        """Cancel every child, and the body if it is still running; the block
        then ends quietly (a cancellation asked for here is not an error)."""
        self._abort()

    def _child_done(self, task: Future[Any]) -> None:
        if task not in self._children:
            return  # already seen (by __aexit__, before this callback's turn)
        del self._children[task]
        error = task.exception()  # retrieved: the group reports it
        if error is not None and not isinstance(error, Cancelled):
            self._errors.append(error)
            self._abort()

    def _abort(self) -> None:
        if self._aborting:
            return
        self._aborting = True
        for child in list(self._children):
            child.cancel()
        parent = self._parent
        if parent is not None and not self._exiting and not parent.done():
            self._cancelled_parent = True
            parent.cancel("task group cancelled")

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        parent = self._parent
        if parent is None:
            raise InvalidStateError("a TaskGroup exited without being entered")
        self._exiting = True
        outside_cancel: Cancelled | None = None
        if isinstance(exc, Cancelled):
            outside_cancel = exc
        elif exc is not None:
            self._errors.append(exc)
        if exc is not None:
            self._abort()
        while True:
            # A child's done callback runs on a later turn: take the finished ones now.
            for child in [child for child in self._children if child.done()]:
                self._child_done(child)
            if not self._children:
                break
            try:
                await wait_done(list(self._children))
            except Cancelled as cancelled:  # the parent is cancelled while waiting
                outside_cancel = cancelled
                self._abort()
                for child in list(self._children):
                    child.cancel()
        self._closed = True
        if self._cancelled_parent and parent.uncancel() == 0:
            outside_cancel = None  # the only cancellation was the group's own
        if self._errors:
            errors, self._errors = self._errors, []
            raise BaseExceptionGroup("errors in a TaskGroup", errors) from None
        if outside_cancel is not None:
            raise outside_cancel
        # Swallow the body's Cancelled when it was the group's own doing.
        return isinstance(exc, Cancelled)

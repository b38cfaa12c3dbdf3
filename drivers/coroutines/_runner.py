"""``run(host, coro)``: run a coroutine to its end from ordinary code."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from weft.drivers.coroutines._errors import StalledError
from weft.drivers.coroutines._host import Host, RunnableHost, SteppableHost
from weft.drivers.coroutines._task import Task
from weft.drivers.coroutines._timeouts import wait_for

__all__ = ["run"]

_T = TypeVar("_T")


def run(host: Host, coro: Coroutine[Any, Any, _T], *, timeout: float | None = None) -> _T:
    """Run ``coro`` as a task on ``host`` until it ends; its result, or its exception raised.

    On a fake clock (anything with ``advance_to_next()``) time jumps from one
    deadline to the next while the task waits, so an hour of ``sleep`` takes
    no real time; if the task waits and nothing at all is scheduled,
    :class:`StalledError` is raised (nothing could ever wake it).  On a
    runtime (anything with ``run_until()``: the reactor, the asyncio
    runtime) its loop runs until the task is done.  ``timeout``, in the
    host's seconds, cancels the coroutine and raises :class:`TimedOutError`.

    This is ``asyncio.run`` / ``trio.run`` for a host you already have; it
    must not be called from inside a task on the same host.
    """
    if timeout is not None:
        coro = wait_for(coro, timeout)
    task = Task(host, coro)
    if isinstance(host, SteppableHost):
        while not task.done():
            if not host.advance_to_next():
                task.cancel("stalled")
                while host.advance_to_next() and not task.done():
                    pass
                raise StalledError(f"{task!r} waits, and nothing is scheduled to wake it")
    elif isinstance(host, RunnableHost):
        host.run_until(task.done)
    else:
        raise TypeError(f"run() needs a host with advance_to_next() or run_until(), not {host!r}")
    if not task.done():
        task.cancel("run() stopped")
        raise StalledError(f"the host stopped before {task!r} ended")
    return task.result()

"""Running awaitables side by side: :func:`gather` (all of them) and :func:`race` (the first).

Each coroutine given becomes a child :class:`Task` on the calling task's
host; a :class:`Task` or :class:`~weft.drivers._core.futures.Future` given is
waited for as it is.  Whatever ends the combinator early (a failure, a
winner, its own cancellation) cancels every unfinished task among them, and
the combinator returns or raises only once those have finished their
cleanup.  A plain future cannot be cancelled: it is simply no longer waited
for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine
from typing import Any, Literal, TypeVar, overload

from weft.drivers._core.futures import Future
from weft.drivers.coroutines._host import Host
from weft.drivers.coroutines._task import Task, current_task
from weft.drivers.coroutines._waiting import cancel_and_wait
from weft.protocols.errors import InvalidStateError

__all__ = ["gather", "race"]

_T = TypeVar("_T")


def _as_future(host: Host, awaitable: Awaitable[_T]) -> Future[_T]:
    if isinstance(awaitable, Future):
        return awaitable
    if isinstance(awaitable, Coroutine):
        return Task(host, awaitable)
    return Task(host, _await(awaitable))


async def _await(awaitable: Awaitable[_T]) -> _T:
    return await awaitable


async def _first(
    host: Host, futures: list[Future[Any]], *, stop_on_failure: bool, stop_on_any: bool
) -> Future[Any] | None:
    """Wait until every future is done, or (per the flags) the first failure or
    the first outcome; return the future that ended the wait early, if any."""
    signal: Future[Future[Any] | None] = Future(host.call_soon)
    remaining = len(futures)

    def one_done(future: Future[Any]) -> None:
        nonlocal remaining
        remaining -= 1
        if signal.done():
            return
        # Peek (Future.exception, not Task.exception): whoever reports the
        # exception must still find it unretrieved until then.
        failed = Future.exception(future) is not None
        if stop_on_any or (stop_on_failure and failed):
            signal.set_result(future)
        elif remaining == 0:
            signal.set_result(None)

    for future in futures:
        future.add_done_callback(one_done)
    try:
        return await signal
    finally:
        for future in futures:
            future.remove_done_callback(one_done)


@overload
async def gather(*awaitables: Awaitable[_T], return_exceptions: Literal[False] = False) -> list[_T]: ...
@overload
async def gather(
    *awaitables: Awaitable[_T], return_exceptions: Literal[True]
) -> list[_T | BaseException]: ...
async def gather(*awaitables: Awaitable[_T], return_exceptions: bool = False) -> list[Any]:
    """Run ``awaitables`` concurrently; their results, in the order given.

    The first failure cancels the others, waits for their cleanup, and is
    raised.  With ``return_exceptions=True`` every one runs to its end and
    the list holds each result or exception (a cancelled child gives its
    :class:`Cancelled`).  Cancelling the task that gathers cancels them all.
    """
    host = current_task().host
    futures = [_as_future(host, awaitable) for awaitable in awaitables]
    tasks = [future for future in futures if isinstance(future, Task)]
    failed: Future[Any] | None = None
    try:
        if futures:
            failed = await _first(host, futures, stop_on_failure=not return_exceptions, stop_on_any=False)
    finally:
        await cancel_and_wait(tasks)
    if failed is not None:
        return [failed.result()]  # raises the first failure
    if return_exceptions:
        return [error if (error := future.exception()) is not None else future.result() for future in futures]
    return [future.result() for future in futures]


async def race(*awaitables: Awaitable[_T]) -> _T:
    """Run ``awaitables`` concurrently; the first to finish wins.

    The others are cancelled, and waited for until their cleanup is done;
    then the winner's result is returned, or its exception raised (the first
    to *finish* wins, whether it succeeded or failed).  At least one
    awaitable is needed.
    """
    if not awaitables:
        raise TypeError("race() needs at least one awaitable")
    host = current_task().host
    futures = [_as_future(host, awaitable) for awaitable in awaitables]
    tasks = [future for future in futures if isinstance(future, Task)]
    try:
        winner = await _first(host, futures, stop_on_failure=True, stop_on_any=True)
    finally:
        await cancel_and_wait(tasks)
    if winner is None:  # unreachable: stop_on_any ends the wait at the first outcome
        raise InvalidStateError("race() ended without a winner")
    result: _T = winner.result()
    return result

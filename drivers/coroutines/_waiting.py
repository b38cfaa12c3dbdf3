"""Waiting for futures to finish without taking their outcome, and cancelling tasks cleanly.

Shared by the combinators, timeouts and task groups.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from weft.drivers._core.futures import Future
from weft.drivers.coroutines._errors import Cancelled
from weft.drivers.coroutines._task import Task, current_task

__all__ = ["cancel_and_wait", "wait_done"]


async def wait_done(futures: Iterable[Future[Any]]) -> None:
    """Wait until every one of ``futures`` is done; their results and
    exceptions are left where they are (nothing is raised or retrieved)."""
    pending = [future for future in futures if not future.done()]
    if not pending:
        return
    host = current_task().host
    all_done: Future[None] = Future(host.call_soon)
    count = len(pending)

    def one_done(_future: Future[Any]) -> None:
        nonlocal count
        count -= 1
        if count == 0 and not all_done.done():
            all_done.set_result(None)

    for future in pending:
        future.add_done_callback(one_done)
    try:
        await all_done
    finally:
        for future in pending:
            future.remove_done_callback(one_done)


async def cancel_and_wait(tasks: Iterable[Task[Any]]) -> None:
    """Cancel each unfinished task and wait until all have finished their cleanup.

    If the waiting task is itself cancelled meanwhile, the tasks are still
    waited for (their cleanup must not be orphaned) and then the
    cancellation propagates.
    """
    tasks = [task for task in tasks if not task.done()]
    for task in tasks:
        task.cancel()
    interrupted: Cancelled | None = None
    while True:
        try:
            await wait_done(tasks)
        except Cancelled as exc:  # cancelled while waiting: finish waiting, then re-raise
            interrupted = exc
            continue
        break
    if interrupted is not None:
        raise interrupted

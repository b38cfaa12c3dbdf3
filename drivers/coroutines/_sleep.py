"""``await sleep(seconds)``: wait on the host's clock."""

from __future__ import annotations

import math

from weft.drivers._core.futures import Future
from weft.drivers.coroutines._task import checkpoint, current_task
from weft.protocols.errors import ArgumentError

__all__ = ["sleep"]


def _wake(future: Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def sleep(seconds: float) -> None:
    """Suspend the current task for ``seconds`` of its host's time.

    ``sleep(0)`` is a yield point: every other task and callback already
    ready runs first.  Cancellation interrupts the sleep (its timer is called
    off).  A negative or NaN duration is an :class:`ArgumentError`.
    """
    if not seconds >= 0 or math.isnan(seconds):
        raise ArgumentError(f"cannot sleep for {seconds!r} seconds")
    if seconds == 0:
        await checkpoint()
        return
    host = current_task().host
    woken: Future[None] = Future(host.call_soon)
    timer = host.call_later(seconds, _wake, woken)
    try:
        await woken
    finally:
        timer.cancel()

"""weft's clock on an asyncio event loop.

asyncio's own timers differ from weft's clock in three ways that protocols
could notice, so weft keeps its timers in its own :class:`TimerQueue` and
uses the loop only to wake up for the earliest one:

* asyncio orders timers by deadline alone, in a heap that is not stable, so
  two calls due at the same moment may run in either order; weft promises
  the order they were scheduled in.
* uvloop rounds delays to whole milliseconds (libuv's resolution), so a call
  may run up to half a millisecond *before* its delay has passed; a weft
  timer never runs early: when the loop wakes too soon it is re-armed.
* a NaN delay is accepted by asyncio and silently corrupts its heap; weft
  refuses it with an ArgumentError, as the reactor does.

Time is ``time.monotonic()``, as on the reactor, not ``loop.time()``
(uvloop's is cached once per loop iteration, in milliseconds).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from weft.drivers._core.timers import WakeUpClock

__all__ = ["LoopTimers"]


class LoopTimers(WakeUpClock):
    """Timers for one event loop: a :class:`weft.protocols.contract.Clock`.

    A call that raises is reported to the loop's exception handler (the
    asyncio way: ``loop.set_exception_handler`` sees it) and the others run
    on.  Calls made for a connection go through its transport, which ends
    that connection instead (see :mod:`weft.drivers._core.connection_clock`).
    The queue and the one wake-up are :class:`~weft.drivers._core.timers.WakeUpClock`'s.
    """

    __slots__ = ("_loop",)

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        # The time source: time.monotonic, or a test's.
        super().__init__(monotonic, self._to_exception_handler)
        self._loop = loop

    def _wake_up_after(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self._loop.call_later(delay, callback)

    def _to_exception_handler(self, message: str, exc: BaseException) -> None:
        context: dict[str, Any] = {"message": message, "exception": exc}
        self._loop.call_exception_handler(context)

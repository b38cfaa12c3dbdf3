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
import math
import time
from collections.abc import Callable
from typing import TypeVarTuple, Unpack

from weft.drivers._core.timers import Timer, TimerQueue
from weft.protocols.errors import ArgumentError

__all__ = ["LoopTimers"]

_Ts = TypeVarTuple("_Ts")


class LoopTimers:
    """Timers for one event loop: a :class:`weft.protocols.contract.Clock`.

    A call that raises is reported to the loop's exception handler (the
    asyncio way: ``loop.set_exception_handler`` sees it) and the others run
    on.  Calls made for a connection go through its transport, which ends
    that connection instead (see :mod:`weft.drivers._core.connection_clock`).
    """

    __slots__ = ("_armed", "_armed_at", "_loop", "_monotonic", "_queue")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._loop = loop
        # The time source: time.monotonic, or a test's.
        self._monotonic = monotonic
        self._queue = TimerQueue()
        # The one asyncio timer that wakes us, and the deadline it is for.
        self._armed: asyncio.TimerHandle | None = None
        self._armed_at = math.inf

    def now(self) -> float:
        """Monotonic seconds (``time.monotonic``)."""
        return self._monotonic()

    def call_later(self, delay: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """Run ``callback(*args)`` after ``delay`` seconds (a negative delay counts as 0)."""
        if delay != delay:  # NaN
            raise ArgumentError("delay is NaN")
        when = self._monotonic() + max(delay, 0.0)
        timer = self._queue.schedule(when, callback, args)
        if when < self._armed_at:
            self._arm(when)
        return timer

    def __len__(self) -> int:
        """Timers still to run."""
        return len(self._queue)

    def close(self) -> None:
        """Stop waking the loop; pending timers will not run."""
        if self._armed is not None:
            self._armed.cancel()
            self._armed = None
        self._armed_at = -math.inf  # never arm again
        for timer in self._queue.pending():
            timer.cancel()

    def _arm(self, when: float) -> None:
        if self._armed is not None:
            self._armed.cancel()
        self._armed_at = when
        self._armed = self._loop.call_later(max(when - self._monotonic(), 0.0), self._fire)

    def _fire(self) -> None:
        self._armed = None
        self._armed_at = math.inf
        queue = self._queue
        now = self._monotonic()
        # Take every due timer first: one scheduled by a callback below, even
        # with no delay, waits for the next wake-up (as on the reactor).
        due: list[Timer] = []
        while (timer := queue.pop_due(now)) is not None:
            due.append(timer)
        for timer in due:
            try:
                timer.run()
            except Exception as exc:
                self._loop.call_exception_handler(
                    {"message": "exception in a callback scheduled with call_later", "exception": exc}
                )
        deadline = queue.next_deadline()
        if deadline is not None and deadline < self._armed_at:
            self._arm(deadline)

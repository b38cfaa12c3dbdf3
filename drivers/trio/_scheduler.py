"""The trio driver's callbacks and timers: weft's callback API run by two Trio tasks.

weft code schedules callbacks (``call_soon``) and timers (``call_later``);
Trio has neither, only tasks.  A :class:`CallbackScheduler` keeps them the
way the reactor does, a ready queue and a :class:`~weft.drivers._core.timers.TimerQueue`
(a heap, first-in first-out among equal deadlines), and runs them from two
tasks of the runtime's nursery:

* the **ready task** runs what ``call_soon`` queued, a batch at a time, and
  parks (``wait_task_rescheduled``) when there is nothing; ``call_soon``
  reschedules it, which costs an append to Trio's run queue;
* the **timer task** sleeps in a cancel scope whose deadline is the earliest
  timer's; ``call_later`` of an earlier timer moves that deadline, and Trio
  wakes the task when it passes.  One task and one deadline for any number
  of timers: a timer costs a heap push, never a task of its own.

Both tasks give the other tasks a turn between batches, so a callback that
schedules another cannot starve the connections.  A callback that raises is
logged and the others go on, as on the reactor.

The clock is Trio's (``trio.current_time()``): :class:`MonotonicClock` is the
``trio.abc.Clock`` a runtime that runs its own Trio gives it, so that
``trio.current_time()`` and the runtime's ``now()`` are ``time.monotonic()``,
the clock of every other driver.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import trio

from weft.drivers._core.timers import Timer, TimerQueue
from weft.protocols.errors import ArgumentError

__all__ = ["CallbackScheduler", "MonotonicClock"]

logger = logging.getLogger("weft.drivers.trio")


class MonotonicClock(trio.abc.Clock):
    """``time.monotonic()`` as Trio's clock, so that ``trio.current_time()``
    agrees with every weft driver's ``now()``."""

    def start_clock(self) -> None:
        """Nothing to start: the monotonic clock always runs."""

    def current_time(self) -> float:
        """Monotonic seconds."""
        return time.monotonic()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        """Seconds from now until ``deadline``."""
        return deadline - time.monotonic()


class CallbackScheduler:
    """A ready queue and a timer heap, run by :meth:`run_ready` and :meth:`run_timers`.

    ``now`` is the run's clock.  ``call_soon`` and ``call_later`` must be
    called from the thread of the Trio run (a task, or the host between
    ticks); other threads go through the runtime's ``call_soon_threadsafe``,
    which hands :meth:`enqueue` to Trio's thread-safe entry queue.
    """

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
        self._ready: deque[Timer] = deque()
        self._timers = TimerQueue()
        # The ready task while it waits for work (None while it runs).
        self._parked: trio.lowlevel.Task | None = None
        # The timer task's sleep, whose deadline is the earliest timer's.
        self._sleep: trio.CancelScope | None = None
        self.thread_id = threading.get_ident()

    # -------------------------------------------------------------- scheduling

    def call_soon(self, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` on a next turn, after what is queued already."""
        timer = Timer(0.0, callback, args, None)
        self.enqueue(timer)
        return timer

    def enqueue(self, timer: Timer) -> None:
        """Queue ``timer`` to run on a next turn, and wake the ready task."""
        self._ready.append(timer)
        parked = self._parked
        if parked is not None:
            self._parked = None
            trio.lowlevel.reschedule(parked)

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` once ``delay`` seconds have passed (a negative delay counts as 0)."""
        if delay != delay:
            raise ArgumentError("delay is NaN")
        when = self.now() + max(delay, 0.0)
        timer = self._timers.schedule(when, callback, args)
        sleep = self._sleep
        if sleep is not None and when < sleep.deadline:
            sleep.deadline = when
        return timer

    def pending_timers(self) -> list[Timer]:
        """The timers still to run, earliest first."""
        return self._timers.pending()

    # -------------------------------------------------------------- the tasks

    async def run_ready(self) -> None:
        """The ready task: run queued callbacks, a batch at a time, for ever."""
        ready = self._ready
        while True:
            if not ready:
                self._parked = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(self._unpark)
                continue
            for _ in range(len(ready)):
                _run(ready.popleft())
            # What those callbacks queued runs after the other tasks' turn.
            await trio.lowlevel.checkpoint()

    def _unpark(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        self._parked = None
        return trio.lowlevel.Abort.SUCCEEDED

    async def run_timers(self) -> None:
        """The timer task: sleep until the earliest deadline, run what is due, for ever."""
        timers = self._timers
        while True:
            deadline = timers.next_deadline()
            now = self.now()
            if deadline is None or deadline > now:
                with trio.CancelScope(deadline=math.inf if deadline is None else deadline) as sleep:
                    self._sleep = sleep
                    try:
                        await trio.sleep_forever()
                    finally:
                        self._sleep = None
                continue
            while (timer := timers.pop_due(now)) is not None:
                _run(timer)
            await trio.lowlevel.checkpoint()


def _run(timer: Timer) -> None:
    try:
        timer.run()
    except Exception:
        logger.exception("exception in a callback scheduled on the trio driver")

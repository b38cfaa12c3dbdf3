"""Scheduled calls: the handle protocols get, and the queue drivers keep them in.

Every driver's clock keeps its timers in a :class:`TimerQueue`: a heap ordered
by deadline and then by scheduling order, so calls due at the same moment
run first-in first-out.  Cancelled timers are not searched for; they are
skipped when they surface, and the heap is rebuilt without them once they
are most of it (as asyncio does), so a program that schedules and cancels
many timeouts keeps its memory bounded.

A driver on a host event loop (asyncio, Twisted) runs its clock as a
:class:`WakeUpClock`: weft's timers in a queue, and one host timer at a time,
for the earliest deadline, to wake it up.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any, TypeVarTuple, Unpack

from weft.protocols.errors import ArgumentError

__all__ = ["Timer", "TimerQueue", "WakeUpClock"]

_Ts = TypeVarTuple("_Ts")


class Timer:
    """A call scheduled at a deadline; what ``call_later`` returns.

    Conforms to :class:`weft.protocols.contract.TimerHandle`.
    """

    __slots__ = ("_when", "_callback", "_args", "_cancelled", "_queue")

    def __init__(
        self,
        when: float,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        queue: TimerQueue | None,
    ) -> None:
        self._when = when
        self._callback: Callable[..., object] | None = callback
        self._args = args
        self._cancelled = False
        self._queue: TimerQueue | None = queue

    def when(self) -> float:
        """The deadline, on the clock that scheduled it."""
        return self._when

    def cancel(self) -> None:
        """Call it off; harmless if it already ran or was cancelled."""
        if self._cancelled:
            return
        self._cancelled = True
        # Drop the references now: a cancelled timeout must not keep a
        # connection's objects alive until its deadline.
        self._callback = None
        self._args = ()
        if self._queue is not None:
            self._queue._timer_cancelled()

    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled

    def run(self) -> None:
        """Make the call (once; a cancelled or spent timer does nothing)."""
        callback, args = self._callback, self._args
        self._callback = None
        self._args = ()
        if callback is not None:
            callback(*args)

    def __repr__(self) -> str:
        state = "cancelled" if self._cancelled else "pending" if self._callback else "done"
        return f"<Timer when={self._when:.6f} {state} {self._callback!r}>"


class TimerQueue:
    """Timers in deadline order, first-in first-out among equals."""

    __slots__ = ("_heap", "_sequence", "_cancelled")

    #: Rebuild only past this many cancelled timers, and only when they are
    #: more than half of the heap.
    PURGE_THRESHOLD = 100

    def __init__(self) -> None:
        # Always this one list (a purge refills it in place), so that a loop
        # may keep it and test it for emptiness without a call per turn:
        # empty means no timer at all, live or cancelled.
        self._heap: list[tuple[float, int, Timer]] = []
        self._sequence = 0
        self._cancelled = 0

    def __len__(self) -> int:
        """Timers still to run (cancelled ones excluded)."""
        return len(self._heap) - self._cancelled

    def schedule(self, when: float, callback: Callable[..., object], args: tuple[Any, ...]) -> Timer:
        """Queue ``callback(*args)`` for ``when``."""
        timer = Timer(when, callback, args, self)
        self._sequence += 1
        heapq.heappush(self._heap, (when, self._sequence, timer))
        return timer

    def next_deadline(self) -> float | None:
        """The earliest deadline of a live timer, or ``None``."""
        heap = self._heap
        if heap and heap[0][2]._cancelled:
            self._drop_cancelled_head()
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> Timer | None:
        """Remove and return the earliest live timer due at ``now``, or ``None``."""
        self._drop_cancelled_head()
        heap = self._heap
        if not heap or heap[0][0] > now:
            return None
        timer = heapq.heappop(heap)[2]
        timer._queue = None
        return timer

    def pending(self) -> list[Timer]:
        """Live timers, earliest first."""
        return [entry[2] for entry in sorted(self._heap) if not entry[2].cancelled()]

    def _drop_cancelled_head(self) -> None:
        heap = self._heap
        while heap and heap[0][2].cancelled():
            heapq.heappop(heap)[2]._queue = None
            self._cancelled -= 1

    def _timer_cancelled(self) -> None:
        self._cancelled += 1
        if self._cancelled > self.PURGE_THRESHOLD and self._cancelled * 2 > len(self._heap):
            live = [entry for entry in self._heap if not entry[2].cancelled()]
            for entry in self._heap:
                if entry[2].cancelled():
                    entry[2]._queue = None
            heapq.heapify(live)
            self._heap[:] = live
            self._cancelled = 0


class WakeUpClock:
    """weft's timers kept in a :class:`TimerQueue`, with one host timer to wake up for the earliest.

    A :class:`weft.protocols.contract.Clock`.  A host's own timers order calls
    due at the same moment in no promised order, may fire early (uvloop's
    millisecond rounding, a wall clock set forward) and take a NaN delay;
    here calls due together run in the order they were scheduled, a wake-up
    that comes early re-arms, and a NaN delay raises ArgumentError.

    A subclass says how to ask its host for a wake-up
    (:meth:`_wake_up_after`) and how to take one back
    (:meth:`_cancel_wake_up`).  ``now`` is the time source the deadlines are
    on; a call that raises is handed to ``report`` and the others run on.
    """

    __slots__ = ("_armed", "_armed_at", "_now", "_queue", "_report")

    def __init__(self, now: Callable[[], float], report: Callable[[str, BaseException], None]) -> None:
        self._now = now
        self._report = report
        self._queue = TimerQueue()
        # The one host timer that wakes us, and the deadline it is for.
        self._armed: Any = None
        self._armed_at = math.inf

    def now(self) -> float:
        """The time the deadlines are on."""
        return self._now()

    def call_later(self, delay: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """Run ``callback(*args)`` after ``delay`` seconds (a negative delay counts as 0)."""
        if delay != delay:  # NaN
            raise ArgumentError("delay is NaN")
        when = self._now() + max(delay, 0.0)
        timer = self._queue.schedule(when, callback, args)
        if when < self._armed_at:
            self._arm(when)
        return timer

    def __len__(self) -> int:
        """Timers still to run."""
        return len(self._queue)

    def close(self) -> None:
        """Stop waking up; pending timers will not run."""
        self._disarm()
        self._armed_at = -math.inf  # never arm again
        for timer in self._queue.pending():
            timer.cancel()

    def _wake_up_after(self, delay: float, callback: Callable[[], None]) -> Any:
        """Ask the host to call ``callback`` after ``delay`` seconds; return what cancels it."""
        raise NotImplementedError

    def _cancel_wake_up(self, handle: Any) -> None:
        """Take back a wake-up :meth:`_wake_up_after` asked for."""
        handle.cancel()

    def _disarm(self) -> None:
        armed, self._armed = self._armed, None
        if armed is not None:
            self._cancel_wake_up(armed)

    def _arm(self, when: float) -> None:
        self._disarm()
        self._armed_at = when
        self._armed = self._wake_up_after(max(when - self._now(), 0.0), self._fire)

    def _fire(self) -> None:
        self._armed = None
        self._armed_at = math.inf
        queue = self._queue
        now = self._now()
        # Take every due timer first: one scheduled by a callback below, even
        # with no delay, waits for the next wake-up (as on the reactor).
        due: list[Timer] = []
        while (timer := queue.pop_due(now)) is not None:
            due.append(timer)
        for timer in due:
            try:
                timer.run()
            except Exception as exc:
                self._report("exception in a callback scheduled with call_later", exc)
        deadline = queue.next_deadline()
        if deadline is not None and deadline < self._armed_at:
            self._arm(deadline)

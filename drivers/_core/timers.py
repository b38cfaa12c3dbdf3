"""Scheduled calls: the handle protocols get, and the queue drivers keep them in.

Every driver's clock keeps its timers in a :class:`TimerQueue`: a heap ordered
by deadline and then by scheduling order, so calls due at the same moment
run first-in first-out.  Cancelled timers are not searched for; they are
skipped when they surface, and the heap is rebuilt without them once they
are most of it (as asyncio does), so a program that schedules and cancels
many timeouts keeps its memory bounded.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

__all__ = ["Timer", "TimerQueue"]


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
        self._drop_cancelled_head()
        return self._heap[0][0] if self._heap else None

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
            self._heap = live
            self._cancelled = 0

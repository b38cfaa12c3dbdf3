"""weft's clock on a Twisted reactor, or on any ``IReactorTime`` (``twisted.internet.task.Clock``).

A :class:`ReactorClock` keeps weft's timers in weft's own
:class:`~weft.drivers._core.timers.TimerQueue` and asks the ``IReactorTime``
for one ``callLater`` at a time, for the earliest deadline, as the asyncio
driver does with asyncio's loop.  Twisted's own delayed calls differ from
weft's clock in ways a protocol could notice:

* Twisted keeps them in a heap ordered by time alone, so two calls due at
  the same moment may run in either order; weft promises the order they
  were scheduled in.
* A reactor's ``seconds()`` is ``time.time()``, the wall clock, which jumps
  when the system's time is set; weft's clock is monotonic.  On a real
  reactor ``now()`` is ``time.monotonic()`` and the reactor's ``callLater``
  only wakes the clock up: a wake-up that comes early (the wall clock
  jumped forward) is re-armed, so a weft timer never runs before its delay
  has passed.
* A NaN delay trips an ``assert`` in Twisted (or nothing, under ``-O``);
  weft refuses it with an ArgumentError.

Given an ``IReactorTime`` of its own (``TwistedRuntime(clock=Clock())``), the
runtime's clock is that one's: ``now()`` is its ``seconds()``, and
``clock.advance()`` runs what falls due, so timeouts are tested with no
real time passing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVarTuple, Unpack

from weft.drivers._core.timers import Timer, TimerQueue
from weft.protocols.errors import ArgumentError

__all__ = ["ReactorClock"]

_Ts = TypeVarTuple("_Ts")


class ReactorClock:
    """weft's timers over an ``IReactorTime``: a :class:`weft.protocols.contract.Clock`.

    ``scheduler`` provides ``callLater`` (a reactor, a ``task.Clock``);
    ``now`` is the time source the deadlines are on.  A call that raises is
    handed to ``report`` and the others run on; calls made for a connection
    go through its transport, which ends that connection instead (see
    :mod:`weft.drivers._core.connection_clock`).
    """

    __slots__ = ("_armed", "_armed_at", "_now", "_queue", "_report", "_scheduler")

    def __init__(
        self, scheduler: Any, now: Callable[[], float], report: Callable[[str, BaseException], None]
    ) -> None:
        self._scheduler = scheduler
        self._now = now
        self._report = report
        self._queue = TimerQueue()
        # The one delayed call that wakes us, and the deadline it is for.
        self._armed: Any = None
        self._armed_at = math.inf

    def now(self) -> float:
        """The time the deadlines are on: monotonic seconds, or the given clock's ``seconds()``."""
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

    def _disarm(self) -> None:
        armed, self._armed = self._armed, None
        if armed is not None and armed.active():
            armed.cancel()

    def _arm(self, when: float) -> None:
        self._disarm()
        self._armed_at = when
        self._armed = self._scheduler.callLater(max(when - self._now(), 0.0), self._fire)

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

"""A clock that moves only when a test says so.

:class:`FakeClock` conforms to :class:`weft.protocols.contract.Clock` and is
also the memory driver's event loop: what a memory transport defers (a
``connection_lost`` after ``close()``, data held while reading was paused)
is scheduled on it for "now" and runs at the next :meth:`FakeClock.advance`.
Every method of the memory driver's test handles runs ``advance(0)`` before
it returns, so tests rarely call it themselves.

It keeps a wall clock too (:meth:`FakeClock.wall_time`, what an HTTP
``Date`` is made from): it starts at :data:`DEFAULT_WALL_TIME`, or the
``wall`` a test gives, moves with :meth:`FakeClock.advance`, and jumps with
:meth:`FakeClock.set_wall_time`, as a real one does when the system's time
is set (the monotonic :meth:`FakeClock.now` does not move then).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVarTuple, Unpack

from weft.drivers._core.timers import Timer, TimerQueue
from weft.protocols.errors import ArgumentError

__all__ = ["DEFAULT_WALL_TIME", "FakeClock"]

#: Where a FakeClock's wall clock starts unless told: 2001-09-09 01:46:40 UTC
#: (a round 10**9 seconds since the epoch), so tests see a fixed date.
DEFAULT_WALL_TIME = 1_000_000_000.0

_Ts = TypeVarTuple("_Ts")


class FakeClock:
    """Time that stands still until :meth:`advance`.

    Calls run in deadline order, those due together in the order they were
    scheduled, each seeing :meth:`now` equal to its own deadline.  An
    exception from a call propagates out of :meth:`advance`; the calls not
    yet run stay scheduled.  ``advance`` may be called from inside a call
    (a timer that delivers data, say): the inner call runs what falls due,
    then the outer one carries on.
    """

    def __init__(self, start: float = 0.0, *, wall: float = DEFAULT_WALL_TIME) -> None:
        self._now = float(start)
        # The wall clock is kept as its distance from now(), so advance()
        # moves both and set_wall_time() moves only this.
        self._wall_offset = float(wall) - self._now
        self._timers = TimerQueue()

    def now(self) -> float:
        """The current fake time, in seconds."""
        return self._now

    def wall_time(self) -> float:
        """The fake wall clock: seconds since the Unix epoch (UTC)."""
        return self._now + self._wall_offset

    def set_wall_time(self, seconds: float) -> None:
        """Set the wall clock to ``seconds`` since the epoch; :meth:`now` does not move."""
        if math.isnan(seconds):
            raise ArgumentError("wall time is NaN")
        self._wall_offset = float(seconds) - self._now

    def call_later(self, delay: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """Run ``callback(*args)`` once ``delay`` seconds have been advanced."""
        if math.isnan(delay):
            raise ArgumentError("delay is NaN")
        return self._timers.schedule(self._now + max(delay, 0.0), callback, args)

    def call_at(self, when: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """Run ``callback(*args)`` once the clock reaches ``when``."""
        if math.isnan(when):
            raise ArgumentError("when is NaN")
        return self._timers.schedule(max(when, self._now), callback, args)

    def call_soon(self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """Run ``callback(*args)`` at the next :meth:`advance`, even ``advance(0)``."""
        return self._timers.schedule(self._now, callback, args)

    def advance(self, seconds: float) -> None:
        """Move time forward ``seconds``, running every call that falls due."""
        if not seconds >= 0:
            raise ArgumentError(f"cannot advance by {seconds!r} seconds")
        target = self._now + seconds
        while (timer := self._timers.pop_due(target)) is not None:
            self._now = max(self._now, timer.when())
            timer.run()
        self._now = max(self._now, target)

    def advance_to_next(self) -> bool:
        """Jump to the next deadline and run what is due then; ``False`` if none."""
        deadline = self._timers.next_deadline()
        if deadline is None:
            return False
        self.advance(max(deadline - self._now, 0.0))
        return True

    def next_deadline(self) -> float | None:
        """When the next call is due, or ``None`` if nothing is scheduled."""
        return self._timers.next_deadline()

    def pending(self) -> list[Timer]:
        """The scheduled calls, earliest first."""
        return self._timers.pending()

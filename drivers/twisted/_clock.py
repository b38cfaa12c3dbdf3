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

from collections.abc import Callable
from typing import Any

from weft.drivers._core.timers import WakeUpClock

__all__ = ["ReactorClock"]


class ReactorClock(WakeUpClock):
    """weft's timers over an ``IReactorTime``: a :class:`weft.protocols.contract.Clock`.

    ``scheduler`` provides ``callLater`` (a reactor, a ``task.Clock``);
    ``now`` is the time source the deadlines are on.  A call that raises is
    handed to ``report`` and the others run on; calls made for a connection
    go through its transport, which ends that connection instead (see
    :mod:`weft.drivers._core.connection_clock`).  The queue and the one
    wake-up are :class:`~weft.drivers._core.timers.WakeUpClock`'s.
    """

    __slots__ = ("_scheduler",)

    def __init__(
        self, scheduler: Any, now: Callable[[], float], report: Callable[[str, BaseException], None]
    ) -> None:
        super().__init__(now, report)
        self._scheduler = scheduler

    def _wake_up_after(self, delay: float, callback: Callable[[], None]) -> Any:
        return self._scheduler.callLater(delay, callback)

    def _cancel_wake_up(self, handle: Any) -> None:
        if handle.active():  # a task.Clock's call that ran or was cancelled refuses cancel()
            handle.cancel()

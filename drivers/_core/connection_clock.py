"""The clock a transport offers its protocol: the driver's clock, bound to a connection.

A protocol's timer belongs to its connection.  If the call raises, the
connection ends with that exception, exactly as if ``data_received`` had
raised, and other connections never notice.  Drivers build one per transport
and offer it as ``transport.get_extra_info("clock")``.

It is a :class:`weft.protocols.contract.WallClock`: ``wall_time()`` is the
driver clock's own when it has one (the memory driver's FakeClock, whose
wall time a test sets) and the system's (``time.time``) otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVarTuple, Unpack

from weft.protocols.contract import TimerHandle

__all__ = ["ConnectionClock", "DriverClock"]

_Ts = TypeVarTuple("_Ts")


class DriverClock(Protocol):
    """What a driver's own clock offers (a FakeClock, a reactor)."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        """Schedule ``callback(*args)``."""
        ...


class ConnectionClock:
    """A :class:`weft.protocols.contract.Clock` whose calls run through a connection.

    ``run`` is the connection's way of calling into its protocol: it makes the
    call and, if it raises, ends the connection with the exception.
    """

    __slots__ = ("_clock", "_run", "_wall")

    def __init__(
        self, clock: DriverClock, run: Callable[[Callable[..., object], tuple[Any, ...]], object]
    ) -> None:
        self._clock = clock
        self._run = run
        # A driver clock that keeps its own wall time (a FakeClock) tells it;
        # the others run on the system's.  Looked up once per connection.
        self._wall: Callable[[], float] = getattr(clock, "wall_time", time.time)

    def now(self) -> float:
        """The driver clock's time."""
        return self._clock.now()

    def wall_time(self) -> float:
        """Seconds since the Unix epoch (UTC): for telling the time, never for measuring it."""
        return self._wall()

    def call_later(self, delay: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> TimerHandle:
        """Run ``callback(*args)`` after ``delay`` seconds, as part of this connection."""
        return self._clock.call_later(delay, self._run, callback, args)

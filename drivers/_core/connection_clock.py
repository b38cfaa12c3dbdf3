"""The clock a transport offers its protocol: the driver's clock, bound to a connection.

A protocol's timer belongs to its connection.  If the call raises, the
connection ends with that exception, exactly as if ``data_received`` had
raised, and other connections never notice.  Drivers build one per transport
and offer it as ``transport.get_extra_info("clock")``.
"""

from __future__ import annotations

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

    __slots__ = ("_clock", "_run")

    def __init__(
        self, clock: DriverClock, run: Callable[[Callable[..., object], tuple[Any, ...]], object]
    ) -> None:
        self._clock = clock
        self._run = run

    def now(self) -> float:
        """The driver clock's time."""
        return self._clock.now()

    def call_later(self, delay: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> TimerHandle:
        """Run ``callback(*args)`` after ``delay`` seconds, as part of this connection."""
        return self._clock.call_later(delay, self._run, callback, args)

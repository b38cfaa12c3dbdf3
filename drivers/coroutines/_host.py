"""What the scheduler needs from whatever runs it: the *host*.

A host is anything with ``now()``, ``call_soon(cb, *args)`` and
``call_later(delay, cb, *args)``: the reactor, weft's asyncio runtime, or a
:class:`~weft.drivers.testing._fake_clock.FakeClock`.  Tasks are stepped by callbacks
scheduled there, so the coroutine layer sits on top of the callback layer and
never the reverse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from weft.protocols.contract import TimerHandle

__all__ = ["Host", "RunnableHost", "SteppableHost"]


@runtime_checkable
class Host(Protocol):
    """The callback scheduler tasks run on."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def call_soon(self, callback: Callable[..., object], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` on the next turn, after those already due."""
        ...

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` after ``delay`` seconds."""
        ...


@runtime_checkable
class SteppableHost(Host, Protocol):
    """A host that a test steps by hand (the fake clock): :func:`run` jumps
    it from deadline to deadline, so no real time passes."""

    def advance_to_next(self) -> bool:
        """Jump to the next deadline and run what is due; ``False`` if none."""
        ...


@runtime_checkable
class RunnableHost(Host, Protocol):
    """A host with its own loop (the reactor, the asyncio runtime)."""

    def run_until(self, condition: Callable[[], bool], timeout: float | None = None) -> bool:
        """Run until ``condition()`` holds or ``timeout`` passes; whether it held."""
        ...

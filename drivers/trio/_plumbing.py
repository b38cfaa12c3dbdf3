"""What the trio driver's transports, endpoints and listeners may ask of their runtime.

They are handed a :class:`~weft.drivers.trio.TrioRuntime` but type against
:class:`TaskHost`, the narrow part of it they use: the runtime imports them
to build them, so they must not import it.  ``_spawn`` is the runtime's own
plumbing, not part of its public API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from weft.drivers._core.timers import Timer

__all__ = ["TaskHost"]


class TaskHost(Protocol):
    """The trio runtime, as the tasks it runs see it: its clock, its callbacks, its nursery."""

    def now(self) -> float:
        """Trio's clock."""
        ...

    def call_soon(self, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` on a next turn."""
        ...

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` after ``delay`` seconds."""
        ...

    def _spawn(self, async_fn: Callable[..., Awaitable[object]], *args: Any, name: str | None = None) -> None:
        """Start ``async_fn(*args)`` as a task of the runtime's nursery."""

"""What the blocking driver's listeners may ask of their runtime.

A :class:`~weft.drivers.blocking.BlockingListener` is handed its
:class:`~weft.drivers.blocking.BlockingRuntime` but types against
:class:`PoolRuntime`, the narrow part of it that it uses: the runtime
imports the listener to build it, so the listener must not import the
runtime.  The members with a leading underscore are the runtime's own
plumbing, not part of its public API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from weft.drivers._core.timers import Timer
from weft.drivers.blocking._channels import Channel
from weft.drivers.blocking._hand_over import SocketHandOver
from weft.drivers.blocking._transport import ThreadedTransport

__all__ = ["PoolRuntime"]


class PoolRuntime(Protocol):
    """The blocking runtime, as its listeners and connects see it."""

    @property
    def _listeners(self) -> set[Any]:
        """The listeners still open (closing the runtime closes them)."""

    @property
    def _connecting(self) -> dict[object, Callable[[], object]]:
        """The connects under way, each with what ends it when the runtime closes."""

    @property
    def _hand_over(self) -> SocketHandOver:
        """Where accepted sockets wait for the scheduler thread to start them."""

    def call_soon(self, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` on the scheduler's next turn."""

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> Timer:
        """:meth:`call_soon` from any thread; wakes the scheduler."""

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` after ``delay`` seconds (from the scheduler's thread)."""

    def now(self) -> float:
        """Monotonic seconds."""

    def _transport(
        self,
        protocol: Any,
        channel: Channel,
        extra: dict[str, Any] | None = None,
        *,
        transport_class: type[ThreadedTransport] | None = None,
        idle_timeout: float | None = None,
    ) -> ThreadedTransport:
        """A transport the runtime keeps track of while it is open."""

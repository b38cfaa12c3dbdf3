"""What the Twisted driver's listeners, connectors, pipes and endpoints may ask of their runtime.

They are handed a :class:`~weft.drivers.twisted.TwistedRuntime` but type
against :class:`TwistedHost`, the narrow part of it they use: the runtime
imports them to build them, so they must not import it.  The members with
a leading underscore are the runtime's own plumbing, not part of its public
API; this is the one place that lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVarTuple, Unpack

from weft.drivers._core.child_processes import Process
from weft.drivers._core.timers import Timer
from weft.drivers.twisted._clock import ReactorClock
from weft.drivers.twisted._transport import Carrier, TwistedTransport
from weft.drivers.twisted._watches import FdOwner

__all__ = ["TwistedHost"]

_Ts = TypeVarTuple("_Ts")


class TwistedHost(Protocol):
    """The Twisted runtime, as its listeners, connectors, pipes and endpoints see it."""

    @property
    def reactor(self) -> Any:
        """The Twisted reactor."""

    @property
    def _clock(self) -> ReactorClock:
        """The runtime's weft clock."""

    @property
    def _closed(self) -> bool:
        """Whether the runtime was closed."""

    @property
    def _listeners(self) -> set[Any]:
        """Listeners still open (closing the runtime closes them)."""

    @property
    def _endpoints(self) -> set[Any]:
        """Datagram endpoints still open (closing the runtime aborts them)."""

    @property
    def _connecting(self) -> set[Any]:
        """Connects still under way (closing the runtime fails them)."""

    @property
    def _processes(self) -> set[Process]:
        """Children whose exit is still to be learned."""

    def call_soon(self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """Run ``callback(*args)`` on the next turn."""

    def call_later(self, delay: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """Run ``callback(*args)`` after ``delay`` seconds."""

    def call_soon_threadsafe(self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """:meth:`call_soon` from any thread."""

    def _set_reader(self, fd: int, callback: Callable[[], object] | None, owner: FdOwner | None) -> None:
        """Watch ``fd`` for reading, or stop."""

    def _set_writer(self, fd: int, callback: Callable[[], object] | None, owner: FdOwner | None) -> None:
        """Watch ``fd`` for writing, or stop."""

    def _new_transport(
        self,
        factory: Callable[[], Any],
        *,
        carrier: Carrier = "socket",
        extra: dict[str, Any] | None = None,
        can_write_eof: bool = True,
        log_factory_errors: bool = True,
        read_only: bool = False,
    ) -> TwistedTransport:
        """A transport the runtime keeps track of while it is open."""

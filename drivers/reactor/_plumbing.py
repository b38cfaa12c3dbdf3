"""What the reactor's transports, listeners and child processes may ask of their loop.

They are handed a :class:`~weft.drivers.reactor.Reactor` but type against
:class:`TransportLoop`, the narrow part of it they use: the loop imports
them to build them, so they must not import the loop.  The members with a
leading underscore are the reactor's own plumbing, not part of its public
API; this is the one place that lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVarTuple, Unpack

from weft.drivers._core.child_processes import Process
from weft.drivers._core.timers import Timer

__all__ = ["FdOwner", "InlineReader", "TransportLoop"]

_Ts = TypeVarTuple("_Ts")


class FdOwner(Protocol):
    """What owns a watched fd: told when one of its callbacks raised."""

    def _callback_failed(self, exc: Exception) -> None:
        """Log and end whatever the fd belongs to."""


class InlineReader(FdOwner, Protocol):
    """A transport whose fd the loop reads itself, inline (see ``Reactor._loop``)."""

    @property
    def _protocol(self) -> Any:
        """The protocol its bytes go to."""

    def _read_ready(self) -> None:
        """Readiness other than a plain readable event: read, or meet the error."""

    def _recv(self, size: int, /) -> bytes:
        """Receive at most ``size`` bytes (raises as ``socket.recv`` or ``os.read`` does)."""

    @property
    def _recv_into(self) -> Callable[[memoryview], int] | None:
        """Receive into a buffer (``socket.recv_into``), or None where the
        transport cannot (pipes: its protocol gets bytes, inline)."""

    def _read_into_ready(self) -> None:
        """Readiness, for a protocol that takes a lent buffer: read into the loop's."""

    def _recv_failed(self, exc: OSError) -> None:
        """A read failed: end the connection with ``exc``."""

    def _eof(self) -> None:
        """The peer sent EOF."""


class TransportLoop(Protocol):
    """The reactor, as its transports, listeners and child processes see it."""

    @property
    def stream_transport_class(self) -> Callable[..., Any]:
        """The class of the byte-stream transports this loop makes."""

    @property
    def read_only_transport_class(self) -> Callable[..., Any]:
        """The class of its read-only transports (a child's stderr)."""

    @property
    def _open(self) -> dict[object, Callable[[], object]]:
        """Listeners and transports still open, with what ends each (closing the loop ends them)."""

    @property
    def _processes(self) -> set[Process]:
        """Children whose exit is still to be learned."""

    @property
    def _closed(self) -> bool:
        """Whether the loop was closed."""

    @property
    def _read_buffer(self) -> memoryview:
        """The buffer lent to protocols that take one (``buffer_received``), for one call at a time."""

    def now(self) -> float:
        """Monotonic seconds."""

    def call_soon(self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """Run ``callback(*args)`` on the next turn."""

    def call_later(self, delay: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """Run ``callback(*args)`` after ``delay`` seconds."""

    def call_soon_threadsafe(self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """:meth:`call_soon` from any thread."""

    def _set_reader(self, fd: int, callback: Callable[[], object] | None, owner: FdOwner | None) -> None:
        """Install or remove the reader of ``fd``."""

    def _set_stream_reader(self, fd: int, stream: InlineReader | None) -> None:
        """Install or remove a transport the loop reads inline."""

    def _set_writer(self, fd: int, callback: Callable[[], object] | None, owner: FdOwner | None) -> None:
        """Install or remove the writer of ``fd``."""

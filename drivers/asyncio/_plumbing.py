"""What the asyncio driver's listeners and pipe transports may ask of their runtime.

They are handed an :class:`~weft.drivers.asyncio.AsyncioRuntime` but type
against :class:`AdapterRuntime`, the narrow part of it they use: the
runtime imports them to build them, so they must not import it.  The
members with a leading underscore are the runtime's own plumbing, not part
of its public API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVarTuple, Unpack

from weft.drivers.asyncio._transport import AsyncioTransport, Role

__all__ = ["AdapterRuntime"]

_Ts = TypeVarTuple("_Ts")


class AdapterRuntime(Protocol):
    """The asyncio runtime, as its listeners and pipe transports see it."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio event loop."""

    @property
    def _listeners(self) -> set[Any]:
        """The listeners still open (closing the runtime closes them)."""

    def call_soon(self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> asyncio.Handle:
        """Run ``callback(*args)`` on the next turn."""

    def _new_transport(
        self,
        factory: Callable[[], Any],
        *,
        roles: tuple[Role, ...] = ("both",),
        extra: dict[str, Any] | None = None,
        snapshot: tuple[str, ...] = ("peername", "sockname", "socket"),
        write_eof_closes: bool = False,
        can_write_eof: bool = True,
        log_factory_errors: bool = True,
    ) -> AsyncioTransport:
        """A transport the runtime keeps track of while it is open."""

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coroutine`` as a task the runtime cancels when it closes."""

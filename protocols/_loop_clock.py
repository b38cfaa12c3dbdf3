"""The clock of the asyncio event loop running in this thread, for a transport that offers none.

A weft protocol handed a plain asyncio (or uvloop) transport, by
``loop.create_server(lambda: HTTPServerProtocol(handler))`` say, finds no
``"clock"`` in its extra info: asyncio's transports have no such thing.  It
still runs on an event loop, and that loop keeps time and runs timers, so
:func:`running_loop_clock` makes a :class:`LoopClock` over it.

How the loop is found without importing asyncio.  Protocols may not import
asyncio (the architecture rule: nothing under ``protocols/`` does I/O or
picks an event loop; ``tests/test_architecture.py`` checks it), and they
need not: a loop can only be running if asyncio was imported, so the module
is looked up in ``sys.modules`` and only ever read, never imported.  A
program that never imported asyncio pays nothing, and its protocols still
get :class:`~weft.protocols.errors.NoClockError` from a transport without a
clock, as before.  A registration hook set by the drivers would not do:
plain asyncio programs import no weft driver, and they are the ones that
need this.  This module is the one place under ``protocols/`` allowed to
look asyncio up (the architecture test names it).

This is only the fallback: a transport's own clock always comes first
(every weft driver's transports offer one, the memory driver's a test's
FakeClock), so every timeout stays testable with a fake clock.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Protocol, TypeVarTuple, Unpack

from weft.protocols.errors import ArgumentError

__all__ = ["LoopClock", "running_loop_clock"]

_Ts = TypeVarTuple("_Ts")


class _Handle(Protocol):
    """What asyncio's ``Handle`` and ``TimerHandle`` offer: a weft TimerHandle."""

    def cancel(self) -> None: ...

    def cancelled(self) -> bool: ...


class _EventLoop(Protocol):
    """The part of an asyncio event loop the clock uses."""

    def time(self) -> float: ...

    def call_soon(self, callback: Callable[..., object], *args: Any) -> _Handle: ...

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> _Handle: ...

    def call_exception_handler(self, context: dict[str, Any]) -> None: ...


class LoopClock:
    """A :class:`weft.protocols.contract.Clock` over an asyncio event loop, for one connection.

    ``now()`` is the loop's ``time()``; ``call_later`` is the loop's own
    (``call_soon`` for a delay of zero or less, so that those run in the
    order they were scheduled on every loop).  Beyond what the loop does:

    * a NaN delay is refused with :class:`~weft.protocols.errors.ArgumentError`
      (asyncio accepts it, and it corrupts its timer heap);
    * a call that raises ends its connection, as on every weft driver: the
      exception goes to the loop's exception handler (as asyncio reports a
      callback's), and the transport is aborted, so the peer does not wait
      on a protocol that has stopped keeping its deadlines.

    What stays the loop's: its resolution (uvloop counts whole
    milliseconds, so a call may run up to half a millisecond early; weft's
    own drivers never run one early) and its order for calls due at the
    same moment (asyncio orders by deadline alone).
    """

    __slots__ = ("_loop", "_transport")

    def __init__(self, loop: _EventLoop, transport: Any) -> None:
        self._loop = loop
        self._transport = transport

    def now(self) -> float:
        """The loop's ``time()``: monotonic seconds."""
        return self._loop.time()

    def call_later(self, delay: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> _Handle:
        """Run ``callback(*args)`` after ``delay`` seconds, on the loop; return its handle."""
        if delay != delay:  # NaN
            raise ArgumentError("delay is NaN")
        if delay <= 0:
            return self._loop.call_soon(self._run, callback, args)
        return self._loop.call_later(delay, self._run, callback, args)

    def _run(self, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        try:
            callback(*args)
        except Exception as exc:
            self._loop.call_exception_handler(
                {
                    "message": "a weft protocol's timer raised; aborting its connection",
                    "exception": exc,
                    "transport": self._transport,
                }
            )
            # A write transport aborts; a bare BaseTransport can only close.
            end = getattr(self._transport, "abort", None) or self._transport.close
            end()

    def __repr__(self) -> str:
        return f"<LoopClock of {self._loop!r}>"


def running_loop_clock(transport: Any) -> LoopClock | None:
    """A :class:`LoopClock` for ``transport`` over the asyncio loop running in
    this thread, or ``None`` when none runs here (or asyncio was never imported)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    # Absent while asyncio is still being imported: no loop runs yet.
    get_running_loop = getattr(asyncio, "get_running_loop", None)
    if get_running_loop is None:
        return None
    try:
        loop = get_running_loop()
    except RuntimeError:  # no loop runs in this thread
        return None
    return LoopClock(loop, transport)

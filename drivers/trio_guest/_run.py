"""``run_trio``: ``trio.run`` with weft's reactor as the loop underneath.

The pattern Trio's documentation recommends for guest mode, made one call:
start the host loop, start the guest run at once, and stop the host when the
run is over, so that the two loops live and die together.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar, TypeVarTuple, Unpack

import trio

from weft.drivers.reactor import Reactor
from weft.drivers.trio_guest._guest import DEFAULT_CLOSE_TIMEOUT, start_trio_guest

__all__ = ["run_trio"]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


def run_trio(
    async_fn: Callable[[Unpack[_Ts]], Awaitable[_T]],
    *args: *_Ts,
    reactor: Reactor | None = None,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    clock: trio.abc.Clock | None = None,
    instruments: Sequence[trio.abc.Instrument] = (),
) -> _T:
    """Run ``async_fn(*args)`` in Trio, hosted by a weft reactor, and return
    what it returns (or raise what it raises), as ``trio.run`` does.

    With ``reactor``, that reactor is turned (it must not be running) and
    left open; without, a new one is made and closed at the end.  Meanwhile
    the reactor serves whatever else is on it: weft protocols, Twisted on
    weft's reactor, timers.  A ``reactor.stop()`` while the Trio function
    runs is taken as asking it to end: the function is cancelled, and this
    returns once it is over (raising
    :class:`~weft.drivers.coroutines.Cancelled` if the cancellation ended
    it).  An exception that escapes the reactor's loop (``KeyboardInterrupt``
    in host code) cancels the function too, and is raised; the reactor's
    ``close()`` then waits for the run to finish, as it does for any guest.
    ``close_timeout``, ``clock`` and ``instruments`` are :func:`start_trio_guest`'s.
    """
    loop = Reactor() if reactor is None else reactor
    try:
        guest = start_trio_guest(
            loop, async_fn, *args, close_timeout=close_timeout, clock=clock, instruments=instruments
        )
        try:
            while not guest.done():
                loop.run_until(guest.done)
                if not guest.done():
                    # Someone stopped the reactor: the Trio program is asked to end too.
                    guest.cancel()
        except BaseException:
            guest.cancel()
            raise
        return guest.outcome.result()
    finally:
        if reactor is None:
            loop.close()

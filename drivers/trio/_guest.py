"""The loop a :class:`~weft.drivers.trio.TrioRuntime` runs Trio on: Trio as a guest.

weft's runtimes are driven from outside: ``run()``, ``run_until(condition,
timeout)`` and ``stop()``, called as often as a program (or a test) likes,
with the connections living on between the calls.  ``trio.run`` cannot be
entered and left that way (its tasks end when it returns), so the runtime
does what Trio offers for a loop it does not own: it starts one *guest
run* (``trio.lowlevel.start_guest_run``) that lasts as long as the runtime,
and :class:`GuestHost` is its host loop.

Trio hands its host one kind of work: "run this soon", from any thread
(``run_sync_soon_threadsafe``), usually a *tick* of the guest run (run the
tasks that are ready, then wait for I/O in a thread of Trio's, which asks
for the next tick when something happened).  The host is a queue of those
(``queue.SimpleQueue``: thread-safe, signal-safe, and a blocked ``get`` wakes
for Python's signal handlers) and :meth:`GuestHost.step`, which runs one.
``run()`` is steps until stopped; between runs nobody takes the steps, so
Trio simply waits, its I/O thread parked, its tasks where they were.  What
the host does between steps (ask ``run_until``'s condition) is done with
Trio's run still in place on this thread, so weft code may call Trio's
synchronous functions from there too, as guest mode allows.
"""

from __future__ import annotations

import queue
from collections.abc import Awaitable, Callable
from typing import Any

import outcome
import trio

__all__ = ["GuestHost"]


def _nothing() -> None:
    """Queued only to wake the host."""


class GuestHost:
    """A queue of Trio's "run this soon" requests, and the steps that run them."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        #: How the guest run ended (None while it runs).
        self.outcome: outcome.Outcome[Any] | None = None

    def start(self, main: Callable[[], Awaitable[object]], *, clock: trio.abc.Clock) -> None:
        """Start the guest run of ``main`` (Trio sets up its run on this thread now)."""
        trio.lowlevel.start_guest_run(
            main,
            run_sync_soon_threadsafe=self._queue.put,
            done_callback=self._done,
            clock=clock,
        )

    def _done(self, result: outcome.Outcome[Any]) -> None:
        self.outcome = result

    def step(self, timeout: float | None) -> bool:
        """Run the next thing Trio asked for, waiting at most ``timeout`` seconds
        for one (None: as long as it takes; 0: not at all); whether there was one."""
        try:
            if timeout is None:
                work = self._queue.get()
            elif timeout <= 0:
                work = self._queue.get_nowait()
            else:
                work = self._queue.get(timeout=timeout)
        except queue.Empty:
            return False
        work()
        return True

    def ready(self) -> int:
        """How many requests wait now (a step may queue more: Trio's next tick)."""
        return self._queue.qsize()

    def wake(self) -> None:
        """Make a waiting :meth:`step` return (from any thread)."""
        self._queue.put(_nothing)

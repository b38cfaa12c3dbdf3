"""Twisted reactors a runtime can own: making a fresh one, turning it, and letting it go.

Twisted's reactor is a singleton by habit, not by nature: ``twisted.internet.reactor``
is whichever reactor was *installed* first, and ``reactor.run()`` can run once
per process (``ReactorNotRestartable``).  The reactor classes themselves are
ordinary classes, and Twisted's own test suite makes a new one per test.  A
:class:`~weft.drivers.twisted.TwistedRuntime` does the same: :func:`new_reactor`
makes one of the kind asked for, never installing it, so a process may open as
many runtimes as it likes, one after another or side by side.

Such a reactor is never ``run()``: the runtime starts it once
(``startRunning``, without Twisted's signal handlers, which are
process-wide) and then turns it itself, as ``mainLoop`` would, for as long as
each ``run()`` or ``run_until()`` lasts (:class:`PollingTurner`); a reactor
over an asyncio loop is turned by running that loop (:class:`AsyncioTurner`).
:func:`release` hands back what a reactor made holds: its waker's pipe, its
epoll descriptor, its asyncio loop.

The kinds, best first where more than one exists: ``"epoll"`` (Linux),
``"poll"``, ``"select"``, and ``"asyncio"`` (Twisted's
``AsyncioSelectorReactor`` over a new asyncio event loop).
"""

from __future__ import annotations

import asyncio
import select
import time
from collections.abc import Callable
from typing import Any, Protocol

from weft.drivers._core.loop_polling import run_polling
from weft.protocols.errors import ArgumentError

__all__ = [
    "REACTOR_KINDS",
    "AsyncioTurner",
    "PollingTurner",
    "Turner",
    "best_kind",
    "new_reactor",
    "reactor_kind",
    "release",
    "turner_for",
]

#: The reactors :func:`new_reactor` makes, best first.
REACTOR_KINDS = ("epoll", "poll", "select", "asyncio")

def best_kind() -> str:
    """The kind Twisted's own ``default`` module would install here: epoll, else poll, else select."""
    if hasattr(select, "epoll"):
        return "epoll"
    if hasattr(select, "poll"):
        return "poll"
    return "select"


def new_reactor(kind: str = "default") -> Any:
    """A new Twisted reactor of ``kind`` (one of :data:`REACTOR_KINDS`, or
    ``"default"`` for :func:`best_kind`), not installed as
    ``twisted.internet.reactor``.  An ``"asyncio"`` reactor gets a new
    asyncio event loop of its own."""
    if kind == "default":
        kind = best_kind()
    if kind == "epoll":
        from twisted.internet.epollreactor import EPollReactor

        return EPollReactor()
    if kind == "poll":
        from twisted.internet.pollreactor import PollReactor

        return PollReactor()
    if kind == "select":
        from twisted.internet.selectreactor import SelectReactor

        return SelectReactor()
    if kind == "asyncio":
        from twisted.internet.asyncioreactor import AsyncioSelectorReactor

        return AsyncioSelectorReactor(asyncio.SelectorEventLoop())
    raise ArgumentError(f"no reactor kind called {kind!r}; choose from default, {', '.join(REACTOR_KINDS)}")


def reactor_kind(reactor: Any) -> str:
    """What a reactor is, by its class: ``"epoll"``, ``"asyncio"``, or the class's own name."""
    name = type(reactor).__name__
    return {
        "EPollReactor": "epoll",
        "PollReactor": "poll",
        "SelectReactor": "select",
        "AsyncioSelectorReactor": "asyncio",
    }.get(name, name)


def asyncio_loop_of(reactor: Any) -> asyncio.AbstractEventLoop | None:
    """The asyncio loop under Twisted's asyncio reactor, or None for any other reactor.

    Twisted keeps it in a private attribute and offers no accessor; this is
    the one place that reads it.
    """
    loop = getattr(reactor, "_asyncioEventloop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None


class Turner(Protocol):
    """How a runtime turns its reactor: run until told otherwise, and be told."""

    def run(self, keep_going: Callable[[], bool], deadline: float | None) -> None:
        """Turn the reactor while ``keep_going()`` holds and (if given) the
        monotonic ``deadline`` has not passed."""

    def interrupt(self) -> None:
        """From inside a turn: make :meth:`run` look at ``keep_going`` again soon."""


class PollingTurner:
    """Turns a poll-based reactor (epoll, poll, select) as its ``mainLoop``
    does: run what is due, then wait for I/O at most until the next timer."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor

    def run(self, keep_going: Callable[[], bool], deadline: float | None) -> None:
        """Turn until ``keep_going()`` is false or ``deadline`` passes."""
        reactor = self._reactor
        run_due, wait_for_io, timeout = reactor.runUntilCurrent, reactor.doIteration, reactor.timeout
        while keep_going():
            run_due()
            if not keep_going():
                return
            wait: float | None = timeout()
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                wait = left if wait is None else min(wait, left)
            wait_for_io(wait)

    def interrupt(self) -> None:
        """Nothing to do: :meth:`run` asks ``keep_going`` after every callback batch."""


class AsyncioTurner:
    """Turns Twisted's asyncio reactor by running its asyncio loop, asking
    ``keep_going`` after each callback at first, then every couple of
    milliseconds at most (the asyncio driver's ``run_until`` rhythm)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def run(self, keep_going: Callable[[], bool], deadline: float | None) -> None:
        """Run the loop until ``keep_going()`` is false or ``deadline`` passes."""
        if not keep_going():
            return
        loop = self._loop
        # The asyncio driver's rhythm (see weft.drivers._core.loop_polling).
        run_polling(loop, lambda: not keep_going(), deadline, loop.run_forever)

    def interrupt(self) -> None:
        """Stop the asyncio loop after the current callback."""
        self._loop.stop()


def turner_for(reactor: Any) -> Turner | None:
    """How to turn ``reactor``, or None for a reactor this driver cannot turn
    (a GUI toolkit's): it can still be used, run by its owner."""
    loop = asyncio_loop_of(reactor)
    if loop is not None:
        return AsyncioTurner(loop)
    if all(callable(getattr(reactor, name, None)) for name in ("runUntilCurrent", "timeout", "doIteration")):
        return PollingTurner(reactor)
    return None


def release(reactor: Any) -> None:
    """Close what a reactor the runtime made still holds, once it is shut down:
    the waker's pipe, the epoll descriptor, the asyncio loop.

    Twisted has no call for this (its test suite does the same by hand);
    without it each runtime would leave two or three descriptors to the
    garbage collector.
    """
    for delayed in reactor.getDelayedCalls():
        delayed.cancel()
    waker = getattr(reactor, "waker", None)
    if waker is not None:
        reactor.removeReader(waker)
        waker.connectionLost(None)
        reactor.waker = None
    loop = asyncio_loop_of(reactor)
    if loop is not None:
        if not loop.is_closed():
            loop.close()
        return
    poller = getattr(reactor, "_poller", None)
    close = getattr(poller, "close", None)
    if callable(close):  # epoll's descriptor (poll and select hold none)
        close()

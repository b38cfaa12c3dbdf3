"""Whether a weft task may wait on an asyncio future: the check :class:`Task` makes.

Apart from :mod:`._asyncio_interop` (which imports :class:`Task`) so that
the task can make it without an import cycle.
"""

from __future__ import annotations

import asyncio
from typing import Any

from weft.drivers.coroutines._host import Host

__all__ = ["check_asyncio_wait", "loop_of_future", "loop_of_host"]


def loop_of_host(host: object) -> asyncio.AbstractEventLoop | None:
    """The asyncio loop ``host`` runs on, or None (the reactor, a fake clock)."""
    loop = getattr(host, "loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None


def loop_of_future(future: asyncio.Future[Any]) -> object:
    """The loop an asyncio (or duck-typed) future belongs to, as asyncio asks it."""
    try:
        return future.get_loop()
    except AttributeError:  # a duck-typed future from before get_loop() (Python 3.7)
        return getattr(future, "_loop", None)


def check_asyncio_wait(host: Host, future: asyncio.Future[Any]) -> TypeError | None:
    """Why a weft task on ``host`` cannot wait on the asyncio ``future``, or None if it can.

    For :class:`Task`, which calls it when its coroutine yields an asyncio
    future (``asyncio.isfuture``: an ``asyncio.Future``, or any object that
    sets ``_asyncio_future_blocking``).  The flag is taken down here, as
    asyncio's own ``Task`` does: it is the future's way of telling that it
    was yielded by ``await`` (which sets it) rather than by a bare
    ``yield``, and it must read false again once someone waits.

    The check is that the host's callbacks run on the future's loop, not
    that some loop is running now: the task is woken by the future's done
    callback, which runs on the future's loop, and its steps run from the
    host's ``call_soon``.  Only when the two are one loop is the wake-up
    delivered on the task's thread, while the host runs.  A fake clock
    driven from inside an asyncio program has a running loop, yet never
    turns it during ``run(clock, ...)``; the reactor has no asyncio loop.
    """
    blocking = future._asyncio_future_blocking
    future._asyncio_future_blocking = False
    if not blocking:
        return TypeError(f"{future!r} was yielded, not awaited: a weft task waits on it only through `await`")
    loop = loop_of_host(host)
    if loop is None:
        return TypeError(
            f"cannot await the asyncio future {future!r} in a weft task on {host!r}, which does not "
            "run on an asyncio loop: run the task on an AsyncioRuntime, or await a weft Future"
        )
    future_loop = loop_of_future(future)
    if future_loop is not loop:
        return TypeError(
            f"the asyncio future {future!r} belongs to a different event loop ({future_loop!r}) "
            f"than the one this task's host runs on ({loop!r})"
        )
    return None

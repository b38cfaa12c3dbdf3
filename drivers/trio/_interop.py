"""Trio tasks awaiting weft: a weft future or coroutine, waited for from Trio.

weft's futures and coroutines are stepped by weft's own tasks
(:mod:`weft.drivers.coroutines`), which run on a host's callbacks; a Trio
task cannot ``await`` them directly.  :func:`from_weft` bridges: it runs a
weft coroutine as a weft task on the runtime (whose callbacks are Trio
tasks' work anyway), and parks the Trio task on a ``trio.Event`` that the
weft future's done callback sets::

    async with open_trio_runtime() as runtime:
        transport = await from_weft(runtime, runtime.connect_tcp(Hello, "127.0.0.1", 8000))
        stream = await from_weft(runtime, open_tcp(runtime, "127.0.0.1", 8000))

Cancellation crosses over: a Trio task cancelled while it waits cancels the
weft task (its ``finally`` blocks run, as weft's ``Cancelled`` is thrown
into it), waits, shielded, for it to end, then lets Trio's ``Cancelled`` go
on.  A plain weft future cannot be cancelled: the Trio task stops waiting
for it, that is all.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import trio

from weft.drivers._core.futures import Future
from weft.drivers.coroutines._host import Host
from weft.drivers.coroutines._task import Task, spawn

__all__ = ["from_weft"]

_T = TypeVar("_T")


async def from_weft(host: Host, awaitable: Future[_T] | Coroutine[Any, Any, _T]) -> _T:
    """Wait, in a Trio task, for a weft future, or for a weft coroutine run as a weft task on ``host``.

    ``host`` is the runtime whose callbacks run in this Trio run (a
    :class:`~weft.drivers.trio.TrioRuntime`).  Returns the result, or
    raises the exception; see the module docstring for cancellation.
    """
    if isinstance(awaitable, Future):
        future: Future[_T] = awaitable
    else:
        future = spawn(host, awaitable, name=getattr(awaitable, "__qualname__", None))
    if not future.done():
        settled = trio.Event()
        future.add_done_callback(lambda _future: settled.set())
        try:
            await settled.wait()
        except trio.Cancelled:
            if isinstance(future, Task) and future.cancel():
                with trio.CancelScope(shield=True):
                    await settled.wait()
            raise
    else:
        await trio.lowlevel.checkpoint()
    return future.result()

"""Bridges between weft's tasks and asyncio, on a host that runs an asyncio loop.

When weft runs on asyncio (:class:`~weft.drivers.asyncio._runtime.AsyncioRuntime`,
on asyncio's own loop or uvloop's), weft tasks and asyncio tasks share one
loop, and each side can wait for the other:

* **weft awaits asyncio.**  Inside a weft :class:`Task` whose host is an
  :class:`AsyncioHost`, ``await`` an asyncio future, an asyncio task, or any
  asyncio coroutine (``asyncio.sleep``, ``asyncio.open_connection``, a
  stream's ``readline``) as they are.  :class:`Task` hands each asyncio
  future it is given to ``check_asyncio_wait``, then waits on it with a
  done callback, as it waits on weft's own futures.
* **asyncio awaits weft.**  ``await to_asyncio(weft_future_or_task)`` from an
  asyncio coroutine.
* **callback code.**  :func:`from_asyncio` gives a weft
  :class:`~weft.drivers._core.futures.Future` that settles as an asyncio awaitable
  does.

Cancellation crosses the bridge by asyncio's rule, in both directions: the
side that waits owns what it waits on.

* A weft task cancelled while it awaits an asyncio future (or task) cancels
  that future, removes its done callback, and gets weft's
  :class:`~weft.drivers.coroutines.Cancelled` at once.  asyncio's own
  coroutines depend on it: ``loop.sock_recv``, ``sock_connect`` and
  ``run_in_executor`` stop watching their socket (or cancel the work) only
  when the future they await is done, so leaving it pending would leak a
  reader and lose the bytes it later reads.  ``asyncio.shield(fut)`` opts
  out, as in asyncio.
* Cancelling the asyncio future that :func:`to_asyncio` returns cancels the
  weft :class:`Task` it stands for (asyncio code expects
  ``asyncio.wait_for(to_asyncio(task), 1)`` to stop the work on a timeout).
  A plain weft ``Future`` cannot be cancelled: it is only no longer waited
  for.

Between weft tasks, weft's rule is unchanged: awaiting a weft task observes
it and does not own it.

Why no ``await weft_future`` straight from asyncio code: asyncio's ``Task``
takes only what looks like an asyncio future (``_asyncio_future_blocking``,
``get_loop()``, ``cancel()``, ``add_done_callback(cb, context=...)``).  A
weft ``Future`` knows no loop (only a ``call_soon``), cannot be cancelled by
design, and belongs to the callback layer, which must not know asyncio; so
the wrapper is explicit, and says which loop it is on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar, runtime_checkable

from weft.drivers._core.futures import Future
from weft.drivers.coroutines._asyncio_wait import loop_of_future, loop_of_host
from weft.drivers.coroutines._errors import Cancelled
from weft.drivers.coroutines._host import Host
from weft.drivers.coroutines._task import Task

__all__ = ["AsyncioHost", "from_asyncio", "to_asyncio"]

_T = TypeVar("_T")

# asyncio tasks that from_asyncio() made: the loop holds its tasks only
# weakly, so one that nothing else refers to could vanish mid-flight.
_in_flight: set[asyncio.Future[Any]] = set()


@runtime_checkable
class AsyncioHost(Host, Protocol):
    """A host whose callbacks run on an asyncio event loop: weft's ``AsyncioRuntime``.

    ``call_soon`` and ``call_later`` must run their callbacks on :attr:`loop`,
    in its thread: that is what lets a weft task wait on that loop's futures.
    """

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio event loop the host's callbacks run on."""
        ...


def _cancel_message(exc: BaseException) -> str | None:
    """The message a cancellation carries (``cancel(msg)``), if any."""
    return str(exc.args[0]) if exc.args else None


def _settle(source: Future[_T], target: asyncio.Future[_T]) -> None:
    """Give the asyncio ``target`` the weft ``source``'s outcome."""
    # Task.exception() marks the exception retrieved: from here on it is the
    # asyncio future's to report (asyncio logs it if nobody retrieves it).
    exc = source.exception()
    if exc is None:
        target.set_result(source.result())
    elif isinstance(exc, asyncio.CancelledError):  # a cancelled weft task: a cancelled asyncio future
        target.cancel(msg=_cancel_message(exc))
    elif isinstance(exc, StopIteration):
        # asyncio refuses StopIteration (it would end a generator instead);
        # a coroutine turns it into RuntimeError too (PEP 479).
        error = RuntimeError(f"the weft future raised {exc!r}")
        error.__cause__ = exc
        target.set_exception(error)
    else:
        target.set_exception(exc)


def to_asyncio(future: Future[_T], *, loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Future[_T]:
    """An asyncio future that settles as the weft ``future`` (or :class:`Task`) does.

    For asyncio coroutines: ``result = await to_asyncio(weft_task)``.  The
    result, the exception, or the cancellation (a weft task ended by
    ``Cancelled``) is carried over on the loop's next turn after ``future``
    is done (at once if it already is).

    The loop: a task's own (its host must be an :class:`AsyncioHost`;
    ``loop``, if given, must be the same); for a plain future, ``loop`` or
    else the running loop.  A plain future must be resolved in the loop's
    thread (by code that runs on the loop, as every driver's is): it does
    not say where it runs, so this cannot check it.

    Cancelling the returned future cancels a weft :class:`Task` (asyncio's
    rule: a cancelled asyncio task cancels what it awaits; see the module's
    docstring).  The asyncio side gets its ``CancelledError`` at once, while
    the weft task's cleanup runs on; ``asyncio.shield(to_asyncio(task))``
    waits without owning.  A plain weft future is left alone.

    Raises ``TypeError`` for something other than a weft future, and for a
    task whose host is not on ``loop``; ``RuntimeError`` for a plain future
    with no ``loop`` outside a running loop.
    """
    if not isinstance(future, Future):
        raise TypeError(f"to_asyncio() takes a weft Future or Task, not {type(future).__name__}")
    if isinstance(future, Task):
        host_loop = loop_of_host(future.host)
        if host_loop is None:
            raise TypeError(f"{future!r} runs on {future.host!r}, which does not run on an asyncio loop")
        if loop is not None and loop is not host_loop:
            raise TypeError(f"{future!r} runs on a different event loop ({host_loop!r}) than {loop!r}")
        loop = host_loop
    elif loop is None:
        loop = asyncio.get_running_loop()
    wrapper: asyncio.Future[_T] = loop.create_future()
    if future.done():
        _settle(future, wrapper)
        return wrapper

    def settle(done: Future[_T]) -> None:
        if not wrapper.done():  # else it was cancelled from the asyncio side meanwhile
            _settle(done, wrapper)

    def wrapper_done(_wrapper: asyncio.Future[_T]) -> None:
        if not wrapper.cancelled():
            return  # settled from the weft future: nothing to undo
        future.remove_done_callback(settle)
        if isinstance(future, Task) and not future.done():
            try:
                wrapper.result()
            except asyncio.CancelledError as exc:  # carry the message over
                future.cancel(_cancel_message(exc))

    future.add_done_callback(settle)
    wrapper.add_done_callback(wrapper_done)
    return wrapper


def from_asyncio(awaitable: Awaitable[_T], host: AsyncioHost) -> Future[_T]:
    """A weft :class:`~weft.drivers._core.futures.Future`, on ``host``, that settles as ``awaitable`` does.

    For callback code that wants weft's future (to add callbacks, or hand
    it to code that expects one).  ``awaitable`` is an asyncio future or
    task of ``host``'s loop, or a coroutine (or other awaitable), which is
    started as an asyncio task on that loop.  Its result or exception is
    carried over; its cancellation becomes weft's ``Cancelled``, so that
    ``except Cancelled`` and ``except asyncio.CancelledError`` both catch it.

    A weft future cannot be cancelled, so nothing cancels the asyncio side
    from this one; inside a weft task, await the asyncio future directly
    instead, which does (see the module's docstring).

    Raises ``TypeError`` when ``host`` does not run on an asyncio loop, when
    the asyncio future belongs to another loop, or for a weft future.
    """
    loop = loop_of_host(host)
    if loop is None:
        raise TypeError(f"from_asyncio() needs a host that runs on an asyncio loop, not {host!r}")
    if isinstance(awaitable, Future):
        raise TypeError(f"{awaitable!r} is a weft Future already")
    if asyncio.isfuture(awaitable):
        if loop_of_future(awaitable) is not loop:
            raise TypeError(
                f"the asyncio future {awaitable!r} belongs to a different event loop than {host!r} runs on"
            )
        source: asyncio.Future[_T] = awaitable
    else:
        source = asyncio.ensure_future(awaitable, loop=loop)
        _in_flight.add(source)
        source.add_done_callback(_in_flight.discard)
    result: Future[_T] = Future(host.call_soon)

    def transfer(done: asyncio.Future[_T]) -> None:
        if done.cancelled():
            cancelled = Cancelled()
            try:
                done.result()  # raises the CancelledError, with the message if any
            except asyncio.CancelledError as cancel:
                cancelled = Cancelled(*cancel.args)
                cancelled.__cause__ = cancel
            result.set_exception(cancelled)
            return
        error = done.exception()
        if error is None:
            result.set_result(done.result())
        else:
            result.set_exception(error)

    source.add_done_callback(transfer)
    return result

"""The exceptions of the coroutine layer.

::

    asyncio.CancelledError (a BaseException)
    └── Cancelled                                 thrown into a task by Task.cancel()
    WeftError
    ├── TimedOutError (also TimeoutError)         fail_after / wait_for ran out of time
    ├── NotInTaskError (also RuntimeError)        sleep(), a timeout or a group used outside a task
    └── StalledError (also RuntimeError)          run() on a fake clock: the task waits, nothing is scheduled

:class:`Cancelled` is the one exception here that is not a
:class:`~weft.protocols.errors.WeftError`: it is not an error but a request
to stop, and it must get past ``except Exception`` clauses to reach the
task's top, so it derives from ``BaseException`` -- through
``asyncio.CancelledError``, so that code written for asyncio (``except
asyncio.CancelledError: ...; raise``) handles weft's cancellation unchanged.
"""

from __future__ import annotations

import asyncio

from weft.protocols.errors import WeftError

__all__ = ["Cancelled", "NotInTaskError", "StalledError", "TimedOutError"]


class Cancelled(asyncio.CancelledError):
    """Thrown into a task at its current ``await`` by :meth:`Task.cancel`.

    Let it propagate (after any cleanup, which may itself await): a task that
    swallows it carries on running, which is allowed but almost never meant.
    """


class TimedOutError(WeftError, TimeoutError):
    """:func:`fail_after` or :func:`wait_for` ran out of time; the body was cancelled."""


class NotInTaskError(WeftError, RuntimeError):
    """Something that needs the current task (``sleep``, a timeout, a task
    group, ``gather``) was used outside one."""


class StalledError(WeftError, RuntimeError):
    """``run()`` on a fake clock: the task is waiting, and nothing is scheduled
    that could ever wake it."""

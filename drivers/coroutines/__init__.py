"""Coroutines on top of the callback layer: tasks, sleep, timeouts, gather, race, task groups,
streams and datagram sockets.

A :class:`Task` runs an ``async def`` coroutine on a *host*: anything with
``now()``, ``call_soon()`` and ``call_later()`` (the reactor, weft's asyncio
runtime, a :class:`~weft.drivers.testing._fake_clock.FakeClock`).  The task is stepped
by callbacks it schedules there, so coroutine code and callback code share one
loop and one kind of future (:class:`weft.drivers._core.futures.Future`): callback
code resolves it and adds callbacks; coroutine code awaits it.  Nothing in
the callback layer depends on this package.  See https://github.com/weft-project/weft/blob/main/docs/coroutines.md;
on weft's asyncio driver, :mod:`~weft.drivers.coroutines._asyncio_interop`
bridges weft tasks and asyncio both ways (https://github.com/weft-project/weft/blob/main/docs/asyncio.md).
"""

from weft.drivers.coroutines._asyncio_interop import AsyncioHost, from_asyncio, to_asyncio
from weft.drivers.coroutines._combinators import gather, race
from weft.drivers.coroutines._datagrams import (
    DatagramSocket,
    DatagramSocketProtocol,
    open_udp,
    open_unix_datagram,
)
from weft.drivers.coroutines._endpoints import open_pipes, open_tcp, open_unix, serve_tcp, stream_handler
from weft.drivers.coroutines._errors import Cancelled, NotInTaskError, StalledError, TimedOutError
from weft.drivers.coroutines._host import Host, RunnableHost, SteppableHost
from weft.drivers.coroutines._process_streams import ProcessStream, open_process
from weft.drivers.coroutines._runner import run
from weft.drivers.coroutines._sleep import sleep
from weft.drivers.coroutines._streams import Stream, StreamProtocol
from weft.drivers.coroutines._task import Task, checkpoint, current_task, spawn
from weft.drivers.coroutines._taskgroup import TaskGroup
from weft.drivers.coroutines._timeouts import (
    FailAfterScope,
    MoveOnScope,
    TimeoutScope,
    fail_after,
    move_on_after,
    wait_for,
)

__all__ = [
    "AsyncioHost",
    "Cancelled",
    "DatagramSocket",
    "DatagramSocketProtocol",
    "FailAfterScope",
    "Host",
    "MoveOnScope",
    "NotInTaskError",
    "ProcessStream",
    "RunnableHost",
    "StalledError",
    "SteppableHost",
    "Stream",
    "StreamProtocol",
    "Task",
    "TaskGroup",
    "TimedOutError",
    "TimeoutScope",
    "checkpoint",
    "current_task",
    "fail_after",
    "from_asyncio",
    "gather",
    "move_on_after",
    "open_pipes",
    "open_process",
    "open_tcp",
    "open_udp",
    "open_unix",
    "open_unix_datagram",
    "race",
    "run",
    "serve_tcp",
    "sleep",
    "spawn",
    "stream_handler",
    "to_asyncio",
    "wait_for",
]

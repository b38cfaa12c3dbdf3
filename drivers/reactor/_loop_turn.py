"""The turn of weft's asyncio event loop: asyncio's order, the reactor's reads, fewer Python calls.

asyncio's own turn polls, queues a handle per I/O event after what was
already ready, then runs the queue.  weft's loop reads its transports inline
instead (no handle per event), and :class:`LoopTurn` keeps asyncio's order
around that:

1. poll (the reactor's poller, through :class:`~weft.drivers.reactor._selector.ReactorSelector`);
2. run what was ready before the poll;
3. let the reactor hand out the events: its transports read and call their
   protocols here, its own timers and callbacks run;
4. run the handles of the descriptors asyncio's code watches itself
   (``add_reader``, a listening socket, the self-pipe), then the timers due.

What any of them schedules waits for the next turn, as in asyncio.  The
order matters beyond correctness: a streams server's tasks woken by one
turn's reads write before the next turn's reads, so reads and writes
interleave as on asyncio's loop (reading every connection and only then
writing every reply makes the kernel free the received buffers in bursts,
which costs more than the whole loop saves).

Every task wake-up goes through the loop twice: a future's result schedules
the task with ``loop.call_soon(...)``, and a turn runs the handle.  asyncio
spends four Python calls scheduling (``call_soon``, ``_call_soon``,
``Handle.__init__``, ``get_debug``) and two running (``Handle._run``, the
callback); uvloop does it in C.  Here ``call_soon`` fills a new
``asyncio.Handle``'s slots itself and the turn runs each callback in its
context directly, reporting an exception as ``Handle._run`` does.  The
handle is asyncio's own, cancellable as ever.  In debug mode, and on a
closed loop, asyncio's own ``call_soon`` runs instead, with its checks,
messages and captured tracebacks, and the turn runs handles as asyncio's
does in debug mode (the current handle known, slow callbacks logged).
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import asyncio.log
import contextvars
import heapq
from collections.abc import Callable
from contextvars import Context
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVarTuple, Unpack

from weft.drivers._core import accelerator

__all__ = ["LoopTurn"]

_Ts = TypeVarTuple("_Ts")

_Handle = asyncio.Handle
_new_handle = _Handle.__new__
_copy_context = contextvars.copy_context

# asyncio's own thresholds for purging cancelled timers from the heap.
_MIN_SCHEDULED: int = getattr(asyncio.base_events, "_MIN_SCHEDULED_TIMER_HANDLES", 100)
_MIN_CANCELLED_FRACTION: float = getattr(asyncio.base_events, "_MIN_CANCELLED_TIMER_HANDLES_FRACTION", 0.5)
_MAXIMUM_SELECT_TIMEOUT: float = getattr(asyncio.base_events, "MAXIMUM_SELECT_TIMEOUT", 24 * 3600)
_format_handle: Callable[[asyncio.Handle], str] = asyncio.base_events._format_handle  # type: ignore[attr-defined]
# asyncio's logger: debug mode's warnings are asyncio's, where its users look for them.
_asyncio_logger = asyncio.log.logger

if TYPE_CHECKING:
    _Base = asyncio.BaseEventLoop
else:
    _Base = object


def _report(loop: asyncio.AbstractEventLoop, handle: asyncio.Handle, exc: BaseException) -> None:
    """What ``Handle._run`` does with a callback's exception: the loop's exception handler hears it."""
    callback: Any = getattr(handle, "_callback", None)
    args: Any = getattr(handle, "_args", ())
    context: dict[str, Any] = {
        "message": f"Exception in callback {asyncio.format_helpers._format_callback_source(callback, args)}",  # type: ignore[attr-defined]
        "exception": exc,
        "handle": handle,
    }
    source_traceback = getattr(handle, "_source_traceback", None)
    if source_traceback:
        context["source_traceback"] = source_traceback
    loop.call_exception_handler(context)


class LoopTurn(_Base):
    """A mixin for an ``asyncio.BaseEventLoop`` subclass whose selector is a
    :class:`~weft.drivers.reactor._selector.ReactorSelector` (see the module docstring)."""

    # The attributes of asyncio's BaseEventLoop this reads (typeshed does not declare them).
    _ready: Any
    _scheduled: list[asyncio.TimerHandle]
    _timer_cancelled_count: int
    _stopping: bool
    _closed: bool
    _debug: bool
    _clock_resolution: float
    _selector: Any
    _current_handle: asyncio.Handle | None
    #: How many handles were ready when this turn began.
    _ready_before_poll: int = 0

    def call_soon(
        self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts, context: Context | None = None
    ) -> asyncio.Handle:
        """asyncio's ``call_soon``, its common case in one Python call."""
        if self._debug or self._closed:
            slow: Any = self._call_soon_slow(callback, *args, context=context)
            if slow._source_traceback:
                del slow._source_traceback[-1]  # this frame: the traceback ends at the caller
            return slow  # type: ignore[no-any-return]
        handle: Any = _new_handle(_Handle)
        handle._context = _copy_context() if context is None else context
        handle._loop = self
        handle._callback = callback
        handle._args = args
        handle._cancelled = False
        handle._repr = None
        handle._source_traceback = None
        self._ready.append(handle)
        return handle  # type: ignore[no-any-return]

    def _call_soon_slow(
        self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts, context: Context | None = None
    ) -> asyncio.Handle:
        """asyncio's own ``call_soon`` (debug mode, a closed loop: its checks,
        its errors, its captured traceback), for :meth:`call_soon` in Python
        or in C; the traceback ends at the frame that called this one."""
        handle: Any = super().call_soon(callback, *args, context=context)
        if handle._source_traceback:
            del handle._source_traceback[-1]  # this frame
        return handle  # type: ignore[no-any-return]

    def _run_once(self) -> None:
        """One turn: purge cancelled timers, poll, run what was ready, hand
        out the I/O, run the timers due (see the module docstring)."""
        scheduled = self._scheduled
        count = len(scheduled)
        if count > _MIN_SCHEDULED and self._timer_cancelled_count / count > _MIN_CANCELLED_FRACTION:
            kept = []
            for timer in scheduled:
                if timer._cancelled:
                    timer._scheduled = False  # type: ignore[attr-defined]
                else:
                    kept.append(timer)
            heapq.heapify(kept)
            self._scheduled = scheduled = kept
            self._timer_cancelled_count = 0
        else:
            while scheduled and scheduled[0]._cancelled:
                self._timer_cancelled_count -= 1
                heapq.heappop(scheduled)._scheduled = False  # type: ignore[attr-defined]

        ready = self._ready
        timeout: float | None = None
        if ready or self._stopping:
            timeout = 0
        elif scheduled:
            timeout = min(max(0.0, scheduled[0]._when - self.time()), _MAXIMUM_SELECT_TIMEOUT)  # type: ignore[attr-defined]

        self._ready_before_poll = len(ready)
        io_events = self._selector.select_around(timeout, self._run_ready_before_poll)
        if io_events or scheduled:
            # These run in this turn, ahead of what this turn's callbacks
            # scheduled (which waits for the next): queue them at the end,
            # then move them to the front.  (Only appends and pops, each
            # atomic: another thread's call_soon_threadsafe meanwhile can
            # move in the queue, never out of it.)
            mark = len(ready)
            if io_events:
                self._process_events(io_events)  # type: ignore[attr-defined]
            io_events = []
            if scheduled:
                end = self.time() + self._clock_resolution
                while scheduled and scheduled[0]._when < end:  # type: ignore[attr-defined]
                    timer = heapq.heappop(scheduled)
                    timer._scheduled = False  # type: ignore[attr-defined]
                    ready.append(timer)
            count = len(ready) - mark
            if count > 0:
                ready.extendleft([ready.pop() for _ in range(count)])
                self._run_ready(count)

    def _make_futures_without_a_frame(self) -> None:
        """Make ``create_future`` a partial of ``asyncio.Future``: a streams
        read waits on a new future per message, and asyncio's
        ``create_future`` is a Python call around that C constructor.  The
        partial holds the loop (a cycle), so :meth:`_forget_future_maker`
        drops it when the loop closes."""
        self.create_future = partial(asyncio.Future, loop=self)  # type: ignore[method-assign]

    def _forget_future_maker(self) -> None:
        """Undo :meth:`_make_futures_without_a_frame` (the loop is closing)."""
        self.__dict__.pop("create_future", None)

    def _run_ready_before_poll(self) -> None:
        """Run what was ready when the turn began (called between the poll and its I/O)."""
        self._run_ready(self._ready_before_poll)

    def _run_ready(self, count: int) -> None:
        """Run the first ``count`` ready handles (skipping the cancelled),
        reporting an exception as ``Handle._run`` does."""
        popleft = self._ready.popleft
        if self._debug:
            self._run_ready_in_debug(count)
            return
        for _ in range(count):
            handle = popleft()
            if handle._cancelled:
                continue
            try:
                handle._context.run(handle._callback, *handle._args)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                _report(self, handle, exc)

    def _run_ready_in_debug(self, count: int) -> None:
        """``_run_ready`` in debug mode, as asyncio's turn does it: the
        current handle is known while it runs, and a slow one is logged."""
        popleft = self._ready.popleft
        for _ in range(count):
            handle = popleft()
            if handle._cancelled:
                continue
            try:
                self._current_handle = handle
                started = self.time()
                handle._run()
                took = self.time() - started
                if took >= self.slow_callback_duration:
                    _asyncio_logger.warning("Executing %s took %.3f seconds", _format_handle(handle), took)
            finally:
                self._current_handle = None


#: LoopTurn's methods as written above, kept for the tests that hold the
#: accelerator's copies to them.
python_call_soon = LoopTurn.call_soon
python_run_ready = LoopTurn._run_ready

_loop_calls = accelerator.loop_calls(asyncio.Handle, LoopTurn._call_soon_slow, _report)
if _loop_calls is not None:
    # The accelerator's copies (weft/_speedups.c, "the asyncio event loop"):
    # the same steps without a Python frame per task wake-up, and
    # get_debug(), which asyncio's C Future calls for every future made.
    LoopTurn.call_soon, LoopTurn._run_ready, LoopTurn.get_debug = _loop_calls  # type: ignore[method-assign]

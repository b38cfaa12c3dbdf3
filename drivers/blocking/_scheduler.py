"""The blocking driver's scheduler: the one thread that runs protocol code.

Every protocol callback and every timer of a :class:`~weft.drivers.blocking.BlockingRuntime`
runs on one thread, the one inside :meth:`Scheduler.run` (or, between runs,
the thread that last ran it: its *owner*).  The I/O threads never call a
protocol: they hand what they read, and what became of what they wrote, to
the scheduler with :meth:`Scheduler.call_soon_threadsafe`, which appends to a
deque (atomic) and writes a byte to a wake-up pipe the scheduler sleeps on.
No lock is taken on that path, so a signal handler may call it too.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from weft.drivers._core.timers import Timer, TimerQueue
from weft.protocols.errors import ArgumentError, ClosedResourceError

__all__ = ["Scheduler"]

logger = logging.getLogger("weft.drivers.blocking")


class Scheduler:
    """A ready queue, a timer queue and a wake-up pipe, run by one thread at a time."""

    def __init__(self) -> None:
        self._ready: deque[Timer] = deque()
        self._timers = TimerQueue()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._poll = select.poll()
        self._poll.register(self._wake_read, select.POLLIN)
        self._running = False
        self._stopping = False
        self._closed = False
        #: The thread that runs the callbacks: the one in run(), else the last one.
        self._owner = threading.get_ident()
        #: Other descriptors the turn's poll watches for reading, with their callbacks.
        self._watched: dict[int, Callable[[], object]] = {}

    # -------------------------------------------------------------- clock

    def now(self) -> float:
        """Monotonic seconds (``time.monotonic``)."""
        return time.monotonic()

    def call_soon(self, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` on the next turn; safe from any thread."""
        timer = Timer(0.0, callback, args, None)
        self._ready.append(timer)
        if not self._running or threading.get_ident() != self._owner:
            self._wake()
        return timer

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> Timer:
        """:meth:`call_soon` from any thread or a signal handler; always wakes the scheduler.

        (A signal handler runs on the main thread, which may be the scheduler
        thread, asleep in ``poll``: Python retries the interrupted ``poll``,
        so only the wake-up byte ends it.)
        """
        timer = Timer(0.0, callback, args, None)
        self._ready.append(timer)
        self._wake()
        return timer

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` after ``delay`` seconds (from the scheduler's thread)."""
        if delay != delay:
            raise ArgumentError("delay is NaN")
        return self._timers.schedule(self.now() + max(delay, 0.0), callback, args)

    def watch_reader(self, fd: int, callback: Callable[[], object] | None) -> None:
        """Call ``callback()`` on the scheduler's thread whenever ``fd`` is
        readable (``None``: stop).  For the signal handlers' wake-up pipe;
        connections have threads of their own."""
        if callback is None:
            if self._watched.pop(fd, None) is not None and not self._closed:
                self._poll.unregister(fd)
        else:
            self._watched[fd] = callback
            self._poll.register(fd, select.POLLIN)
            self._wake()  # a poll under way should watch it too

    def on_scheduler_thread(self) -> bool:
        """Whether the calling thread is the one that runs callbacks."""
        return threading.get_ident() == self._owner

    # ------------------------------------------------------------ running

    @property
    def running(self) -> bool:
        """Whether :meth:`run` is running."""
        return self._running

    def run(self) -> None:
        """Run callbacks and timers until :meth:`stop`, on the calling thread."""
        self.run_until(lambda: False)

    def run_until(self, condition: Callable[[], bool], timeout: float | None = None) -> bool:
        """Run until ``condition()`` holds after a turn, ``timeout`` passes or :meth:`stop`.

        Returns whether the condition held.
        """
        if self._closed:
            raise ClosedResourceError("the runtime is closed")
        if self._running:
            raise RuntimeError("the runtime is already running")
        if timeout is not None and (timeout != timeout or timeout < 0):
            raise ArgumentError(f"timeout must be a number of seconds >= 0, not {timeout!r}")
        if condition():
            return True
        deadline = math.inf if timeout is None else self.now() + timeout
        self._running = True
        self._stopping = False
        self._owner = threading.get_ident()
        try:
            while not self._stopping:
                self._turn(deadline)
                if condition():
                    return True
                if self.now() >= deadline:
                    break
        finally:
            self._running = False
        return condition()

    def stop(self) -> None:
        """Make :meth:`run` return after the current turn (any thread may call it)."""
        self._stopping = True
        self._wake()

    def close(self) -> None:
        """Release the wake-up pipe (not while running)."""
        if self._running:
            raise RuntimeError("cannot close a running runtime")
        if self._closed:
            return
        self._closed = True
        self._ready.clear()
        for fd in (self._wake_read, self._wake_write):
            os.close(fd)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    # ---------------------------------------------------------- one turn

    def _turn(self, deadline: float) -> None:
        if self._ready:
            wait: float | None = 0.0
        else:
            next_timer = self._timers.next_deadline()
            until = min(deadline, math.inf if next_timer is None else next_timer)
            wait = None if until == math.inf else max(until - self.now(), 0.0)
        for fd, _events in self._poll.poll(None if wait is None else math.ceil(wait * 1000)):
            if fd == self._wake_read:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_read, 4096):
                        pass
            elif (watcher := self._watched.get(fd)) is not None:
                try:
                    watcher()
                except Exception:
                    logger.exception("exception in the reader of fd %d on the blocking driver", fd)
        now = self.now()
        while (timer := self._timers.pop_due(now)) is not None:
            self._ready.append(timer)
        for _ in range(len(self._ready)):
            handle = self._ready.popleft()
            try:
                handle.run()
            except Exception:
                logger.exception("exception in a callback scheduled on the blocking driver")

    def _wake(self) -> None:
        if self._closed:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_write, b"\0")

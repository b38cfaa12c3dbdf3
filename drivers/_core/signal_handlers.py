"""Signal handlers that hand a signal to a driver's loop: what every runtime's
``add_signal_handler`` is made of.

Python runs a signal handler in the main thread, between bytecodes, maybe
while the loop sleeps.  The handler therefore does one thing: it schedules
the callback with the loop's ``call_soon_threadsafe``, which also wakes the
loop.  The handler that was there before is kept and put back on
:meth:`SignalHandlers.remove`, so a runtime leaves the process as it found it.

The kernel may deliver a signal sent to the process to any of its threads
(an I/O thread of the blocking driver, an executor's worker).  Python's
C-level handler then runs on that thread and only marks the signal; the main
thread, asleep in its poll, would not run the Python handler until something
else woke it, maybe never.  So, as asyncio's ``add_signal_handler`` does,
the handlers come with a wake-up pipe given to :func:`signal.set_wakeup_fd`:
the C handler writes a byte to it on whatever thread it runs, the loop
(which watches the pipe's other end) wakes, and the main thread runs the
Python handler.

Only one wake-up fd exists per process, so there is one pipe
(:class:`_SharedWakeup`), shared by every runtime that has handlers set:
each watches its read end on its own loop, so whichever loop is asleep
wakes.  It is set while some runtime has handlers, and taken away when the
last one's go.  One set by someone else (an asyncio loop's own
``add_signal_handler``, which reads its signals from it) is never replaced:
that loop would stop hearing its signals; the handlers then do without.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["SignalHandlers", "stop_signals"]


def stop_signals() -> tuple[int, ...]:
    """The signals a server stops gracefully on: SIGINT (Ctrl-C), SIGTERM
    (``kill``, ``docker stop``, supervisors) and SIGHUP (the terminal went
    away), unless SIGHUP is ignored: under ``nohup`` it stays ignored, as
    the person who typed ``nohup`` asked."""
    hangup = getattr(signal, "SIGHUP", None)  # no SIGHUP on Windows
    if hangup is None or signal.getsignal(hangup) is signal.SIG_IGN:
        return (signal.SIGINT, signal.SIGTERM)
    return (signal.SIGINT, signal.SIGTERM, hangup)


#: Watches a descriptor for reading on a loop: ``watch(fd, callback)``
#: starts calling ``callback()`` whenever ``fd`` is readable, ``watch(fd, None)`` stops.
WatchReader = Callable[[int, Callable[[], object] | None], object]


class _SharedWakeup:
    """The process's one wake-up pipe for weft's signal handlers, and how many
    :class:`SignalHandlers` use it (see the module docstring)."""

    def __init__(self) -> None:
        self.pipe: tuple[int, int] | None = None
        self.users = 0

    def join(self) -> int | None:
        """Count one more user; the read end to watch, or None where someone
        else's wake-up fd is set (theirs stays)."""
        if self.pipe is None:
            read_fd, write_fd = os.pipe()  # (not inheritable)
            os.set_blocking(read_fd, False)
            os.set_blocking(write_fd, False)  # set_wakeup_fd requires it
            previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
            if previous != -1:
                # Theirs goes back (with the default warn_on_full_buffer,
                # the setting Python cannot tell: asyncio's own), with any
                # signal number written to ours meanwhile: asyncio learns
                # which signal came from those bytes.
                signal.set_wakeup_fd(previous)
                with contextlib.suppress(OSError):
                    if caught := os.read(read_fd, 512):
                        os.write(previous, caught)
                os.close(read_fd)
                os.close(write_fd)
                return None
            self.pipe = (read_fd, write_fd)
        self.users += 1
        return self.pipe[0]

    def leave(self) -> None:
        """Count one user fewer; with the last, take the pipe away (unless
        someone set theirs since: it stays) and close it."""
        self.users -= 1
        if self.users or self.pipe is None:
            return
        read_fd, write_fd = self.pipe
        self.pipe = None
        current = signal.set_wakeup_fd(-1)
        if current not in (-1, write_fd):
            signal.set_wakeup_fd(current)
        os.close(read_fd)
        os.close(write_fd)

    def drain(self) -> None:
        """Empty the pipe: its bytes (signal numbers) only woke a loop; the
        Python handlers, run on the main thread, do the rest."""
        if self.pipe is None:
            return
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while os.read(self.pipe[0], 512):
                pass


_shared_wakeup = _SharedWakeup()


class SignalHandlers:
    """The signal handlers one runtime has set, and what they replaced.

    ``watch_reader`` lets the handlers watch their wake-up pipe on the
    runtime's loop (see the module docstring); without it (a loop that sets
    a wake-up fd of its own while it runs, as Trio does), there is
    no wake-up pipe.
    """

    def __init__(
        self, call_soon_threadsafe: Callable[..., object], watch_reader: WatchReader | None = None
    ) -> None:
        self._call_soon_threadsafe = call_soon_threadsafe
        self._watch_reader = watch_reader
        self._previous: dict[int, Any] = {}
        #: The shared wake-up pipe's read end, watched while a handler is set.
        self._wakeup_fd: int | None = None

    def add(self, signum: int, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` in the loop when ``signum`` arrives (main thread only).

        Replaces a handler set earlier through this object for the same signal.
        """
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("signal handlers can only be set from the main thread")
        call_soon_threadsafe = self._call_soon_threadsafe

        def handler(_signum: int, _frame: FrameType | None) -> None:
            call_soon_threadsafe(callback, *args)

        previous = signal.signal(signum, handler)
        self._previous.setdefault(signum, previous)
        if self._wakeup_fd is None and self._watch_reader is not None:
            self._start_wakeup(self._watch_reader)

    def remove(self, signum: int) -> bool:
        """Restore the handler that was there before; whether there was one of ours."""
        if signum not in self._previous:
            return False
        signal.signal(signum, self._previous.pop(signum))
        if not self._previous:
            self._stop_wakeup()
        return True

    def remove_all(self) -> None:
        """Restore every handler replaced."""
        for signum in list(self._previous):
            self.remove(signum)

    def _start_wakeup(self, watch_reader: WatchReader) -> None:
        read_fd = _shared_wakeup.join()
        if read_fd is not None:
            self._wakeup_fd = read_fd
            watch_reader(read_fd, _shared_wakeup.drain)

    def _stop_wakeup(self) -> None:
        if self._wakeup_fd is None or self._watch_reader is None:
            return
        self._watch_reader(self._wakeup_fd, None)
        self._wakeup_fd = None
        _shared_wakeup.leave()

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
Python handler.  Only one wake-up fd exists per process.  One set by
someone else (an asyncio loop's own ``add_signal_handler``, which reads its
signals from it) is never replaced: that loop would stop hearing its
signals.  weft's runtimes stack theirs and hand it back in order
(:func:`_uninstall_wakeup`).
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

# The wake-up fds weft's handlers have given to signal.set_wakeup_fd, oldest
# first (they are set only over none or over weft's own: see _install_wakeup).
_installed_wakeups: list[int] = []


def _install_wakeup(fd: int) -> bool:
    """Make ``fd`` the wake-up fd unless someone else's is set; whether it is."""
    previous = signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
    if previous != -1 and previous not in _installed_wakeups:
        # Theirs goes back (with the default warn_on_full_buffer, the
        # setting Python cannot tell: asyncio's own).
        signal.set_wakeup_fd(previous)
        return False
    _installed_wakeups.append(fd)
    return True


def _uninstall_wakeup(fd: int) -> None:
    """Stop using ``fd``: if it is the one in force, hand over to the newest
    one weft still has installed, else to none; if another is in force
    (someone set theirs after ours), leave it."""
    _installed_wakeups.remove(fd)
    current = signal.set_wakeup_fd(-1)
    if current == fd:
        current = _installed_wakeups[-1] if _installed_wakeups else -1
    if current in _installed_wakeups:
        signal.set_wakeup_fd(current, warn_on_full_buffer=False)
    elif current != -1:
        signal.set_wakeup_fd(current)


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
        #: The wake-up pipe (read end, write end) while a handler is set.
        self._wakeup: tuple[int, int] | None = None

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
        if self._wakeup is None and self._watch_reader is not None:
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
        read_fd, write_fd = os.pipe()  # (not inheritable)
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)  # set_wakeup_fd requires it
        if not _install_wakeup(write_fd):
            # Someone else's is in force (see the module docstring): the
            # handlers do without, as before there were wake-up pipes.
            os.close(read_fd)
            os.close(write_fd)
            return
        self._wakeup = (read_fd, write_fd)
        watch_reader(read_fd, self._drain_wakeup)

    def _stop_wakeup(self) -> None:
        if self._wakeup is None or self._watch_reader is None:
            return
        read_fd, write_fd = self._wakeup
        self._wakeup = None
        _uninstall_wakeup(write_fd)
        self._watch_reader(read_fd, None)
        os.close(read_fd)
        os.close(write_fd)

    def _drain_wakeup(self) -> None:
        """Empty the pipe: its bytes (signal numbers) only woke the loop;
        the Python handlers, run on the main thread, do the rest."""
        if self._wakeup is None:
            return
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while os.read(self._wakeup[0], 512):
                pass

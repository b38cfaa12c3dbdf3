"""Signal handlers that hand a signal to a driver's loop: what every runtime's
``add_signal_handler`` is made of.

Python runs a signal handler in the main thread, between bytecodes, maybe
while the loop sleeps.  The handler therefore does one thing: it schedules
the callback with the loop's ``call_soon_threadsafe``, which also wakes the
loop.  The handler that was there before is kept and put back on
:meth:`SignalHandlers.remove`, so a runtime leaves the process as it found it.
"""

from __future__ import annotations

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


class SignalHandlers:
    """The signal handlers one runtime has set, and what they replaced."""

    def __init__(self, call_soon_threadsafe: Callable[..., object]) -> None:
        self._call_soon_threadsafe = call_soon_threadsafe
        self._previous: dict[int, Any] = {}

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

    def remove(self, signum: int) -> bool:
        """Restore the handler that was there before; whether there was one of ours."""
        if signum not in self._previous:
            return False
        signal.signal(signum, self._previous.pop(signum))
        return True

    def remove_all(self) -> None:
        """Restore every handler replaced."""
        for signum in list(self._previous):
            self.remove(signum)

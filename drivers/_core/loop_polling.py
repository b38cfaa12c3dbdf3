"""Running an asyncio loop until a condition holds: asked after each callback, then every few ms.

An asyncio loop cannot be asked to stop "once this holds": nothing tells it
when the condition changes.  The asyncio driver's ``run_until`` and the
Twisted driver's turner for Twisted's asyncio reactor both ask it from a
callback on the loop: eagerly at first (:data:`POLL_EAGERLY` times, once a
turn, so that a condition met within a few callbacks costs no sleep), then
with a growing delay from :data:`POLL_FIRST` up to :data:`POLL_MAX`
seconds, so that an idle wait costs a wake-up every couple of
milliseconds at most.  An exception the condition raises is raised out of
the run, as on the reactor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["POLL_EAGERLY", "POLL_FIRST", "POLL_MAX", "run_polling"]

#: Times the condition is asked once a turn before the delays start.
POLL_EAGERLY = 50
#: The first delay between two asks, and the largest, in seconds.
POLL_FIRST, POLL_MAX = 0.0001, 0.002


def run_polling(
    loop: asyncio.AbstractEventLoop,
    condition: Callable[[], bool],
    deadline: float | None,
    run: Callable[[], object],
) -> bool:
    """Call ``run()`` (which runs ``loop`` until it is stopped) and stop the
    loop once ``condition()`` holds or the ``time.monotonic()`` ``deadline``
    passes; whether the condition held when it was last asked."""
    held = False
    failed: list[BaseException] = []
    asked = 0
    delay = POLL_FIRST
    handle: asyncio.Handle | None = None

    def ask() -> None:
        nonlocal held, asked, delay, handle
        try:
            held = condition()
        except BaseException as exc:  # raised out of the run, as on the reactor
            failed.append(exc)
            loop.stop()
            return
        if held or (deadline is not None and time.monotonic() >= deadline):
            loop.stop()
            return
        asked += 1
        if asked < POLL_EAGERLY:
            handle = loop.call_soon(ask)
            return
        wait = delay
        delay = min(delay * 1.5, POLL_MAX)
        if deadline is not None:
            wait = min(wait, max(deadline - time.monotonic(), 0.0))
        handle = loop.call_later(wait, ask)

    handle = loop.call_soon(ask)
    try:
        run()
    finally:
        if handle is not None:
            handle.cancel()
    if failed:
        raise failed[0]
    return held

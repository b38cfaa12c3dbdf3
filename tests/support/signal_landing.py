"""One runtime, one signal sent to a thread other than the main one: run as
``python -m tests.support.signal_landing <driver> [beside]`` (from the
project's root).  With ``beside``, a second runtime of the driver, with a
handler of its own but not running, is open meanwhile: the loop that runs
must still be the one woken.

It sets a handler for SIGUSR1 on a new runtime of ``<driver>``, starts a
thread that waits until the main thread sleeps in the runtime's poll and
then sends SIGUSR1 to itself (so Python's C handler runs on that thread), and
runs the runtime until the handler has run (and stopped it).  It prints ``handled`` and exits
0 when the handler ran while the loop would otherwise have slept; it prints
``missed`` and exits 1 when it had not run after :data:`PATIENCE` seconds
(the thread then stops the runtime itself).

A process of its own, because what it checks is that nothing but the
signal wakes the loop: in a process that has closed an io_uring ring not
long before (the test session, where the completion driver is probed and
tested), the kernel's teardown of the ring interrupts the main thread's
poll with EINTR once, and Python then runs the pending handler anyway.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from tests.support.threads import wait_until_asleep_in_poll
from weft.drivers import SignalsRuntime, open_runtime

#: Seconds the run may wait for the handler; a missed wake-up waits all of it.
PATIENCE = 10.0


def main(driver: str, beside: bool = False) -> int:
    """Run the check on ``driver``; the exit status (see the module docstring)."""
    runtime = open_runtime(driver)
    idle = open_runtime(driver) if beside else None
    try:
        if not isinstance(runtime, SignalsRuntime):
            print(f"{driver} has no signal handlers")
            return 2
        handled = threading.Event()

        def handle() -> None:
            handled.set()
            runtime.stop()

        runtime.add_signal_handler(signal.SIGUSR1, handle)
        if isinstance(idle, SignalsRuntime):  # set after: its loop's wake-up must not win
            idle.add_signal_handler(signal.SIGUSR2, print)
        main_thread = threading.main_thread().native_id
        missed: list[bool] = []

        def send() -> None:
            # Bounded (~1 s): a runtime whose main thread waits on a lock while
            # another thread polls (Trio's) never shows a poll; it gets the signal then.
            if main_thread is not None:
                wait_until_asleep_in_poll(os.getpid(), main_thread)
            signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
            if not handled.wait(PATIENCE):
                missed.append(True)
                runtime.call_soon_threadsafe(runtime.stop)

        sender = threading.Thread(target=send, name="signal sender", daemon=True)
        sender.start()
        # run(), not run_until(): some runtimes' run_until asks its condition
        # every few milliseconds, which would wake the loop for the handler.
        runtime.run()
        sender.join(PATIENCE)
    finally:
        runtime.close()
        if idle is not None:
            idle.close()
    print("missed" if missed else "handled")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], beside=sys.argv[2:] == ["beside"]))

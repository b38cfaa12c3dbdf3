"""A signal reaches its handler on every driver, whichever thread the kernel
hands it to, and the runtimes leave the process's wake-up fd as they found it.

A signal sent to the process may land on any of its threads.  Python's C
handler then runs there and only marks the signal; unless something wakes
the main thread, asleep in its loop's poll, the Python handler (and so a
server's graceful stop) waits for whatever wakes it next.  The tests send
the signal to one thread on purpose (``pthread_kill``), once the main thread
is asleep.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.threads import wait_until_asleep_in_poll
from weft.drivers import Runtime, SignalsRuntime, open_runtime

#: Seconds a run may wait for the handler; a missed wake-up waits all of it.
_PATIENCE = 10.0


def _signal_from_another_thread(runtime: Runtime, signum: int, handled: threading.Event) -> list[str]:
    """Start a thread that waits until the main thread sleeps in its poll, then
    sends ``signum`` to itself: the kernel runs Python's C handler on this
    thread, not the main one.  If ``handled`` is not set within
    :data:`_PATIENCE`, it notes the miss in the list returned and stops the
    runtime itself, so that the run ends either way."""
    main = threading.main_thread().native_id
    assert main is not None
    missed: list[str] = []

    def send() -> None:
        # Bounded (~1 s): a runtime whose main thread waits on a lock while
        # another thread polls (Trio's) never shows a poll; it gets the signal then.
        wait_until_asleep_in_poll(os.getpid(), main)
        signal.pthread_kill(threading.get_ident(), signum)
        if not handled.wait(_PATIENCE):
            missed.append("the loop slept through the signal")
            runtime.call_soon_threadsafe(runtime.stop)

    thread = threading.Thread(target=send, name="signal sender", daemon=True)
    thread.start()
    return missed


@pytest.fixture
def usr1_restored() -> Iterator[None]:
    """SIGUSR1's handler and the wake-up fd as they were before the test."""
    handler = signal.getsignal(signal.SIGUSR1)
    wakeup = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup)
    yield
    signal.signal(signal.SIGUSR1, handler)
    signal.set_wakeup_fd(wakeup)


pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")


@pytest.mark.drivers(requires={SignalsRuntime})
@pytest.mark.usefixtures("usr1_restored")
def test_a_signal_landing_on_another_thread_wakes_the_loop(runtime: Runtime) -> None:
    """The handler runs while the loop would otherwise sleep: nothing else is
    scheduled, so only the signal can wake it."""
    assert isinstance(runtime, SignalsRuntime)
    handled = threading.Event()
    runtime.add_signal_handler(signal.SIGUSR1, handled.set)
    missed = _signal_from_another_thread(runtime, signal.SIGUSR1, handled)
    runtime.run_until(handled.is_set)
    assert missed == []
    assert handled.is_set()


#: Trio sets a wake-up fd of its own while it runs, and none otherwise.
_TRIO_OWNS_IT = {"trio": "Trio sets its own wake-up fd, while it runs"}


def _wakeup_fd() -> int:
    current = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(current)
    return current


@pytest.mark.drivers(requires={SignalsRuntime}, exclude=_TRIO_OWNS_IT)
@pytest.mark.usefixtures("usr1_restored")
def test_the_wakeup_fd_is_set_while_a_handler_is_and_put_back_after(driver: str) -> None:
    """A runtime sets a wake-up fd with its first handler, and puts back the one
    there was when its last handler goes, even when two runtimes end out of order."""
    signal.set_wakeup_fd(-1)
    first, second = open_runtime(driver), open_runtime(driver)
    try:
        assert isinstance(first, SignalsRuntime)
        assert isinstance(second, SignalsRuntime)
        first.add_signal_handler(signal.SIGUSR1, print)
        first_fd = _wakeup_fd()
        assert first_fd != -1
        second.add_signal_handler(signal.SIGUSR1, print)
        assert _wakeup_fd() not in (-1, first_fd)
        # The older one goes first: the newer one's fd stays in force ...
        assert first.remove_signal_handler(signal.SIGUSR1)
        assert _wakeup_fd() not in (-1, first_fd)
        # ... and when it goes too, the process is back where it started,
        # not left writing to the first runtime's closed pipe.
        assert second.remove_signal_handler(signal.SIGUSR1)
        assert _wakeup_fd() == -1
    finally:
        first.close()
        second.close()


@pytest.mark.drivers(requires={SignalsRuntime}, exclude=_TRIO_OWNS_IT)
@pytest.mark.usefixtures("usr1_restored")
def test_closing_the_runtime_releases_the_wakeup_pipe(driver: str) -> None:
    """close() puts back the wake-up fd someone else had set, and closes the pipe."""
    theirs_read, theirs_write = os.pipe()
    os.set_blocking(theirs_write, False)
    signal.set_wakeup_fd(theirs_write)
    try:
        made = open_runtime(driver)
        assert isinstance(made, SignalsRuntime)
        made.add_signal_handler(signal.SIGUSR1, print)
        ours = _wakeup_fd()
        assert ours != theirs_write
        made.close()
        assert _wakeup_fd() == theirs_write
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.fstat(ours)  # closed (no other test here opens descriptors meanwhile)
    finally:
        signal.set_wakeup_fd(-1)
        os.close(theirs_read)
        os.close(theirs_write)

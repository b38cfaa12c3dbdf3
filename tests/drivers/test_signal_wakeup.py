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
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import TIMEOUT, signal_landing
from tests.support.processes import ROOT
from weft.drivers import SignalsRuntime, open_runtime


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


def _landing(driver: str, *extra: str) -> None:
    """Run ``tests/support/signal_landing.py`` on ``driver`` in a process of
    its own; it must say ``handled``."""
    checked = subprocess.run(
        [sys.executable, "-m", "tests.support.signal_landing", driver, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT + signal_landing.PATIENCE,
        check=False,
    )
    assert (checked.returncode, checked.stdout) == (0, "handled\n"), checked.stderr


@pytest.mark.drivers(requires={SignalsRuntime})
def test_a_signal_landing_on_another_thread_wakes_the_loop(driver: str) -> None:
    """The handler runs while the loop would otherwise sleep: nothing else is
    scheduled, so only the signal can wake it (in a process of its own: see
    ``tests/support/signal_landing.py``)."""
    _landing(driver)


@pytest.mark.drivers(requires={SignalsRuntime}, exclude={"trio": "Trio allows one run per thread"})
def test_it_wakes_the_loop_that_runs_beside_another_runtime(driver: str) -> None:
    """The same with another runtime of the driver open, its own handler set,
    not running: the wake-up fd is shared, and the loop that runs wakes."""
    _landing(driver, "beside")


#: Trio sets a wake-up fd of its own while it runs, and none otherwise.
_TRIO_OWNS_IT = {"trio": "Trio sets its own wake-up fd, while it runs"}


def _wakeup_fd() -> int:
    current = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(current)
    return current


@pytest.mark.drivers(requires={SignalsRuntime}, exclude=_TRIO_OWNS_IT)
@pytest.mark.usefixtures("usr1_restored")
def test_the_wakeup_fd_is_set_while_a_handler_is_and_shared(driver: str) -> None:
    """A runtime sets a wake-up fd with its first handler; a second runtime's
    handlers share it (each loop watches it, so the one asleep wakes); it
    goes only when the last handler does, whichever runtime ends first."""
    signal.set_wakeup_fd(-1)
    first, second = open_runtime(driver), open_runtime(driver)
    try:
        assert isinstance(first, SignalsRuntime)
        assert isinstance(second, SignalsRuntime)
        first.add_signal_handler(signal.SIGUSR1, print)
        shared = _wakeup_fd()
        assert shared != -1
        second.add_signal_handler(signal.SIGUSR1, print)
        assert _wakeup_fd() == shared
        # The older one goes first: the fd stays for the other ...
        assert first.remove_signal_handler(signal.SIGUSR1)
        assert _wakeup_fd() == shared
        # ... and when it goes too, the process is back where it started.
        assert second.remove_signal_handler(signal.SIGUSR1)
        assert _wakeup_fd() == -1
    finally:
        first.close()
        second.close()


@pytest.mark.drivers(requires={SignalsRuntime}, exclude=_TRIO_OWNS_IT)
@pytest.mark.usefixtures("usr1_restored")
def test_closing_the_runtime_closes_its_wakeup_pipe(driver: str) -> None:
    """close() takes the wake-up fd away and closes the pipe behind it."""
    signal.set_wakeup_fd(-1)
    made = open_runtime(driver)
    assert isinstance(made, SignalsRuntime)
    made.add_signal_handler(signal.SIGUSR1, print)
    ours = _wakeup_fd()
    assert ours != -1
    made.close()
    assert _wakeup_fd() == -1
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(ours)  # closed (no other test here opens descriptors meanwhile)


@pytest.mark.drivers(requires={SignalsRuntime}, exclude=_TRIO_OWNS_IT)
@pytest.mark.usefixtures("usr1_restored")
def test_a_wakeup_fd_someone_else_set_is_left_alone(driver: str) -> None:
    """Where another loop reads its signals from the wake-up fd it set (asyncio's
    add_signal_handler does), a runtime's handlers leave it in place: taking it
    would leave that loop deaf.  They do without a pipe of their own."""
    theirs_read, theirs_write = os.pipe()
    os.set_blocking(theirs_write, False)
    signal.set_wakeup_fd(theirs_write)
    try:
        made = open_runtime(driver)
        assert isinstance(made, SignalsRuntime)
        made.add_signal_handler(signal.SIGUSR1, print)
        assert _wakeup_fd() == theirs_write
        assert made.remove_signal_handler(signal.SIGUSR1)
        assert _wakeup_fd() == theirs_write
        made.close()
        assert _wakeup_fd() == theirs_write
    finally:
        signal.set_wakeup_fd(-1)
        os.close(theirs_read)
        os.close(theirs_write)


@pytest.mark.usefixtures("usr1_restored")
def test_a_signal_that_comes_while_weft_looks_still_reaches_the_other_wakeup_fd(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Python cannot say which wake-up fd is set without setting another for an
    instant; a signal number written to weft's in that instant is passed on
    to the one it puts back (asyncio learns which signal came from those bytes)."""
    theirs_read, theirs_write = os.pipe()
    os.set_blocking(theirs_read, False)
    os.set_blocking(theirs_write, False)
    real_set_wakeup_fd = signal.set_wakeup_fd

    def set_and_signal(fd: int, /, *, warn_on_full_buffer: bool = True) -> int:
        previous = real_set_wakeup_fd(fd, warn_on_full_buffer=warn_on_full_buffer)
        if fd not in (-1, theirs_write):  # weft's pipe, in force for that instant
            os.write(fd, bytes([signal.SIGUSR1]))  # as Python's C handler would
        return previous

    real_set_wakeup_fd(theirs_write)
    try:
        reactor = open_runtime("reactor")
        assert isinstance(reactor, SignalsRuntime)
        monkeypatch.setattr(signal, "set_wakeup_fd", set_and_signal)
        reactor.add_signal_handler(signal.SIGUSR1, print)
        monkeypatch.undo()
        assert _wakeup_fd() == theirs_write
        assert os.read(theirs_read, 512) == bytes([signal.SIGUSR1])
        reactor.close()
    finally:
        real_set_wakeup_fd(-1)
        os.close(theirs_read)
        os.close(theirs_write)

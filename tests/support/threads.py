"""Where a thread of a process sleeps, and signals sent to one thread: for
the tests of signals that the kernel hands to a thread other than the main one.

Linux only (``/proc``); the tests that use them say so.
"""

from __future__ import annotations

import ctypes
import platform
import threading
from pathlib import Path

__all__ = ["asleep_in_poll", "tgkill", "wait_until_asleep_in_poll"]

#: The system calls a loop sleeps in (poll, select, ppoll, pselect6, the
#: epoll waits, io_uring_enter), by number, where the numbers are known.
_SLEEPS_BY_MACHINE = {
    "x86_64": {7, 23, 232, 270, 271, 281, 426, 441},
    "aarch64": {22, 72, 73, 426, 441},
}


def asleep_in_poll(pid: int, tid: int) -> bool:
    """Whether thread ``tid`` of process ``pid`` sleeps in a loop's poll (not,
    say, waiting for the GIL, when it would see a signal anyway)."""
    task = Path(f"/proc/{pid}/task/{tid}")
    try:
        state = task.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0]
        number = task.joinpath("syscall").read_text().split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False  # gone
    if state != "S":
        return False
    sleeps = _SLEEPS_BY_MACHINE.get(platform.machine())
    if sleeps is None:
        return True  # asleep, somewhere
    return number.isdigit() and int(number) in sleeps


def wait_until_asleep_in_poll(pid: int, tid: int, tries: int = 1_000) -> bool:
    """Look every millisecond, at most ``tries`` times, until :func:`asleep_in_poll`; whether it was."""
    pause = threading.Event()
    for _ in range(tries):
        if asleep_in_poll(pid, tid):
            return True
        pause.wait(0.001)
    return False


def tgkill(pid: int, tid: int, signum: int) -> None:
    """Send ``signum`` to thread ``tid`` of process ``pid`` (glibc's ``tgkill``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.tgkill(pid, tid, signum) != 0:
        raise OSError(ctypes.get_errno(), f"tgkill({pid}, {tid}, {signum})")

"""Fixtures the driver tests share."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator

import pytest

from tests.support.accelerator import Alarm


@pytest.fixture
def alarm() -> Iterator[Alarm]:
    """Arms SIGALRM (ITIMER_REAL) with a handler, to interrupt a system call;
    disarmed, and the previous handler put back, after the test."""
    previous = signal.getsignal(signal.SIGALRM)

    def arm(handler: Callable[[], object], delay: float, interval: float) -> None:
        signal.signal(signal.SIGALRM, lambda _signum, _frame: handler())
        signal.setitimer(signal.ITIMER_REAL, delay, interval)

    yield arm
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)

"""What the tests of weft's C accelerator share (tests/drivers/test_accelerator*.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType

import pytest

from weft.drivers._core import accelerator

SPEEDUPS: ModuleType | None
try:
    from weft import _speedups as SPEEDUPS
except ImportError:  # a build without a C compiler
    SPEEDUPS = None

#: Skips a comparison where the accelerator was not built (no C compiler at install).
needs_accelerator = pytest.mark.skipif(
    SPEEDUPS is None, reason="weft._speedups is not built here (no C compiler when weft was installed)"
)

#: Skips a test of the reactor's use of the accelerator where the reactor
#: does not use it (not built, or WEFT_PURE_PYTHON set).
needs_accelerator_in_use = pytest.mark.skipif(
    not accelerator.ACCELERATED, reason=f"the reactor runs in pure Python here: {accelerator.PURE_REASON}"
)

#: Arms SIGALRM (the ``alarm`` fixture): the handler, the delay, and the interval to repeat at (0: once).
Alarm = Callable[[Callable[[], object], float, float], None]


class Interrupted(Exception):
    """What a test's signal handler raises."""


def nonblocking_pipe() -> tuple[int, int]:
    """A pipe, both ends non-blocking: (read end, write end)."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    return read_fd, write_fd


def fill(write_fd: int) -> int:
    """Write to ``write_fd`` until the kernel takes no more; how much it took."""
    total = 0
    chunk = b"f" * 65536
    while True:
        try:
            total += os.write(write_fd, chunk)
        except BlockingIOError:
            return total

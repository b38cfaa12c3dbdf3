"""Standard input and output as one connection, and leaving them as they were found.

A driver runs a protocol over stdin and stdout with ``connect_pipes`` (the
``--stdio`` server and ``weft connect`` both do).  That makes the two file
descriptors non-blocking, and a file descriptor's blocking mode belongs to the
*open file*, which stdin shares with the shell, the terminal and every other
process on the same pipe: left non-blocking, it makes the next program that
reads it fail with ``EAGAIN``.  :func:`blocking_modes_restored` puts the mode
back however the program ends.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ["STDIN", "STDOUT", "blocking_modes_restored"]

#: The file descriptors of standard input and output.
STDIN, STDOUT = 0, 1


@contextlib.contextmanager
def blocking_modes_restored(*fds: int) -> Iterator[None]:
    """Record the blocking mode of each of ``fds``, and restore it on the way out."""
    modes = {}
    for fd in fds:
        with contextlib.suppress(OSError):  # not open: nothing to restore
            modes[fd] = os.get_blocking(fd)
    try:
        yield
    finally:
        for fd, blocking in modes.items():
            with contextlib.suppress(OSError):  # closed meanwhile
                os.set_blocking(fd, blocking)

"""The read and write calls a transport binds to its descriptors: weft's C accelerator's, or os's.

The reactor's transports move bytes with one callable each way per
descriptor: ``read(size) -> bytes`` and ``write(data) -> int``, with
``os.read``'s and ``os.write``'s results and exceptions.  Where weft's
optional C accelerator (``weft._speedups``, built at install when a C
compiler is at hand) is importable, these are its ``DescriptorReader`` and
``DescriptorWriter``, which make the same system calls without releasing the
GIL and without os's argument parsing (see weft/_speedups.c for why that is
safe on a non-blocking descriptor); otherwise they are
``functools.partial(os.read, fd)`` and ``functools.partial(os.write, fd)``.

``WEFT_PURE_PYTHON=1`` in the environment (any value but empty or ``0``),
read once at import, forces os's calls.  ``weft drivers`` says which are in
use (:func:`describe`).

A regular file or a block device is always given os's calls: ``O_NONBLOCK``
does not stop a read there from waiting on the disk, and os's calls let
other threads run meanwhile.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from functools import partial
from typing import Any

__all__ = ["ACCELERATED", "PURE_REASON", "describe", "reader", "stream_calls", "writer"]

#: The environment variable that forces the pure-Python calls.
PURE_ENV = "WEFT_PURE_PYTHON"

#: A read call: ``read(size)`` as ``os.read(fd, size)``.
Reader = Callable[[int], bytes]
#: A write call: ``write(data)`` as ``os.write(fd, data)``.
Writer = Callable[[Any], int]


def _accelerator() -> tuple[type[Any] | None, type[Any] | None, str | None]:
    """The accelerator's reader and writer types, or why there are none."""
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return None, None, f"{PURE_ENV} is set"
    try:
        from weft import _speedups
    except ImportError:
        return None, None, "weft._speedups not built: no C compiler at install"
    return _speedups.DescriptorReader, _speedups.DescriptorWriter, None


_Reader, _Writer, _reason = _accelerator()

#: Whether the C accelerator's calls are in use.
ACCELERATED: bool = _reason is None
#: Why os's calls are in use (None when the accelerator's are).
PURE_REASON: str | None = _reason


def reader(fd: int) -> Reader:
    """The read call for ``fd``, a non-blocking socket, pipe, FIFO or terminal."""
    if _Reader is None:
        return partial(os.read, fd)
    read: Reader = _Reader(fd)
    return read


def writer(fd: int) -> Writer:
    """The write call for ``fd``, a non-blocking socket, pipe, FIFO or terminal."""
    if _Writer is None:
        return partial(os.write, fd)
    write: Writer = _Writer(fd)
    return write


def stream_calls(read_fd: int, write_fd: int) -> tuple[Reader, Writer]:
    """:func:`reader` and :func:`writer` for descriptors of any kind: os's own
    calls for a regular file or a block device (see the module docstring)."""
    read = reader(read_fd) if _never_waits(read_fd) else partial(os.read, read_fd)
    write = writer(write_fd) if _never_waits(write_fd) else partial(os.write, write_fd)
    return read, write


def _never_waits(fd: int) -> bool:
    """Whether a non-blocking read or write on ``fd`` returns at once: a socket,
    a pipe or FIFO, or a character device (a terminal, a PTY)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False  # the transport's first call will say what is wrong
    return stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def describe() -> str:
    """Which calls are in use, in a few words (``weft drivers`` adds them to the reactor's row)."""
    if PURE_REASON is None:
        return "reads and writes in C (weft._speedups)"
    return f"reads and writes in pure Python ({PURE_REASON})"

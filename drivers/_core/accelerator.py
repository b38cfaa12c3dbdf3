"""The hot calls of the reactor and the completion driver: weft's optional C
accelerator's, or the pure-Python ones.

Each chosen once, at import:

* **The read and write calls a transport binds to its descriptors.**  The
  reactor's transports move bytes with one callable each way per
  descriptor: ``read(size) -> bytes`` and ``write(data) -> int``, with
  ``os.read``'s and ``os.write``'s results and exceptions.  Where weft's C
  accelerator (``weft._speedups``, built at install when a C compiler is at
  hand) is importable, these are its ``DescriptorReader`` and
  ``DescriptorWriter``, which make the same system calls without releasing
  the GIL and without os's argument parsing (weft/_speedups.c says why that
  is safe on a non-blocking descriptor); otherwise
  ``functools.partial(os.read, fd)`` and ``functools.partial(os.write, fd)``.
  A regular file or a block device always gets os's calls: ``O_NONBLOCK``
  does not stop a read there from waiting on the disk, and os's calls let
  other threads run meanwhile.
* **A stream transport's ``write``** (:data:`transport_write`): the
  reactor's ``DescriptorTransport.write`` is the accelerator's copy of it,
  the same steps with no Python frame per call.
* **weft's asyncio event loop's task wake-ups** (:func:`loop_calls`):
  the accelerator's ``call_soon``, ``_run_ready`` and ``get_debug`` for
  ``LoopTurn``, and ``is_closing`` (:data:`transport_is_closing`) for the
  reactor's transports, or their Python methods.
* **The handing out of a poll's events** (:func:`dispatcher`): the
  accelerator's ``Dispatcher`` does in C what the reactor loop's Python
  ``for fd, mask in events`` does, or the loop does it itself.
* **The completion driver's turn** (:func:`ring_core_type`,
  :func:`ring_turn`): on Linux, the accelerator's ``RingCore`` holds an
  io_uring's counters and makes its pushes and its enter, and ``RingTurn``
  does :meth:`RingPoller.poll <weft.drivers.completion._ring_poller.RingPoller.poll>`'s
  enter, reaping and handing out of completions, receiving straight into
  the bytes it delivers; or the driver's Python does it all.

``WEFT_PURE_PYTHON=1`` in the environment (any value but empty or ``0``)
forces the pure-Python path.  ``weft drivers`` says which is in use
(:func:`describe`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from functools import partial
from types import ModuleType
from typing import Any

__all__ = [
    "ACCELERATED",
    "PURE_REASON",
    "describe",
    "describe_completion",
    "dispatcher",
    "loop_calls",
    "reader",
    "ring_core_type",
    "ring_turn",
    "stream_calls",
    "transport_is_closing",
    "transport_write",
    "unfilled_bytes",
    "writer",
]

#: The environment variable that forces the pure-Python calls.
PURE_ENV = "WEFT_PURE_PYTHON"

#: A read call: ``read(size)`` as ``os.read(fd, size)``.
Reader = Callable[[int], bytes]
#: A write call: ``write(data)`` as ``os.write(fd, data)``.
Writer = Callable[[Any], int]
#: Hands out one poll's ``(fd, mask)`` events (see :func:`dispatcher`).
Dispatch = Callable[[list[tuple[int, int]]], None]


def _accelerator() -> tuple[ModuleType | None, str | None]:
    """The accelerator's module, or why it is not in use."""
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return None, f"{PURE_ENV} is set"
    try:
        from weft import _speedups
    except ImportError:
        return None, "weft._speedups not built: no C compiler at install"
    return _speedups, None


_speedups, _reason = _accelerator()
# Typed here: the module's attributes are Any to mypy through ModuleType.
_new_reader: Callable[[int], Reader] | None = None if _speedups is None else _speedups.DescriptorReader
_new_writer: Callable[[int], Writer] | None = None if _speedups is None else _speedups.DescriptorWriter
_new_dispatcher: Callable[..., Dispatch] | None = None if _speedups is None else _speedups.Dispatcher
# The completion driver's (Linux only: absent from the module elsewhere).
_ring_core: Callable[..., Any] | None = getattr(_speedups, "RingCore", None)
_ring_turn: Callable[..., Callable[[float], list[tuple[int, int]]]] | None = getattr(
    _speedups, "RingTurn", None
)
_unfilled_bytes: Callable[[int], bytes] | None = getattr(_speedups, "unfilled_bytes", None)

#: The accelerator's copy of ``DescriptorTransport.write`` (a method: bound
#: to the instance it is looked up on), or None on the pure-Python path.
transport_write: Callable[[Any, Any], None] | None = None if _speedups is None else _speedups.transport_write

#: The accelerator's copy of ``DescriptorTransport.is_closing`` (a method),
#: or None on the pure-Python path.
transport_is_closing: Callable[[Any], bool] | None = (
    None if _speedups is None else _speedups.transport_is_closing
)

#: Whether the C accelerator's calls are in use.
ACCELERATED: bool = _reason is None
#: Why os's calls are in use (None when the accelerator's are).
PURE_REASON: str | None = _reason


def reader(fd: int) -> Reader:
    """The read call for ``fd``, a non-blocking socket, pipe, FIFO or terminal."""
    if _new_reader is None:
        return partial(os.read, fd)
    return _new_reader(fd)


def writer(fd: int) -> Writer:
    """The write call for ``fd``, a non-blocking socket, pipe, FIFO or terminal."""
    if _new_writer is None:
        return partial(os.write, fd)
    return _new_writer(fd)


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


def dispatcher(
    reactor: Any,
    streams: dict[int, Any],
    readers: dict[int, Callable[[], object]],
    writers: dict[int, Callable[[], object]],
    read_size: int,
    readable: int,
    read_events: int,
    write_events: int,
    epoll_fd: int,
) -> Any:
    """The C accelerator's copy of the reactor loop's handing out of one
    poll's events (``Reactor._loop``), bound to the reactor's tables, and
    waiting on ``epoll_fd`` itself (``turn``) unless that is -1; None on the
    pure-Python path, where the loop does it itself.  (A
    ``weft._speedups.Dispatcher``: see weft/_speedups.pyi.)"""
    if _new_dispatcher is None:
        return None
    return _new_dispatcher(
        reactor, streams, readers, writers, read_size, readable, read_events, write_events, epoll_fd
    )


def loop_calls(handle_type: type, call_soon_slow: Callable[..., Any], report: Callable[..., Any]) -> Any:
    """The accelerator's ``call_soon``, ``_run_ready`` and ``get_debug``
    methods for weft's asyncio loop (``LoopTurn``), making handles of
    ``handle_type`` (``asyncio.Handle``) and handing ``call_soon_slow`` the
    calls of debug mode and of a closed loop and ``report`` a callback's
    exception; None on the pure-Python path, or where ``handle_type``'s
    attributes are not plain slots."""
    if _speedups is None:
        return None
    return _speedups.loop_calls(handle_type, call_soon_slow, report)


def ring_core_type() -> Callable[..., Any] | None:
    """``weft._speedups.RingCore`` (an io_uring's counters and hot calls, see
    :class:`~weft.drivers.completion._uring.AcceleratedRing`), or None on
    the pure-Python path."""
    return _ring_core


def ring_turn(
    poller: Any, core: Any, streams: dict[int, Any], quick_sends: list[Any], read_size: int
) -> Callable[[float], list[tuple[int, int]]] | None:
    """The C accelerator's copy of the completion driver's turn
    (``RingPoller.poll`` once the polls are armed), bound to the poller's
    tables and its ring's ``core``; None on the pure-Python path.  (A
    ``weft._speedups.RingTurn``: see weft/_speedups.pyi.)"""
    if _ring_turn is None or core is None:
        return None
    return _ring_turn(poller, core, streams, quick_sends, read_size)


def unfilled_bytes(size: int) -> bytes:
    """A new ``bytes`` object of ``size`` bytes (at least 2), not zeroed: a
    receive buffer the kernel fills before anyone reads it (C path only)."""
    if _unfilled_bytes is None:
        raise RuntimeError("unfilled_bytes needs weft's C accelerator")
    return _unfilled_bytes(size)


def describe_completion() -> str:
    """Which loop the completion driver runs, in a few words (``weft drivers``)."""
    if _ring_turn is not None:
        return "its loop in C (weft._speedups)"
    if PURE_REASON is not None:
        return f"its loop in pure Python ({PURE_REASON})"
    return "its loop in pure Python (weft._speedups has no io_uring part here)"


def describe() -> str:
    """Which calls are in use, in a few words (``weft drivers`` adds them to the reactor's row)."""
    if PURE_REASON is None:
        return "reads and writes in C (weft._speedups)"
    return f"reads and writes in pure Python ({PURE_REASON})"

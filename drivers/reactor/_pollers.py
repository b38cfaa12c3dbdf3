"""Readiness pollers: the operating system's "which file descriptors are ready?".

The reactor talks to one of these, picked by :func:`best_poller`:

* :class:`EpollPoller` on Linux: ``select.epoll`` used directly.
* :class:`PollPoller` where ``select.poll`` exists (other Unixes).
* :class:`SelectorPoller` anywhere else, over the ``selectors`` module (kqueue
  on BSD and macOS, select on Windows).

The first two skip the ``selectors`` layer, whose bookkeeping (a key object
per registration, a mapping lookup and a list built per event) costs time on
every event.  All three count the registration changes they make
(``changes``), so a test can prove that a steady stream of small messages
changes nothing: a connection is registered once and stays registered.

Event masks use the Linux values, which ``select.epoll`` and ``select.poll``
share: :data:`READABLE` (1), :data:`WRITABLE` (4), :data:`ERROR` (8) and
:data:`HANGUP` (16).
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import selectors
from collections.abc import Callable
from typing import Protocol

from weft.protocols.errors import ClosedResourceError

__all__ = [
    "ERROR",
    "HANGUP",
    "READABLE",
    "WRITABLE",
    "EpollPoller",
    "PollPoller",
    "Poller",
    "SelectorPoller",
    "best_poller",
]

READABLE = 0x001
WRITABLE = 0x004
ERROR = 0x008
HANGUP = 0x010


class Poller(Protocol):
    """What the reactor needs from the operating system."""

    #: How many register/modify/unregister calls were made: each is a
    #: system call for epoll and kqueue.
    changes: int

    def register(self, fd: int, mask: int) -> None:
        """Start watching ``fd`` for ``mask``; ClosedResourceError if fd is closed."""

    def modify(self, fd: int, mask: int) -> None:
        """Watch ``fd`` for ``mask`` instead."""

    def unregister(self, fd: int) -> None:
        """Stop watching ``fd`` (harmless if it is already closed)."""

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        """Wait up to ``timeout`` seconds (forever if negative); ``(fd, mask)`` pairs."""
        ...

    def close(self) -> None:
        """Release the poller."""


def _closed(fd: int, exc: OSError | None = None) -> ClosedResourceError:
    error = ClosedResourceError(f"file descriptor {fd} is not open")
    error.__cause__ = exc
    return error


class EpollPoller:
    """Linux epoll, level-triggered, with no layer in between."""

    name = "epoll"

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self.changes = 0
        #: Wait up to ``timeout`` seconds (forever if negative); ``(fd, mask)``
        #: pairs.  The epoll object's own method, called with no Python in
        #: between (once per turn of the loop): its default of at most
        #: FD_SETSIZE - 1 events per call is enough for a busy loop.
        self.poll: Callable[[float], list[tuple[int, int]]] = self._epoll.poll

    def fileno(self) -> int:
        """The epoll descriptor (the C accelerator waits on it itself)."""
        return self._epoll.fileno()

    def register(self, fd: int, mask: int) -> None:
        """Watch ``fd``."""
        self.changes += 1
        try:
            self._epoll.register(fd, mask)
        except OSError as exc:
            if exc.errno == 9:  # EBADF
                raise _closed(fd, exc) from exc
            raise

    def modify(self, fd: int, mask: int) -> None:
        """Change what ``fd`` is watched for."""
        self.changes += 1
        self._epoll.modify(fd, mask)

    def unregister(self, fd: int) -> None:
        """Stop watching ``fd``."""
        self.changes += 1
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            pass  # already closed: the kernel dropped it

    def close(self) -> None:
        """Close the epoll descriptor."""
        self._epoll.close()


class PollPoller:
    """POSIX poll(2): no kernel-side registration, so changes cost no system call."""

    name = "poll"

    def __init__(self) -> None:
        self._poll = select.poll()
        self.changes = 0

    def register(self, fd: int, mask: int) -> None:
        """Watch ``fd``."""
        _check_open(fd)
        self.changes += 1
        self._poll.register(fd, mask)

    def modify(self, fd: int, mask: int) -> None:
        """Change what ``fd`` is watched for."""
        self.changes += 1
        self._poll.modify(fd, mask)

    def unregister(self, fd: int) -> None:
        """Stop watching ``fd``."""
        self.changes += 1
        with contextlib.suppress(KeyError):
            self._poll.unregister(fd)

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        """Wait for events (poll's timeout is in milliseconds, rounded up)."""
        return self._poll.poll(None if timeout < 0 else math.ceil(timeout * 1000))

    def close(self) -> None:
        """Nothing to release."""


class SelectorPoller:
    """Any ``selectors`` selector (kqueue, devpoll, select), for platforms without epoll or poll."""

    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        self._selector = selector if selector is not None else selectors.DefaultSelector()
        self.name = type(self._selector).__name__.removesuffix("Selector").lower()
        self.changes = 0

    def register(self, fd: int, mask: int) -> None:
        """Watch ``fd``."""
        _check_open(fd)
        self.changes += 1
        self._selector.register(fd, _to_selector(mask))

    def modify(self, fd: int, mask: int) -> None:
        """Change what ``fd`` is watched for."""
        self.changes += 1
        self._selector.modify(fd, _to_selector(mask))

    def unregister(self, fd: int) -> None:
        """Stop watching ``fd``."""
        self.changes += 1
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(fd)

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        """Wait for events."""
        ready = self._selector.select(None if timeout < 0 else timeout)
        return [(key.fd, _from_selector(events)) for key, events in ready]

    def close(self) -> None:
        """Close the selector."""
        self._selector.close()


def _check_open(fd: int) -> None:
    # poll and select only notice a closed descriptor when polling; refuse
    # it at registration, as epoll does.
    try:
        os.fstat(fd)
    except OSError as exc:
        raise _closed(fd, exc) from exc


def _to_selector(mask: int) -> int:
    return (selectors.EVENT_READ if mask & READABLE else 0) | (
        selectors.EVENT_WRITE if mask & WRITABLE else 0
    )


def _from_selector(events: int) -> int:
    return (READABLE if events & selectors.EVENT_READ else 0) | (
        WRITABLE if events & selectors.EVENT_WRITE else 0
    )


def best_poller() -> EpollPoller | PollPoller | SelectorPoller:
    """epoll where it exists, then poll, then whatever ``selectors`` offers."""
    if hasattr(select, "epoll"):
        return EpollPoller()
    if hasattr(select, "poll"):
        return PollPoller()
    return SelectorPoller()

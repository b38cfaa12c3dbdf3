"""Accepting connections on an event loop, with no spin when out of descriptors.

An :class:`Acceptor` is the accepting half of a listener, for any loop that
can watch a descriptor for readability and call something later (the
reactor, asyncio, uvloop).  When a listening socket is readable it accepts
what is waiting, at most :data:`ACCEPT_BATCH` connections, so a flood of
connects cannot starve the connections already open, and hands each new
socket to the listener.

When ``accept`` fails for want of a resource (descriptors: ``EMFILE``,
``ENFILE``; kernel memory: ``ENOBUFS``, ``ENOMEM``), trying again at once
would fail again at once, and the socket stays readable: a loop that
retries spins.  So the acceptor stops watching its sockets for
:data:`ACCEPT_PAUSE` seconds, logs one line saying so, and then watches
them again; meanwhile the kernel's backlog holds the waiting connections,
and they are served once descriptors are free.  At most one line a second,
and no CPU spent while paused.  (asyncio's own server gets this wrong: on
``EMFILE`` it logs a traceback and schedules a retry once per backlog slot,
a thousand times per readiness event.)
"""

from __future__ import annotations

import enum
import errno
import logging
import socket
from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol

__all__ = ["ACCEPT_BATCH", "ACCEPT_PAUSE", "RESOURCE_ERRORS", "Acceptor"]

#: Connections accepted per readiness event, at most.
ACCEPT_BATCH = 64

#: Seconds accepting stops for when ``accept`` runs out of a resource.
ACCEPT_PAUSE = 1.0

#: The ``accept`` errors that mean "out of descriptors or memory": pause, do not spin.
RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Cancellable(Protocol):
    """A scheduled call (a reactor timer, an asyncio handle)."""

    def cancel(self) -> None:
        """Call it off."""


#: Watch ``sock`` for readability with the callback, or stop watching it (None).
Watch = Callable[[socket.socket, Callable[[], object] | None], None]
#: Run the callback after so many seconds.
CallLater = Callable[[float, Callable[[], object]], Cancellable]


class AcceptState(enum.Enum):
    """Where an :class:`Acceptor` is."""

    #: Watching its sockets, accepting what comes.
    ACCEPTING = "accepting"
    #: Out of a resource: not watching, until the pause ends.
    PAUSED = "paused"
    #: Closed: never again.
    CLOSED = "closed"


class Acceptor:
    """Accepts on ``sockets`` and hands each new connection to ``start`` (see the module docstring).

    ``watch`` and ``call_later`` are the loop's; ``logger`` gets the line
    logged when accepting pauses.  Watching starts at once.
    """

    def __init__(
        self,
        sockets: Sequence[socket.socket],
        start: Callable[[socket.socket], object],
        *,
        watch: Watch,
        call_later: CallLater,
        logger: logging.Logger,
    ) -> None:
        self._sockets = list(sockets)
        self._start = start
        self._watch = watch
        self._call_later = call_later
        self._logger = logger
        self._resume: Cancellable | None = None
        self.state = AcceptState.ACCEPTING
        self._watch_all()

    @property
    def paused(self) -> bool:
        """Whether accepting is paused (out of a resource)."""
        return self.state is AcceptState.PAUSED

    def close(self) -> None:
        """Stop accepting for good (the sockets are the listener's to close)."""
        if self.state is AcceptState.CLOSED:
            return
        if self.state is AcceptState.ACCEPTING:
            for sock in self._sockets:
                self._watch(sock, None)
        elif self._resume is not None:
            self._resume.cancel()
            self._resume = None
        self.state = AcceptState.CLOSED

    def accept(self, listening: socket.socket) -> None:
        """``listening`` is readable: accept what waits there (at most :data:`ACCEPT_BATCH`)."""
        for _ in range(ACCEPT_BATCH):
            if self.state is not AcceptState.ACCEPTING:  # start() may close the listener
                return
            try:
                sock, _address = listening.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in RESOURCE_ERRORS:
                    raise
                self._pause(listening, exc)
                return
            self._start(sock)

    def _pause(self, listening: socket.socket, exc: OSError) -> None:
        self._logger.error(
            "cannot accept on %s (%s); pausing for %g s", _name(listening), exc.strerror or exc, ACCEPT_PAUSE
        )
        self.state = AcceptState.PAUSED
        for sock in self._sockets:
            self._watch(sock, None)
        self._resume = self._call_later(ACCEPT_PAUSE, self._end_pause)

    def _end_pause(self) -> None:
        self._resume = None
        if self.state is not AcceptState.PAUSED:
            return
        self.state = AcceptState.ACCEPTING
        self._watch_all()

    def _watch_all(self) -> None:
        for sock in self._sockets:
            self._watch(sock, partial(self.accept, sock))


def _name(sock: socket.socket) -> object:
    try:
        return sock.getsockname()
    except OSError:
        return f"fd {sock.fileno()}"

"""Raw file descriptors on a Twisted reactor, with weft callbacks: what the driver's own I/O rides on.

Most of the driver's bytes move through Twisted's transports.  A few
descriptors are weft's own: listening sockets (weft accepts, see
:mod:`weft.drivers.twisted._sockets`), datagram sockets (see
:mod:`weft.drivers.twisted._datagrams`) and a child's pidfd.  Each is put
on the reactor through ``IReactorFDSet`` as one :class:`FdWatch`, which
provides both ``IReadDescriptor`` and ``IWriteDescriptor``: Twisted's poll
reactors keep one selectable per descriptor, so the reading and the
writing callbacks of one descriptor must live on one object.

A callback never raises into Twisted (which would log it and drop the
descriptor): an exception goes to the watch's owner, which ends what the
descriptor belongs to, or is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.interfaces import IReadDescriptor, IWriteDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from weft.protocols.errors import BusyResourceError

__all__ = ["FdOwner", "FdWatch", "FdWatches"]

logger = logging.getLogger("weft.drivers.twisted")


class FdOwner(Protocol):
    """What owns a watched descriptor: told when one of its callbacks raised."""

    def _callback_failed(self, exc: Exception) -> None:
        """Log and end whatever the descriptor belongs to."""


@implementer(IReadDescriptor, IWriteDescriptor)
class FdWatch:
    """One descriptor on the reactor, with a reading and a writing callback (either may be None)."""

    __slots__ = ("fd", "owner", "reader", "writer")

    def __init__(self, fd: int, owner: FdOwner | None) -> None:
        self.fd = fd
        self.owner = owner
        self.reader: Callable[[], object] | None = None
        self.writer: Callable[[], object] | None = None

    def fileno(self) -> int:
        """The descriptor."""
        return self.fd

    def doRead(self) -> None:
        """Readable: run the reading callback."""
        if self.reader is not None:
            self._run(self.reader)

    def doWrite(self) -> None:
        """Writable: run the writing callback."""
        if self.writer is not None:
            self._run(self.writer)

    def connectionLost(self, reason: Failure) -> None:
        """The reactor let go of the descriptor (it shut down): nothing to do, its owner closes it."""

    def logPrefix(self) -> str:
        """What Twisted's log lines about it start with."""
        return f"weft fd {self.fd}"

    def _run(self, callback: Callable[[], object]) -> None:
        try:
            callback()
        except Exception as exc:
            if self.owner is not None:
                self.owner._callback_failed(exc)
            else:
                logger.error("exception in a callback watching fd %d", self.fd, exc_info=exc)


class FdWatches:
    """The descriptors one runtime watches on its reactor, by number."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._watches: dict[int, FdWatch] = {}

    def __len__(self) -> int:
        """Descriptors watched."""
        return len(self._watches)

    def set_reader(self, fd: int, callback: Callable[[], object] | None, owner: FdOwner | None) -> None:
        """Call ``callback`` whenever ``fd`` is readable, or stop (None).

        :class:`~weft.protocols.errors.BusyResourceError` if ``fd`` already
        has a reader (Twisted would replace it silently).
        """
        watch = self._watches.get(fd)
        if callback is None:
            if watch is None or watch.reader is None:
                return
            watch.reader = None
            self._reactor.removeReader(watch)
            self._forget_if_idle(watch)
            return
        if watch is None:
            watch = self._watches[fd] = FdWatch(fd, owner)
        elif watch.reader is not None:
            raise BusyResourceError(f"file descriptor {fd} already has a reader")
        watch.owner = owner
        watch.reader = callback
        self._reactor.addReader(watch)

    def set_writer(self, fd: int, callback: Callable[[], object] | None, owner: FdOwner | None) -> None:
        """Call ``callback`` whenever ``fd`` is writable, or stop (None)."""
        watch = self._watches.get(fd)
        if callback is None:
            if watch is None or watch.writer is None:
                return
            watch.writer = None
            self._reactor.removeWriter(watch)
            self._forget_if_idle(watch)
            return
        if watch is None:
            watch = self._watches[fd] = FdWatch(fd, owner)
        elif watch.writer is not None:
            raise BusyResourceError(f"file descriptor {fd} already has a writer")
        watch.owner = owner
        watch.writer = callback
        self._reactor.addWriter(watch)

    def _forget_if_idle(self, watch: FdWatch) -> None:
        if watch.reader is None and watch.writer is None:
            del self._watches[watch.fd]

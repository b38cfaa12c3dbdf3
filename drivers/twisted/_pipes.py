"""Pipes, stdio and child processes on a Twisted reactor: a protocol over file descriptors.

:func:`connect_pipes` runs a protocol over two descriptors (pipe ends, a
terminal, a regular file, ``/dev/null``) as one duplex transport, the way
``twisted.internet.stdio.StandardIO`` runs a Twisted protocol over stdin and
stdout, and with what ``StandardIO`` lacks for weft's contract: an abort,
an end once both directions are done, the descriptors closed (or left as
they were found), and ``EPIPE`` reported as such.  :class:`PipePair` is
that Twisted transport: each descriptor is a :class:`PipeEnd`, a Twisted
``FileDescriptor`` (Twisted's write buffer, its producer support, its
reactor's readiness; a regular file, which epoll refuses, is polled by the
reactor's own fallback).  The weft protocol talks to it through a
:class:`~weft.drivers.twisted._transport.TwistedTransport`, as over TCP.

A socket given as both descriptors (stdio under inetd, one end of a
``socketpair``) is handed to Twisted as the socket it is
(``adoptStreamConnection``), so it half-closes with ``shutdown``.

:func:`spawn_process` starts a child with weft's shared code
(:mod:`weft.drivers._core.child_processes`: the same :class:`Process`, its
exit learned from a pidfd the reactor watches) and runs its stdin and stdout
(or its PTY) as such a pair, its stderr as a read-only one.  Twisted's own
``spawnProcess`` is not used: it learns of a child's exit from a
``SIGCHLD`` handler, which only a reactor run with Twisted's signal
handlers installs (one per process: many runtimes cannot each own it), and
without which a child that outlives its pipes is never reaped.

What becomes of the descriptors at the end is the reactor's rule:
``close_fds`` closes them; otherwise they stay open, back in the blocking
mode they had, and ``write_eof`` on a kept pipe points it at ``/dev/null``
(the last write end going away is the only EOF a pipe has).
"""

from __future__ import annotations

import contextlib
import enum
import errno
import os
import socket
import stat
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet import abstract
from twisted.internet import error as twisted_error
from twisted.internet.interfaces import IHalfCloseableDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from weft.drivers._core.child_processes import (
    Process,
    ReadOnly,
    StderrOption,
    start_with_protocols,
)
from weft.drivers._core.pipe_descriptors import PipeEnds, socket_names
from weft.drivers._core.socket_defaults import READ_SIZE
from weft.drivers.twisted._sockets import adopt_socket
from weft.drivers.twisted._transport import TwistedSide, TwistedTransport
from weft.protocols.errors import ArgumentError, ClosedResourceError

if TYPE_CHECKING:
    from weft.drivers.twisted._plumbing import TwistedHost

__all__ = ["PipeEnd", "PipePair", "TwistedReadTransport", "connect_pipes", "spawn_process"]

_DONE = twisted_error.ConnectionDone()
_LOST = twisted_error.ConnectionLost()


class TwistedReadTransport(ReadOnly, TwistedTransport):
    """The Twisted driver's transport for a descriptor it only reads (a child's stderr)."""

    __slots__ = ()


@implementer(IHalfCloseableDescriptor)
class PipeEnd(abstract.FileDescriptor):
    """One descriptor of a :class:`PipePair` on the reactor (read, written, or both for a PTY)."""

    def __init__(self, reactor: Any, pair: PipePair, fd: int, *, pty: bool) -> None:
        super().__init__(reactor)
        self.fd = fd
        self.pair = pair
        self.connected = 1
        self._pty = pty
        #: The error a read or a write met, reported to the pair with the end.
        self.error: OSError | None = None
        #: Bytes written and not yet taken by the kernel (Twisted's buffer,
        #: which it keeps in private attributes).
        self.buffered = 0

    def fileno(self) -> int:
        """The descriptor."""
        return self.fd

    def doRead(self) -> twisted_error.ConnectionClosed | None:
        """Read what is there and hand it over; EOF and errors end reading."""
        try:
            data = os.read(self.fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            if self._pty and exc.errno == errno.EIO:  # a PTY's master says EOF so
                return _DONE
            self.error = exc
            return _LOST
        if not data:
            return _DONE
        self.pair._data(data)
        return None

    def write(self, data: bytes) -> None:
        """Buffer ``data``; Twisted writes it once the descriptor is writable."""
        self.buffered += len(data)
        super().write(data)

    def writeSomeData(self, data: bytes) -> int | BaseException:
        """Write what the descriptor takes now (Twisted keeps the rest)."""
        try:
            sent = os.write(self.fd, data[: self.SEND_LIMIT])
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            self.error = exc
            return _LOST
        self.buffered -= sent
        return sent

    def readConnectionLost(self, reason: Failure) -> None:
        """EOF: stop reading and tell the pair; writing (on a PTY) goes on."""
        self.stopReading()
        self.pair._read_ended()

    def writeConnectionLost(self, reason: Failure) -> None:
        """Part of IHalfCloseableDescriptor; a pipe end reports its end through :meth:`connectionLost`."""
        self.connectionLost(reason)

    def connectionLost(self, reason: Failure) -> None:
        """This end is over (flushed after loseConnection, or failed)."""
        super().connectionLost(reason)
        self.pair._end_lost(self, reason)

    def logPrefix(self) -> str:
        """What Twisted's log lines about it start with."""
        return f"weft pipe fd {self.fd}"


class PairState(enum.Enum):
    """Where a :class:`PipePair` is."""

    #: Reading and writing as asked.
    OPEN = "open"
    #: ``loseConnection``: reading stopped, the write end flushes, then the pair ends.
    CLOSING = "closing"
    #: ``abortConnection``: nothing more is read or written; the end comes on the next turn.
    ABORTING = "aborting"
    #: Over: the side has had ``connectionLost``.
    ENDED = "ended"


#: The states in which the pair still moves bytes.
_LIVE = frozenset({PairState.OPEN, PairState.CLOSING})


class PipePair:
    """A Twisted transport over a read descriptor and a write descriptor (the
    same one for a PTY; none for a read-only one): what ``connect_pipes``
    and ``spawn_process`` hand a :class:`TwistedSide`.

    It offers what the weft transport uses of a Twisted transport:
    ``write``, ``registerProducer``/``unregisterProducer``,
    ``pauseProducing``/``resumeProducing`` (reading), ``loseWriteConnection``,
    ``loseConnection`` (flush, then end) and ``abortConnection``.
    """

    def __init__(
        self, reactor: Any, side: TwistedSide, ends: PipeEnds, *, pty: bool = False, read_only: bool = False
    ) -> None:
        self._reactor = reactor
        self._side = side
        self._ends = ends
        self.reader = PipeEnd(reactor, self, ends.read_fd, pty=pty)
        self.writer: PipeEnd | None
        if read_only:
            self.writer = None
        elif ends.write_fd == ends.read_fd:
            self.writer = self.reader
        else:
            self.writer = PipeEnd(reactor, self, ends.write_fd, pty=pty)
        self._state = PairState.OPEN
        # The read end met EOF (an orthogonal fact: the write end may go on).
        self._read_eof = False

    def start(self) -> None:
        """Start reading, then make the connection (the side's protocol may pause at once)."""
        self.reader.startReading()
        self._side.makeConnection(self)

    # -------------------------------------------------- for the weft transport

    def write(self, data: bytes) -> None:
        """Buffer ``data`` in the write end."""
        if self.writer is not None and self._state in _LIVE:
            self.writer.write(data)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """The write end's producer (a read-only pair has nothing to produce for)."""
        if self.writer is not None:
            self.writer.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        """Let the write end go of its producer."""
        if self.writer is not None:
            self.writer.unregisterProducer()

    def pauseProducing(self) -> None:
        """Stop reading."""
        if self._state is not PairState.ENDED and not self._read_eof:
            self.reader.stopReading()

    def resumeProducing(self) -> None:
        """Read again."""
        if self._state is PairState.OPEN and not self._read_eof:
            self.reader.startReading()

    def loseWriteConnection(self) -> None:
        """Flush the write end, then end it (EOF for the peer)."""
        writer = self.writer
        if writer is None or writer is self.reader or not writer.connected:
            return
        if writer.buffered:
            writer.loseConnection()
        else:
            # Nothing to flush: Twisted would watch the descriptor for
            # writability first, and a pipe whose reader is gone says so
            # with an error, though nothing is lost.
            writer.stopWriting()
            writer.connectionLost(Failure(twisted_error.ConnectionDone()))

    def loseConnection(self) -> None:
        """Stop reading; flush, then end."""
        if self._state is not PairState.OPEN:
            return
        self._state = PairState.CLOSING
        self.reader.stopReading()
        writer = self.writer
        if writer is None or not writer.connected or not writer.buffered:
            # Nothing to flush (see loseWriteConnection), or the output ended already.
            self._finish(Failure(twisted_error.ConnectionDone()))
        elif not writer.disconnecting:
            writer.loseConnection()
        # else: a loseWriteConnection is flushing; its end ends the pair.

    def abortConnection(self) -> None:
        """Drop what is buffered and end on the next turn."""
        if self._state not in _LIVE:
            return
        self._state = PairState.ABORTING
        for end in self._ends_of():
            end.stopReading()
            end.stopWriting()
        self._reactor.callLater(0, self._finish, Failure(twisted_error.ConnectionAborted()))

    def fileno(self) -> int:
        """The write descriptor (``write_file``'s ``sendfile`` writes there), or -1 for none."""
        return -1 if self.writer is None else self.writer.fd

    def startWriting(self) -> None:
        """Watch the write end for writability (Twisted then asks its producer for more)."""
        writer = self.writer
        if writer is not None and writer.connected and self._state in _LIVE:
            writer.startWriting()

    # -------------------------------------------------------- the ends' news

    def _data(self, data: bytes) -> None:
        if self._state in _LIVE:
            self._side.dataReceived(data)

    def _read_ended(self) -> None:
        if self._state not in _LIVE or self._read_eof:
            return
        self._read_eof = True
        self._side.readConnectionLost()

    def _end_lost(self, end: PipeEnd, reason: Failure) -> None:
        if self._state is PairState.ENDED:
            return
        if end.error is not None:
            self._finish(Failure(end.error))
            return
        clean = reason.check(twisted_error.ConnectionDone) is not None
        if end is self.writer and end is not self.reader and clean:
            # The write end flushed and ended: EOF went out.
            self._ends.end_output()
            if self._state is PairState.CLOSING:
                self._finish(reason)
            else:
                self._side.writeConnectionLost()
            return
        if not clean and end is self.writer:
            # The reader went away (epoll's error event on a write pipe).
            self._finish(Failure(BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))))
            return
        self._finish(reason)

    def _finish(self, reason: Failure) -> None:
        if self._state is PairState.ENDED:
            return
        self._state = PairState.ENDED
        for end in self._ends_of():
            if end.connected:
                end.connectionLost(reason)  # its own news is ignored now
        self._ends.close()
        self._side.connectionLost(reason)

    def _ends_of(self) -> list[PipeEnd]:
        ends = [self.reader]
        if self.writer is not None and self.writer is not self.reader:
            ends.append(self.writer)
        return ends

    def __repr__(self) -> str:
        return f"<PipePair read {self._ends.read_fd} write {self._ends.write_fd}>"


# ------------------------------------------------------------------- pipes


def connect_pipes(
    host: TwistedHost, factory: Callable[[], Any], read_fd: int, write_fd: int, *, close_fds: bool = True
) -> TwistedTransport:
    """Run a protocol from ``factory`` over ``read_fd`` and ``write_fd``;
    ``connection_made`` runs now (see the module docstring)."""
    read_mode, write_mode = _checked(read_fd), _checked(write_fd)
    if read_fd == write_fd and stat.S_ISSOCK(read_mode):
        return _connect_socket(host, factory, read_fd, close_fds)
    names = socket_names(read_fd, write_fd) or {
        "sockname": ("pipe", read_fd, write_fd),
        "peername": ("pipe", "peer"),
    }
    del write_mode
    transport = host._new_transport(
        factory,
        carrier="pipes",
        extra={"pipe": (read_fd, write_fd), **names},
        can_write_eof=read_fd != write_fd,
    )
    pair = pipe_pair(host, transport.side, read_fd, write_fd, close_fds=close_fds)
    pair.start()
    return transport


def pipe_pair(
    host: TwistedHost,
    side: TwistedSide,
    read_fd: int,
    write_fd: int,
    *,
    close_fds: bool,
    pty: bool = False,
    read_only: bool = False,
) -> PipePair:
    """A :class:`PipePair` for ``side`` over the descriptors, made non-blocking; not started."""
    ends = PipeEnds(read_fd, write_fd, "close" if close_fds else "keep")
    pair = PipePair(host.reactor, side, ends, pty=pty, read_only=read_only)
    ends.make_non_blocking()  # last, after everything that can fail: a refused fd keeps its mode
    return pair


def _connect_socket(
    host: TwistedHost, factory: Callable[[], Any], fd: int, close_fds: bool
) -> TwistedTransport:
    """One socket as both descriptors: Twisted's own transport over a duplicate of it."""
    was_blocking = os.get_blocking(fd)
    transport = host._new_transport(factory, extra={"pipe": (fd, fd)})
    if not close_fds:
        # O_NONBLOCK belongs to the open file the caller keeps: put it back.
        transport.on_lost.append(lambda _transport: _restore_blocking(fd, was_blocking))
    sock = socket.socket(fileno=os.dup(fd))  # Twisted's to close
    try:
        adopt_socket(host, sock, transport)
    except BaseException:
        sock.close()
        raise
    if close_fds:
        os.close(fd)
    return transport


def _restore_blocking(fd: int, blocking: bool) -> None:
    with contextlib.suppress(OSError):  # closed meanwhile
        os.set_blocking(fd, blocking)


def _checked(fd: int) -> int:
    """``fd``'s file type; ArgumentError for one that cannot stream (a directory)."""
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
        kind = "directory" if stat.S_ISDIR(mode) else "file of a kind that cannot stream"
        raise ArgumentError(f"file descriptor {fd} is a {kind}: give a pipe, socket, terminal or file")
    return mode


# --------------------------------------------------------------- processes


def spawn_process(
    host: TwistedHost,
    factory: Callable[[], Any],
    args: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stderr: StderrOption = None,
    pty: bool = False,
) -> Process:
    """Start ``args`` (no shell) with a protocol on its stdio (see the module docstring).

    ``connection_made`` runs before this returns.  A program that cannot be
    started raises here (``FileNotFoundError``, ``PermissionError``), with
    ``connection_made`` never called and nothing left open.
    """

    def check_open() -> None:
        if host._closed:
            raise ClosedResourceError("the runtime is closed")

    process, plumbing, protocol, stderr_protocol = spawned = start_with_protocols(
        host,
        host._processes,
        factory,
        args,
        env=env,
        cwd=cwd,
        stderr=stderr,
        pty=pty,
        set_reader=host._set_reader,
        check_open=check_open,
    )
    names = spawned.names
    extra = {**names, "sockname": ("pty", plumbing.read_fd)} if pty else dict(names)
    transport = host._new_transport(lambda: protocol, carrier="pipes", extra=extra, can_write_eof=not pty)
    pairs = [pipe_pair(host, transport.side, plumbing.read_fd, plumbing.write_fd, close_fds=True, pty=pty)]
    process.transport = transport
    if stderr_protocol is not None and plumbing.stderr_fd is not None:
        errors = host._new_transport(
            lambda: stderr_protocol,
            carrier="pipes",
            extra=dict(names),
            can_write_eof=False,
            read_only=True,
        )
        fd = plumbing.stderr_fd
        pairs.append(pipe_pair(host, errors.side, fd, fd, close_fds=True, read_only=True))
        process.stderr_transport = errors
    for pair in pairs:
        pair.start()
    return process

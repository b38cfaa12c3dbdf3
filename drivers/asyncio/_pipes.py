"""A protocol over two file descriptors on asyncio: one duplex weft transport.

asyncio splits a pipe pair in two transports, a read pipe and a write pipe,
with a protocol each; weft protocols want one bidirectional transport, as
the reactor gives.  :func:`connect_pipes` joins them: one
:class:`~weft.drivers.asyncio._transport.AsyncioTransport` with a read side
and a write side.  ``write_eof`` closes the write pipe (the only EOF a pipe
has); the connection ends once both sides have.

Two asyncio limits are dealt with here, before anything starts:

* asyncio's pipe transports take only what the loop's poller can watch.
  A regular file or ``/dev/null`` gets a side from
  :mod:`weft.drivers.asyncio._files` instead, always ready, as on the
  reactor; a directory is an ArgumentError.
* asyncio's write pipe watches its descriptor for readability to learn that
  the reader went away; on a socket, readable means data from the peer.  So
  a socket given as both descriptors (stdio under inetd or systemd socket
  activation) is run as a socket, with asyncio's socket transport, and a
  socket may not be the write descriptor of anything else.

What becomes of the descriptors at the end is the reactor's rule (see
:class:`_Ends`).  asyncio sets pipes up on the loop (``connect_read_pipe`` is a coroutine), so
the transport is returned first and ``connection_made`` runs on the loop's
first turns; what is written to it meanwhile is sent first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import selectors
import socket
import stat
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from weft.drivers._core.pipe_descriptors import point_at_devnull
from weft.drivers.asyncio._files import FileReader, FileWriter
from weft.drivers.asyncio._transport import AsyncioTransport
from weft.protocols.errors import ArgumentError

if TYPE_CHECKING:
    from weft.drivers.asyncio._plumbing import AdapterRuntime

__all__ = ["connect_pipes"]

logger = logging.getLogger("weft.drivers.asyncio")


def connect_pipes(
    runtime: AdapterRuntime,
    factory: Callable[[], Any],
    read_fd: int,
    write_fd: int,
    *,
    close_fds: bool = True,
) -> AsyncioTransport:
    """Run a protocol over ``read_fd`` and ``write_fd`` (see the module docstring).

    With ``close_fds`` the descriptors are closed when the connection ends;
    without, they are left open, in the blocking mode they had (see
    :class:`_Ends`).
    """
    read_mode, read_watched = _checked(read_fd, selectors.EVENT_READ)
    write_mode, write_watched = _checked(write_fd, selectors.EVENT_WRITE)
    extra = {"pipe": (read_fd, write_fd)}
    if stat.S_ISSOCK(write_mode):
        if not (stat.S_ISSOCK(read_mode) and _same_file(read_fd, write_fd)):
            raise ArgumentError(
                f"file descriptor {write_fd} is a socket: asyncio can write to one only as a "
                "socket, so it must be the same socket as the read descriptor"
            )
        return _connect_socket(runtime, factory, read_fd, write_fd, extra, close_fds)
    return _connect_pipe_pair(
        runtime, factory, (read_fd, read_watched), (write_fd, write_watched), extra, close_fds
    )


def _connect_pipe_pair(
    runtime: AdapterRuntime,
    factory: Callable[[], Any],
    read: tuple[int, bool],
    write: tuple[int, bool],
    extra: dict[str, Any],
    close_fds: bool,
) -> AsyncioTransport:
    # Each descriptor with whether the loop can watch it (else it is a file).
    (read_fd, read_watched), (write_fd, write_watched) = read, write
    ends = _Ends(read_fd, write_fd, close_fds)
    # asyncio closes what it is given.  With close_fds it gets the
    # descriptors themselves (closing the write one is what sends EOF), or
    # a duplicate for the second role of a single one; without, duplicates.
    reader = _Descriptor(read_fd if close_fds else os.dup(read_fd))
    writer = _Descriptor(write_fd if close_fds and write_fd != read_fd else os.dup(write_fd))
    transport = runtime._new_transport(
        factory,
        roles=("write", "read"),
        extra={"sockname": ("pipe", read_fd, write_fd), "peername": ("pipe", "peer"), **extra},
        snapshot=(),
        write_eof_closes=True,
        can_write_eof=read_fd != write_fd,
    )
    transport.on_output_ended.append(ends.output_ended)
    transport.on_lost.append(lambda _transport: ends.connection_ended(asyncio_closed={read_fd, write_fd}))
    loop = runtime.loop
    # Never handed to asyncio: ours to close if setting up fails.  (One that
    # asyncio refused is not closed: uvloop closes it itself, and closing it
    # again could close a descriptor opened since.)
    untouched = [reader, writer]

    async def set_up() -> None:
        try:
            # The write side first: data can arrive as soon as the read side
            # is up, and connection_made must come before it.
            untouched.remove(writer)
            if write_watched:
                await loop.connect_write_pipe(lambda: transport.side("write"), writer)
            else:
                FileWriter(loop, writer, transport.side("write"))
            untouched.remove(reader)
            if read_watched:
                await loop.connect_read_pipe(lambda: transport.side("read"), reader)
            else:
                FileReader(loop, reader, transport.side("read"))
        except Exception as exc:
            logger.error("cannot set up pipes %d and %d", read_fd, write_fd, exc_info=exc)
            give_up()

    def give_up() -> None:
        transport._abandon()
        for descriptor in untouched:
            descriptor.close()
        if not transport.started:  # else connection_lost releases them
            ends.connection_ended(asyncio_closed=set())

    _spawn_set_up(runtime, set_up(), give_up)
    return transport


def _connect_socket(
    runtime: AdapterRuntime,
    factory: Callable[[], Any],
    read_fd: int,
    write_fd: int,
    extra: dict[str, Any],
    close_fds: bool,
) -> AsyncioTransport:
    ends = _Ends(read_fd, write_fd, close_fds)
    sock = socket.socket(fileno=read_fd if close_fds else os.dup(read_fd))
    # asyncio closes the socket object, which is read_fd itself with close_fds.
    transport = runtime._new_transport(factory, extra=extra)
    transport.on_lost.append(lambda _transport: ends.connection_ended(asyncio_closed={read_fd}))
    loop = runtime.loop

    async def set_up() -> None:
        try:
            await loop.connect_accepted_socket(lambda: transport.side("both"), sock)
        except Exception as exc:
            logger.error("cannot set up socket %d", read_fd, exc_info=exc)
            give_up()

    def give_up() -> None:
        transport._abandon()
        sock.close()
        if not transport.started:
            ends.connection_ended(asyncio_closed={read_fd})

    _spawn_set_up(runtime, set_up(), give_up)
    return transport


def _spawn_set_up(
    runtime: AdapterRuntime, set_up: Coroutine[Any, Any, None], give_up: Callable[[], None]
) -> None:
    """Run ``set_up``; if the runtime's close() cancels it (perhaps before it
    started), ``give_up``, as ``set_up`` does itself when it fails."""

    def settled(task: asyncio.Task[None]) -> None:
        if task.cancelled():
            give_up()

    runtime._spawn(set_up).add_done_callback(settled)


class _Ends:
    """The caller's two descriptors, and what becomes of them (as on the reactor).

    With ``close_fds`` they are closed when the connection ends (asyncio
    closes those it was given).  Without, they stay open, in the blocking
    mode they had: ``O_NONBLOCK`` belongs to the open file, which a terminal
    shares with the shell.  ``write_eof`` on a kept pipe points it at
    ``/dev/null``: the last write end going away is the only EOF a pipe has,
    and the number stays taken.
    """

    def __init__(self, read_fd: int, write_fd: int, close_fds: bool) -> None:
        self.fds = {read_fd, write_fd}
        self.write_fd = write_fd
        self.close_fds = close_fds
        self.was_blocking = {fd: os.get_blocking(fd) for fd in self.fds}
        self.write_fd_gone = False

    def output_ended(self) -> None:
        """write_eof is done: asyncio closed its write descriptor."""
        if self.close_fds or self.write_fd_gone:
            return
        self.write_fd_gone = True
        with contextlib.suppress(OSError):  # closed under us: nothing left to end
            os.set_blocking(self.write_fd, self.was_blocking[self.write_fd])
            point_at_devnull(self.write_fd)

    def connection_ended(self, *, asyncio_closed: set[int]) -> None:
        """Close what asyncio did not, or restore what stays open."""
        for fd in self.fds:
            if fd == self.write_fd and self.write_fd_gone:
                continue
            with contextlib.suppress(OSError):  # closed under us: nothing left to do
                if not self.close_fds:
                    os.set_blocking(fd, self.was_blocking[fd])
                elif fd not in asyncio_closed:
                    os.close(fd)


class _Descriptor:
    """A file descriptor as asyncio's pipe transports want it: ``fileno()`` and ``close()``."""

    __slots__ = ("_fd", "_identity")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        status = os.fstat(fd)
        self._identity = (status.st_dev, status.st_ino)

    def fileno(self) -> int:
        """The descriptor (-1 once closed)."""
        return self._fd

    def close(self) -> None:
        """Close it, once, if it is still the file it was.

        uvloop's libuv closes the descriptor itself, then calls this: the
        number may be free, or already reused by a file opened since, which
        must not be closed.
        """
        fd, self._fd = self._fd, -1
        if fd < 0:
            return
        try:
            status = os.fstat(fd)
        except OSError:
            return  # closed already
        if (status.st_dev, status.st_ino) == self._identity:
            os.close(fd)

    def __repr__(self) -> str:
        return f"<fd {self._fd}>"


def _checked(fd: int, events: int) -> tuple[int, bool]:
    """``fd``'s file type, and whether the loop can watch it (else it is a
    file, always ready: a regular file, or ``/dev/null``)."""
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode):
        return mode, False
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
        kind = "directory" if stat.S_ISDIR(mode) else "file of a kind that cannot stream"
        raise ArgumentError(f"file descriptor {fd} is a {kind}: give a pipe, socket, terminal or file")
    with selectors.DefaultSelector() as probe:
        try:
            probe.register(fd, events)
        except PermissionError:  # epoll's answer for /dev/null and its like
            return mode, False
    return mode, True


def _same_file(first: int, second: int) -> bool:
    one, other = os.fstat(first), os.fstat(second)
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)

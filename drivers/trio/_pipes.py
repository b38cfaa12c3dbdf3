"""Pipes, stdio and PTYs on the trio driver: a Trio stream over two file descriptors.

``connect_pipes(factory, read_fd, write_fd)`` runs a protocol over any two
descriptors, as on every weft driver; here they become one Trio stream,
which the driver's :class:`~weft.drivers.trio._transport.TrioTransport`
then runs:

* one socket as both (inetd's stdin and stdout, a socketpair's end): a
  ``trio.SocketStream``, which half-closes with ``shutdown``;
* one other descriptor as both (a terminal, a PTY's master): a
  ``trio.lowlevel.FdStream``, which cannot half-close;
* two descriptors: a :class:`PipePair`, a ``trio.abc.HalfCloseableStream``
  over a ``FdStream`` each way, whose ``send_eof`` ends the output (a
  socket's ``shutdown``, or dropping the pipe: for a pipe, the last
  reference going away is the only EOF there is).

A regular file or ``/dev/null`` works too, with no special path: Trio's
``FdStream`` reads and writes first and waits for readiness only on
``EAGAIN``, which a file never gives.  A directory is an ArgumentError.

What becomes of the descriptors at the end is the reactor's rule: with
``close_fds`` the stream owns them and closes them; without, it works on
duplicates, the caller's numbers stay open and get their blocking mode
back (Trio's ``FdStream`` restores it on close, and ``O_NONBLOCK`` belongs
to the open file the duplicates share), and a write descriptor that
``write_eof`` ended is pointed at ``/dev/null`` so that the pipe is let go.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from typing import Any

import trio

from weft.drivers._core.pipe_descriptors import point_at_devnull, shut_down_output, socket_names
from weft.protocols.errors import ArgumentError

__all__ = ["PipePair", "close_unstarted", "pipe_stream"]


class PipePair(trio.abc.HalfCloseableStream):
    """A Trio stream reading one descriptor and writing another (see the module docstring).

    ``keep_write_fd``: the caller's write descriptor, left open, which
    ``send_eof`` points at ``/dev/null`` (None when the stream owns it).
    """

    def __init__(
        self, receive: trio.lowlevel.FdStream, send: trio.lowlevel.FdStream, *, keep_write_fd: int | None
    ) -> None:
        self._receive = receive
        self._send = send
        self._keep_write_fd = keep_write_fd
        self._write_is_socket = _is_socket(send.fileno())
        self._output_ended = False

    def output_fileno(self) -> int:
        """The descriptor written to (-1 once closed): for ``write_file``'s ``sendfile``."""
        return self._send.fileno()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Write all of ``data`` (Trio's ``FdStream.send_all``)."""
        if self._output_ended:
            raise trio.ClosedResourceError("the output was ended (send_eof)")
        await self._send.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """Until the write descriptor is writable."""
        await self._send.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """What the read descriptor has, up to ``max_bytes``; ``b""`` at EOF."""
        return await self._receive.receive_some(max_bytes)

    async def send_eof(self) -> None:
        """End the output: ``shutdown`` a socket, drop a pipe (see the module docstring)."""
        await trio.lowlevel.checkpoint()
        if self._output_ended:
            return
        self._output_ended = True
        if self._write_is_socket:
            shut_down_output(self._send.fileno())
            return
        self._send.close()
        if self._keep_write_fd is not None:
            # The caller keeps the number; only the pipe is let go.
            with contextlib.suppress(OSError):
                point_at_devnull(self._keep_write_fd)

    async def aclose(self) -> None:
        """Close both descriptors (or the duplicates: see the module docstring)."""
        self.close()
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        """Close both descriptors now."""
        self._send.close()
        self._receive.close()


def pipe_stream(
    read_fd: int, write_fd: int, *, close_fds: bool
) -> tuple[trio.abc.Stream, dict[str, Any], bool]:
    """A Trio stream over ``read_fd`` and ``write_fd``, its extra info, and whether it can half-close.

    Raises ArgumentError for a directory, ``OSError`` for a descriptor that
    is not open; nothing is changed then.
    """
    read_mode = _mode(read_fd)
    if write_fd != read_fd:
        _mode(write_fd)  # ArgumentError for a directory, before anything changes
    names = socket_names(read_fd, write_fd) or {
        "sockname": ("pipe", read_fd, write_fd),
        "peername": ("pipe", "peer"),
    }
    extra: dict[str, Any] = {"pipe": (read_fd, write_fd), **names}

    def owned(fd: int) -> int:
        return fd if close_fds else os.dup(fd)

    if read_fd == write_fd:
        if stat.S_ISSOCK(read_mode):
            sock = socket.socket(fileno=owned(read_fd))
            sock.setblocking(False)
            return trio.SocketStream(trio.socket.from_stdlib_socket(sock)), extra, True
        return trio.lowlevel.FdStream(owned(read_fd)), extra, False
    receive = trio.lowlevel.FdStream(owned(read_fd))
    send = trio.lowlevel.FdStream(owned(write_fd))
    return PipePair(receive, send, keep_write_fd=None if close_fds else write_fd), extra, True


def close_unstarted(stream: trio.abc.Stream) -> None:
    """Close a stream :func:`pipe_stream` made for a connection that never started."""
    if isinstance(stream, trio.SocketStream):
        stream.socket.close()
    elif isinstance(stream, (PipePair, trio.lowlevel.FdStream)):
        stream.close()


def _mode(fd: int) -> int:
    mode = os.fstat(fd).st_mode
    if stat.S_ISDIR(mode):
        raise ArgumentError(
            f"file descriptor {fd} is a directory: it can be neither read nor written as a stream"
        )
    return mode


def _is_socket(fd: int) -> bool:
    return stat.S_ISSOCK(os.fstat(fd).st_mode)

"""What ``connect_pipes`` does to the descriptors it is given, the same on every driver.

A driver that runs a protocol over two file descriptors (stdio, pipes, a socket
inetd handed over as stdin) names the transport after the socket when one of
them is a socket, tells the peer of such a socket that output has ended, and,
when it is done with a descriptor it must not close, keeps the number taken by
pointing it at ``/dev/null`` (so that a later ``open`` cannot reuse the number
under code that still writes to it).
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from typing import Any, Literal

from weft.drivers._core.socket_defaults import name_or_none

__all__ = ["FdsAtEnd", "PipeEnds", "point_at_devnull", "shut_down_output", "socket_names"]

#: What a pipe transport does with its descriptors when the connection ends:
#: close them (it owns them), keep them open in the blocking mode they had
#: (the caller owns them), or release them (stdio: each pointed at /dev/null).
FdsAtEnd = Literal["close", "keep", "release"]


def socket_names(*fds: int) -> dict[str, Any] | None:
    """``sockname`` and ``peername`` of the first of ``fds`` that is a socket; ``None`` if none is."""
    for fd in fds:
        if stat.S_ISSOCK(os.fstat(fd).st_mode):
            # A duplicate to build the socket object on: closing it leaves ``fd`` alone.
            with socket.socket(fileno=os.dup(fd)) as sock:
                return {
                    "sockname": name_or_none(sock.getsockname),
                    "peername": name_or_none(sock.getpeername),
                }
    return None


def shut_down_output(fd: int) -> None:
    """Shut down the sending side of the socket behind ``fd``, which other descriptors may share."""
    # A duplicate to build the socket object on: closing it leaves ``fd`` alone.
    with socket.socket(fileno=os.dup(fd)) as sock, contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)  # OSError: the peer is gone already


def point_at_devnull(fd: int) -> None:
    """Close the file behind ``fd`` but keep the number taken, by /dev/null."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(null, fd, inheritable=os.get_inheritable(fd))
    finally:
        os.close(null)


class PipeEnds:
    """The descriptors of one pipe transport, and what becomes of them (``at_end``).

    ``end_output`` is ``write_eof``'s last step, once the queue is empty: a
    socket is shut down for writing, a pipe closed or pointed at /dev/null.
    ``close`` runs when the connection ends.
    """

    def __init__(self, read_fd: int, write_fd: int, at_end: FdsAtEnd) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.at_end = at_end
        self.fds = [read_fd] if read_fd == write_fd else [read_fd, write_fd]
        self.was_blocking = {fd: os.get_blocking(fd) for fd in self.fds}
        self.write_is_socket = stat.S_ISSOCK(os.fstat(write_fd).st_mode)
        # A socket half-closes with shutdown() whatever else holds it; a pipe
        # only by dropping its write end, which needs an fd of its own.
        self.can_end_output = self.write_is_socket or read_fd != write_fd
        self.output_ended = False
        # write_fd was closed, or replaced by /dev/null, by end_output.
        self.write_fd_gone = False

    def make_non_blocking(self) -> None:
        for fd in self.fds:
            os.set_blocking(fd, False)

    def end_output(self) -> None:
        """Send EOF: the queue is empty and ``write_eof`` was called."""
        if self.output_ended:
            return
        self.output_ended = True
        if self.write_is_socket:
            shut_down_output(self.write_fd)
            return
        self.write_fd_gone = True
        with contextlib.suppress(OSError):  # closed under us: nothing left to end
            if self.at_end == "close":
                os.close(self.write_fd)
            else:
                # The caller keeps the number; only the pipe is let go.
                os.set_blocking(self.write_fd, self.was_blocking[self.write_fd])
                point_at_devnull(self.write_fd)

    def close(self) -> None:
        """The connection ended: close, restore or release each descriptor."""
        for fd in self.fds:
            if fd == self.write_fd and self.write_fd_gone:
                continue
            with contextlib.suppress(OSError):  # closed under us: nothing left to do
                if self.at_end == "close":
                    os.close(fd)
                    continue
                os.set_blocking(fd, self.was_blocking[fd])
                if self.at_end == "release":
                    if fd == self.write_fd and self.write_is_socket and not self.output_ended:
                        # Other descriptors may hold the socket (inetd gives
                        # it as stderr too): only a shutdown tells the peer.
                        shut_down_output(fd)
                    point_at_devnull(fd)

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
from typing import Any

from weft.drivers._core.socket_defaults import name_or_none

__all__ = ["point_at_devnull", "shut_down_output", "socket_names"]


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

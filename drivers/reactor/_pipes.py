"""Pipes and stdio on the reactor: a protocol over file descriptors that read() and write().

:func:`connect_pipes` runs a protocol over any two descriptors (pipe ends, a
terminal, a regular file, ``/dev/null``, a socket inherited as stdin);
:func:`connect_stdio` over this process's stdin and stdout.  The transport is
the reactor's :class:`~weft.drivers.reactor._descriptor_transport.DescriptorTransport` with
``read``/``write``/``writev`` as its system calls, since a pipe cannot
``recv``.  A regular file or ``/dev/null``, which epoll refuses, is served by
the reactor's always-ready path (see https://github.com/weft-project/weft/blob/main/docs/processes.md).

What becomes of the descriptors when the connection ends is decided once,
by whoever asks for the transport (:data:`FdsAtEnd`):

``"close"``
    the transport owns them and closes them;
``"keep"``
    the caller owns them: they stay open, back in the blocking mode they had
    (``O_NONBLOCK`` belongs to the open file, which a terminal shares with
    the shell: left set, it makes the next program to read it fail);
``"release"``
    (stdio) each is pointed at ``/dev/null``: the stream is closed, so the
    peer sees EOF, yet the number stays taken, so a later ``open()`` cannot
    land on fd 0 or 1 and a stray ``print()`` cannot write into some
    unrelated file or socket.

``write_eof`` ends the output: a socket is shut down for writing; a pipe is
closed if the transport owns it, otherwise pointed at ``/dev/null`` (for a
pipe, the last reference going away is the only EOF there is).  A single
descriptor that is not a socket (a terminal, a PTY's master) cannot
half-close.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from weft.drivers._core import accelerator
from weft.drivers._core.child_processes import ReadOnly
from weft.drivers._core.pipe_descriptors import FdsAtEnd, PipeEnds, socket_names
from weft.drivers.reactor._descriptor_transport import DescriptorTransport

if TYPE_CHECKING:
    from weft.drivers.reactor._plumbing import TransportLoop

__all__ = [
    "STDIN",
    "STDOUT",
    "FdsAtEnd",
    "ReadPipeTransport",
    "connect_pipes",
    "connect_stdio",
    "pipe_transport",
]

#: This process's standard input and output.
STDIN, STDOUT = 0, 1


class ReadPipeTransport(ReadOnly, DescriptorTransport):
    """The reactor's transport for a descriptor it only reads (a child's stderr)."""

    __slots__ = ()


def connect_pipes(
    reactor: TransportLoop, factory: Callable[[], Any], read_fd: int, write_fd: int, *, close_fds: bool = True
) -> DescriptorTransport:
    """Run a protocol from ``factory`` over ``read_fd`` and ``write_fd``; ``connection_made`` runs now.

    With ``close_fds`` the transport closes them when the connection ends;
    without, they are left open, in the blocking mode they had.
    """
    protocol = factory()
    transport = pipe_transport(reactor, protocol, read_fd, write_fd, at_end="close" if close_fds else "keep")
    transport.start()
    return transport


def connect_stdio(reactor: TransportLoop, factory: Callable[[], Any]) -> DescriptorTransport:
    """Run a protocol from ``factory`` over this process's stdin and stdout (inetd style).

    When the connection ends, stdin and stdout are released (pointed at
    ``/dev/null``): the peer sees EOF, and fds 0 and 1 stay valid.
    ``write_eof`` releases stdout alone.
    """
    # Whatever print() left in Python's buffer belongs before the protocol's bytes.
    if sys.stdout is not None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
    protocol = factory()
    transport = pipe_transport(reactor, protocol, STDIN, STDOUT, at_end="release")
    transport.start()
    return transport


def pipe_transport(
    reactor: TransportLoop,
    protocol: Any,
    read_fd: int,
    write_fd: int,
    *,
    at_end: FdsAtEnd,
    extra: dict[str, Any] | None = None,
    pty: bool = False,
    transport_class: Callable[..., DescriptorTransport] | None = None,
) -> DescriptorTransport:
    """A transport reading ``read_fd`` and writing ``write_fd`` (the same fd for a PTY).

    The descriptors are made non-blocking now; ``at_end`` says what becomes
    of them (see the module docstring).  On a PTY's master, ``EIO`` from
    ``read`` is the EOF it means, and there is no half-close.
    """
    ends = PipeEnds(read_fd, write_fd, at_end)
    names = socket_names(read_fd, write_fd) or {
        "sockname": ("pipe", read_fd, write_fd),
        "peername": ("pipe", "peer"),
    }
    # Last, after everything that can fail: a refused fd keeps its mode.
    ends.make_non_blocking()
    # The C accelerator's calls, or os's (a regular file always gets os's).
    recv, send = accelerator.stream_calls(read_fd, write_fd)
    make: Callable[..., DescriptorTransport] = (
        reactor.stream_transport_class if transport_class is None else transport_class
    )
    return make(
        reactor,
        protocol,
        read_fd=read_fd,
        write_fd=write_fd,
        recv=recv,
        send=send,
        sendv=partial(os.writev, write_fd),
        extra={"pipe": (read_fd, write_fd), **names, **(extra or {})},
        close=ends.close,
        half_close=ends.end_output if ends.can_end_output and not pty else None,
        eio_is_eof=pty,
    )


def _is_socket(fd: int) -> bool:
    return stat.S_ISSOCK(os.fstat(fd).st_mode)

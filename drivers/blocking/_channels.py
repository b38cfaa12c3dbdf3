"""The blocking system calls one connection makes, and how to interrupt them.

A *channel* is what a :class:`~weft.drivers.blocking._transport.ThreadedTransport`'s
reader and writer threads call: ``recv`` blocks until bytes (or EOF) come,
``send_all`` until every byte is taken.  The transport interrupts them to end
the connection:

* a socket is blocking; ``shutdown(SHUT_RD)`` wakes a blocked ``recv``
  without sending the peer anything, ``shutdown(SHUT_WR)`` wakes a blocked
  send too (an abort, which then closes with ``SO_LINGER`` 0 so a TCP peer
  gets a reset);
* a pipe cannot be woken that way, so each call first waits in ``poll`` on
  the descriptor and on a wake-up pipe of the channel's own, and pipe writes
  go ``PIPE_BUF`` bytes at a time, which a writable pipe always takes whole:
  the descriptors keep the blocking mode they had.

A channel also sends a :class:`~weft.protocols.contract.FileRegion`
(:meth:`Channel.send_file`): a socket straight from the file with
``os.sendfile``, a pipe by reading the file a piece at a time (pipe writes
go through ``poll`` so that they can be interrupted, which a ``sendfile``
blocked on a pipe could not be).  And it records when bytes last moved
either way (:attr:`last_io`), for the idle timeout.

Descriptors are closed only once both threads have left them (the transport
sees to it), so a number is never reused under a thread still using it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import stat
import time
from typing import Any, Protocol

from weft.drivers._core.socket_defaults import LINGER_ZERO, name_or_none
from weft.protocols.contract import FileRegion

__all__ = ["Channel", "PipeChannel", "SocketChannel"]


# What os.sendfile raises when it cannot send from this file to this
# socket (a file system without the support, an odd descriptor): the
# region is then read and sent instead, and sendfile is not tried again.
_SENDFILE_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSOCK}

_monotonic = time.monotonic


class Channel(Protocol):
    """The blocking calls of one connection."""

    #: When bytes last moved either way (``time.monotonic``), written by the
    #: I/O threads after each call that moved some.
    last_io: float

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes, ``b""`` at EOF (or once woken); raises OSError."""
        ...

    def send_all(self, data: bytes | memoryview) -> None:
        """Send every byte, blocking as long as it takes; raises OSError."""

    def send_file(self, region: FileRegion, size: int) -> int:
        """Send up to ``size`` of ``region``'s next bytes (at least one), move
        the region past them, and return how many; raises OSError (a file that
        ended early included)."""
        ...

    def can_half_close(self) -> bool:
        """Whether :meth:`half_close` is possible."""
        ...

    def half_close(self) -> None:
        """Send EOF (the writer calls it once its queue is empty)."""

    def wake_reader(self) -> None:
        """Make a blocked :meth:`recv` return."""

    def wake_all(self, *, writer_busy: bool) -> None:
        """Make every blocked call return, to abort (``writer_busy``: a send may be blocked)."""

    def close(self, *, reset: bool) -> None:
        """Release the descriptors (``reset``: a TCP peer gets a reset)."""


class SocketChannel:
    """A connected stream socket, in blocking mode."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        self.sock = sock
        self.last_io = _monotonic()
        self._sendfile = True  # until the kernel says it cannot

    def recv(self, size: int) -> bytes:
        """``sock.recv``."""
        data = self.sock.recv(size)
        self.last_io = _monotonic()
        return data

    def send_all(self, data: bytes | memoryview) -> None:
        """``sock.sendall``."""
        self.sock.sendall(data)
        self.last_io = _monotonic()

    def send_file(self, region: FileRegion, size: int) -> int:
        """``os.sendfile`` from the region's file (or, where the kernel cannot, ``pread`` and send)."""
        size = min(size, len(region))
        if self._sendfile:
            try:
                sent = os.sendfile(self.sock.fileno(), region.fileno(), region.offset, size)
            except OSError as exc:
                if exc.errno not in _SENDFILE_UNSUPPORTED:
                    raise
                self._sendfile = False
            else:
                region.consumed(sent)  # 0 with bytes left: the file ended early (OSError)
                self.last_io = _monotonic()
                return sent
        data = region.read(size)
        self.send_all(data)
        return len(data)

    def can_half_close(self) -> bool:
        """A socket always can."""
        return True

    def half_close(self) -> None:
        """``shutdown(SHUT_WR)``."""
        with contextlib.suppress(OSError):  # the peer is gone: reading will tell
            self.sock.shutdown(socket.SHUT_WR)

    def wake_reader(self) -> None:
        """``shutdown(SHUT_RD)``: sends nothing to the peer."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RD)

    def wake_all(self, *, writer_busy: bool) -> None:
        """``SO_LINGER`` 0 on TCP, then ``shutdown(SHUT_RD)``, and ``SHUT_WR`` only if a send
        may be blocked: an idle socket then sends its peer nothing but the reset
        that closing it sends, not a FIN first."""
        self._linger_zero()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR if writer_busy else socket.SHUT_RD)

    def close(self, *, reset: bool) -> None:
        """Close; with ``reset``, a TCP peer gets RST rather than FIN."""
        if reset:
            self._linger_zero()
        self.sock.close()

    def _linger_zero(self) -> None:
        if self.sock.family in (socket.AF_INET, socket.AF_INET6) and self.sock.fileno() >= 0:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)


class PipeChannel:
    """Two descriptors (pipe ends, stdio, a socketpair end as both), read and
    written with ``poll`` first so that :meth:`wake_all` can interrupt them.

    With ``close_fds`` they are closed at the end; otherwise they are left
    open.  ``half_close`` shuts a socket down for writing, or closes the
    write end (points it at ``/dev/null`` when the caller keeps it).
    """

    def __init__(self, read_fd: int, write_fd: int, *, close_fds: bool, eio_is_eof: bool = False) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.close_fds = close_fds
        # A PTY's master reads EIO once the other side is gone: that is EOF.
        self.eio_is_eof = eio_is_eof
        self.write_is_socket = stat.S_ISSOCK(os.fstat(write_fd).st_mode)
        # One wake-up pipe per thread: closing stops the reader at once
        # while the writer flushes on.
        self._reader_wake = os.pipe()
        self._writer_wake = os.pipe()
        self._write_gone = False
        self.last_io = _monotonic()

    @staticmethod
    def _wait(fd: int, events: int, wake: int) -> bool:
        """Wait until ``fd`` is ready; False if woken instead."""
        poller = select.poll()
        poller.register(fd, events)
        poller.register(wake, select.POLLIN)
        while True:
            ready = dict(poller.poll())
            if wake in ready:
                return False
            if fd in ready:
                return True

    def recv(self, size: int) -> bytes:
        """Wait for readability, then ``os.read``."""
        if not self._wait(self.read_fd, select.POLLIN, self._reader_wake[0]):
            return b""
        try:
            data = os.read(self.read_fd, size)
        except OSError as exc:
            if self.eio_is_eof and exc.errno == errno.EIO:
                return b""
            raise
        self.last_io = _monotonic()
        return data

    def send_all(self, data: bytes | memoryview) -> None:
        """Write ``PIPE_BUF`` bytes at a time, each once the descriptor is writable."""
        view = memoryview(data)
        while view:
            if not self._wait(self.write_fd, select.POLLOUT, self._writer_wake[0]):
                raise OSError(errno.ECANCELED, "the connection was aborted")
            sent = os.write(self.write_fd, view[: select.PIPE_BUF])
            view = view[sent:]
            self.last_io = _monotonic()

    def send_file(self, region: FileRegion, size: int) -> int:
        """Read up to ``size`` bytes of the region (``pread``) and send them as :meth:`send_all` does."""
        data = region.read(size)
        self.send_all(data)
        return len(data)

    def can_half_close(self) -> bool:
        """A socket can; a pipe can when its write end is a descriptor of its own."""
        return self.write_is_socket or self.read_fd != self.write_fd

    def half_close(self) -> None:
        """Shut the socket down for writing, or let the pipe's write end go."""
        if self.write_is_socket:
            with socket.socket(fileno=os.dup(self.write_fd)) as sock, contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
            return
        self._write_gone = True
        with contextlib.suppress(OSError):
            if self.close_fds:
                os.close(self.write_fd)
            else:
                null = os.open(os.devnull, os.O_RDWR)
                try:
                    os.dup2(null, self.write_fd, inheritable=os.get_inheritable(self.write_fd))
                finally:
                    os.close(null)

    def wake_reader(self) -> None:
        """Write to the reader's wake-up pipe."""
        with contextlib.suppress(OSError):
            os.write(self._reader_wake[1], b"\0")

    def wake_all(self, *, writer_busy: bool) -> None:
        """Write to both wake-up pipes."""
        del writer_busy
        self.wake_reader()
        with contextlib.suppress(OSError):
            os.write(self._writer_wake[1], b"\0")

    def close(self, *, reset: bool) -> None:
        """Close the wake-up pipes, and the descriptors if they are ours."""
        del reset  # no reset on a pipe
        for fd in (*self._reader_wake, *self._writer_wake):
            os.close(fd)
        if not self.close_fds:
            return
        for fd in {self.read_fd, self.write_fd}:
            if fd == self.write_fd and self._write_gone:
                continue
            with contextlib.suppress(OSError):
                os.close(fd)


def channel_names(channel: Any) -> dict[str, Any]:
    """``sockname`` and ``peername`` for a transport's extra info."""
    if isinstance(channel, SocketChannel):
        return {
            "socket": channel.sock,
            "sockname": name_or_none(channel.sock.getsockname),
            "peername": name_or_none(channel.sock.getpeername),
        }
    for fd in (channel.read_fd, channel.write_fd):
        if stat.S_ISSOCK(os.fstat(fd).st_mode):
            with socket.socket(fileno=os.dup(fd)) as sock:
                return {
                    "sockname": name_or_none(sock.getsockname),
                    "peername": name_or_none(sock.getpeername),
                    "pipe": (channel.read_fd, channel.write_fd),
                }
    return {
        "sockname": ("pipe", channel.read_fd, channel.write_fd),
        "peername": ("pipe", "peer"),
        "pipe": (channel.read_fd, channel.write_fd),
    }


"""Connections a full listener refuses, on its accept thread, without a thread of their own.

When a :class:`~weft.drivers.blocking._sockets.BlockingListener`'s pool is full, its
accept thread goes on accepting, and each connection over the bound gets
the listener's *busy reply* at once (``503 Service Unavailable``, ``ERR
server busy``: see :mod:`weft.drivers._core.connection_limit`).  Everything here
is non-blocking and runs on that one thread, which polls the refused
sockets along with the listening ones:

1. the reply is sent with one non-blocking ``send`` (a fresh socket's send
   buffer takes a small reply whole);
2. the socket is half-closed, so the client reads the reply and an EOF;
3. it *lingers*: what the client still sends is read and discarded, until
   its EOF or for :data:`~weft.drivers._core.connection_limit.BUSY_LINGER`
   seconds, and only then is it closed.  Closing at once, with the client's
   request unread, would make the kernel send a reset that can destroy the
   reply before the client reads it.

At most :data:`~weft.drivers._core.connection_limit.MAX_LINGERING` sockets linger
at once; past that a refused socket is closed right after its reply.
"""

from __future__ import annotations

import contextlib
import math
import select
import socket
import time
from collections import deque
from collections.abc import Callable

from weft.drivers._core.connection_limit import BUSY_LINGER, MAX_LINGERING

__all__ = ["Refusals"]

# Read per readiness event from a lingering client, and thrown away.
_DISCARD_SIZE = 64 * 1024

_READABLE = select.POLLIN | select.POLLPRI


class Refusals:
    """The refused sockets of one accept thread, lingering until their clients are done.

    ``poller`` is the accept thread's own: lingering sockets are registered
    on it, and the thread hands their readiness to :meth:`readable`, waits
    no longer than :meth:`poll_timeout`, and calls :meth:`expire` after
    each wait.
    """

    def __init__(
        self,
        poller: select.poll,
        reply: bytes | None,
        *,
        linger: float = BUSY_LINGER,
        max_lingering: int = MAX_LINGERING,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._poller = poller
        self.reply = reply
        self.linger = linger
        self.max_lingering = max_lingering
        self._now = now
        self._lingering: dict[int, socket.socket] = {}
        # (deadline, socket) in the order they were refused, which is
        # deadline order: every socket lingers equally long.  A socket that
        # ended early stays here until its turn, and is then skipped.
        self._deadlines: deque[tuple[float, socket.socket]] = deque()

    def __len__(self) -> int:
        """How many refused sockets linger now."""
        return len(self._lingering)

    def __contains__(self, fd: object) -> bool:
        return fd in self._lingering

    def refuse(self, sock: socket.socket) -> None:
        """Send the reply on a socket just accepted, half-close it, and let it linger."""
        try:
            sock.setblocking(False)
            if self.reply:
                sock.send(self.reply)
            lingers = bool(self.reply) and self.linger > 0 and len(self._lingering) < self.max_lingering
            if not lingers:
                _discard_ready(sock)  # what came already would otherwise turn the close into a reset
                sock.close()
                return
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the client is gone already
            sock.close()
            return
        fd = sock.fileno()
        self._lingering[fd] = sock
        self._poller.register(fd, _READABLE)
        self._deadlines.append((self._now() + self.linger, sock))

    def readable(self, fd: int) -> None:
        """The lingering socket ``fd`` has bytes (discarded), its EOF, or an error (then it is closed)."""
        sock = self._lingering.get(fd)
        if sock is None:
            return
        try:
            ended = not sock.recv(_DISCARD_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            ended = True
        if ended:
            self._release(sock)

    def poll_timeout(self) -> int | None:
        """Milliseconds until the next socket's lingering is over (None: none lingers)."""
        self._skip_ended()
        if not self._deadlines:
            return None
        return max(0, math.ceil((self._deadlines[0][0] - self._now()) * 1000))

    def expire(self) -> None:
        """Close every socket whose lingering is over."""
        now = self._now()
        while self._deadlines and self._deadlines[0][0] <= now:
            _deadline, sock = self._deadlines.popleft()
            self._release(sock)

    def close(self) -> None:
        """Close every lingering socket now."""
        for sock in list(self._lingering.values()):
            self._release(sock)
        self._deadlines.clear()

    def _skip_ended(self) -> None:
        while self._deadlines and self._deadlines[0][1].fileno() < 0:
            self._deadlines.popleft()

    def _release(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if fd < 0 or self._lingering.get(fd) is not sock:
            return  # closed already
        del self._lingering[fd]
        with contextlib.suppress(KeyError, ValueError):
            self._poller.unregister(fd)
        sock.close()


def _discard_ready(sock: socket.socket) -> None:
    """Read (and drop) what the client has sent so far, without waiting (a
    few reads at most: a client that keeps sending gets its reset)."""
    with contextlib.suppress(OSError):
        for _ in range(4):
            if not sock.recv(_DISCARD_SIZE):
                return

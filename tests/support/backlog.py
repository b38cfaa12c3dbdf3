"""A UNIX listener whose accept backlog is full: for the tests of connecting to one."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Iterator

from tests.support import TIMEOUT


class FullBacklog:
    """A UNIX listener at ``path`` with a backlog of 0 that accepts only when
    told, its backlog filled by plain sockets (``fillers``) until a connect
    says ``EAGAIN``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(0)
        self.listener.settimeout(TIMEOUT)
        self.fillers: list[socket.socket] = []
        self.accepted: list[socket.socket] = []
        for _ in range(64):
            filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            filler.setblocking(False)
            code = filler.connect_ex(path)
            if code in (errno.EAGAIN, errno.EWOULDBLOCK):
                filler.close()
                return
            self.fillers.append(filler)
            assert code == 0, os.strerror(code)
        raise AssertionError("a backlog of 0 took 64 connections and was not full")

    def drain(self) -> None:
        """Accept what fills the backlog: there is room again."""
        for _ in self.fillers:
            self.accept()

    def accept(self) -> socket.socket:
        """The next connection waiting (the fillers first), within TIMEOUT."""
        sock, _address = self.listener.accept()
        sock.settimeout(TIMEOUT)
        self.accepted.append(sock)
        return sock

    def close(self) -> None:
        """Close every socket."""
        for sock in (*self.fillers, *self.accepted, self.listener):
            sock.close()


@contextlib.contextmanager
def full_backlog(path: str) -> Iterator[FullBacklog]:
    """A :class:`FullBacklog` at ``path``, closed afterwards."""
    backlog = FullBacklog(path)
    try:
        yield backlog
    finally:
        backlog.close()

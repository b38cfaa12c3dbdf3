"""Sockets on their way from a thread of their own to the scheduler thread.

A listener's accept thread accepts a socket and queues its start for the
scheduler thread (:meth:`~weft.drivers.blocking.BlockingRuntime.call_soon_threadsafe`),
where the protocol is made.  A runtime closed before the scheduler ran that
start drops its queue, and with it the only reference to the socket: the
socket would be closed by the garbage collector, with a ``ResourceWarning``,
whenever that comes.  :class:`SocketHandOver` keeps each socket in flight, so
that closing the runtime closes those never taken, at once; one handed over
after that is closed on arrival.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["SocketHandOver"]


class SocketHandOver:
    """The sockets handed to the scheduler thread and not taken by it yet.

    ``post`` queues a call for the scheduler thread from any thread (the
    runtime's ``call_soon_threadsafe``).
    """

    def __init__(self, post: Callable[..., Any]) -> None:
        self._post = post
        self._lock = threading.Lock()
        self._in_flight: set[socket.socket] = set()
        self._closed = False

    def send(self, sock: socket.socket, start: Callable[[socket.socket], object]) -> None:
        """(Any thread) Have ``start(sock)`` called on the scheduler thread,
        unless :meth:`close` comes first: then ``sock`` is closed instead."""
        with self._lock:
            if self._closed:
                sock.close()
                return
            self._in_flight.add(sock)
        self._post(self._take, sock, start)

    def _take(self, sock: socket.socket, start: Callable[[socket.socket], object]) -> None:
        with self._lock:
            if sock not in self._in_flight:
                return  # closed meanwhile, by close()
            self._in_flight.discard(sock)
        start(sock)

    def close(self) -> None:
        """Close every socket not taken yet, and any handed over from now on."""
        with self._lock:
            self._closed = True
            dropped, self._in_flight = self._in_flight, set()
        for sock in dropped:
            sock.close()

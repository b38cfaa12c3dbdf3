"""What every driver's listener says about its sockets, and how it lets them go.

A listener (:class:`weft.drivers._runtime.Listener`) holds the sockets
``listen_tcp`` or ``listen_unix`` bound; each driver accepts on them its own
way (a loop's readiness, a thread, a Trio task), but all report the same
``addresses``, ``port`` and ``closed``, and close the same: each socket
closed, and a UNIX socket's file removed so that the path can be bound again.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, TypeVar

from weft.drivers._core.socket_binding import remove_socket_file, tcp_port

__all__ = ["ListeningSockets", "kept_listener"]

_Listener = TypeVar("_Listener")


class ListeningSockets:
    """The listening sockets of a listener, their addresses, and whether it is closed.

    A base for the drivers' listeners: ``__init__`` calls :meth:`_keep_sockets`,
    ``close`` sets ``_closed`` and calls :meth:`_close_sockets` once it has
    stopped accepting.
    """

    #: The listening sockets.
    sockets: list[socket.socket]
    _addresses: list[Any]
    _closed: bool

    def _keep_sockets(self, sockets: list[socket.socket]) -> None:
        self.sockets = sockets
        # Kept: a closed socket no longer knows its name.
        self._addresses = [sock.getsockname() for sock in sockets]
        self._closed = False

    @property
    def addresses(self) -> list[Any]:
        """What each socket is bound to: ``(host, port)`` pairs, or paths."""
        return list(self._addresses)

    @property
    def port(self) -> int:
        """The TCP port (the real one when 0 was asked for)."""
        return tcp_port(self._addresses)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def _close_sockets(self) -> None:
        """Close every socket; remove the file of each one bound to a path."""
        for sock, address in zip(self.sockets, self._addresses, strict=True):
            # An abstract name (bytes) or an unnamed socket ("") has no file.
            if sock.family == socket.AF_UNIX and isinstance(address, str) and address:
                remove_socket_file(address)
            sock.close()


def kept_listener(
    make: Callable[[], _Listener], sockets: list[socket.socket], registry: set[Any]
) -> _Listener:
    """``make()``'s listener over ``sockets``, kept in its runtime's ``registry``.

    If ``make`` raises, the sockets (bound for the listener, and nobody
    else's) are closed before the error goes on.  (``registry`` is typed
    loosely: seen through a host protocol a runtime's set may be ``Any``,
    and the listener's type is ``make``'s.)
    """
    try:
        listener = make()
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    registry.add(listener)
    return listener

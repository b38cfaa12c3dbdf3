"""Listening sockets, bound synchronously: what every driver's ``listen_*`` starts from.

Binding is done here, before any event loop is involved, so that a port in
use or an unknown host raises ``OSError`` from the ``listen_*`` call itself,
whatever the driver (asyncio's ``create_server`` is a coroutine and would
only report it later).  The sockets come back listening and non-blocking;
the driver then accepts on them its own way.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from typing import Any

from weft.protocols.errors import ArgumentError

__all__ = [
    "DEFAULT_BACKLOG",
    "bind_tcp",
    "bind_unix",
    "format_address",
    "remove_socket_file",
    "tcp_port",
    "unique_addresses",
]

#: Connections the kernel holds for a listener that has not accepted them yet.
DEFAULT_BACKLOG = 1024


def bind_tcp(host: str | None, port: int, *, backlog: int = DEFAULT_BACKLOG) -> list[socket.socket]:
    """Listening sockets for every address ``host`` resolves to (all interfaces
    for ``None`` or ``""``), IPv4 and IPv6 alike, on one port (a free one for 0).

    Raises ``OSError`` (a port in use, an unknown host) with nothing left open.
    """
    infos = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_ADDRCONFIG
    )
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in unique_addresses(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                # One socket per family: without this, binding :: would take
                # the IPv4 port too and the 0.0.0.0 socket would fail.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                # The same free port for every address.
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def bind_unix(path: str, *, backlog: int = DEFAULT_BACKLOG) -> socket.socket:
    """A listening UNIX-domain socket at ``path``.

    A stale socket file left by a dead server is replaced; a live server
    there is ``OSError(EADDRINUSE)``; any other file is ``FileExistsError``,
    never overwritten.
    """
    remove_socket_file(path, only_stale=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def remove_socket_file(path: str, *, only_stale: bool = False, kind: int = socket.SOCK_STREAM) -> None:
    """Remove the UNIX-domain socket file at ``path``, if that is what it is.

    With ``only_stale``, a socket still bound there (probed by connecting a
    socket of ``kind``: a stream listener, or a datagram endpoint) is
    ``OSError(EADDRINUSE)`` and a file that is not a socket ``FileExistsError``.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        if only_stale:
            raise FileExistsError(errno.EEXIST, "a file that is not a socket is in the way", path)
        return
    if only_stale:
        probe = socket.socket(socket.AF_UNIX, kind)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            pass  # nobody bound there: stale
        except OSError as exc:
            if exc.errno != errno.EPROTOTYPE:
                raise
            raise OSError(errno.EADDRINUSE, "a socket of another type is bound there", path) from None
        else:
            live = "a server is listening there" if kind == socket.SOCK_STREAM else "a socket is bound there"
            raise OSError(errno.EADDRINUSE, live, path)
        finally:
            probe.close()
    os.unlink(path)


def unique_addresses(infos: list[Any]) -> list[Any]:
    """getaddrinfo's answers without repeats of the same family and address."""
    seen, unique = set(), []
    for info in infos:
        key = (info[0], info[4][:2])
        if key not in seen:
            seen.add(key)
            unique.append(info)
    return unique


def tcp_port(addresses: list[Any]) -> int:
    """The port of a listener bound to ``addresses`` (what ``getsockname()``
    gave for each socket); ArgumentError for a UNIX-socket listener."""
    for address in addresses:
        if isinstance(address, tuple):
            return int(address[1])
    raise ArgumentError("not a TCP listener")


def format_address(address: Any) -> str:
    """``127.0.0.1:8000``, ``[::1]:8000``, or a UNIX socket's path."""
    if isinstance(address, tuple):
        host, port = str(address[0]), address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(address, bytes):
        return repr(address)
    text = str(address)
    # An abstract UNIX address starts with a NUL byte, which no terminal shows.
    return repr(text) if text.startswith("\0") else text

"""Connecting to a name: each address it resolves to in turn, the lookup in a thread.

The reactor's ``connect_tcp`` and the Twisted driver's make their attempts
differently (a non-blocking ``connect`` the reactor watches; Twisted's
``connectTCP``), but around the attempts they do the same: a literal address
is tried at once and a name is looked up in a thread (``getaddrinfo``
blocks), each address is tried in turn, and when none is left the connect
fails with the last address's error, the target named in the message.
:class:`AddressByAddress` is that part; a subclass makes the attempt
(:meth:`~AddressByAddress._attempt`) and fails the connect (:meth:`~AddressByAddress.fail`).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
from collections.abc import Callable
from typing import Any

from weft.drivers._core.futures import Future
from weft.drivers._core.socket_binding import unique_addresses

__all__ = ["AddressByAddress"]

#: ``(family, address)``: one address to try, as ``socket.connect`` takes it.
Address = tuple[int, Any]


class AddressByAddress:
    """One connect, to the addresses of ``target`` in turn (see the module docstring).

    A subclass sets ``result``, the future the connect settles.
    """

    result: Future[Any]

    def __init__(self, call_soon_threadsafe: Callable[..., object], target: str) -> None:
        self._call_soon_threadsafe = call_soon_threadsafe
        #: ``host:port`` or a path: what the error messages name.
        self.target = target
        self.addresses: list[Address] = []
        #: Each failed address's error, in order.
        self.errors: list[OSError] = []

    def start_tcp(self, host: str, port: int) -> None:
        """Try ``host:port`` at once if ``host`` is an IP address, else look it up first."""
        if _is_literal(host):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.try_addresses([(family, (host, port))])
        else:
            self.resolve(host, port)

    def start_unix(self, path: str) -> None:
        """Try the UNIX-domain socket at ``path``."""
        self.try_addresses([(socket.AF_UNIX, path)])

    def resolve(self, host: str, port: int) -> None:
        """Look ``host`` up in a thread, then try what it resolves to (or fail with the lookup's error)."""
        call_soon_threadsafe = self._call_soon_threadsafe

        def lookup() -> None:
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                call_soon_threadsafe(self.fail, exc)
            else:
                found = [(info[0], info[4]) for info in unique_addresses(infos)]
                call_soon_threadsafe(self.try_addresses, found)

        threading.Thread(target=lookup, name=f"weft-resolve-{host}", daemon=True).start()

    def try_addresses(self, addresses: list[Address]) -> None:
        """Try each of ``addresses`` in turn (unless the connect is over already)."""
        if self.result.done():
            return
        self.addresses = addresses
        self.next_address()

    def next_address(self) -> None:
        """Try the next address; with none left, fail with the last one's error."""
        if not self.addresses:
            last = self.errors[-1] if self.errors else OSError(errno.EADDRNOTAVAIL, "no address")
            # OSError(errno, ...) builds the matching subclass (ConnectionRefusedError...).
            self.fail(OSError(last.errno, f"cannot connect to {self.target}: {last.strerror}"))
            return
        family, address = self.addresses.pop(0)
        self._attempt(family, address)

    def timeout_error(self, timeout: float) -> TimeoutError:
        """The error of a connect that ran out of time."""
        return TimeoutError(errno.ETIMEDOUT, f"cannot connect to {self.target}: no answer in {timeout:g} s")

    def _attempt(self, family: int, address: Any) -> None:
        """Start connecting to ``address``; on failure, record the error and call :meth:`next_address`."""
        raise NotImplementedError

    def fail(self, error: BaseException) -> None:
        """End the connect with ``error``."""
        raise NotImplementedError


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True

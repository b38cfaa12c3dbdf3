"""What every driver's datagram endpoints share: the rules of ``sendto``, the sizes, the errors.

Each driver moves datagrams its own way (the reactor from its poller, the
blocking driver from a thread, asyncio through its own transport, the
memory driver through an in-memory network); what ``sendto`` accepts, and
what it raises, is decided here once so that they cannot drift apart:

* ``data`` must be bytes-like (``TypeError`` otherwise, as everywhere in
  Python), and is copied unless it is ``bytes``: a ``bytearray`` may change
  after ``sendto`` returns, and a datagram that waits must not;
* a datagram over the largest one the endpoint's family can carry raises
  :class:`~weft.protocols.errors.DatagramTooLargeError` at once;
* the address: :class:`SendRules`, one per endpoint, says where a datagram
  goes (``None``: to the connected peer, with ``send``) or raises
  :class:`~weft.protocols.errors.DatagramAddressError`.  Names are refused,
  not looked up: ``socket.sendto`` would resolve one with a blocking
  ``getaddrinfo`` in the middle of the loop.

The checks cost a type test and a comparison or two per datagram.  On an
unconnected endpoint an address is checked (an ``inet_pton``, ~0.4 µs)
the first time it is seen, then found in a small table of the addresses
already checked (~0.05 µs): a server answering its clients checks each
client once.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

from weft.protocols.errors import DatagramAddressError, DatagramTooLargeError

__all__ = [
    "KNOWN_ADDRESSES",
    "MAX_UDP_IPV4",
    "MAX_UDP_IPV6",
    "UDP_READ_SIZE",
    "UNIX_READ_SIZE",
    "SendRules",
    "as_datagram",
    "datagram_error",
    "family_name",
    "max_datagram_size",
]

#: The largest UDP payload over IPv4: 65,535 less the IPv4 and UDP headers.
MAX_UDP_IPV4 = 65_507
#: The largest UDP payload over IPv6 (without jumbograms): 65,535 less the UDP header.
MAX_UDP_IPV6 = 65_527

#: What one ``recvfrom`` asks for on a UDP socket: any UDP datagram fits, and
#: the buffer stays under glibc's mmap threshold (see the reactor's READ_SIZE).
UDP_READ_SIZE = 65_536
#: ... and on a UNIX datagram socket, whose datagrams may be as large as the
#: sender's send buffer (Linux's default is 208 KiB): asyncio's read size.
#: A larger datagram is truncated by the kernel, as with asyncio.
UNIX_READ_SIZE = 256 * 1024

#: Addresses an endpoint remembers as checked; the table starts over when full.
KNOWN_ADDRESSES = 256

_NAMES: dict[int, str] = {socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6", socket.AF_UNIX: "UNIX"}


def family_name(family: int) -> str:
    """``IPv4``, ``IPv6``, ``UNIX``: for messages."""
    return _NAMES.get(family, f"family {family}")


def max_datagram_size(family: int) -> int | None:
    """The largest datagram an endpoint of ``family`` can send, when weft knows
    it (UDP); ``None`` when only the kernel does (a UNIX socket's depends on
    its send buffer)."""
    if family == socket.AF_INET:
        return MAX_UDP_IPV4
    if family == socket.AF_INET6:
        return MAX_UDP_IPV6
    return None


def as_datagram(data: Any) -> bytes:
    """``data`` as ``bytes`` (a copy of a bytearray or memoryview); TypeError
    for what is not bytes-like.  The hot path tests ``type(data) is bytes``
    itself and calls this only otherwise."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be a bytes-like object, not {type(data).__name__}")
    return bytes(data)


def datagram_error(exc: Exception, size: int | None) -> Exception:
    """What ``error_received`` is given for ``exc``, an error from sending a
    datagram of ``size`` bytes (``None``: not known): the kernel's
    ``EMSGSIZE`` becomes weft's :class:`DatagramTooLargeError` (an OSError
    with that errno still), the rest is passed on as it is."""
    if not isinstance(exc, OSError) or exc.errno != errno.EMSGSIZE or isinstance(exc, DatagramTooLargeError):
        return exc
    what = "a datagram" if size is None else f"a datagram of {size} bytes"
    error = DatagramTooLargeError(
        f"the kernel refused {what} as too large (EMSGSIZE); "
        "send smaller datagrams, or raise the socket's SO_SNDBUF",
        size=size,
        limit=None,
    )
    error.__cause__ = exc
    return error


class SendRules:
    """Where ``sendto(data, addr)`` sends, for one endpoint, or why it cannot.

    ``family`` is the endpoint's address family; ``peer`` the address of
    its peer when it has one: a connected endpoint (``connected``), or an
    unconnected one with a default destination (asyncio's ``remote_addr``
    with ``allow_broadcast``).  ``limit`` is the largest datagram (``None``:
    the kernel decides).
    """

    __slots__ = ("_known", "_peer_key", "connected", "family", "limit", "peer")

    def __init__(
        self, family: int, peer: Any = None, *, connected: bool = False, limit: int | None = None
    ) -> None:
        self.family = family
        self.peer = peer
        self.connected = connected and peer is not None
        self.limit = limit
        self._peer_key = None if peer is None else self._key(peer)
        # Addresses checked already (a dict for its fast membership test).
        self._known: dict[Any, None] = {}

    def target(self, size: int, addr: Any) -> Any:
        """The address to give ``sendto`` for a datagram of ``size`` bytes
        meant for ``addr`` (``None``: send it to the connected peer with
        ``send``).  Raises DatagramTooLargeError or DatagramAddressError."""
        limit = self.limit
        if limit is not None and size > limit:
            raise DatagramTooLargeError(
                f"a datagram of {size} bytes is over the {limit} bytes a UDP datagram over "
                f"{family_name(self.family)} can carry; split it, or send it over a stream",
                size=size,
                limit=limit,
            )
        if self.connected:
            if addr is None or addr == self.peer or self._matches_peer(addr):
                return None
            raise DatagramAddressError(
                f"sendto(): this endpoint is connected to {self.peer!r} and can send only there, "
                f"not to {addr!r}; give no address, or open an unconnected endpoint"
            )
        if addr is None:
            if self.peer is not None:
                return self.peer
            raise DatagramAddressError(
                "sendto() needs an address on an unconnected endpoint: give one, "
                "or open the endpoint with a remote address"
            )
        known = self._known
        # The port's type too: 53.0 and True equal ints, and hash like them.
        if type(addr) is tuple and len(addr) >= 2 and type(addr[1]) is int:
            try:
                if addr in known:
                    return addr
            except TypeError:  # unhashable parts: checked() says what is wrong
                return self.checked(addr)
            checked = self.checked(addr)
            if len(known) >= KNOWN_ADDRESSES:
                known.clear()
            known[checked] = None
            return checked
        return self.checked(addr)

    def checked(self, addr: Any) -> Any:
        """``addr`` if it is an address an endpoint of this family can send to
        (a path-like one as ``str``); DatagramAddressError otherwise."""
        family = self.family
        if family == socket.AF_UNIX:
            if isinstance(addr, str | bytes):
                return addr
            if isinstance(addr, os.PathLike):
                return os.fspath(addr)
            raise DatagramAddressError(
                f"sendto(): {addr!r} is no UNIX socket address; give a path (str, bytes or os.PathLike)"
            )
        if family in (socket.AF_INET, socket.AF_INET6):
            self._key(addr)
            return addr
        return addr  # another family: the kernel judges

    def _matches_peer(self, addr: Any) -> bool:
        """``addr`` names the peer in another spelling (``::1`` for
        ``0:0:0:0:0:0:0:1``, a pair for IPv6's four-tuple)."""
        if self.family not in (socket.AF_INET, socket.AF_INET6):
            return False
        try:
            return bool(self._key(addr) == self._peer_key)
        except DatagramAddressError:
            return False

    def _key(self, addr: Any) -> Any:
        """``(packed host, port)`` of an IP address; DatagramAddressError for
        anything that is not a numeric address of this family."""
        family = self.family
        if family not in (socket.AF_INET, socket.AF_INET6):
            return addr
        longest = 2 if family == socket.AF_INET else 4
        example = "('127.0.0.1', 53)" if family == socket.AF_INET else "('::1', 53)"
        if not isinstance(addr, tuple) or not 2 <= len(addr) <= longest:
            raise DatagramAddressError(
                f"sendto(): {addr!r} is no {family_name(family)} address; give a (host, port) "
                f"tuple such as {example}"
            )
        host, port = addr[0], addr[1]
        if not isinstance(host, str) or type(port) is not int or not 0 <= port <= 65535:
            raise DatagramAddressError(
                f"sendto(): {addr!r} is no {family_name(family)} address; give a (host, port) "
                f"tuple such as {example}, the port an int from 0 to 65535"
            )
        try:
            packed = socket.inet_pton(family, host.partition("%")[0])
        except OSError:
            hint = (
                "an IPv4 address on an IPv6 endpoint is written ::ffff:a.b.c.d"
                if family == socket.AF_INET6 and "." in host and ":" not in host
                else "names are not looked up here, since that would block: resolve the name first"
            )
            raise DatagramAddressError(
                f"sendto(): {host!r} is no numeric {family_name(family)} address ({hint})"
            ) from None
        return (packed, port)

"""Datagram sockets, made: what every driver's ``open_udp`` and ``open_unix_datagram`` start from.

Making an endpoint is three steps, split so that each driver can run the
one that may block (a name lookup) its own way, in a thread or in its
loop's executor:

1. :func:`udp_request` checks the arguments at once (``ArgumentError``,
   ``TypeError``) and says whether a name must be looked up;
2. :func:`udp_candidates` turns the request into ``(family, local,
   remote)`` candidates: at once for numeric addresses, with
   ``getaddrinfo`` (which blocks) for names, paired by family as asyncio's
   ``create_datagram_endpoint`` pairs them;
3. :func:`open_udp_socket` makes the socket of the first candidate that
   binds and connects: non-blocking, with ``SO_REUSEPORT`` and
   ``SO_BROADCAST`` when asked.  A remote address *connects* the socket
   (the kernel then filters what it receives to that peer, and reports
   ICMP errors), except with ``allow_broadcast``, where it is only the
   default destination, as in asyncio.

:func:`unix_datagram_socket` does the same for a UNIX datagram socket; a
stale socket file at its path is replaced, as a listener's is.

:func:`start_endpoint` is the last step, once the socket is made: the
protocol, the driver's transport over the socket, ``connection_made``, and
the future resolved.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from weft.drivers._core.socket_binding import remove_socket_file
from weft.protocols.contract import DatagramTransport
from weft.protocols.errors import ArgumentError

if TYPE_CHECKING:
    from weft.drivers._core.futures import Future

__all__ = [
    "UDPRequest",
    "UNIXPath",
    "open_udp_socket",
    "start_endpoint",
    "udp_candidates",
    "udp_request",
    "unix_datagram_socket",
    "unix_paths",
]

#: A UNIX socket's address as weft takes it: a path, or (Linux) an abstract name.
UNIXPath = str | bytes | os.PathLike[str]

#: ``(family, local address or None, remote address or None)``: one way to
#: make the endpoint.
Candidate = tuple[int, Any, Any]


class StartableEndpoint(DatagramTransport, Protocol):
    """A driver's datagram transport, made and not started yet."""

    def start(self) -> None:
        """Call ``connection_made`` (and start whatever moves the datagrams)."""


_IP_FAMILIES = (socket.AF_INET, socket.AF_INET6)
_WILDCARD: dict[int, str] = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}


@dataclass(frozen=True)
class UDPRequest:
    """An ``open_udp`` call's arguments, checked."""

    local: tuple[Any, ...] | None
    remote: tuple[Any, ...] | None
    family: int
    reuse_port: bool = False
    allow_broadcast: bool = False

    @property
    def needs_lookup(self) -> bool:
        """Whether a host is a name, which only ``getaddrinfo`` (blocking) can resolve."""
        return any(
            address is not None and address[0] and _numeric_family(address[0]) is None
            for address in (self.local, self.remote)
        )

    def describe(self) -> str:
        """For messages: ``udp 127.0.0.1:0 -> 127.0.0.1:53``."""
        local = "*" if self.local is None else _format(self.local)
        return f"udp {local}" + ("" if self.remote is None else f" -> {_format(self.remote)}")


def udp_request(
    local_address: Any,
    remote_address: Any,
    family: int = 0,
    *,
    reuse_port: bool = False,
    allow_broadcast: bool = False,
) -> UDPRequest:
    """Check ``open_udp``'s arguments; raise ArgumentError or TypeError now.

    ``local_address`` is ``(host, port)`` (host ``None`` or ``""``: every
    interface; port 0: a free one); ``remote_address`` ``(host, port)``;
    IPv6 addresses may be four-tuples.  ``family`` is 0 (from the
    addresses), ``AF_INET`` or ``AF_INET6``; with neither address it must be
    given, as in asyncio.
    """
    if family not in (0, *_IP_FAMILIES):
        raise ArgumentError(f"family must be 0, AF_INET or AF_INET6 for UDP, not {family!r}")
    local = _checked_address(local_address, "local_address", may_be_any=True)
    remote = _checked_address(remote_address, "remote_address", may_be_any=False)
    if local is None and remote is None and not family:
        raise ArgumentError(
            "open_udp() needs a local address, a remote address or a family "
            "(socket.AF_INET or AF_INET6) to know what kind of socket to make"
        )
    for address in (local, remote):
        if address is not None and address[0]:
            found = _numeric_family(address[0])
            if found is not None and family and found != family:
                raise ArgumentError(f"{address[0]!r} is no address of family {family!r}")
    return UDPRequest(local, remote, family, bool(reuse_port), bool(allow_broadcast))


def udp_candidates(request: UDPRequest) -> list[Candidate]:
    """The ways to make the endpoint, in order; blocks on ``getaddrinfo`` when
    :attr:`UDPRequest.needs_lookup` (call it in a thread then).

    Raises ``socket.gaierror`` for a name that does not resolve, and
    ``OSError`` when the local and remote addresses share no family.
    """
    local_infos = _resolve(request.local, request.family)
    remote_infos = _resolve(request.remote, request.family)
    families = [family for family, _ in remote_infos] or [family for family, _ in local_infos]
    if not families:
        families = [request.family]
    candidates: list[Candidate] = []
    for family in dict.fromkeys(families):
        local = _first(local_infos, family)
        remote = _first(remote_infos, family)
        if (request.local is not None and local is None) or (request.remote is not None and remote is None):
            continue  # one of the two has no address of this family
        candidates.append((family, local, remote))
    if not candidates:
        raise OSError(
            f"cannot open {request.describe()}: "
            "the local and remote addresses have no address family in common"
        )
    return candidates


def open_udp_socket(request: UDPRequest, candidates: list[Candidate]) -> tuple[socket.socket, Any]:
    """The socket of the first candidate that can be made, and its peer (the
    remote address, or ``None``): non-blocking, bound, connected unless
    ``allow_broadcast``.  Raises the first candidate's ``OSError`` when none
    can be made, with nothing left open."""
    errors: list[OSError] = []
    for family, local, remote in candidates:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if request.reuse_port:
                if not hasattr(socket, "SO_REUSEPORT"):
                    raise ArgumentError("reuse_port is not supported on this platform")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if request.allow_broadcast:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            if local is not None:
                sock.bind(local)
            if remote is not None and not request.allow_broadcast:
                sock.connect(remote)  # a datagram socket's connect never waits
        except OSError as exc:
            sock.close()
            errors.append(OSError(exc.errno, f"cannot open {request.describe()}: {exc.strerror}"))
            continue
        except BaseException:
            sock.close()
            raise
        return sock, remote
    raise errors[0]


def unix_paths(local_path: Any, remote_path: Any) -> tuple[str | bytes | None, str | bytes | None]:
    """``open_unix_datagram``'s paths, checked (TypeError now), path-likes as ``str``."""
    return _checked_path(local_path, "local_path"), _checked_path(remote_path, "remote_path")


def unix_datagram_socket(
    local_path: UNIXPath | None, remote_path: UNIXPath | None
) -> tuple[socket.socket, Any, str | None]:
    """A non-blocking UNIX datagram socket bound to ``local_path`` and
    connected to ``remote_path`` (either may be ``None``); with the peer's
    address and the path of the socket file it made (to remove at the end).

    A stale socket file at ``local_path`` is replaced; a live socket there
    is ``OSError(EADDRINUSE)``, any other file ``FileExistsError``.  A
    ``remote_path`` nobody is bound to is ``ConnectionRefusedError`` (or
    ``FileNotFoundError``).  Without ``local_path`` the endpoint can send
    but not be answered (asyncio's rule: it is not bound).
    """
    local = _checked_path(local_path, "local_path")
    remote = _checked_path(remote_path, "remote_path")
    made: str | None = None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if local is not None:
            if isinstance(local, str) and local and not local.startswith("\0"):
                remove_socket_file(local, only_stale=True, kind=socket.SOCK_DGRAM)
                sock.bind(local)
                made = local  # ours now: removed when the endpoint ends
            else:
                sock.bind(local)  # an abstract name (Linux): no file
        if remote is not None:
            sock.connect(remote)
    except BaseException:
        sock.close()
        if made is not None:
            _remove_quietly(made)
        raise
    return sock, remote, made


# ------------------------------------------------------------ internals


def _checked_address(address: Any, name: str, *, may_be_any: bool) -> tuple[Any, ...] | None:
    if address is None:
        return None
    if not isinstance(address, tuple) or not 2 <= len(address) <= 4:
        raise TypeError(f"{name} must be a (host, port) tuple or None, not {address!r}")
    host, port = address[0], address[1]
    if not (isinstance(host, str) or (may_be_any and host is None)):
        raise TypeError(f"{name}'s host must be a str{' or None' if may_be_any else ''}, not {host!r}")
    if not may_be_any and not host:
        raise ArgumentError(f"{name} needs a host, not {host!r}")
    if type(port) is not int or not 0 <= port <= 65535:
        raise ArgumentError(f"{name}'s port must be an int from 0 to 65535, not {port!r}")
    return address


def _checked_path(path: Any, name: str) -> str | bytes | None:
    if path is None:
        return None
    if isinstance(path, str | bytes):
        return path
    if isinstance(path, os.PathLike):
        found: str | bytes = os.fspath(path)
        return found
    raise TypeError(f"{name} must be a path (str, bytes or os.PathLike) or None, not {path!r}")


def _numeric_family(host: str) -> int | None:
    """``AF_INET`` or ``AF_INET6`` for a numeric host, ``None`` for a name."""
    for family in _IP_FAMILIES:
        try:
            socket.inet_pton(family, host.partition("%")[0])
        except OSError:
            continue
        return family
    return None


def _resolve(address: tuple[Any, ...] | None, family: int) -> list[tuple[int, Any]]:
    """``(family, address)`` pairs for ``address`` (none for None): numeric
    ones as they are, a wildcard host for each family, names with getaddrinfo."""
    if address is None:
        return []
    host = address[0]
    if not host:
        families = [family] if family else [socket.AF_INET, socket.AF_INET6]
        return [(each, (_WILDCARD[each], *address[1:])) for each in families]
    found = _numeric_family(host)
    if found is not None:
        return [(found, address)]
    infos = socket.getaddrinfo(host, address[1], family, socket.SOCK_DGRAM)
    return [(info[0], info[4]) for info in infos if info[0] in _IP_FAMILIES]


def _first(pairs: list[tuple[int, Any]], family: int) -> Any:
    for each, address in pairs:
        if each == family:
            return address
    return None


def _format(address: tuple[Any, ...]) -> str:
    host = address[0] or "*"
    return f"[{host}]:{address[1]}" if ":" in str(host) else f"{host}:{address[1]}"


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def start_endpoint(
    factory: Callable[[], Any],
    sock: socket.socket,
    socket_file: str | None,
    make_transport: Callable[[Any], StartableEndpoint],
    result: Future[DatagramTransport],
) -> None:
    """Make the protocol and ``make_transport(protocol)`` over ``sock``, start it, resolve ``result``.

    A factory that raises fails ``result`` with its error; ``sock`` is closed
    then, and the socket file ``unix_datagram_socket`` made (``socket_file``)
    removed, so nothing is left behind.
    """
    try:
        protocol = factory()
    except Exception as exc:
        sock.close()
        if socket_file is not None:
            with contextlib.suppress(OSError):
                os.unlink(socket_file)
        result.set_exception(exc)
        return
    transport = make_transport(protocol)
    transport.start()
    result.set_result(transport)

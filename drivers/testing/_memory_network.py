"""Datagrams in memory: a network of endpoints on a fake clock, lossy on demand and seeded.

:class:`MemoryNetwork` is to datagrams what :func:`~weft.drivers.testing.connect_pair`
is to streams: real weft transports (:class:`MemoryDatagramTransport`, the
same contract as every driver's, checked by the same conformance suite)
with no socket under them, on a :class:`~weft.drivers.testing.FakeClock`::

    network = MemoryNetwork(seed=7, loss=0.1, duplicate=0.05, reorder=0.2)
    server = network.open_udp(EchoServer, ("127.0.0.1", 5300))
    client = network.open_udp(Client, remote_address=("127.0.0.1", 5300))
    client.sendto(b"ping")
    network.clock.advance(0)         # the datagram arrives (or is lost)

What the network does to each datagram is decided when it is sent, with
four draws from a :class:`random.Random` seeded with ``seed`` (always
four, whatever the probabilities, so that changing one setting never
changes what the others decide): lost with probability ``loss``; sent twice
with probability ``duplicate``; each copy held back ``reorder_delay``
seconds with probability ``reorder``, so that datagrams sent meanwhile
overtake it.
Every datagram that is not lost arrives ``latency`` seconds after it was
sent (the next clock step, by default), as a timer on the clock, so the
order of events is the clock's: datagrams due together arrive in the
order they were sent.  The same seed gives the same run, every time.

A test can also take over: :attr:`MemoryNetwork.in_flight` lists the
datagrams on their way, which :meth:`MemoryNetwork.deliver` delivers now
and :meth:`MemoryNetwork.drop` loses; :meth:`MemoryNetwork.stall` makes an
endpoint's datagrams wait in its transport (so its write buffer fills,
``pause_writing`` comes, and a ``close()`` waits) until
:meth:`MemoryNetwork.unstall`.

The network behaves as the kernel's loopback does where a protocol could
notice: a connected endpoint hears only its peer and gets
``ConnectionRefusedError`` in ``error_received`` when it sends where no
endpoint is (ICMP's port unreachable), an unconnected one's datagram to
nowhere is silently lost, a UNIX datagram to a path nobody holds is
refused; ports 0 pick free ones (from 49152); an endpoint bound to every
interface (host ``None``, ``""``, ``0.0.0.0``, ``::``) hears datagrams to
any host.  Names are not looked up (``localhost`` is ``127.0.0.1``, or
``::1`` on IPv6).

As everywhere in the memory driver, errors are loud: an exception from a
protocol's callback ends its endpoint (``connection_lost(exc)``) *and*
propagates to the test that stepped the clock.
"""

from __future__ import annotations

import errno
import math
import os
import random
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from weft.drivers._core.connection_clock import ConnectionClock
from weft.drivers._core.datagram_sockets import udp_request, unix_paths
from weft.drivers._core.datagrams import (
    SendRules,
    as_datagram,
    datagram_error,
    max_datagram_size,
)
from weft.drivers._core.lifecycle import Event, TransportLifecycle
from weft.drivers._core.timers import Timer
from weft.drivers._core.transport_base import EndpointBookkeeping
from weft.drivers.testing._fake_clock import FakeClock
from weft.protocols._flow_control import WriteFlowControl
from weft.protocols.errors import ArgumentError

__all__ = ["DEFAULT_REORDER_DELAY", "InFlight", "MemoryDatagramTransport", "MemoryNetwork", "NetworkStats"]

#: How long a datagram chosen for reordering is held back, in fake seconds.
DEFAULT_REORDER_DELAY = 0.05

#: The largest UNIX datagram the memory network carries (Linux's default
#: send buffer); a larger one is refused with ``EMSGSIZE``, as the kernel does.
MAX_UNIX_DATAGRAM = 212_992

#: Where free ports start (the IANA dynamic range).
FIRST_FREE_PORT = 49152

_ANY: dict[int, str] = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}
_LOOPBACK: dict[int, str] = {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"}

#: An endpoint's key: ``(family, host, port)`` for UDP, ``(AF_UNIX, path)``.
_Key = tuple[Any, ...]


@dataclass
class NetworkStats:
    """What the network did, datagram by datagram, since it was made."""

    #: Datagrams endpoints handed to the network (after any stall).
    sent: int = 0
    #: Copies that reached an endpoint's protocol.
    delivered: int = 0
    #: Datagrams lost (``loss``, or :meth:`MemoryNetwork.drop`).
    lost: int = 0
    #: Datagrams sent twice (``duplicate``).
    duplicated: int = 0
    #: Copies held back (``reorder``).
    reordered: int = 0
    #: Copies that found no endpoint at their address.
    unreachable: int = 0


@dataclass(eq=False)
class InFlight:
    """A datagram on its way: from ``source`` to ``destination``, due at ``due``."""

    source: Any
    destination: Any
    data: bytes
    due: float
    #: Whether it is a copy the network made (``duplicate``).
    duplicate: bool = False
    #: Whether it was held back (``reorder``).
    held_back: bool = False
    _sender: MemoryDatagramTransport | None = field(default=None, repr=False)
    _timer: Timer | None = field(default=None, repr=False)


class MemoryDatagramTransport(EndpointBookkeeping):
    """A :class:`weft.protocols.contract.DatagramTransport` on a :class:`MemoryNetwork`.

    Made by the network's ``open_udp`` and ``open_unix_datagram`` (or a
    :class:`~weft.drivers.testing.MemoryRuntime`'s), never by hand.
    """

    def __init__(
        self,
        network: MemoryNetwork,
        protocol: Any,
        family: int,
        key: _Key,
        sockname: Any,
        peer: Any,
        *,
        connected: bool,
    ) -> None:
        self._network = network
        self._protocol = protocol
        self._family = family
        self._key = key
        limit = max_datagram_size(family)
        self._rules = SendRules(family, peer, connected=connected, limit=limit)
        self._extra: dict[str, Any] = {
            "sockname": sockname,
            "peername": peer if connected else None,
            "clock": ConnectionClock(network.clock, self._run_callback),
        }
        self._flow = WriteFlowControl()
        self._lifecycle = TransportLifecycle()
        # Datagrams held while the network stalls this endpoint: (data, destination).
        self._queue: deque[tuple[bytes, Any]] = deque()
        self._buffer_size = 0
        self._lost_called = False

    # ------------------------------------------------------------ the contract

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        """Hand ``data`` to the network for ``addr`` (or queue it while the endpoint is stalled)."""
        if type(data) is not bytes:
            data = as_datagram(data)
        if self._lifecycle.closing:
            return
        target = self._rules.target(len(data), addr)
        destination = self._rules.peer if target is None else target
        if self._queue or self._key in self._network._stalled:
            self._queue.append((data, destination))
            self._buffer_size += len(data)
            if self._flow.should_pause(self._buffer_size):
                self._run_callback(self._protocol.pause_writing, ())
            return
        self._network._send(self, data, destination)

    def close(self) -> None:
        """Send what is queued (once the endpoint is not stalled), then end."""
        if self._lifecycle.closing:
            return
        self._lifecycle.apply(Event.CLOSE)
        if not self._queue:
            self._finish(None)

    def abort(self) -> None:
        """End now, dropping what is queued."""
        if self._lifecycle.lost:
            return
        self._lifecycle.apply(Event.ABORT)
        self._queue.clear()
        self._buffer_size = 0
        self._finish(None)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the water marks (asyncio's defaults and rules)."""
        self._flow.set_limits(high, low)
        if self._flow.should_pause(self._buffer_size):
            self._run_callback(self._protocol.pause_writing, ())

    def get_write_buffer_size(self) -> int:
        """Bytes of datagrams waiting while the endpoint is stalled."""
        return self._buffer_size

    def __repr__(self) -> str:
        lifecycle = self._lifecycle
        state = "lost" if lifecycle.lost else "closing" if lifecycle.closing else "open"
        return f"<MemoryDatagramTransport {self._extra['sockname']!r} {state} queued={len(self._queue)}>"

    @property
    def connection_lost_called(self) -> bool:
        """Whether the protocol has had ``connection_lost``."""
        return self._lost_called

    # --------------------------------------------- the network's side (this module)

    def _start(self) -> None:
        self._run_callback(self._protocol.connection_made, (self,))

    def _drain(self) -> None:
        """The stall is over: hand what waits to the network, in order."""
        queue = self._queue
        while queue and not self._lifecycle.lost and self._key not in self._network._stalled:
            data, destination = queue.popleft()
            self._buffer_size -= len(data)
            self._network._send(self, data, destination)
        if self._flow.should_resume(self._buffer_size):
            self._run_callback(self._protocol.resume_writing, ())
        if not queue and self._lifecycle.closing and not self._lifecycle.lost:
            self._finish(None)

    def _hears(self, source: Any) -> bool:
        """Whether a datagram from ``source`` reaches this endpoint's protocol."""
        if self._lifecycle.closing:
            return False
        rules = self._rules
        return not rules.connected or source == rules.peer

    def _receive(self, data: bytes, source: Any) -> None:
        self._run_callback(self._protocol.datagram_received, (data, source))

    def _error(self, exc: Exception) -> None:
        if not self._lifecycle.closing:
            self._run_callback(self._protocol.error_received, (exc,))

    def _finish(self, exc: BaseException | None) -> None:
        self._lifecycle.apply(Event.LOST)
        self._network._unbind(self)
        self._network.clock.call_soon(self._connection_lost, exc)

    def _connection_lost(self, exc: BaseException | None) -> None:
        if self._lost_called:
            return
        self._lost_called = True
        self._protocol.connection_lost(exc)

    def _run_callback(self, callback: Callable[..., object], args: tuple[Any, ...]) -> Any:
        """Call into the protocol; if it raises, end the endpoint with the
        exception and let it propagate to the test."""
        try:
            return callback(*args)
        except Exception as exc:
            if not self._lifecycle.lost:
                self._lifecycle.apply(Event.ABORT)
                self._queue.clear()
                self._buffer_size = 0
                self._lifecycle.apply(Event.LOST)
                self._network._unbind(self)
                self._connection_lost(exc)
            raise


class MemoryNetwork:
    """Datagram endpoints joined in memory, on a fake clock (see the module docstring).

    ``loss``, ``duplicate`` and ``reorder`` are probabilities (0 to 1),
    ``latency`` and ``reorder_delay`` fake seconds, ``seed`` what the
    network's random draws start from (``None``: a random seed, for a
    fuzzing run; print :attr:`seed` to replay it).
    """

    def __init__(
        self,
        clock: FakeClock | None = None,
        *,
        seed: int | None = 0,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        latency: float = 0.0,
        reorder_delay: float = DEFAULT_REORDER_DELAY,
    ) -> None:
        #: The fake time the network runs on (pass one to share it).
        self.clock = clock if clock is not None else FakeClock()
        self.loss = _probability(loss, "loss")
        self.duplicate = _probability(duplicate, "duplicate")
        self.reorder = _probability(reorder, "reorder")
        self.latency = _seconds(latency, "latency")
        self.reorder_delay = _seconds(reorder_delay, "reorder_delay")
        #: The seed of this run's draws.
        self.seed = random.randrange(2**32) if seed is None else seed
        self._random = random.Random(self.seed)
        #: What happened so far.
        self.stats = NetworkStats()
        self._endpoints: dict[_Key, MemoryDatagramTransport] = {}
        self._in_flight: list[InFlight] = []
        self._stalled: set[_Key] = set()
        self._next_port = FIRST_FREE_PORT

    # ------------------------------------------------------------- endpoints

    def open_udp(
        self,
        factory: Callable[[], Any],
        local_address: tuple[Any, ...] | None = None,
        remote_address: tuple[Any, ...] | None = None,
        *,
        family: int = 0,
        reuse_port: bool = False,
        allow_broadcast: bool = False,
    ) -> MemoryDatagramTransport:
        """A UDP endpoint, made now (``connection_made`` runs before this
        returns); the arguments are the runtimes' ``open_udp``'s.

        An address another endpoint holds is ``OSError(EADDRINUSE)``
        (``reuse_port`` is accepted and changes nothing); a host that is not
        numeric (``localhost`` aside) is ``socket.gaierror``, as no name is
        known here.
        """
        request = udp_request(
            local_address, remote_address, family, reuse_port=reuse_port, allow_broadcast=allow_broadcast
        )
        family = request.family
        remote = None
        if request.remote is not None:
            family, remote = self._ip_address(request.remote, family)
        if request.local is not None and request.local[0]:
            found, local = self._ip_address(request.local, family)
            if family and found != family:
                raise OSError(errno.EAFNOSUPPORT, "the local and remote addresses are of different families")
            family = found
        else:
            family = family or socket.AF_INET
            local = _ip_tuple(family, _ANY[family], 0 if request.local is None else request.local[1])
        if local[1] == 0:
            local = _ip_tuple(family, local[0], self._free_port(family))
        key = self._ip_key(family, local)
        self._check_free(key, local)
        sockname = local
        if local[0] == _ANY[family] and remote is not None:
            # The kernel binds a connected socket to the address it sends from.
            sockname = _ip_tuple(family, _LOOPBACK[family], local[1])
        return self._open(factory, family, key, sockname, remote, connected=not request.allow_broadcast)

    def open_unix_datagram(
        self,
        factory: Callable[[], Any],
        local_path: str | bytes | os.PathLike[str] | None = None,
        remote_path: str | bytes | os.PathLike[str] | None = None,
    ) -> MemoryDatagramTransport:
        """A UNIX datagram endpoint, made now; a path another endpoint holds is
        ``OSError(EADDRINUSE)``, a ``remote_path`` nobody holds
        ``ConnectionRefusedError``.  No file is made."""
        local, remote = unix_paths(local_path, remote_path)
        if remote is not None and (socket.AF_UNIX, remote) not in self._endpoints:
            raise ConnectionRefusedError(
                errno.ECONNREFUSED, f"cannot connect to {remote!r}: nobody is bound there"
            )
        if local is None:
            key: _Key = (socket.AF_UNIX, object())  # unbound: nobody can send to it
            sockname: Any = ""
        else:
            key = (socket.AF_UNIX, local)
            self._check_free(key, local)
            sockname = local
        return self._open(factory, socket.AF_UNIX, key, sockname, remote, connected=remote is not None)

    def _open(
        self,
        factory: Callable[[], Any],
        family: int,
        key: _Key,
        sockname: Any,
        peer: Any,
        *,
        connected: bool,
    ) -> MemoryDatagramTransport:
        protocol = factory()
        transport = MemoryDatagramTransport(self, protocol, family, key, sockname, peer, connected=connected)
        self._endpoints[key] = transport
        transport._start()
        self.clock.advance(0)
        return transport

    @property
    def endpoints(self) -> list[MemoryDatagramTransport]:
        """The endpoints open now, in the order they were opened."""
        return list(self._endpoints.values())

    # --------------------------------------------------------- taking over

    @property
    def in_flight(self) -> list[InFlight]:
        """The datagrams on their way, earliest due first (ties: sent first)."""
        return sorted(self._in_flight, key=lambda flight: flight.due)

    def deliver(self, flight: InFlight) -> None:
        """Deliver ``flight`` now, whenever it was due."""
        self._take(flight)
        self._arrive(flight)
        self.clock.advance(0)

    def drop(self, flight: InFlight) -> None:
        """Lose ``flight``: it never arrives."""
        self._take(flight)
        self.stats.lost += 1

    def stall(self, endpoint: Any) -> None:
        """``endpoint`` (its transport, or its address) stops sending: its
        datagrams wait in its transport (and count in its write buffer)
        until :meth:`unstall`."""
        self._stalled.add(self._find(endpoint)._key)

    def unstall(self, endpoint: Any) -> None:
        """``endpoint`` sends again, what waited first."""
        found = self._find(endpoint)
        self._stalled.discard(found._key)
        found._drain()
        self.clock.advance(0)

    def _find(self, endpoint: Any) -> MemoryDatagramTransport:
        if isinstance(endpoint, MemoryDatagramTransport):
            return endpoint
        if isinstance(endpoint, tuple):
            host = _normal_host(endpoint[0])
            found = self._endpoint_at(endpoint, socket.AF_INET6 if ":" in host else socket.AF_INET)
        else:
            found = self._endpoint_at(endpoint, socket.AF_UNIX)
        if found is None:
            raise ArgumentError(f"no endpoint is open at {endpoint!r} on this network")
        return found

    def close(self) -> None:
        """Abort every endpoint still open (their protocols hear ``connection_lost``)."""
        for endpoint in list(self._endpoints.values()):
            endpoint.abort()
        self.clock.advance(0)

    def __repr__(self) -> str:
        return (
            f"<MemoryNetwork seed={self.seed} endpoints={len(self._endpoints)} "
            f"in_flight={len(self._in_flight)} {self.stats}>"
        )

    # ------------------------------------------------------------ carrying

    def _send(self, sender: MemoryDatagramTransport, data: bytes, destination: Any) -> None:
        """A datagram leaves ``sender``: what the network does to it is drawn now."""
        stats = self.stats
        stats.sent += 1
        lost, twice = self._random.random(), self._random.random()
        held = [self._random.random(), self._random.random()]
        if sender._family == socket.AF_UNIX and len(data) > MAX_UNIX_DATAGRAM:
            error = datagram_error(OSError(errno.EMSGSIZE, os.strerror(errno.EMSGSIZE)), len(data))
            self.clock.call_soon(sender._error, error)
            return
        if lost < self.loss:
            stats.lost += 1
            return
        copies = 2 if twice < self.duplicate else 1
        if copies == 2:
            stats.duplicated += 1
        source = _source_address(sender)
        for copy in range(copies):
            delay = self.latency
            held_back = held[copy] < self.reorder
            if held_back:
                stats.reordered += 1
                delay += self.reorder_delay
            flight = InFlight(
                source, destination, data, self.clock.now() + delay, copy == 1, held_back, sender
            )
            flight._timer = self.clock.call_later(delay, self._due, flight)
            self._in_flight.append(flight)

    def _due(self, flight: InFlight) -> None:
        self._in_flight.remove(flight)
        self._arrive(flight)

    def _take(self, flight: InFlight) -> None:
        if flight not in self._in_flight:
            raise ArgumentError(f"{flight!r} is not on its way (delivered, dropped, or not this network's)")
        self._in_flight.remove(flight)
        if flight._timer is not None:
            flight._timer.cancel()

    def _arrive(self, flight: InFlight) -> None:
        sender = flight._sender
        receiver = self._endpoint_at(flight.destination, sender._family if sender is not None else 0)
        if receiver is None:
            self.stats.unreachable += 1
            # ICMP's port unreachable reaches a connected UDP sender; a UNIX
            # datagram to nowhere is refused to any sender.
            if sender is not None and (sender._rules.connected or sender._family == socket.AF_UNIX):
                sender._error(
                    ConnectionRefusedError(
                        errno.ECONNREFUSED, f"nobody is at {flight.destination!r} (port unreachable)"
                    )
                )
            return
        if not receiver._hears(flight.source):
            return
        self.stats.delivered += 1
        receiver._receive(flight.data, flight.source)

    def _unbind(self, endpoint: MemoryDatagramTransport) -> None:
        if self._endpoints.get(endpoint._key) is endpoint:
            del self._endpoints[endpoint._key]
        self._stalled.discard(endpoint._key)

    # ------------------------------------------------------------ addresses

    def _endpoint_at(self, address: Any, family: int) -> MemoryDatagramTransport | None:
        if family == socket.AF_UNIX:
            return self._endpoints.get((socket.AF_UNIX, address))
        if not isinstance(address, tuple):
            return None
        key = self._ip_key(family, address)
        return self._endpoints.get(key) or self._endpoints.get((family, _ANY[family], key[2]))

    def _ip_key(self, family: int, address: tuple[Any, ...]) -> _Key:
        return (family, _normal_host(address[0]), address[1])

    def _ip_address(self, address: tuple[Any, ...], family: int) -> tuple[int, tuple[Any, ...]]:
        """``(family, address)`` for a numeric (or ``localhost``) address."""
        host = address[0]
        if host == "localhost":
            host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        for found in (socket.AF_INET, socket.AF_INET6):
            try:
                socket.inet_pton(found, host)
            except OSError:
                continue
            return found, _ip_tuple(found, _normal_host(host), address[1])
        raise socket.gaierror(
            socket.EAI_NONAME, f"{host!r} is no name the memory network knows (use addresses)"
        )

    def _check_free(self, key: _Key, address: Any) -> None:
        """EADDRINUSE for an address taken: the same one, or the same port with
        either endpoint on every interface."""
        taken = key in self._endpoints
        if len(key) == 3:
            family, host, port = key
            any_host = _ANY[family]
            taken = taken or any(
                len(other) == 3 and other[0] == family and other[2] == port and any_host in (host, other[1])
                for other in self._endpoints
            )
        if taken:
            raise OSError(errno.EADDRINUSE, f"{address!r} is in use on the memory network")

    def _free_port(self, family: int) -> int:
        taken = {key[2] for key in self._endpoints if len(key) == 3 and key[0] == family}
        while self._next_port in taken:
            self._next_port += 1
        if self._next_port > 65535:
            raise OSError(errno.EADDRNOTAVAIL, "no free port left on the memory network")
        port = self._next_port
        self._next_port += 1
        return port


def _source_address(sender: MemoryDatagramTransport) -> Any:
    """What a datagram's receiver sees as its source: the sender's address,
    loopback for one bound to every interface, ``None`` for an unbound UNIX socket."""
    sockname = sender._extra["sockname"]
    family = sender._family
    if family == socket.AF_UNIX:
        return sockname or None
    if sockname[0] == _ANY[family]:
        return _ip_tuple(family, _LOOPBACK[family], sockname[1])
    return sockname


def _ip_tuple(family: int, host: str, port: int) -> tuple[Any, ...]:
    """An address as the kernel reports it: ``(host, port)`` for IPv4,
    ``(host, port, 0, 0)`` for IPv6."""
    return (host, port) if family == socket.AF_INET else (host, port, 0, 0)


def _normal_host(host: str) -> str:
    """One spelling per address (``::1`` for ``0:0::1``)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            return socket.inet_ntop(family, socket.inet_pton(family, host))
        except OSError:
            continue
    return host


def _probability(value: float, name: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise ArgumentError(f"{name} must be a probability from 0 to 1, not {value!r}")
    return float(value)


def _seconds(value: float, name: str) -> float:
    if math.isnan(value) or not 0.0 <= value < math.inf:
        raise ArgumentError(f"{name} must be a number of seconds >= 0, not {value!r}")
    return float(value)

"""Datagrams on the reactor: UDP (IPv4 and IPv6, connected or not) and UNIX datagram sockets.

:class:`ReactorDatagramTransport` is a
:class:`weft.protocols.contract.DatagramTransport` over a non-blocking
datagram socket, on the reactor's poller the way
:class:`~weft.drivers.reactor.DescriptorTransport` is: registered for
reading once, when it starts, and for writing only while datagrams wait
that the kernel could not take.  The endpoint itself, its batches of
reads (:data:`READS_PER_EVENT`) and its rules for errors, is the one the
Twisted driver runs too
(:class:`weft.drivers._core.polled_datagrams.PolledDatagramTransport`);
what is the reactor's here is how it keeps track of its open endpoints.

Made by :meth:`Reactor.open_udp <weft.drivers.reactor.Reactor.open_udp>`
and :meth:`~weft.drivers.reactor.Reactor.open_unix_datagram`, which return
a :class:`~weft.drivers.Future` of the transport, and by
:func:`datagram_transport`, which wraps a socket made elsewhere (an asyncio
loop's ``create_datagram_endpoint(sock=...)``) and leaves
``connection_made`` to :meth:`ReactorDatagramTransport.start`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, Any

from weft.drivers._core.polled_datagrams import ENDPOINT_SLOTS, READS_PER_EVENT, PolledDatagramTransport
from weft.protocols.errors import ArgumentError

if TYPE_CHECKING:
    from weft.drivers.reactor._plumbing import TransportLoop

__all__ = ["READS_PER_EVENT", "ReactorDatagramTransport", "datagram_transport"]


class ReactorDatagramTransport(PolledDatagramTransport, asyncio.DatagramTransport):
    """A :class:`weft.protocols.contract.DatagramTransport` driven by a :class:`Reactor`.

    Beyond the contract it has asyncio's selector-loop extras
    ``pause_reading``, ``resume_reading`` and ``is_reading`` (while paused,
    datagrams wait in the kernel, which drops what its buffer cannot hold).
    Made by the reactor, or by :func:`datagram_transport`; never by
    applications.  It is also an ``asyncio.DatagramTransport``, its methods
    all weft's own.
    """

    # (_extra is asyncio.BaseTransport's slot.)
    __slots__ = ENDPOINT_SLOTS

    _logger = logging.getLogger("weft.drivers.reactor")
    _kind = "ReactorDatagramTransport"
    _host: TransportLoop

    def __init__(
        self, reactor: TransportLoop, protocol: Any, sock: socket.socket, remote_address: Any = None
    ) -> None:
        super().__init__(reactor, protocol, sock, remote_address, reactor)

    def _register(self) -> None:
        self._host._open[self] = self.abort

    def _unregister(self) -> None:
        self._host._open.pop(self, None)

    def _stop_watching(self) -> None:
        if not self._host._closed:  # a closed reactor watches nothing
            super()._stop_watching()


def datagram_transport(
    reactor: TransportLoop,
    protocol: Any,
    sock: socket.socket,
    remote_address: Any = None,
    *,
    transport_class: type[ReactorDatagramTransport] | None = None,
) -> ReactorDatagramTransport:
    """A datagram transport over ``sock``, a datagram socket made elsewhere; not started.

    ``sock`` is made non-blocking.  If it is connected, its peer is the one
    address ``sendto`` sends to; otherwise ``remote_address``, if given, is
    where ``sendto(data)`` without an address goes (asyncio's
    ``remote_addr`` with ``allow_broadcast``).  ``connection_made`` is not
    called: :meth:`ReactorDatagramTransport.start` calls it and starts
    reading, when the caller is ready (an asyncio loop's
    ``create_datagram_endpoint`` does it before its waiter resolves).  The
    transport closes ``sock`` when the endpoint ends.  ``transport_class`` is
    a subclass to make instead (the asyncio event loop's).
    """
    if sock.type != socket.SOCK_DGRAM:
        raise ArgumentError(f"a datagram socket was expected, not {sock!r}")
    sock.setblocking(False)
    make = ReactorDatagramTransport if transport_class is None else transport_class
    return make(reactor, protocol, sock, remote_address)

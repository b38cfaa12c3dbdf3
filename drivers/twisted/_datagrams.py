"""Datagrams on a Twisted reactor: UDP (IPv4 and IPv6, connected or not) and UNIX datagram sockets.

Twisted's own datagram ports (``listenUDP``, ``listenUNIXDatagram``) cannot
keep weft's datagram contract: a datagram the kernel cannot take at once
makes their ``write`` raise (weft queues it, in order, and counts it in flow
control), they read at most 8 KiB of a datagram unless told otherwise,
report an IPv6 sender as ``(host, port)`` alone, and only log an exception
from ``datagramReceived``.  So the driver runs weft's own endpoint on the
reactor: weft makes the socket (:mod:`weft.drivers._core.datagram_sockets`,
the same checks, lookups and binding as every driver), and
:class:`TwistedDatagramTransport` moves the datagrams through the
reactor's ``IReactorFDSet`` (:mod:`weft.drivers.twisted._watches`), as the
weft reactor's own endpoint does on its poller: registered for reading once
it starts, and for writing only while datagrams wait that the kernel could
not take.  ``sendto`` sends at once when nothing waits.

The endpoint is the weft reactor's own
(:class:`weft.drivers._core.polled_datagrams.PolledDatagramTransport`: its
batches of reads, its rules for errors, its queue); what is the Twisted
driver's here is how the runtime keeps track of its open endpoints.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Any

from weft.drivers._core.polled_datagrams import ENDPOINT_SLOTS, READS_PER_EVENT, PolledDatagramTransport

if TYPE_CHECKING:
    from weft.drivers.twisted._plumbing import TwistedHost

__all__ = ["READS_PER_EVENT", "TwistedDatagramTransport"]


class TwistedDatagramTransport(PolledDatagramTransport):
    """A :class:`weft.protocols.contract.DatagramTransport` on a Twisted reactor.

    Beyond the contract it has asyncio's selector-loop extras
    ``pause_reading``, ``resume_reading`` and ``is_reading`` (while paused,
    datagrams wait in the kernel, which drops what its buffer cannot hold).
    Made by :class:`~weft.drivers.twisted.TwistedRuntime`'s ``open_udp`` and
    ``open_unix_datagram``; never by applications.
    """

    __slots__ = (*ENDPOINT_SLOTS, "_extra")

    _logger = logging.getLogger("weft.drivers.twisted")
    _kind = "TwistedDatagramTransport"
    _host: TwistedHost

    def __init__(
        self, host: TwistedHost, protocol: Any, sock: socket.socket, remote_address: Any = None
    ) -> None:
        super().__init__(host, protocol, sock, remote_address, host._clock)

    def _register(self) -> None:
        self._host._endpoints.add(self)

    def _unregister(self) -> None:
        self._host._endpoints.discard(self)

"""Listening on the completion driver: one multishot ``ACCEPT`` per socket.

Each listening socket has one accept operation armed for as long as the
listener is open: the kernel completes it once per connection (the new
descriptor is the result) and keeps it armed (``IORING_CQE_F_MORE``), so a
flood of connections costs no submission per connection, and they are taken
in the same ``io_uring_enter`` as everything else in the turn.

When the kernel ends the operation (it may, after an error or under
pressure: the completion then lacks ``F_MORE``), it is armed again.  When
``accept`` fails for want of a resource (out of descriptors: ``EMFILE``...),
the listener pauses as the reactor's does
(:mod:`weft.drivers._core.accepting`): one line logged, nothing armed for
:data:`~weft.drivers._core.accepting.ACCEPT_PAUSE` seconds while the
kernel's backlog holds the connections, then armed again.

``close()`` cancels the accepts and hands the cancels to the kernel at once,
before closing the sockets: an armed accept holds its socket open, and a
closed listener must free its address for the next ``listen_*``.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from weft.drivers._core import accepting
from weft.drivers._core.accepting import RESOURCE_ERRORS
from weft.drivers._core.socket_binding import DEFAULT_BACKLOG, bind_tcp, bind_unix
from weft.drivers._core.timers import Timer
from weft.drivers.completion._ring_poller import IGNORED, RingPoller
from weft.drivers.completion._uring import IORING_CQE_F_MORE
from weft.drivers.reactor._descriptor_transport import DescriptorTransport, socket_transport
from weft.drivers.reactor._sockets import ReactorListener

if TYPE_CHECKING:
    from weft.drivers.reactor._plumbing import TransportLoop

__all__ = ["AcceptState", "CompletionListener", "listen_tcp", "listen_unix"]

logger = logging.getLogger("weft.drivers.completion")

ProtocolFactory = Callable[[], Any]


class AcceptState(enum.Enum):
    """Where a :class:`CompletionListener` is."""

    #: An accept is armed on every socket.
    ACCEPTING = "accepting"
    #: Out of a resource: nothing armed until the pause ends.
    PAUSED = "paused"
    #: Closed: the accepts are cancelled, the sockets closed.
    CLOSED = "closed"


class CompletionListener(ReactorListener):
    """Sockets accepting connections for one protocol factory, by multishot accepts.

    A :class:`~weft.drivers.reactor.ReactorListener` in what it offers; it
    accepts its own way, with no :class:`~weft.drivers._core.accepting.Acceptor`.
    """

    def __init__(
        self,
        runtime: TransportLoop,
        poller: RingPoller,
        factory: ProtocolFactory,
        sockets: list[socket.socket],
    ) -> None:
        # Not ReactorListener.__init__: it would watch the sockets for readiness.
        self._reactor = runtime
        self._runtime = runtime
        self._factory = factory
        self._poller = poller
        runtime._open[self] = self.close
        self._keep_sockets(sockets)
        #: The transports of the connections accepted and still open.
        self.connections: set[DescriptorTransport] = set()
        self.state = AcceptState.ACCEPTING
        self._resume: Timer | None = None
        # user_data -> socket, for each accept armed.
        self._armed: dict[int, socket.socket] = {}
        for sock in sockets:
            self._arm(sock)

    @property
    def paused(self) -> bool:
        """Whether accepting is paused (out of a resource)."""
        return self.state is AcceptState.PAUSED

    def _arm(self, sock: socket.socket) -> None:
        user_data = self._poller.new_ids(1)
        self._armed[user_data] = sock
        self._poller.completions[user_data] = partial(self._accepted, sock, user_data)
        self._poller.ring.prep_accept(sock.fileno(), user_data, multishot=True)

    def _accepted(self, sock: socket.socket, user_data: int, res: int, flags: int) -> None:
        """A completion of the accept on ``sock``: a new descriptor, or ``-errno``."""
        ended = not flags & IORING_CQE_F_MORE
        if ended:
            self._armed.pop(user_data, None)
            self._poller.completions.pop(user_data, None)
        if res >= 0:
            if self.state is AcceptState.CLOSED:
                os.close(res)  # came in as the listener closed
            else:
                self._start(socket.socket(fileno=res))
        elif -res in RESOURCE_ERRORS and self.state is AcceptState.ACCEPTING:
            self._pause(sock, OSError(-res, os.strerror(-res)))
            return
        if ended and self.state is AcceptState.ACCEPTING:
            self._arm(sock)

    def _pause(self, listening: socket.socket, exc: OSError) -> None:
        logger.error(
            "cannot accept on %s (%s); pausing for %g s",
            accepting._name(listening),
            exc.strerror or exc,
            accepting.ACCEPT_PAUSE,
        )
        self.state = AcceptState.PAUSED
        self._cancel_all()
        self._resume = self._runtime.call_later(accepting.ACCEPT_PAUSE, self._end_pause)

    def _end_pause(self) -> None:
        self._resume = None
        if self.state is not AcceptState.PAUSED:
            return
        self.state = AcceptState.ACCEPTING
        for sock in self.sockets:
            if sock not in self._armed.values():
                self._arm(sock)

    def _cancel_all(self) -> None:
        ring = self._poller.ring
        for user_data in self._armed:
            ring.prep_cancel(user_data, IGNORED)

    def _start(self, sock: socket.socket) -> None:
        sock.setblocking(False)  # as the kernel made it; Python's socket object must agree
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            protocol = self._factory()
        except Exception as exc:
            logger.error("the protocol factory raised; closing the connection", exc_info=exc)
            sock.close()
            return
        transport = socket_transport(self._runtime, protocol, sock, {})
        self.connections.add(transport)
        transport.on_lost.append(self.connections.discard)
        transport.start()

    def close(self) -> None:
        """Stop accepting (the accepts are cancelled at once); open connections are left alone."""
        if self._closed:
            return
        self._closed = True
        self.state = AcceptState.CLOSED
        self._runtime._open.pop(self, None)
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        ring = self._poller.ring
        if not ring.closed:
            self._cancel_all()
            # Now, not next turn: an armed accept holds the socket, and the
            # address must be free when close() returns.
            ring.flush()
        self._close_sockets()


def listen_tcp(
    runtime: TransportLoop,
    poller: RingPoller,
    factory: ProtocolFactory,
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    backlog: int = DEFAULT_BACKLOG,
) -> CompletionListener:
    """Listen on every address ``host`` resolves to (see the reactor's ``listen_tcp``)."""
    return CompletionListener(runtime, poller, factory, bind_tcp(host, port, backlog=backlog))


def listen_unix(
    runtime: TransportLoop,
    poller: RingPoller,
    factory: ProtocolFactory,
    path: str,
    *,
    backlog: int = DEFAULT_BACKLOG,
) -> CompletionListener:
    """Listen on a UNIX-domain socket at ``path`` (see the reactor's ``listen_unix``)."""
    return CompletionListener(runtime, poller, factory, [bind_unix(path, backlog=backlog)])

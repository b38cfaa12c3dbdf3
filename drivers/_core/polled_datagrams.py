"""A datagram endpoint moved by readiness callbacks: what the reactor's and the Twisted driver's share.

Both drivers run weft's own endpoint over a non-blocking datagram socket
(UDP, IPv4 or IPv6, connected or not, or a UNIX datagram socket) on a
loop that calls back when a descriptor is ready: the reactor on its
poller, the Twisted driver through its reactor's ``IReactorFDSet``.
:class:`PolledDatagramTransport` is that endpoint, once.  It is
registered for reading when it starts, and for writing only while
datagrams wait that the kernel could not take; ``sendto`` sends at once
when nothing waits, so a steady exchange makes no registration change.

A readiness event reads up to :data:`READS_PER_EVENT` datagrams (one
``recvfrom`` each) before the loop moves on: a busy server pays one poll
per batch rather than per datagram, and still cannot starve the loop's
other descriptors.  An error the socket reports on reading (ICMP's port
unreachable is ``ConnectionRefusedError`` on a connected socket) goes to
``error_received``, and the endpoint goes on; so does an error from
sending, on the loop's next turn (never from inside ``sendto``, so that a
protocol sending from its ``error_received`` cannot recurse).

What differs between the drivers is left to a subclass: how its loop
keeps track of the endpoints still open (:meth:`~PolledDatagramTransport._register`,
:meth:`~PolledDatagramTransport._unregister`), whether the loop can still
be told to stop watching (:meth:`~PolledDatagramTransport._stop_watching`),
its logger and its name.  :func:`open_udp` and :func:`open_unix_datagram`
make the socket and start an endpoint of the class they are given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, TypeVarTuple, Unpack

from weft.drivers._core.connection_clock import ConnectionClock
from weft.drivers._core.datagram_sockets import (
    UNIXPath,
    open_udp_socket,
    start_endpoint,
    udp_candidates,
    udp_request,
    unix_datagram_socket,
    unix_paths,
)
from weft.drivers._core.datagrams import (
    UDP_READ_SIZE,
    UNIX_READ_SIZE,
    SendRules,
    as_datagram,
    datagram_error,
    max_datagram_size,
)
from weft.drivers._core.futures import Future
from weft.drivers._core.lifecycle import Event, TransportLifecycle
from weft.drivers._core.socket_defaults import name_or_none
from weft.drivers._core.timers import Timer
from weft.drivers._core.transport_base import EndpointBookkeeping
from weft.protocols._flow_control import WriteFlowControl
from weft.protocols.contract import DatagramTransport

__all__ = [
    "ENDPOINT_SLOTS",
    "READS_PER_EVENT",
    "PolledDatagramTransport",
    "ReadinessHost",
    "open_udp",
    "open_unix_datagram",
]

#: Datagrams read per readiness event at most (see the module docstring).
READS_PER_EVENT = 16

ProtocolFactory = Callable[[], Any]

_Ts = TypeVarTuple("_Ts")
_Endpoint = TypeVar("_Endpoint", bound="PolledDatagramTransport")


class ReadinessHost(Protocol):
    """The loop an endpoint runs on, as the endpoint sees it."""

    def call_soon(self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """Run ``callback(*args)`` on the next turn."""

    def call_soon_threadsafe(self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """:meth:`call_soon` from any thread."""

    def _set_reader(self, fd: int, callback: Callable[[], object] | None, owner: Any) -> None:
        """Watch ``fd`` for reading (``callback`` runs when it is readable), or stop."""

    def _set_writer(self, fd: int, callback: Callable[[], object] | None, owner: Any) -> None:
        """Watch ``fd`` for writing, or stop."""


#: The instance state of a :class:`PolledDatagramTransport`, but ``_extra``:
#: each driver's subclass lists these as its ``__slots__``, with ``_extra``
#: unless a base of its own holds it (asyncio.BaseTransport does, for the reactor's).
ENDPOINT_SLOTS = (
    "_buffer_size",
    "_fd",
    "_flow",
    "_host",
    "_lifecycle",
    "_protocol",
    "_queue",
    "_read_size",
    "_recvfrom",
    "_rules",
    "_send",
    "_sendto",
    "_sock",
    "_socket_file",
    "on_lost",
)


class PolledDatagramTransport(EndpointBookkeeping):
    """A :class:`weft.protocols.contract.DatagramTransport` moved by a loop's readiness callbacks.

    Beyond the contract it has asyncio's selector-loop extras
    ``pause_reading``, ``resume_reading`` and ``is_reading`` (while paused,
    datagrams wait in the kernel, which drops what its buffer cannot hold).
    A driver subclasses it (see the module docstring); applications never
    make one.
    """

    # No instance state of its own: each driver's subclass lists the slots
    # (the reactor's is also an asyncio.DatagramTransport, whose base owns
    # the _extra slot, so this class cannot list them).  Hidden from mypy,
    # which would refuse the assignments below to names it does not list.
    if not TYPE_CHECKING:
        __slots__ = ()

    #: The logger a failed protocol callback is reported to.
    _logger: ClassVar[logging.Logger]
    #: The class name :func:`repr` shows.
    _kind: ClassVar[str]

    _host: ReadinessHost
    _fd: int
    _sock: socket.socket
    _rules: SendRules
    _read_size: int
    _recvfrom: Callable[[int], tuple[bytes, Any]]
    _send: Callable[[bytes], int]
    _sendto: Callable[[bytes, Any], int]
    _queue: deque[tuple[bytes, Any]]
    _buffer_size: int
    _socket_file: str | None
    on_lost: list[Callable[[Any], object]]

    def __init__(
        self,
        host: ReadinessHost,
        protocol: Any,
        sock: socket.socket,
        remote_address: Any,
        clock: Any,
    ) -> None:
        """An endpoint for ``protocol`` over ``sock``, on ``host``; its
        connection clock runs on ``clock`` (anything with ``now`` and ``call_later``)."""
        self._host = host
        self._protocol = protocol
        self._sock = sock
        self._fd = sock.fileno()
        family = sock.family
        peer = name_or_none(sock.getpeername)
        if peer is not None:
            self._rules = SendRules(family, peer, connected=True, limit=max_datagram_size(family))
        else:  # remote_address, if any, is only where sendto() without an address goes
            self._rules = SendRules(family, remote_address, limit=max_datagram_size(family))
        self._recvfrom = sock.recvfrom
        self._send = sock.send
        self._sendto = sock.sendto
        self._read_size = UNIX_READ_SIZE if family == socket.AF_UNIX else UDP_READ_SIZE
        self._extra = {
            "socket": sock,
            "sockname": name_or_none(sock.getsockname),
            "peername": peer,
            "clock": ConnectionClock(clock, self._run_callback),
        }
        self._flow = WriteFlowControl()
        self._lifecycle = TransportLifecycle()
        # Datagrams the kernel could not take yet, with where each goes
        # (None: to the connected peer).
        self._queue = deque()
        self._buffer_size = 0
        # The socket file this endpoint made, removed when it ends.
        self._socket_file = None
        #: Called with this transport once the endpoint is lost.
        self.on_lost = []

    # ----------------------------------------------- what a driver supplies

    def _register(self) -> None:
        """Tell the loop this endpoint is open (closing the loop aborts it)."""
        raise NotImplementedError

    def _unregister(self) -> None:
        """Tell the loop this endpoint has ended."""
        raise NotImplementedError

    def _stop_watching(self) -> None:
        """Stop watching the socket, for reading and for writing (on an abort)."""
        host = self._host
        host._set_reader(self._fd, None, self)
        host._set_writer(self._fd, None, self)

    # --------------------------------------------------------------- start

    def start(self) -> None:
        """Call ``connection_made``, then start reading (unless it paused)."""
        self._register()
        try:
            self._protocol.connection_made(self)
        except Exception as exc:
            self._callback_failed(exc)
            return
        if self._lifecycle.wants_data:
            self._host._set_reader(self._fd, self._read_ready, self)

    # ------------------------------------------------------------- sending

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        """Send ``data`` as one datagram to ``addr`` now if the kernel takes it, else queue it."""
        if type(data) is not bytes:
            data = as_datagram(data)
        if self._lifecycle.closing:
            return
        target = self._rules.target(len(data), addr)
        if self._queue:
            self._enqueue(data, target)  # behind what waits: datagrams leave in order
            return
        try:
            if target is None:
                self._send(data)
            else:
                self._sendto(data, target)
        except (BlockingIOError, InterruptedError):
            self._enqueue(data, target)
        except OSError as exc:
            self._host.call_soon(self._report, datagram_error(exc, len(data)))

    def _enqueue(self, data: bytes, target: Any) -> None:
        if not self._queue:
            self._host._set_writer(self._fd, self._write_ready, self)
        self._queue.append((data, target))
        self._buffer_size += len(data)
        if self._flow.should_pause(self._buffer_size):
            self._protocol.pause_writing()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the water marks (asyncio's defaults and rules)."""
        self._flow.set_limits(high, low)
        if self._flow.should_pause(self._buffer_size):
            self._protocol.pause_writing()

    def get_write_buffer_size(self) -> int:
        """Bytes of datagrams waiting for the kernel."""
        return self._buffer_size

    # ------------------------------------------------------------- reading

    def is_reading(self) -> bool:
        """Whether datagrams are delivered (not paused, not closing)."""
        return self._lifecycle.reading

    def pause_reading(self) -> None:
        """Stop delivering datagrams; they wait in the kernel (which drops what it cannot hold)."""
        if not self._lifecycle.reading:  # paused already, or closing
            return
        self._lifecycle.apply(Event.PAUSE)
        self._host._set_reader(self._fd, None, self)

    def resume_reading(self) -> None:
        """Deliver datagrams again."""
        if not self._lifecycle.paused:  # not paused, or closing
            return
        self._lifecycle.apply(Event.RESUME)
        self._host._set_reader(self._fd, self._read_ready, self)

    # ------------------------------------------------------------- endings

    def close(self) -> None:
        """Send what is queued, then close; ``connection_lost(None)`` follows on a later turn."""
        if self._lifecycle.closing:
            return
        self._lifecycle.apply(Event.CLOSE)
        self._host._set_reader(self._fd, None, self)
        if not self._queue:
            self._finish(None)

    def abort(self) -> None:
        """Close now, dropping what is queued."""
        self._force_close(None)

    def __repr__(self) -> str:
        lifecycle = self._lifecycle
        state = "lost" if lifecycle.lost else "closing" if lifecycle.closing else "open"
        return (
            f"<{self._kind} fd={self._fd} {self._extra['sockname']!r} {state} "
            f"queued={len(self._queue)}>"
        )

    # ---------------------------------------------------- readiness events

    def _read_ready(self) -> None:
        # An exception a protocol callback raises here reaches the loop,
        # which hands it to _callback_failed (this transport owns the fd).
        recvfrom, size, lifecycle = self._recvfrom, self._read_size, self._lifecycle
        for _ in range(READS_PER_EVENT):
            try:
                data, addr = recvfrom(size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            self._protocol.datagram_received(data, addr)
            if not lifecycle.wants_data:  # paused, or closing, by the protocol
                return

    def _write_ready(self) -> None:
        queue, lifecycle = self._queue, self._lifecycle
        while queue:
            data, target = queue[0]
            try:
                if target is None:
                    self._send(data)
                else:
                    self._sendto(data, target)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                # The datagram is lost, as the network may lose any; the rest go on.
                queue.popleft()
                self._buffer_size -= len(data)
                self._report(datagram_error(exc, len(data)))
                if lifecycle.lost:
                    return
                continue
            queue.popleft()
            self._buffer_size -= len(data)
        if self._flow.should_resume(self._buffer_size):
            self._protocol.resume_writing()
        if queue or lifecycle.lost:
            return
        self._host._set_writer(self._fd, None, self)
        if lifecycle.closing:
            self._finish(None)

    def _report(self, exc: Exception) -> None:
        """Hand ``exc`` to ``error_received`` (unless the endpoint is gone)."""
        if self._lifecycle.lost:
            return
        try:
            self._protocol.error_received(exc)
        except Exception as failure:
            self._callback_failed(failure)

    def _callback_failed(self, exc: Exception) -> None:
        """A protocol callback raised: log it and end this endpoint with it."""
        self._logger.error(
            "exception in a callback of %r; closing %r", self._protocol, self, exc_info=exc
        )
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        lifecycle = self._lifecycle
        if lifecycle.lost:
            return
        self._queue.clear()
        self._buffer_size = 0
        lifecycle.apply(Event.ABORT)
        self._stop_watching()
        self._finish(exc)

    def _finish(self, exc: BaseException | None) -> None:
        self._lifecycle.apply(Event.LOST)
        self._host.call_soon(self._connection_lost, exc)

    def _connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._unregister()
            self._sock.close()
            if self._socket_file is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self._socket_file)
            for callback in self.on_lost:
                callback(self)
            self.on_lost.clear()


# ------------------------------------------------------------ constructors

#: How an opener makes its endpoint: ``make(protocol, sock, peer)``, not started.
EndpointMaker = Callable[[Any, socket.socket, Any], _Endpoint]


def open_udp(
    host: ReadinessHost,
    make_endpoint: EndpointMaker[_Endpoint],
    factory: ProtocolFactory,
    local_address: Any = None,
    remote_address: Any = None,
    *,
    family: int = 0,
    reuse_port: bool = False,
    allow_broadcast: bool = False,
) -> Future[DatagramTransport]:
    """A UDP endpoint ``make_endpoint`` makes, for a protocol ``factory`` makes.

    The arguments are the reactor's ``open_udp``'s (see
    :meth:`weft.drivers.reactor.Reactor.open_udp`); names are looked up in
    a thread, so the loop never blocks.  Bad arguments raise at once.
    """
    request = udp_request(
        local_address, remote_address, family, reuse_port=reuse_port, allow_broadcast=allow_broadcast
    )
    result: Future[DatagramTransport] = Future(host.call_soon)

    def make(candidates: list[Any]) -> None:
        if result.done():
            return
        try:
            sock, peer = open_udp_socket(request, candidates)
        except OSError as exc:
            result.set_exception(exc)
            return
        start_endpoint(factory, sock, None, partial(_endpoint, make_endpoint, sock, peer, None), result)

    def fail(exc: BaseException) -> None:
        if not result.done():
            result.set_exception(exc)

    if not request.needs_lookup:
        try:
            host.call_soon(make, udp_candidates(request))
        except OSError as exc:
            host.call_soon(fail, exc)
        return result

    def look_up() -> None:
        try:
            candidates = udp_candidates(request)
        except OSError as exc:
            host.call_soon_threadsafe(fail, exc)
        else:
            host.call_soon_threadsafe(make, candidates)

    threading.Thread(target=look_up, name=f"weft-resolve {request.describe()}", daemon=True).start()
    return result


def open_unix_datagram(
    host: ReadinessHost,
    make_endpoint: EndpointMaker[_Endpoint],
    factory: ProtocolFactory,
    local_path: UNIXPath | None = None,
    remote_path: UNIXPath | None = None,
) -> Future[DatagramTransport]:
    """A UNIX datagram endpoint ``make_endpoint`` makes, bound to
    ``local_path`` and connected to ``remote_path`` (see
    :meth:`weft.drivers.reactor.Reactor.open_unix_datagram`)."""
    local, remote = unix_paths(local_path, remote_path)  # TypeError now
    result: Future[DatagramTransport] = Future(host.call_soon)

    def make() -> None:
        try:
            sock, peer, made = unix_datagram_socket(local, remote)
        except OSError as exc:
            result.set_exception(exc)
            return
        start_endpoint(factory, sock, made, partial(_endpoint, make_endpoint, sock, peer, made), result)

    host.call_soon(make)
    return result


def _endpoint(
    make_endpoint: EndpointMaker[_Endpoint],
    sock: socket.socket,
    peer: Any,
    socket_file: str | None,
    protocol: Any,
) -> _Endpoint:
    transport = make_endpoint(protocol, sock, peer)
    transport._socket_file = socket_file
    return transport

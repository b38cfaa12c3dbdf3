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

A readiness event reads up to :data:`READS_PER_EVENT` datagrams before the
reactor moves on.  An error the socket reports on reading (ICMP's port
unreachable is ``ConnectionRefusedError`` on a connected socket) goes to
``error_received``, and the endpoint goes on; so does an error from
sending, on a later turn (never from inside ``sendto``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from weft.drivers._core.connection_clock import ConnectionClock
from weft.drivers._core.datagram_sockets import (
    UNIXPath,
    open_udp_socket,
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
from weft.drivers._core.transport_base import EndpointBookkeeping
from weft.protocols._flow_control import WriteFlowControl
from weft.protocols.contract import DatagramTransport

if TYPE_CHECKING:
    from weft.drivers.twisted._plumbing import TwistedHost

__all__ = ["READS_PER_EVENT", "TwistedDatagramTransport", "open_udp", "open_unix_datagram"]

logger = logging.getLogger("weft.twisted")

#: Datagrams read per readiness event at most.
READS_PER_EVENT = 16

ProtocolFactory = Callable[[], Any]


class TwistedDatagramTransport(EndpointBookkeeping):
    """A :class:`weft.protocols.contract.DatagramTransport` on a Twisted reactor.

    Beyond the contract it has asyncio's selector-loop extras
    ``pause_reading``, ``resume_reading`` and ``is_reading`` (while paused,
    datagrams wait in the kernel, which drops what its buffer cannot hold).
    Made by :class:`~weft.drivers.twisted.TwistedRuntime`'s ``open_udp`` and
    ``open_unix_datagram``; never by applications.
    """

    __slots__ = (
        "_buffer_size",
        "_extra",
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

    def __init__(
        self, host: TwistedHost, protocol: Any, sock: socket.socket, remote_address: Any = None
    ) -> None:
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
        self._extra: dict[str, Any] = {
            "socket": sock,
            "sockname": name_or_none(sock.getsockname),
            "peername": peer,
            "clock": ConnectionClock(host._clock, self._run_callback),
        }
        self._flow = WriteFlowControl()
        self._lifecycle = TransportLifecycle()
        # Datagrams the kernel could not take yet, with where each goes
        # (None: to the connected peer).
        self._queue: deque[tuple[bytes, Any]] = deque()
        self._buffer_size = 0
        # The socket file this endpoint made, removed when it ends.
        self._socket_file: str | None = None
        #: Called with this transport once the endpoint is lost.
        self.on_lost: list[Callable[[TwistedDatagramTransport], object]] = []

    # --------------------------------------------------------------- start

    def start(self) -> None:
        """Call ``connection_made``, then start reading (unless it paused)."""
        self._host._endpoints.add(self)
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
            f"<TwistedDatagramTransport fd={self._fd} {self._extra['sockname']!r} {state} "
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
        logger.error("exception in a callback of %r; closing %r", self._protocol, self, exc_info=exc)
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        lifecycle = self._lifecycle
        if lifecycle.lost:
            return
        self._queue.clear()
        self._buffer_size = 0
        lifecycle.apply(Event.ABORT)
        host = self._host
        host._set_reader(self._fd, None, self)
        host._set_writer(self._fd, None, self)
        self._finish(exc)

    def _finish(self, exc: BaseException | None) -> None:
        self._lifecycle.apply(Event.LOST)
        self._host.call_soon(self._connection_lost, exc)

    def _connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._host._endpoints.discard(self)
            self._sock.close()
            if self._socket_file is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self._socket_file)
            for callback in self.on_lost:
                callback(self)
            self.on_lost.clear()


# ------------------------------------------------------------ constructors


def open_udp(
    host: TwistedHost,
    factory: ProtocolFactory,
    local_address: Any = None,
    remote_address: Any = None,
    *,
    family: int = 0,
    reuse_port: bool = False,
    allow_broadcast: bool = False,
) -> Future[DatagramTransport]:
    """A UDP endpoint for a protocol ``factory`` makes; see :meth:`TwistedRuntime.open_udp`."""
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
        _start(host, factory, sock, peer, None, result)

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
    host: TwistedHost,
    factory: ProtocolFactory,
    local_path: UNIXPath | None = None,
    remote_path: UNIXPath | None = None,
) -> Future[DatagramTransport]:
    """A UNIX datagram endpoint; see :meth:`TwistedRuntime.open_unix_datagram`."""
    local, remote = unix_paths(local_path, remote_path)  # TypeError now
    result: Future[DatagramTransport] = Future(host.call_soon)

    def make() -> None:
        try:
            sock, peer, made = unix_datagram_socket(local, remote)
        except OSError as exc:
            result.set_exception(exc)
            return
        _start(host, factory, sock, peer, made, result)

    host.call_soon(make)
    return result


def _start(
    host: TwistedHost,
    factory: ProtocolFactory,
    sock: socket.socket,
    peer: Any,
    socket_file: str | None,
    result: Future[DatagramTransport],
) -> None:
    """Make the protocol and its transport, call ``connection_made``, resolve ``result``."""
    try:
        protocol = factory()
    except Exception as exc:
        sock.close()
        if socket_file is not None:
            with contextlib.suppress(OSError):
                os.unlink(socket_file)
        result.set_exception(exc)
        return
    transport = TwistedDatagramTransport(host, protocol, sock, peer)
    transport._socket_file = socket_file
    transport.start()
    result.set_result(transport)

"""Datagrams on the trio driver: one task per endpoint over a ``trio.socket`` socket.

A :class:`TrioDatagramTransport` is a weft
:class:`~weft.protocols.contract.DatagramTransport` whose datagrams are
moved by one task, two loops side by side in a nursery of its own, as the
stream transport's are:

* receiving: ``await trio_sock.recvfrom(size)``, then ``datagram_received``;
  an error the network reports (ICMP's "port unreachable" on a connected
  endpoint) goes to ``error_received`` and the endpoint goes on;
* sending: ``sendto()`` sends at once when nothing waits (the socket is
  non-blocking, so this never blocks); what the kernel could not take waits
  in a queue, which the sending loop sends as ``trio.lowlevel.wait_writable``
  allows, in order.  The queue counts in ``get_write_buffer_size()`` and
  drives ``pause_writing``/``resume_writing``.

What ``sendto`` accepts and raises is :mod:`weft.drivers._core.datagrams`'
(the same on every driver).  ``close()`` stops receiving and sends what is
queued first; ``abort()`` drops it.  The socket is closed, and
``connection_lost`` called, by the endpoint's task as it ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

import trio

from weft.drivers._core.connection_clock import ConnectionClock, DriverClock
from weft.drivers._core.datagram_sockets import (
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
from weft.drivers._core.transport_base import EndpointBookkeeping
from weft.drivers.trio._plumbing import TaskHost
from weft.drivers.trio._task_loops import TwoLoopTask
from weft.protocols._flow_control import WriteFlowControl
from weft.protocols.contract import DatagramTransport

__all__ = ["DatagramHost", "TrioDatagramTransport", "open_udp", "open_unix_datagram"]

logger = logging.getLogger("weft.drivers.trio")


class TrioDatagramTransport(EndpointBookkeeping, TwoLoopTask):
    """A datagram endpoint whose datagrams one task moves (see the module docstring).

    Made by :class:`~weft.drivers.trio.TrioRuntime`'s ``open_udp`` and
    ``open_unix_datagram``, never by applications.
    """

    def __init__(
        self,
        runtime: TaskHost,
        protocol: Any,
        sock: socket.socket,
        peer: Any = None,
        socket_file: str | None = None,
    ) -> None:
        self._runtime = runtime
        self._protocol = protocol
        self._sock = sock
        sock.setblocking(False)
        self._trio_sock = trio.socket.from_stdlib_socket(sock)
        self._socket_file = socket_file
        family = sock.family
        connected_to = name_or_none(sock.getpeername)
        if connected_to is not None:
            self._rules = SendRules(family, connected_to, connected=True, limit=max_datagram_size(family))
        else:
            self._rules = SendRules(family, peer, limit=max_datagram_size(family))
        self._read_size = UNIX_READ_SIZE if family == socket.AF_UNIX else UDP_READ_SIZE
        clock: DriverClock = runtime
        self._extra: dict[str, Any] = {
            "socket": sock,
            "sockname": name_or_none(sock.getsockname),
            "peername": connected_to,
            "clock": ConnectionClock(clock, self._run_callback),
        }
        self._flow = WriteFlowControl()
        self._lifecycle = TransportLifecycle()
        self._queue: deque[tuple[bytes, Any]] = deque()
        self._buffer_size = 0
        self._error: BaseException | None = None
        self._sender_parked: trio.lowlevel.Task | None = None
        self._scope = trio.CancelScope()
        self._receive_scope = trio.CancelScope()
        #: Called with this transport once the endpoint is lost.
        self.on_lost: list[Callable[[TrioDatagramTransport], object]] = []

    def start(self) -> None:
        """Start the endpoint's task, then call ``connection_made``."""
        self._runtime._spawn(self.run)
        try:
            self._protocol.connection_made(self)
        except Exception as exc:
            self._callback_failed(exc)

    # ------------------------------------------------------------ the contract

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        """Send ``data`` as one datagram now if the socket takes it, else queue it."""
        if type(data) is not bytes:
            data = as_datagram(data)
        if self._lifecycle.closing:
            return
        target = self._rules.target(len(data), addr)
        queue = self._queue
        if not queue:
            try:
                self._send(data, target)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                self._runtime.call_soon(self._report, datagram_error(exc, len(data)))
                return
            else:
                return
        queue.append((data, target))
        self._buffer_size += len(data)
        if self._flow.should_pause(self._buffer_size):
            self._pause_protocol()
        self._wake_sender()

    def close(self) -> None:
        """Stop receiving, send what is queued, then close; ``connection_lost(None)`` follows."""
        if self._lifecycle.closing:
            return
        self._lifecycle.apply(Event.CLOSE)
        self._receive_scope.cancel()
        self._wake_sender()

    def abort(self) -> None:
        """Drop what is queued and close now."""
        self._drop()

    def __repr__(self) -> str:
        lifecycle = self._lifecycle
        state = "lost" if lifecycle.lost else "closing" if lifecycle.closing else "open"
        return f"<TrioDatagramTransport {self._extra['sockname']!r} {state} queued={len(self._queue)}>"

    # ------------------------------------------------------------ the task

    async def _receive_loop(self) -> None:
        lifecycle = self._lifecycle
        recvfrom, size = self._trio_sock.recvfrom, self._read_size
        while True:  # close() cancels the receive
            try:
                data, addr = await recvfrom(size)
            except trio.ClosedResourceError:
                return
            except OSError as exc:
                if not self._call(self._protocol.error_received, exc):
                    return
                continue
            if lifecycle.closing:
                return
            if not self._call(self._protocol.datagram_received, data, addr):
                return

    async def _send_loop(self) -> None:
        lifecycle, queue = self._lifecycle, self._queue
        while True:
            if lifecycle.dropped:
                return
            if not queue:
                if lifecycle.closing:
                    return
                self._sender_parked = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(self._unpark_sender)
                continue
            await trio.lowlevel.wait_writable(self._sock)
            sent = 0
            while queue:
                data, target = queue[0]
                try:
                    self._send(data, target)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:  # this datagram is lost; the rest go on
                    self._call(self._protocol.error_received, datagram_error(exc, len(data)))
                queue.popleft()
                sent += len(data)
            if sent and not lifecycle.dropped:
                self._buffer_size -= sent
                if self._flow.should_resume(self._buffer_size):
                    self._call(self._protocol.resume_writing)

    def _send(self, data: bytes, target: Any) -> None:
        if target is None:
            self._sock.send(data)
        else:
            self._sock.sendto(data, target)

    # ------------------------------------------------------------- endings

    def _call(self, method: Callable[..., object], *args: Any) -> bool:
        """Call into the protocol; if it raises, end the endpoint with the error."""
        try:
            method(*args)
        except Exception as exc:
            self._callback_failed(exc)
            return False
        return True

    def _report(self, exc: Exception) -> None:
        if not self._lifecycle.closing:
            self._call(self._protocol.error_received, exc)

    def _callback_failed(self, exc: Exception) -> None:
        logger.error("exception in a callback of %r; closing %r", self._protocol, self, exc_info=exc)
        self._fail(exc)

    def _drop(self) -> None:
        lifecycle = self._lifecycle
        if lifecycle.dropped:
            return
        lifecycle.apply(Event.ABORT)
        self._queue.clear()
        self._buffer_size = 0
        self._scope.cancel()

    async def _end(self) -> None:
        self._queue.clear()
        self._buffer_size = 0
        self._trio_sock.close()
        if self._socket_file is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._socket_file)
        self._report_lost()


# ------------------------------------------------------------- opening


class DatagramHost(TaskHost, Protocol):
    """The trio runtime, as the code that opens its datagram endpoints sees it."""

    def _track_endpoint(self, endpoint: TrioDatagramTransport) -> TrioDatagramTransport:
        """Keep ``endpoint`` among the runtime's open endpoints until it ends."""
        ...


def open_udp(
    runtime: DatagramHost,
    factory: Callable[[], Any],
    local_address: tuple[Any, ...] | None,
    remote_address: tuple[Any, ...] | None,
    *,
    family: int,
    reuse_port: bool,
    allow_broadcast: bool,
) -> Future[DatagramTransport]:
    """A UDP endpoint, made in a task (names looked up in Trio's thread pool);
    bad arguments raise now (see :meth:`weft.drivers.trio.TrioRuntime.open_udp`)."""
    request = udp_request(
        local_address, remote_address, family, reuse_port=reuse_port, allow_broadcast=allow_broadcast
    )
    result: Future[DatagramTransport] = Future(runtime.call_soon)

    async def open_endpoint() -> None:
        try:
            if request.needs_lookup:
                candidates = await trio.to_thread.run_sync(udp_candidates, request)
            else:
                candidates = udp_candidates(request)
            sock, peer = open_udp_socket(request, candidates)
        except OSError as exc:
            result.set_exception(exc)
            return
        start_endpoint(factory, sock, None, partial(_endpoint, runtime, sock, peer, None), result)

    runtime._spawn(open_endpoint)
    return result


def open_unix_datagram(
    runtime: DatagramHost,
    factory: Callable[[], Any],
    local_path: str | bytes | os.PathLike[str] | None,
    remote_path: str | bytes | os.PathLike[str] | None,
) -> Future[DatagramTransport]:
    """A UNIX datagram endpoint; the socket is made now, the protocol on a next turn."""
    local, remote = unix_paths(local_path, remote_path)
    result: Future[DatagramTransport] = Future(runtime.call_soon)
    try:
        sock, peer, made = unix_datagram_socket(local, remote)
    except OSError as exc:
        runtime.call_soon(result.set_exception, exc)
        return result
    runtime.call_soon(
        start_endpoint, factory, sock, made, partial(_endpoint, runtime, sock, peer, made), result
    )
    return result


def _endpoint(
    runtime: DatagramHost, sock: socket.socket, peer: Any, socket_file: str | None, protocol: Any
) -> TrioDatagramTransport:
    return runtime._track_endpoint(TrioDatagramTransport(runtime, protocol, sock, peer, socket_file))

"""Datagrams on asyncio's loop (or uvloop's): weft's contract over ``create_datagram_endpoint``.

weft makes the socket itself (:mod:`weft.drivers._core.datagram_sockets`:
the same checks, lookups and binding as on every driver) and hands it to
``loop.create_datagram_endpoint(sock=...)``; asyncio's transport then moves
the datagrams, and a weft protocol is handed an
:class:`AsyncioDatagramTransport` in front of it, which keeps weft's
contract where asyncio's does not:

* ``get_extra_info("clock")`` is a weft clock bound to the endpoint;
* ``sendto`` checks the address and the size first and raises weft's
  errors (:class:`~weft.protocols.errors.DatagramAddressError`,
  :class:`~weft.protocols.errors.DatagramTooLargeError`): asyncio hands a
  wrong address to the socket, whose ``TypeError`` *ends* the endpoint,
  and uvloop raises plain ``ValueError``/``TypeError``;
* datagrams sent after ``close()`` or ``abort()`` are discarded (asyncio
  queues them while a close flushes);
* an empty datagram is sent (asyncio before 3.13 and uvloop drop it): the
  adapter sends it on the socket itself, and one the kernel cannot take at
  once is lost, as the network may lose any;
* ``error_received`` gets the kernel's ``EMSGSIZE`` as
  :class:`~weft.protocols.errors.DatagramTooLargeError`;
* an exception from any protocol callback (``datagram_received``,
  ``error_received``, ``pause_writing``, a timer) is logged and ends that
  endpoint with the exception (asyncio logs it and goes on);
* UNIX datagram sockets work on uvloop too, whose own
  ``create_datagram_endpoint`` refuses a path, and whose transport reports
  an abstract sender's name padded with NUL bytes (the adapter strips
  them) and cannot send to one (the adapter sends such a datagram on the
  socket itself, as an empty one).

``pause_writing``/``resume_writing`` are asyncio's (its transport keeps the
queue); ``set_write_buffer_limits`` sets asyncio's marks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from weft.drivers._core.connection_clock import ConnectionClock
from weft.drivers._core.datagram_sockets import (
    UNIXPath,
    open_udp_socket,
    udp_candidates,
    udp_request,
    unix_datagram_socket,
    unix_paths,
)
from weft.drivers._core.datagrams import SendRules, as_datagram, datagram_error, max_datagram_size
from weft.drivers._core.futures import Future
from weft.drivers._core.lifecycle import Event, TransportLifecycle
from weft.drivers._core.socket_defaults import name_or_none
from weft.drivers._core.transport_base import EndpointBookkeeping
from weft.drivers.asyncio._clock import LoopTimers
from weft.protocols._flow_control import WriteFlowControl
from weft.protocols.contract import DatagramTransport

__all__ = ["AsyncioDatagramTransport", "open_udp", "open_unix_datagram"]

logger = logging.getLogger("weft.drivers.asyncio")

ProtocolFactory = Callable[[], Any]


class DatagramHost(Protocol):
    """The asyncio runtime, as its datagram endpoints see it."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio event loop."""

    @property
    def _timers(self) -> LoopTimers:
        """The runtime's weft clock."""

    @property
    def _endpoints(self) -> set[AsyncioDatagramTransport]:
        """The endpoints still open (closing the runtime aborts them)."""

    def call_soon(self, callback: Callable[..., object], *args: Any) -> asyncio.Handle:
        """Run ``callback(*args)`` on the next turn."""

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coroutine`` as a task the runtime cancels when it closes."""


class _Side(asyncio.DatagramProtocol):
    """The asyncio protocol of the endpoint: forwards to its weft transport."""

    __slots__ = ("_owner",)

    def __init__(self, owner: AsyncioDatagramTransport) -> None:
        self._owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """asyncio made its transport: the weft protocol's ``connection_made`` follows."""
        self._owner._side_made(transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """Hand the datagram to the weft protocol (unless the endpoint is closing)."""
        owner = self._owner
        if owner._lifecycle.closing:
            return
        if type(addr) is bytes and (not addr or addr.endswith(b"\0")):
            addr = _unpadded(addr)
        try:
            owner._protocol.datagram_received(data, addr)
        except Exception as exc:
            owner._callback_failed(exc)

    def error_received(self, exc: Exception) -> None:
        """Hand the error on, ``EMSGSIZE`` as weft's DatagramTooLargeError."""
        self._owner._report(datagram_error(exc, None))

    def pause_writing(self) -> None:
        """Pass it on."""
        self._owner._call(self._owner._protocol.pause_writing)

    def resume_writing(self) -> None:
        """Pass it on."""
        self._owner._call(self._owner._protocol.resume_writing)

    def connection_lost(self, exc: BaseException | None) -> None:
        """asyncio's transport is gone: so is the endpoint."""
        self._owner._side_lost(exc)


class AsyncioDatagramTransport(EndpointBookkeeping):
    """A :class:`weft.protocols.contract.DatagramTransport` over asyncio's.

    Made by :class:`~weft.drivers.asyncio.AsyncioRuntime`'s ``open_udp`` and
    ``open_unix_datagram``, never by applications.
    """

    __slots__ = (
        "_direct_to_bytes",
        "_error",
        "_extra",
        "_flow",
        "_host",
        "_lifecycle",
        "_made",
        "_protocol",
        "_rules",
        "_side",
        "_sock",
        "_socket_file",
        "_under",
    )

    def __init__(
        self, host: DatagramHost, protocol: Any, sock: socket.socket, peer: Any, socket_file: str | None
    ) -> None:
        self._host = host
        self._protocol = protocol
        self._sock = sock
        # uvloop cannot send to an abstract UNIX address (a bytes one).
        self._direct_to_bytes = type(host.loop).__module__.startswith("uvloop")
        self._socket_file = socket_file
        family = sock.family
        connected_to = name_or_none(sock.getpeername)
        if connected_to is not None:
            self._rules = SendRules(family, connected_to, connected=True, limit=max_datagram_size(family))
        else:
            self._rules = SendRules(family, peer, limit=max_datagram_size(family))
        self._extra: dict[str, Any] = {
            "socket": sock,
            "sockname": name_or_none(sock.getsockname),
            "peername": connected_to,
            "clock": ConnectionClock(host._timers, self._run_callback),
        }
        self._flow = WriteFlowControl()
        self._lifecycle = TransportLifecycle()
        self._side = _Side(self)
        # asyncio's transport (its DatagramTransport, with the flow-control mixin's methods).
        self._under: Any = None
        self._made = False
        # The first error of a protocol callback: what connection_lost gets.
        self._error: BaseException | None = None

    # ------------------------------------------------------------ the contract

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        """Check ``data`` and ``addr`` (weft's errors), then hand the datagram to asyncio."""
        if type(data) is not bytes:
            data = as_datagram(data)
        if self._lifecycle.closing:
            return
        target = self._rules.target(len(data), addr)
        under = self._under
        if under is None:  # asyncio has not made its transport: only a bug gets here
            raise RuntimeError("sendto() before the endpoint was made")
        if data and not (self._direct_to_bytes and type(target) is bytes):
            under.sendto(data, target)
        else:
            self._send_directly(data, target)

    def _send_directly(self, data: bytes, target: Any) -> None:
        """What asyncio's transport would drop or refuse: an empty datagram
        (asyncio before 3.13, uvloop), one to an abstract UNIX address
        (uvloop).  One non-blocking send on the socket; a datagram the
        kernel cannot take at once is lost, as the network may lose any."""
        try:
            if target is None:
                self._sock.send(data)
            else:
                self._sock.sendto(data, target)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self._host.call_soon(self._report, datagram_error(exc, len(data)))

    def close(self) -> None:
        """Send what asyncio holds, then close; ``connection_lost(None)`` follows."""
        if self._lifecycle.closing:
            return
        self._lifecycle.apply(Event.CLOSE)
        if self._under is not None:
            self._under.close()

    def abort(self) -> None:
        """Close now, dropping what asyncio holds."""
        if self._lifecycle.dropped:
            return
        self._lifecycle.apply(Event.ABORT)
        if self._under is not None:
            self._under.abort()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the water marks (asyncio's defaults and rules, weft's ArgumentError)."""
        self._flow.set_limits(high, low)
        if self._under is not None:
            low, high = self._flow.limits()
            self._under.set_write_buffer_limits(high=high, low=low)

    def get_write_buffer_size(self) -> int:
        """Bytes of datagrams asyncio holds, waiting for the kernel."""
        if self._under is None or self._lifecycle.dropped:
            return 0
        return int(self._under.get_write_buffer_size())

    def __repr__(self) -> str:
        lifecycle = self._lifecycle
        state = "lost" if lifecycle.lost else "closing" if lifecycle.closing else "open"
        return f"<AsyncioDatagramTransport {self._extra['sockname']!r} {state}>"

    # ------------------------------------------------------ asyncio's events

    def _side_made(self, under: asyncio.BaseTransport) -> None:
        self._under = under
        self._host._endpoints.add(self)
        low, high = self._flow.limits()
        under.set_write_buffer_limits(high=high, low=low)  # type: ignore[attr-defined]
        self._made = True
        self._call(self._protocol.connection_made, self)

    def _side_lost(self, exc: BaseException | None) -> None:
        lifecycle = self._lifecycle
        if lifecycle.lost:
            return
        if not lifecycle.dropped:
            lifecycle.apply(Event.ABORT)
        lifecycle.apply(Event.LOST)
        self._host._endpoints.discard(self)
        try:
            if self._made:
                try:
                    self._protocol.connection_lost(self._error if self._error is not None else exc)
                except Exception as failure:
                    logger.error("exception in connection_lost of %r", self._protocol, exc_info=failure)
        finally:
            if self._socket_file is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self._socket_file)

    def _report(self, exc: Exception) -> None:
        if not self._lifecycle.closing:
            self._call(self._protocol.error_received, exc)

    def _call(self, method: Callable[..., object], *args: Any) -> None:
        try:
            method(*args)
        except Exception as exc:
            self._callback_failed(exc)

    def _callback_failed(self, exc: Exception) -> None:
        """A protocol callback raised: log it and end this endpoint with it."""
        logger.error("exception in a callback of %r; closing %r", self._protocol, self, exc_info=exc)
        if self._lifecycle.lost:
            return
        if self._error is None:
            self._error = exc
        if not self._lifecycle.dropped:
            self._lifecycle.apply(Event.ABORT)
        if self._under is not None:
            self._under.abort()


# ------------------------------------------------------------ opening


def open_udp(
    host: DatagramHost,
    factory: ProtocolFactory,
    local_address: Any,
    remote_address: Any,
    *,
    family: int,
    reuse_port: bool,
    allow_broadcast: bool,
) -> Future[DatagramTransport]:
    """A UDP endpoint; see :meth:`AsyncioRuntime.open_udp <weft.drivers.asyncio.AsyncioRuntime.open_udp>`."""
    request = udp_request(
        local_address, remote_address, family, reuse_port=reuse_port, allow_broadcast=allow_broadcast
    )
    result: Future[DatagramTransport] = Future(host.call_soon)

    async def make() -> None:
        try:
            if request.needs_lookup:
                candidates = await host.loop.run_in_executor(None, udp_candidates, request)
            else:
                candidates = udp_candidates(request)
            sock, peer = open_udp_socket(request, candidates)
        except OSError as exc:
            result.set_exception(exc)
            return
        await _start(host, factory, sock, peer, None, result)

    host._spawn(make())
    return result


def open_unix_datagram(
    host: DatagramHost, factory: ProtocolFactory, local_path: UNIXPath | None, remote_path: UNIXPath | None
) -> Future[DatagramTransport]:
    """A UNIX datagram endpoint; see :meth:`AsyncioRuntime.open_unix_datagram`."""
    local, remote = unix_paths(local_path, remote_path)
    result: Future[DatagramTransport] = Future(host.call_soon)

    async def make() -> None:
        try:
            sock, peer, made = unix_datagram_socket(local, remote)
        except OSError as exc:
            result.set_exception(exc)
            return
        await _start(host, factory, sock, peer, made, result)

    host._spawn(make())
    return result


async def _start(
    host: DatagramHost,
    factory: ProtocolFactory,
    sock: socket.socket,
    peer: Any,
    socket_file: str | None,
    result: Future[DatagramTransport],
) -> None:
    """Make the protocol, hand the socket to asyncio, resolve ``result`` once
    ``connection_made`` has run."""
    handed_over = False
    try:
        protocol = factory()
        transport = AsyncioDatagramTransport(host, protocol, sock, peer, socket_file)
        await host.loop.create_datagram_endpoint(lambda: transport._side, sock=sock)
        handed_over = True
    except Exception as exc:
        result.set_exception(exc)
    finally:
        if not handed_over:
            sock.close()
            if socket_file is not None:
                with contextlib.suppress(OSError):
                    os.unlink(socket_file)
    if handed_over:
        result.set_result(transport)


def _unpadded(addr: bytes) -> bytes | None:
    """uvloop reports an abstract UNIX address with the rest of ``sun_path``
    as NUL bytes (and an unbound sender as only NULs): what asyncio reports."""
    stripped = addr.rstrip(b"\0")
    return stripped if stripped else None

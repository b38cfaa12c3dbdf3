"""The task a Trio connection or datagram endpoint runs: a receiving loop, a sending loop, an end.

:class:`~weft.drivers.trio._transport.TrioTransport` and
:class:`~weft.drivers.trio._datagrams.TrioDatagramTransport` move their bytes
the same way: one task per transport runs the receiving loop, with the
sending loop in a nursery beside it; the sender parks when nothing is
queued and a write wakes it; ``close`` cancels the receive, an abort cancels
both; the end reports ``connection_lost`` and runs the ``on_lost`` hooks.
:class:`TwoLoopTask` is that shared skeleton; each transport brings its loops,
its queue and its end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from weft.drivers._core.lifecycle import Event, TransportLifecycle
from weft.protocols._flow_control import WriteFlowControl

__all__ = ["TwoLoopTask"]

logger = logging.getLogger("weft.drivers.trio")


class TwoLoopTask:
    """The task of a Trio transport: :meth:`run` its loops, park and wake the sender, report the loss.

    A mixin: the transport sets the attributes below in its ``__init__`` and
    defines ``_receive_loop``, ``_send_loop``, ``_end``, ``_drop`` and
    ``_callback_failed``.
    """

    _protocol: Any
    _lifecycle: TransportLifecycle
    _flow: WriteFlowControl
    _buffer_size: int
    _error: BaseException | None
    _scope: trio.CancelScope
    _receive_scope: trio.CancelScope
    _sender_parked: trio.lowlevel.Task | None
    #: Called with this transport once it is lost.
    on_lost: list[Callable[[Any], object]]

    async def run(self) -> None:
        """The transport's task: both loops, then the end (``connection_lost``)."""
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._send_loop)
                    with self._receive_scope:
                        await self._receive_loop()
        except Exception as exc:  # a bug here must end the transport, never the runtime
            logger.error("the task of %r failed", self, exc_info=exc)
            self._fail(exc)
        finally:
            await self._end()

    if TYPE_CHECKING:

        async def _receive_loop(self) -> None:
            """Deliver what arrives until the end or a close."""

        async def _send_loop(self) -> None:
            """Send what is queued; park while nothing is."""

        async def _end(self) -> None:
            """Close what the transport holds, then :meth:`_report_lost`."""

        def _drop(self) -> None:
            """Go away at once: drop what is queued, cancel both loops."""

        def _callback_failed(self, exc: Exception) -> None:
            """A protocol callback raised: log it and end with it."""

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the water marks (asyncio's defaults and rules, weft's ArgumentError)."""
        self._flow.set_limits(high, low)
        if not self._lifecycle.lost and self._flow.should_pause(self._buffer_size):
            self._pause_protocol()

    def get_write_buffer_size(self) -> int:
        """Bytes queued and not yet taken by the stream or the socket."""
        return self._buffer_size

    def _fail(self, exc: BaseException) -> None:
        """End at once with ``exc`` (the first error wins)."""
        if self._error is None:
            self._error = exc
        self._drop()

    def _pause_protocol(self) -> None:
        try:
            self._protocol.pause_writing()
        except Exception as exc:
            self._callback_failed(exc)

    def _unpark_sender(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        self._sender_parked = None
        return trio.lowlevel.Abort.SUCCEEDED

    def _wake_sender(self) -> None:
        parked = self._sender_parked
        if parked is not None:
            self._sender_parked = None
            trio.lowlevel.reschedule(parked)

    def _report_lost(self) -> None:
        """The last step of the end: lost, ``connection_lost(error)``, then the hooks."""
        self._lifecycle.apply(Event.LOST)
        try:
            self._protocol.connection_lost(self._error)
        except Exception as exc:
            logger.error("exception in connection_lost of %r", self._protocol, exc_info=exc)
        finally:
            for hook in self.on_lost:
                hook(self)
            self.on_lost.clear()

"""Pausing a transport that rides on another framework's: what arrives meanwhile is held, then delivered.

The asyncio adapter and the Twisted driver hand a weft protocol the bytes
another framework's transport reads.  Neither framework stops at once when
told to pause (asyncio and uvloop ignore a pause made inside
``connection_made``; Twisted may hand over a chunk it read already), so
both keep what comes while reading is paused, with the EOF in its place
behind it, and deliver it on a later turn once reading resumes, before
the framework is told to read again.  :class:`HeldDelivery` is that, once;
each transport says how its framework pauses and resumes
(:meth:`~HeldDelivery._pause_source`, :meth:`~HeldDelivery._resume_source`),
how a call is put on the next turn (:meth:`~HeldDelivery._soon_deliver`)
and where data goes (:meth:`~HeldDelivery._hand_over`), and how it holds
what arrives (its ``_hold``, which differs with how the framework's
pause is applied again).

None of it is on the read path: data that arrives while reading is on
goes straight to the protocol; these methods run only around a pause.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from weft.drivers._core.lifecycle import Event, ReadState
from weft.drivers._core.transport_base import TransportBookkeeping

__all__ = ["HeldDelivery"]


class HeldDelivery(TransportBookkeeping):
    """A byte-stream transport's pausing and resuming over another framework's transport.

    It keeps ``_held`` (data, and ``None`` for the EOF, in order) and
    ``_delivery`` (the pending call that delivers them, or ``None``).
    """

    # No instance state of its own (hidden from mypy, which would refuse
    # the assignments below to names a slotted class does not list).
    if not TYPE_CHECKING:
        __slots__ = ()

    _held: deque[bytes | None]
    _delivery: Any

    # ------------------------------------------ what each transport supplies

    def _pause_source(self) -> None:
        """Tell the framework to stop reading (if its transport is there)."""
        raise NotImplementedError

    def _resume_source(self) -> None:
        """Tell the framework to read again (if its transport is there and
        the connection still wants data)."""
        raise NotImplementedError

    def _soon_deliver(self, callback: Callable[[], object]) -> Any:
        """Run ``callback`` on the next turn; a handle with ``cancel()``."""
        raise NotImplementedError

    def _hand_over(self, data: bytes) -> None:
        """Give ``data`` to the protocol (raises what the protocol raised)."""
        raise NotImplementedError

    # ------------------------------------------------------- ReadTransport

    def pause_reading(self) -> None:
        """Stop delivering data; the peer is slowed by the kernel's flow control."""
        lifecycle = self._lifecycle
        if not lifecycle.reading:  # paused already, or closing
            return
        lifecycle.apply(Event.PAUSE)
        if lifecycle.read_state is ReadState.PAUSED:  # not at EOF
            self._pause_source()

    def resume_reading(self) -> None:
        """Deliver again: first, on a later turn, whatever was held meanwhile."""
        if not self._lifecycle.paused:  # not paused, or closing
            return
        self._lifecycle.apply(Event.RESUME)
        if self._held:
            if self._delivery is None:
                self._delivery = self._soon_deliver(self._deliver_held)
        else:
            self._resume_source()

    # -------------------------------------------------- the framework's events

    def _eof(self) -> None:
        """The peer sent EOF: tell the protocol now, or behind what is held."""
        lifecycle = self._lifecycle
        if lifecycle.closing:
            return
        lifecycle.apply(Event.EOF_RECEIVED)
        if lifecycle.paused or self._held:
            self._held.append(None)
        else:
            self._deliver_eof()

    def _deliver_eof(self) -> None:
        try:
            keep_open = self._protocol.eof_received()
        except Exception as exc:
            self._callback_failed(exc)
            return
        if not keep_open:
            self.close()

    def _deliver_held(self) -> None:
        self._delivery = None
        held, lifecycle = self._held, self._lifecycle
        while held and lifecycle.reading:
            data = held.popleft()
            if data is None:
                self._deliver_eof()
                continue
            try:
                self._hand_over(data)
            except Exception as exc:
                self._callback_failed(exc)
                return
        if not held and lifecycle.reading:
            self._resume_source()

    def _stop_delivering(self) -> None:
        """Drop what is held and the pending delivery.

        Reading is STOPPED now (the lifecycle did it): anything the
        framework still hands over goes to ``_hold``, which drops it."""
        self._held.clear()
        if self._delivery is not None:
            self._delivery.cancel()
            self._delivery = None

    if TYPE_CHECKING:

        def close(self) -> None:
            """Each transport's own."""

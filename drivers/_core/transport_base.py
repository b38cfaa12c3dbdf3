"""What every driver's transports do the same way.

The reactor's, the asyncio adapter's, the memory driver's and the blocking
driver's transports differ in how they move bytes, not in how they answer
the contract's bookkeeping questions: which protocol is attached, whether
the connection is closing, whether data is being delivered, the water
marks.  Those answers live here, once; each transport keeps the state
(``_protocol``, ``_lifecycle``, ``_extra``, ``_flow``) and inherits the
methods.  Its lifecycle (:mod:`weft.drivers._core.lifecycle`) is the one
every transport shares.

:class:`EndpointBookkeeping` is what byte streams and datagram endpoints
share; :class:`TransportBookkeeping` adds what only a byte stream has (its
write admission, ``is_reading``, ``writelines``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from weft.drivers._core.lifecycle import TransportLifecycle
from weft.protocols._flow_control import WriteFlowControl
from weft.protocols.errors import WriteAfterEofError

__all__ = ["EndpointBookkeeping", "TransportBookkeeping", "drop_sent"]


class EndpointBookkeeping:
    """The bookkeeping every transport shares, stream or datagram, over state it keeps."""

    # No instance state of its own: the reactor's transports have __slots__.
    __slots__ = ()

    _protocol: Any
    _lifecycle: TransportLifecycle
    _extra: dict[str, Any]
    _flow: WriteFlowControl

    if TYPE_CHECKING:

        def _callback_failed(self, exc: Exception) -> None:
            """Each transport's own: log ``exc`` and end this connection with it."""

    def _run_callback(self, callback: Callable[..., object], args: tuple[Any, ...]) -> object:
        """Run a protocol timer (the connection clock's); if it raises, log and
        end this connection (the memory driver's own lets it reach the test)."""
        try:
            return callback(*args)
        except Exception as exc:
            self._callback_failed(exc)
            return None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``"peername"``, ``"sockname"``, ``"clock"``, and whatever else the driver offers."""
        return self._extra.get(name, default)

    def is_closing(self) -> bool:
        """True once ``close()`` or ``abort()`` was called or the connection was lost."""
        return self._lifecycle.closing

    def set_protocol(self, protocol: Any) -> None:
        """Hand the connection to ``protocol``."""
        self._protocol = protocol

    def get_protocol(self) -> Any:
        """The protocol attached."""
        return self._protocol

    @property
    def _lost(self) -> bool:
        """Whether the connection has ended (``connection_lost`` is scheduled or
        has run): what the runtimes' own code and the tests wait for."""
        return self._lifecycle.lost

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """``(low, high)``."""
        return self._flow.limits()


class TransportBookkeeping(EndpointBookkeeping):
    """The contract's bookkeeping methods of a byte stream, over state the transport keeps."""

    __slots__ = ()

    if TYPE_CHECKING:

        def write(self, data: bytes | bytearray | memoryview) -> None:
            """Each transport's own."""

    def _admit(self, data: bytes | bytearray | memoryview) -> bytes | None:
        """What ``write(data)`` takes: ``data`` as plain bytes (a copy: a
        bytearray may change after write() returns), or None when there is
        nothing to send (no bytes, or the transport is closing).  Raises
        TypeError for what is not bytes-like and WriteAfterEofError after
        ``write_eof()``, as every transport's write() must."""
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"data must be a bytes-like object, not {type(data).__name__}")
            data = bytes(data)
        if self._lifecycle.eof_written:
            raise WriteAfterEofError("write() after write_eof()")
        if not data or self._lifecycle.closing:
            return None
        return data

    def is_reading(self) -> bool:
        """Whether data is delivered (not paused, not closing)."""
        return self._lifecycle.reading

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        """Write the pieces in order, as one write."""
        self.write(b"".join(list_of_data))


def drop_sent(queue: deque[Any], count: int) -> None:
    """Drop the first ``count`` bytes from a queue of bytes-like pieces (what
    one ``send``/``sendmsg``/``writev`` took); a piece taken in part stays at
    the head as a view of its rest."""
    while count:
        head = queue[0]
        if len(head) <= count:
            queue.popleft()
            count -= len(head)
        else:
            queue[0] = memoryview(head)[count:]
            return

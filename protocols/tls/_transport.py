"""The transport an application protocol gets from the TLS layer.

It has the full :class:`~weft.protocols.contract.Transport` interface; every
call goes to the :class:`~weft.protocols.tls._layer.TLSProtocol` that made
it.  ``get_extra_info`` answers asyncio's TLS names (``ssl_object``,
``peercert``, ``cipher``, ``compression``, ``sslcontext``) plus ``version``
and ``alpn_protocol``, and passes every other name (``peername``, ``clock``,
...) to the transport below.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from weft.protocols.tls._layer import TLSProtocol

__all__ = ["TLSTransport"]


class TLSTransport:
    """A TLS session seen as a transport; made by the TLS layer, never by applications."""

    __slots__ = ("_layer",)

    def __init__(self, layer: TLSProtocol) -> None:
        self._layer = layer

    # ------------------------------------------------------- BaseTransport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """TLS facts (``None`` before the handshake completes), else the transport below's."""
        layer = self._layer
        session = layer.ssl_object
        if name == "ssl_object":
            return session
        if name == "sslcontext":
            return layer.context
        if name in ("peercert", "peercert_binary", "cipher", "version", "alpn_protocol", "compression"):
            if not layer.handshake_complete:
                return default
            value: Any
            if name == "peercert":
                value = session.getpeercert()
            elif name == "peercert_binary":
                value = session.getpeercert(binary_form=True)
            elif name == "cipher":
                value = session.cipher()
            elif name == "version":
                value = session.version()
            elif name == "alpn_protocol":
                value = session.selected_alpn_protocol()
            else:
                value = session.compression()
            return default if value is None else value
        return layer.lower_transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        """Whether close() or abort() was called, or the session ended."""
        return self._layer.is_closing()

    def close(self) -> None:
        """Send what is buffered, then close_notify; close below once the peer
        answers or ``close_timeout`` passes.  Before the handshake completes,
        abort instead."""
        self._layer.close()

    def set_protocol(self, protocol: Any) -> None:
        """Hand the plaintext to another protocol."""
        self._layer.set_app_protocol(protocol)

    def get_protocol(self) -> Any:
        """The protocol receiving the plaintext."""
        return self._layer.get_app_protocol()

    # ------------------------------------------------------- ReadTransport

    def is_reading(self) -> bool:
        """Whether plaintext is being delivered."""
        return self._layer.is_reading()

    def pause_reading(self) -> None:
        """Deliver nothing until :meth:`resume_reading` (the transport below pauses too)."""
        self._layer.pause_reading()

    def resume_reading(self) -> None:
        """Deliver what arrived while paused, then read on."""
        self._layer.resume_reading()

    # ------------------------------------------------------ WriteTransport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and send ``data`` (held until the handshake completes)."""
        self._layer.write(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        """Write the pieces in order, as one write."""
        self._layer.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        """Send close_notify after what is buffered, and go on reading until the peer's."""
        self._layer.write_eof()

    def can_write_eof(self) -> bool:
        """True: a TLS session half-closes with close_notify."""
        return True

    def abort(self) -> None:
        """Close at once; buffered data is lost and no close_notify is sent."""
        self._layer.abort()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Water marks for pause_writing/resume_writing (asyncio's rules)."""
        self._layer.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """``(low, high)``."""
        return self._layer.get_write_buffer_limits()

    def get_write_buffer_size(self) -> int:
        """Bytes written and not yet taken by the OS (plaintext held plus ciphertext queued)."""
        return self._layer.get_write_buffer_size()

"""Echo: every byte received is sent back.

The smallest useful protocol, and the one every driver is measured with.  It
is still careful about memory: when its peer stops reading and the write
buffer passes the high-water mark, it stops reading too, so a peer that only
sends cannot make it buffer without bound.
"""

from __future__ import annotations

from typing import Any

from weft.protocols.contract import Protocol, Transport

__all__ = ["EchoProtocol"]


class EchoProtocol(Protocol):
    """Sends back every byte; closes when the peer has sent EOF and all is echoed."""

    transport: Transport

    def connection_made(self, transport: Any) -> None:
        """Keep the transport."""
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Echo ``data``."""
        self.transport.write(data)

    def pause_writing(self) -> None:
        """The peer is not keeping up: stop reading what it sends."""
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        """The peer caught up: read again."""
        self.transport.resume_reading()

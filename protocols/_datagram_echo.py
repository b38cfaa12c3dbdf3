"""Datagram echo: every datagram is sent back to where it came from.

The datagram twin of :class:`~weft.protocols.EchoProtocol`, and as careful
about memory: a UDP echo cannot slow its senders down (there is no
connection to stop reading from), so while its transport holds more than
its high-water mark (``pause_writing`` came) it answers nothing, and
counts what it dropped.  Any sender can make it send at most as much as it
receives, never hold more than the water mark.
"""

from __future__ import annotations

from typing import Any

from weft.protocols.contract import DatagramProtocol, DatagramTransport

__all__ = ["DatagramEchoProtocol"]


class DatagramEchoProtocol(DatagramProtocol):
    """Sends every datagram back to its sender; drops (and counts) what it cannot answer.

    ``dropped`` counts the datagrams not answered: those that came while
    the transport was paused, and those from a sender with no address (an
    unbound UNIX datagram socket).  ``errors`` counts what
    ``error_received`` reported (a sender whose port closed before its
    answer came back: the endpoint goes on).
    """

    transport: DatagramTransport

    def __init__(self) -> None:
        self.dropped = 0
        self.errors = 0
        self._paused = False

    def connection_made(self, transport: Any) -> None:
        """Keep the transport."""
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """Send ``data`` back to ``addr`` (unless paused, or ``addr`` is unknown)."""
        if self._paused or addr is None:
            self.dropped += 1
            return
        self.transport.sendto(data, addr)

    def error_received(self, exc: Exception) -> None:
        """Count it; the endpoint goes on."""
        self.errors += 1

    def pause_writing(self) -> None:
        """Too much waits for the kernel: answer nothing until it drains."""
        self._paused = True

    def resume_writing(self) -> None:
        """Answer again."""
        self._paused = False

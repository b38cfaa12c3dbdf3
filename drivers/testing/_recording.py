"""Protocols that record what happens to them, for testing drivers and transports."""

from __future__ import annotations

from typing import Any

from weft.protocols.contract import DatagramProtocol, DatagramTransport, Protocol, Transport

__all__ = ["RecordingDatagramProtocol", "RecordingProtocol"]


class RecordingProtocol(Protocol):
    """Records every call it receives, in order, and does nothing else.

    ``events`` holds tuples: ``("connection_made",)``, ``("data_received",
    data)``, ``("eof_received",)``, ``("pause_writing",)``,
    ``("resume_writing",)``, ``("connection_lost", exc)``.
    ``keep_open_on_eof`` is what ``eof_received`` returns.
    """

    transport: Transport

    def __init__(self, *, keep_open_on_eof: bool = False) -> None:
        self.keep_open_on_eof = keep_open_on_eof
        self.events: list[tuple[Any, ...]] = []
        self._received = bytearray()

    def connection_made(self, transport: Any) -> None:
        """Record it and keep the transport."""
        self.transport: Transport = transport
        self.events.append(("connection_made",))

    def data_received(self, data: bytes) -> None:
        """Record the data."""
        self._received += data
        self.events.append(("data_received", data))

    def eof_received(self) -> bool:
        """Record it; return ``keep_open_on_eof``."""
        self.events.append(("eof_received",))
        return self.keep_open_on_eof

    def pause_writing(self) -> None:
        """Record it."""
        self.events.append(("pause_writing",))

    def resume_writing(self) -> None:
        """Record it."""
        self.events.append(("resume_writing",))

    def connection_lost(self, exc: BaseException | None) -> None:
        """Record it, with the exception."""
        self.events.append(("connection_lost", exc))

    # ----------------------------------------------------------- summaries

    @property
    def received(self) -> bytes:
        """All data received, joined."""
        return bytes(self._received)

    @property
    def names(self) -> list[str]:
        """The names of the calls received, in order."""
        return [event[0] for event in self.events]

    @property
    def made(self) -> bool:
        """Whether ``connection_made`` was called."""
        return "connection_made" in self.names

    @property
    def got_eof(self) -> bool:
        """Whether ``eof_received`` was called."""
        return "eof_received" in self.names

    @property
    def lost(self) -> bool:
        """Whether ``connection_lost`` was called."""
        return "connection_lost" in self.names

    @property
    def lost_exc(self) -> BaseException | None:
        """The exception ``connection_lost`` got (``None`` if clean or not yet lost)."""
        for event in self.events:
            if event[0] == "connection_lost":
                return event[1]  # type: ignore[no-any-return]
        return None

    @property
    def writing_paused(self) -> bool:
        """Whether the last flow-control call was ``pause_writing``."""
        flow = [name for name in self.names if name in ("pause_writing", "resume_writing")]
        return bool(flow) and flow[-1] == "pause_writing"

    def count(self, name: str) -> int:
        """How many times the call ``name`` was received."""
        return self.names.count(name)


class RecordingDatagramProtocol(DatagramProtocol):
    """Records every call a datagram protocol receives, in order, and does nothing else.

    ``events`` holds tuples: ``("connection_made",)``, ``("datagram_received",
    data, addr)``, ``("error_received", exc)``, ``("pause_writing",)``,
    ``("resume_writing",)``, ``("connection_lost", exc)``.
    """

    transport: DatagramTransport

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def connection_made(self, transport: Any) -> None:
        """Record it and keep the transport."""
        self.transport = transport
        self.events.append(("connection_made",))

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """Record the datagram and where it came from."""
        self.events.append(("datagram_received", data, addr))

    def error_received(self, exc: Exception) -> None:
        """Record the error."""
        self.events.append(("error_received", exc))

    def pause_writing(self) -> None:
        """Record it."""
        self.events.append(("pause_writing",))

    def resume_writing(self) -> None:
        """Record it."""
        self.events.append(("resume_writing",))

    def connection_lost(self, exc: BaseException | None) -> None:
        """Record it, with the exception."""
        self.events.append(("connection_lost", exc))

    # ----------------------------------------------------------- summaries

    @property
    def datagrams(self) -> list[tuple[bytes, Any]]:
        """``(data, addr)`` of each datagram received, in order."""
        return [(event[1], event[2]) for event in self.events if event[0] == "datagram_received"]

    @property
    def payloads(self) -> list[bytes]:
        """The data of each datagram received, in order."""
        return [event[1] for event in self.events if event[0] == "datagram_received"]

    @property
    def errors(self) -> list[Exception]:
        """The errors ``error_received`` got, in order."""
        return [event[1] for event in self.events if event[0] == "error_received"]

    @property
    def names(self) -> list[str]:
        """The names of the calls received, in order."""
        return [event[0] for event in self.events]

    @property
    def made(self) -> bool:
        """Whether ``connection_made`` was called."""
        return "connection_made" in self.names

    @property
    def lost(self) -> bool:
        """Whether ``connection_lost`` was called."""
        return "connection_lost" in self.names

    @property
    def lost_exc(self) -> BaseException | None:
        """The exception ``connection_lost`` got (``None`` if clean or not yet lost)."""
        for event in self.events:
            if event[0] == "connection_lost":
                return event[1]  # type: ignore[no-any-return]
        return None

    def count(self, name: str) -> int:
        """How many times the call ``name`` was received."""
        return self.names.count(name)

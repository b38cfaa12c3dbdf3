"""Protocols that record what happens to them, for testing drivers and transports."""

from __future__ import annotations

from typing import Any

from weft.protocols.contract import Protocol, Transport

__all__ = ["RecordingProtocol"]


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

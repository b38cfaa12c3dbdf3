"""Regular files and ``/dev/null`` as sides of an asyncio pipe connection.

asyncio's pipe transports refuse what the loop's poller cannot watch: a
regular file (it never blocks, so epoll refuses it) or ``/dev/null``.  The
reactor treats such a descriptor as always ready, as ``poll(2)`` does, and
so do these two: :class:`FileReader` reads one chunk per turn of the loop
(a chain of ``call_soon``, so other connections get their turns) until EOF
or a pause, and :class:`FileWriter` writes at once (a file takes everything
it is given; an error such as a full disk ends the connection).

They offer the part of asyncio's transport interface that
:class:`~weft.drivers.asyncio._transport.AsyncioTransport` uses, and call
their asyncio protocol as asyncio's own pipe transports do:
``connection_made`` on the next turn, ``connection_lost`` never from inside
``close()``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Protocol

from weft.drivers._core.socket_defaults import READ_SIZE

__all__ = ["READ_SIZE", "FileReader", "FileWriter"]


class _File(Protocol):
    """A descriptor that is closed with the transport."""

    def fileno(self) -> int:
        """The descriptor."""
        ...

    def close(self) -> None:
        """Close it."""


class _FileSide:
    """What both sides share: the descriptor, closing, and the end."""

    def __init__(self, loop: asyncio.AbstractEventLoop, file: _File, protocol: asyncio.BaseProtocol) -> None:
        self._loop = loop
        self._file = file
        self._protocol: Any = protocol
        self._closing = False
        self._lost = False

    def is_closing(self) -> bool:
        """Whether it is closed or closing."""
        return self._closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``"pipe"``: the file object, as asyncio's pipe transports say (a
        file region is sent to its descriptor); nothing else."""
        return self._file if name == "pipe" else default

    def close(self) -> None:
        """Close; ``connection_lost(None)`` follows on a later turn."""
        self._end(None)

    def _end(self, exc: BaseException | None) -> None:
        if self._closing:
            return
        self._closing = True
        self._stopped()
        self._loop.call_soon(self._connection_lost, exc)

    def _stopped(self) -> None:
        """Stop whatever is scheduled (the reader's next read)."""

    def _connection_lost(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._file.close()


class FileReader(_FileSide):
    """The reading side over a descriptor that is always ready."""

    def __init__(self, loop: asyncio.AbstractEventLoop, file: _File, protocol: asyncio.Protocol) -> None:
        super().__init__(loop, file, protocol)
        self._paused = False
        self._next: asyncio.Handle | None = None
        loop.call_soon(self._start)

    def pause_reading(self) -> None:
        """Stop reading until :meth:`resume_reading`."""
        if self._closing or self._paused:
            return
        self._paused = True
        self._stopped()

    def resume_reading(self) -> None:
        """Read again, from the next turn."""
        if self._closing or not self._paused:
            return
        self._paused = False
        self._schedule()

    def _start(self) -> None:
        # Reading starts only after connection_made, as with asyncio's pipes.
        self._protocol.connection_made(self)
        self._schedule()

    def _schedule(self) -> None:
        if self._next is None and not self._closing and not self._paused:
            self._next = self._loop.call_soon(self._read)

    def _stopped(self) -> None:
        if self._next is not None:
            self._next.cancel()
            self._next = None

    def _read(self) -> None:
        self._next = None
        try:
            data = os.read(self._file.fileno(), READ_SIZE)
        except OSError as exc:
            self._end(exc)
            return
        if data:
            self._protocol.data_received(data)
            self._schedule()
        else:
            self._paused = True  # nothing more to read, ever
            self._protocol.eof_received()
            self._end(None)


class FileWriter(_FileSide):
    """The writing side over a descriptor that is always ready: nothing is ever buffered."""

    def __init__(self, loop: asyncio.AbstractEventLoop, file: _File, protocol: asyncio.BaseProtocol) -> None:
        super().__init__(loop, file, protocol)
        loop.call_soon(self._protocol.connection_made, self)

    def write(self, data: bytes) -> None:
        """Write all of ``data`` now; an error ends the connection with it."""
        if self._closing:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._file.fileno(), view) :]
        except OSError as exc:
            self._end(exc)

    def write_eof(self) -> None:
        """Close: for a file, the end of the output is the end of the side."""
        self.close()

    def can_write_eof(self) -> bool:
        """True."""
        return True

    def abort(self) -> None:
        """Close (nothing is buffered to drop)."""
        self.close()

    def get_write_buffer_size(self) -> int:
        """Always 0."""
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Nothing is buffered, so nothing to limit (the transport keeps the marks)."""

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """``(0, 0)``: nothing is ever buffered."""
        return (0, 0)

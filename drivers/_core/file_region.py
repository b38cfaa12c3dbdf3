"""A stretch of an open file for ``write_file``: the concrete :class:`FileRegion`.

Protocols never open files (they may not import ``os``); code that may, a
driver or a handler such as :class:`weft._cli.file_server.FileServer`,
opens one here and hands it to a protocol or straight to a transport::

    region = FileSlice.open("big.iso")
    transport.write_file(region)     # sent with os.sendfile where it can be

The region is opened once and read with ``pread`` (or sent with
``sendfile``) at its own offset, so it never depends on a file position
that something else could move.
"""

from __future__ import annotations

import os

from weft.protocols.errors import ArgumentError

__all__ = ["FileSlice"]


class FileSlice:
    """``count`` bytes of an open file from ``offset``: a
    :class:`~weft.protocols.contract.FileRegion`.

    Made with :meth:`open` (or from a descriptor it then owns).  It closes
    its descriptor on :meth:`close`; a transport that takes it closes it once
    the bytes are sent or the connection ends.
    """

    __slots__ = ("_fd", "_offset", "_remaining", "name", "stat")

    def __init__(self, fd: int, *, offset: int = 0, count: int | None = None, name: str = "") -> None:
        self._fd = -1  # owned only once every check has passed
        info = os.fstat(fd)
        if offset < 0:
            raise ArgumentError(f"offset must be >= 0, not {offset}")
        if count is None:
            count = max(info.st_size - offset, 0)
        elif count < 0:
            raise ArgumentError(f"count must be >= 0, not {count}")
        self._fd = fd
        self._offset = offset
        self._remaining = count
        #: The file's status when the region was made (size, times, identity).
        self.stat = info
        #: The file's name, for error messages.
        self.name = name

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, offset: int = 0, count: int | None = None) -> FileSlice:
        """Open ``path`` for reading: ``count`` bytes from ``offset`` (by default to its end).

        Raises ``OSError`` (``FileNotFoundError``, ``PermissionError``...) as
        ``open`` does.
        """
        # O_NONBLOCK: opening a FIFO (one swapped in for a file, say) must not
        # block the driver's thread; reads of a regular file ignore the flag.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            return cls(fd, offset=offset, count=count, name=os.fspath(path))
        except BaseException:
            os.close(fd)
            raise

    def narrow(self, offset: int, count: int) -> None:
        """Make the region ``count`` bytes of the file from ``offset`` instead
        (a byte range of a file opened whole: no second open).

        Raises :class:`~weft.protocols.errors.ArgumentError` for a negative
        ``offset`` or ``count``.
        """
        if offset < 0 or count < 0:
            raise ArgumentError(f"offset and count must be >= 0, not {offset} and {count}")
        self._offset = offset
        self._remaining = count

    @property
    def offset(self) -> int:
        """Where in the file the next byte to send is."""
        return self._offset

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._fd < 0

    def __len__(self) -> int:
        return self._remaining

    def fileno(self) -> int:
        """The open file's descriptor."""
        return self._fd

    def read(self, size: int) -> bytes:
        """Up to ``size`` of the next bytes, and past them (``OSError`` if the file ended early)."""
        wanted = min(size, self._remaining)
        if wanted <= 0:
            return b""
        data = os.pread(self._fd, wanted, self._offset)
        if not data:
            raise self._ended_early()
        self._offset += len(data)
        self._remaining -= len(data)
        return data

    def consumed(self, count: int) -> None:
        """``count`` bytes went out straight from the file (``OSError`` if 0 while some remain)."""
        if count == 0 and self._remaining:
            raise self._ended_early()
        count = min(count, self._remaining)
        self._offset += count
        self._remaining -= count

    def close(self) -> None:
        """Close the descriptor (harmless twice)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        # A region nobody closed (dropped by a test, say) still frees its descriptor.
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._fd < 0 else f"fd={self._fd}"
        return f"<FileSlice {self.name!r} {state} offset={self._offset} left={self._remaining}>"

    def _ended_early(self) -> OSError:
        return OSError(f"{self.name or 'the file'} ended {self._remaining} bytes early while being sent")

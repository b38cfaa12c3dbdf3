"""A byte buffer read from the front, for parsers that cut frames by length."""

from __future__ import annotations

__all__ = ["ReadBuffer"]


class ReadBuffer:
    """Bytes appended at the back and consumed from the front, in linear time.

    Consumed bytes are only dropped from memory once they are at least half
    of the buffer, so each byte is moved a bounded number of times however
    the input is chunked.
    """

    __slots__ = ("_data", "_start")

    def __init__(self) -> None:
        self._data = bytearray()
        self._start = 0

    def __len__(self) -> int:
        return len(self._data) - self._start

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes at the back."""
        self._data += data

    def peek(self, size: int) -> bytes:
        """Up to ``size`` bytes from the front, not consumed."""
        start = self._start
        return bytes(self._data[start : start + size])

    def byte_at(self, offset: int) -> int:
        """The byte ``offset`` bytes from the front (which must be held)."""
        return self._data[self._start + offset]

    def take(self, size: int) -> bytes:
        """Remove and return ``size`` bytes from the front (which must be held)."""
        start = self._start
        chunk = bytes(self._data[start : start + size])
        self.skip(size)
        return chunk

    def skip(self, size: int) -> None:
        """Drop ``size`` bytes from the front."""
        self._start += size
        if self._start * 2 >= len(self._data):
            del self._data[: self._start]
            self._start = 0

    def take_all(self) -> bytes:
        """Remove and return everything."""
        chunk = bytes(self._data[self._start :])
        self.clear()
        return chunk

    def clear(self) -> None:
        """Drop everything."""
        self._data = bytearray()
        self._start = 0

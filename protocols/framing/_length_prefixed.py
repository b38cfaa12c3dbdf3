"""Length-prefixed framing: each frame is a big-endian length, then that many bytes.

The prefix is 1, 2 or 4 bytes (8, 16 or 32 bits), as in Twisted's
``Int8StringReceiver``, ``Int16StringReceiver`` and ``Int32StringReceiver``.
A frame whose announced length is over the limit is refused as soon as the
prefix is read, before any of its payload is kept.
"""

from __future__ import annotations

from collections.abc import Iterator

from weft.protocols.errors import ArgumentError, FrameTooLongError, UnencodableFrameError
from weft.protocols.framing._buffer import ReadBuffer
from weft.protocols.framing._parser import DEFAULT_MAX_FRAME_LENGTH, iter_frames

__all__ = ["PREFIX_SIZES", "LengthPrefixedParser", "encode_length_prefixed"]

#: The prefix sizes supported, in bytes.
PREFIX_SIZES = (1, 2, 4)


def _check_prefix_size(prefix_size: int) -> None:
    if prefix_size not in PREFIX_SIZES:
        raise ArgumentError(f"prefix_size must be one of {PREFIX_SIZES}, not {prefix_size!r}")


def encode_length_prefixed(payload: bytes, prefix_size: int = 4) -> bytes:
    """``payload`` with its big-endian length in front.

    Raises :class:`~weft.protocols.errors.UnencodableFrameError` if the
    payload is too long for the prefix.
    """
    _check_prefix_size(prefix_size)
    if len(payload) >= 1 << (8 * prefix_size):
        raise UnencodableFrameError(
            f"a {len(payload)}-byte payload does not fit a {prefix_size}-byte length prefix"
        )
    return len(payload).to_bytes(prefix_size, "big") + payload


class LengthPrefixedParser:
    """Cuts a byte stream into length-prefixed frames (the prefix is removed)."""

    __slots__ = ("_prefix_size", "_max_length", "_buffer", "_error")

    def __init__(self, prefix_size: int = 4, max_length: int = DEFAULT_MAX_FRAME_LENGTH) -> None:
        _check_prefix_size(prefix_size)
        if max_length < 0:
            raise ArgumentError(f"max_length must be >= 0, not {max_length}")
        self._prefix_size = prefix_size
        self._max_length = max_length
        self._buffer = ReadBuffer()
        self._error: FrameTooLongError | None = None

    @property
    def prefix_size(self) -> int:
        """Bytes in each length prefix."""
        return self._prefix_size

    @property
    def max_length(self) -> int:
        """The longest payload accepted."""
        return self._max_length

    @property
    def error(self) -> FrameTooLongError | None:
        """The error raised, once :meth:`next_frame` has raised it."""
        return self._error

    @property
    def buffered(self) -> int:
        """How many bytes are held."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Take more bytes."""
        if self._error is None:
            self._buffer.append(data)

    def next_frame(self) -> bytes | None:
        """The next payload, or ``None`` until it has all arrived."""
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        prefix_size = self._prefix_size
        if len(buffer) < prefix_size:
            return None
        length = int.from_bytes(buffer.peek(prefix_size), "big")
        if length > self._max_length:
            buffer.clear()
            self._error = FrameTooLongError(
                f"frame of {length} bytes is over the limit of {self._max_length}",
                limit=self._max_length,
                length=length,
            )
            raise self._error
        if len(buffer) < prefix_size + length:
            return None
        buffer.skip(prefix_size)
        return buffer.take(length)

    def frames(self) -> Iterator[bytes]:
        """Every whole frame available now, in order."""
        return iter_frames(self)

    def take_buffer(self) -> bytes:
        """Remove and return everything held."""
        return self._buffer.take_all()

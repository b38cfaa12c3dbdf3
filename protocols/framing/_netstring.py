"""Netstrings (D. J. Bernstein): ``<length>:<payload>,`` with a decimal length.

``b"hello"`` is sent as ``b"5:hello,"`` and the empty string as ``b"0:,"``.
The length has no sign and no leading zeros.  The parser judges the header
byte by byte in stream order, so a bad header gives the same error whatever
the chunking, and never looks at more header bytes than the longest length
the limit allows: a header with too many digits is refused at the first
digit too many, a length over the limit before any payload is kept.
"""

from __future__ import annotations

from collections.abc import Iterator

from weft.protocols.errors import ArgumentError, FrameTooLongError, MalformedFrameError, ProtocolError
from weft.protocols.framing._buffer import ReadBuffer
from weft.protocols.framing._parser import DEFAULT_MAX_FRAME_LENGTH, iter_frames

__all__ = ["NetstringParser", "encode_netstring"]

_COLON = ord(":")
_COMMA = ord(",")
_ZERO = ord("0")
_NINE = ord("9")


def encode_netstring(payload: bytes) -> bytes:
    """``payload`` as a netstring."""
    return b"%d:%s," % (len(payload), payload)


class NetstringParser:
    """Cuts a byte stream of netstrings into their payloads."""

    __slots__ = ("_max_length", "_max_digits", "_buffer", "_length", "_error")

    def __init__(self, max_length: int = DEFAULT_MAX_FRAME_LENGTH) -> None:
        if max_length < 0:
            raise ArgumentError(f"max_length must be >= 0, not {max_length}")
        self._max_length = max_length
        self._max_digits = len(str(max_length))
        self._buffer = ReadBuffer()
        # The payload length once its header is read, else None.
        self._length: int | None = None
        self._error: ProtocolError | None = None

    @property
    def max_length(self) -> int:
        """The longest payload accepted."""
        return self._max_length

    @property
    def error(self) -> ProtocolError | None:
        """The error raised, once :meth:`next_frame` has raised it."""
        return self._error

    @property
    def buffered(self) -> int:
        """How many bytes are held (a header already read is not counted)."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Take more bytes."""
        if self._error is None:
            self._buffer.append(data)

    def next_frame(self) -> bytes | None:
        """The next payload, or ``None`` until it has all arrived."""
        if self._error is not None:
            raise self._error
        if self._length is None:
            self._length = self._read_header()
            if self._length is None:
                return None
        length = self._length
        buffer = self._buffer
        if len(buffer) < length + 1:
            return None
        if buffer.byte_at(length) != _COMMA:
            self._fail(MalformedFrameError("netstring payload not followed by ','"))
        payload = buffer.take(length)
        buffer.skip(1)
        self._length = None
        return payload

    def frames(self) -> Iterator[bytes]:
        """Every whole payload available now, in order."""
        return iter_frames(self)

    def take_buffer(self) -> bytes:
        """Remove and return the unparsed bytes.

        A header already read is given back too, so the bytes returned are
        exactly the ones fed and not yet taken.
        """
        head = b"" if self._length is None else b"%d:" % self._length
        self._length = None
        return head + self._buffer.take_all()

    def _read_header(self) -> int | None:
        """Consume ``<digits>:`` and return the length, or None if incomplete."""
        window = self._buffer.peek(self._max_digits + 1)
        for index, byte in enumerate(window):
            if byte == _COLON:
                if index == 0:
                    self._fail(MalformedFrameError("netstring has an empty length"))
                length = int(window[:index])
                if length > self._max_length:
                    self._fail(
                        FrameTooLongError(
                            f"netstring of {length} bytes is over the limit of {self._max_length}",
                            limit=self._max_length,
                            length=length,
                        )
                    )
                self._buffer.skip(index + 1)
                return length
            if not _ZERO <= byte <= _NINE:
                self._fail(MalformedFrameError(f"netstring length holds {bytes([byte])!r}"))
            if index == 1 and window[0] == _ZERO:
                self._fail(MalformedFrameError("netstring length has a leading zero"))
            if index == self._max_digits:
                self._fail(
                    FrameTooLongError(
                        f"netstring length has more digits than the limit of {self._max_length} allows",
                        limit=self._max_length,
                        length=10**index,
                    )
                )
        return None

    def _fail(self, error: ProtocolError) -> None:
        self._buffer.clear()
        self._length = None
        self._error = error
        raise error

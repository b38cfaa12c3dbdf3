"""What every frame parser offers: bytes in, whole frames out.

A frame parser is a pure state machine.  Feed it bytes as they come, in any
chunks, then ask for frames until it has none::

    parser = LineParser()
    parser.feed(b"one\\ntw")
    parser.feed(b"o\\n")
    assert list(parser.frames()) == [b"one", b"two"]

Errors are events too.  A parser that meets bad input raises the error
(a :class:`~weft.protocols.errors.ProtocolError`) from :meth:`next_frame` in
the position the bad bytes hold in the stream: the good frames before them
come out first, whatever the chunking.  After that the parser is spent: it
ignores further input and raises the same error again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from weft.protocols.errors import ProtocolError

__all__ = ["DEFAULT_MAX_FRAME_LENGTH", "FrameParser", "ReadyFrames", "iter_frames"]

#: The default limit on a frame (a line, a payload), in bytes.
DEFAULT_MAX_FRAME_LENGTH = 64 * 1024


class FrameParser(Protocol):
    """The interface the framing protocols drive (and tests check)."""

    @property
    def error(self) -> ProtocolError | None:
        """The error the parser hit, once it has raised it."""
        ...

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Take more bytes.  Never raises for bad input: see :meth:`next_frame`."""

    def next_frame(self) -> bytes | None:
        """The next whole frame, or ``None`` until more bytes arrive.

        Raises the parser's :class:`~weft.protocols.errors.ProtocolError` when
        the stream reaches bad bytes.
        """
        ...

    def take_buffer(self) -> bytes:
        """Remove and return every byte fed but not yet returned in a frame.

        For handing the rest of a stream to something else: raw mode, another
        protocol, a TLS layer after STARTTLS.
        """
        ...

    def frames(self) -> Iterator[bytes]:
        """Every whole frame available now, in order."""
        ...


def iter_frames(parser: FrameParser) -> Iterator[bytes]:
    """Yield :meth:`FrameParser.next_frame` until it returns ``None``.

    The shared body of every parser's ``frames()``.
    """
    while (frame := parser.next_frame()) is not None:
        yield frame


class ReadyFrames(Protocol):
    """What weft's own parsers offer the framing protocols' fast delivery loop.

    Internal to the framing package (the names are underscored): a parser
    that cuts and checks frames as it is fed queues them behind one
    iterator, ``_pending``, which is its position in them, so the
    protocol's loop takes frames with no call per frame (see
    :mod:`~weft.protocols.framing._queue`).
    """

    #: The frames cut and not yet handed out, every one within the limits.
    _pending: Iterator[bytes]
    #: The error met after those frames, raised once they are handed out.
    _refused: ProtocolError | None
    #: The error raised, once raised: the parser is spent.
    _error: ProtocolError | None

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Take more bytes (as :meth:`FrameParser.feed`)."""

    def _hold(self) -> None:
        """End the iterator a delivery loop holds, keeping the frames it had
        not reached for the next one."""

"""Line framing: a stream of bytes cut at a delimiter.

Cost is linear in the input whatever the chunking.  Twisted's
``LineReceiver`` re-searches (and re-copies) its whole buffer for every chunk,
which is quadratic when a long line arrives in many small pieces; here a line
still waiting for its delimiter is kept as a list of pieces and only the new
bytes are searched.  ``bytes_scanned`` counts the bytes searched, so a test
can prove it without timing anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from operator import length_hint

from weft.protocols.errors import ArgumentError, LineTooLongError, UnencodableFrameError
from weft.protocols.framing._parser import DEFAULT_MAX_FRAME_LENGTH, iter_frames

__all__ = ["LineParser", "encode_line"]


def encode_line(line: bytes, delimiter: bytes = b"\n") -> bytes:
    """``line`` followed by ``delimiter``.

    Raises :class:`~weft.protocols.errors.UnencodableFrameError` if the line
    holds the delimiter, which would make the peer see two lines, or ends
    with bytes that make a delimiter with the start of the one appended
    (``b"x\\r\\n"`` with ``b"\\r\\n\\r\\n"``), which would end the line early.
    """
    if delimiter in line + delimiter[:-1]:
        raise UnencodableFrameError(f"line contains its delimiter {delimiter!r} (or would with it appended)")
    return line + delimiter


class LineParser:
    """Cuts a byte stream into lines (the delimiter is removed).

    ``max_length`` bounds a line, delimiter excluded.  A longer line raises
    :class:`~weft.protocols.errors.LineTooLongError` in its place in the
    stream, and the parser stops keeping the bytes of an over-long line as
    soon as :meth:`next_frame` reaches it, so memory stays bounded.  (Not
    sooner: until then :meth:`take_buffer` may still claim them, as raw mode
    does for a body that follows its header line in the same chunk.)  A
    trailing piece with no delimiter yet is held until one arrives
    (:meth:`take_buffer` returns it).
    """

    __slots__ = (
        "_delimiter",
        "_max_length",
        "_lines",
        "_pending",
        "_partial",
        "_partial_size",
        "_tail",
        "_error",
        "bytes_scanned",
    )

    def __init__(self, delimiter: bytes = b"\n", max_length: int = DEFAULT_MAX_FRAME_LENGTH) -> None:
        if not isinstance(delimiter, bytes):
            raise TypeError(f"delimiter must be bytes, not {type(delimiter).__name__}")
        if not delimiter:
            raise ArgumentError("delimiter must not be empty")
        if max_length < 0:
            raise ArgumentError(f"max_length must be >= 0, not {max_length}")
        self._delimiter = delimiter
        self._max_length = max_length
        # Whole lines, and an iterator over them that is the parser's
        # position: a line taken from it is handed out.  One iterator, shared
        # with the line protocol's delivery loop (see
        # FrameReceiver._deliver_lines), so that loop advances the parser at
        # no cost per line, and whatever else takes lines meanwhile (a
        # handler that switches to raw mode takes the rest) takes them from
        # under it.
        self._lines: list[bytes] = []
        self._pending: Iterator[bytes] = iter(self._lines)
        # The line still waiting for its delimiter, kept in pieces so that a
        # long line arriving in many chunks is never re-copied.
        self._partial: list[bytes] = []
        self._partial_size = 0
        # The last len(delimiter) - 1 bytes of the partial line: a delimiter
        # may straddle two chunks.
        self._tail = b""
        # Once set, the parser is spent: it raises this again and again.
        self._error: LineTooLongError | None = None
        #: How many bytes the parser has searched for delimiters, in total.
        self.bytes_scanned = 0

    @property
    def delimiter(self) -> bytes:
        """The bytes that end a line."""
        return self._delimiter

    @property
    def max_length(self) -> int:
        """The longest line accepted, delimiter excluded."""
        return self._max_length

    @property
    def error(self) -> LineTooLongError | None:
        """The error raised, once :meth:`next_frame` has raised it."""
        return self._error

    @property
    def buffered(self) -> int:
        """How many bytes are held: whole lines not yet taken, and the partial line."""
        waiting = self._waiting()
        return sum(map(len, waiting)) + len(waiting) * len(self._delimiter) + self._partial_size

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Take more bytes."""
        if not data or self._error is not None:
            return
        if type(data) is not bytes:
            data = bytes(data)
        delimiter = self._delimiter
        self.bytes_scanned += len(data)
        partial = self._partial
        if not partial:
            pieces = data.split(delimiter)
        elif self._partial_size <= len(data):
            # A partial line no longer than the new bytes: searching it again
            # with them is cheaper than the bookkeeping of a straddling
            # delimiter, and the cost stays linear (each byte is searched at
            # most twice: once when it came, once with a next chunk at least
            # as long).
            self.bytes_scanned += self._partial_size
            pieces = (b"".join(partial) + data).split(delimiter)
        else:
            # A long partial line (many small chunks of one long line): only
            # the new bytes are searched, find() up to the delimiter and
            # split() of the rest, so each byte is searched once.
            end = self._end_of_partial_line(data)
            if end < 0:
                self._add_partial(data)
                return
            first, rest = self._partial_line_through(data, end)
            pieces = rest.split(delimiter)
            pieces[0:0] = [first]
        last = pieces.pop()
        if pieces:
            # An exhausted list iterator forgets its list, so lines not yet
            # taken move to a new list with the new ones (usually there are none).
            if waiting := [*self._pending]:
                waiting += pieces
                pieces = waiting
            self._lines = pieces
            self._pending = iter(pieces)
        # The partial line was used up above (a long one by
        # _partial_line_through): the last piece is the new one.
        if last:
            self._partial = [last]
            self._partial_size = len(last)
            if len(delimiter) > 1:
                self._tail = last[1 - len(delimiter) :]
        elif partial:
            self._clear_partial()

    def next_frame(self) -> bytes | None:
        """The next line, or ``None`` until another delimiter arrives."""
        if (line := next(self._pending, None)) is not None:
            if len(line) > self._max_length:
                raise self._fail(len(line))
            return line
        if self._error is not None:
            raise self._error
        if self._partial_over_limit():
            raise self._fail(self._partial_size)
        return None

    next_line = next_frame

    def frames(self) -> Iterator[bytes]:
        """Every whole line available now, in order."""
        return iter_frames(self)

    def take_buffer(self) -> bytes:
        """Remove and return everything held, as the bytes that were fed."""
        delimiter = self._delimiter
        held = b"".join(line + delimiter for line in self._pending) + b"".join(self._partial)
        self._clear_lines()
        self._clear_partial()
        return held

    # ------------------------------------------------------------ internals

    def _waiting(self) -> list[bytes]:
        """The whole lines not yet handed out, left in place."""
        return self._lines[len(self._lines) - length_hint(self._pending) :]

    def _clear_lines(self) -> None:
        self._lines = []
        self._pending = iter(self._lines)

    def _end_of_partial_line(self, data: bytes) -> int:
        """Where the delimiter that ends the partial line ends in ``data``, or -1.

        Searches only ``data`` and the few partial-line bytes a straddling
        delimiter could start in.
        """
        delimiter = self._delimiter
        width = len(delimiter)
        if width > 1:
            joint = self._tail + data[: width - 1]
            self.bytes_scanned += len(joint)
            start = joint.find(delimiter)
            if 0 <= start < len(self._tail):
                return start + width - len(self._tail)
        start = data.find(delimiter)
        return -1 if start < 0 else start + width

    def _partial_line_through(self, data: bytes, end: int) -> tuple[bytes, bytes]:
        """The completed partial line (delimiter dropped), and the bytes after it."""
        joined = b"".join(self._partial) + data[:end]
        self._clear_partial()
        return joined[: len(joined) - len(self._delimiter)], data[end:]

    def _add_partial(self, piece: bytes) -> None:
        self._partial.append(piece)
        self._partial_size += len(piece)
        width = len(self._delimiter)
        if width > 1:
            self._tail = (self._tail + piece)[-(width - 1) :]

    def _clear_partial(self) -> None:
        self._partial = []
        self._partial_size = 0
        self._tail = b""

    @property
    def _longest(self) -> int:
        return self._max_length

    def _settled(self) -> bool:
        return self._error is None and not self._partial_over_limit()

    def _partial_over_limit(self) -> bool:
        """Whether the partial line is certainly over the limit, whatever bytes come next.

        It may end with the first bytes of a delimiter, so only past
        ``max_length + len(delimiter) - 1``: the same verdict whatever the chunking.
        """
        return self._partial_size > self._max_length + len(self._delimiter) - 1

    def _fail(self, length: int) -> LineTooLongError:
        """Spend the parser on a line of ``length`` bytes over the limit; return the error to raise."""
        error = self._too_long(length)
        # Nothing after an over-long line is trusted: drop it all.
        self._clear_lines()
        self._clear_partial()
        self._error = error
        return error

    def _too_long(self, length: int) -> LineTooLongError:
        return LineTooLongError(
            f"line longer than {self._max_length} bytes",
            limit=self._max_length,
            length=length,
        )

"""Line framing: a stream of bytes cut at a delimiter.

Cost is linear in the input whatever the chunking.  Twisted's
``LineReceiver`` re-searches (and re-copies) its whole buffer for every chunk,
which is quadratic when a long line arrives in many small pieces; here a line
still waiting for its delimiter and longer than the chunks arriving is kept
as a list of pieces and only the new bytes are searched.  ``bytes_scanned``
counts the bytes searched, so a test can prove it without timing anything.

The common case is one path with nothing else on it: a chunk at least as
long as the partial line before it is joined to it and cut with one
``bytes.split``, its lines queued (:mod:`~weft.protocols.framing._queue`)
and its last piece kept as the new partial line.  The lines are checked
against the limit there and then, so that handing them out costs nothing
per line, and the check costs nothing per line either: a chunk no longer
than the limit cannot hold a line over it, and a longer one is proved clean
by a few ``rfind`` hops, one per ``max_length`` bytes
(:meth:`LineParser._surely_within_limit`); only a chunk that may hold an
over-long line is measured line by line.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from operator import length_hint

from weft.protocols.errors import ArgumentError, LineTooLongError, UnencodableFrameError
from weft.protocols.framing._parser import DEFAULT_MAX_FRAME_LENGTH, iter_frames
from weft.protocols.framing._queue import FrameQueue

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


class _State(enum.Enum):
    """What a :class:`LineParser` is doing with the bytes it is fed."""

    #: Cutting lines; the partial line, if any, is one piece (``_partial``).
    LINES = "lines"
    #: Cutting lines; the partial line, longer than the chunks arriving, is
    #: kept in pieces (``_pieces``) and only new bytes are searched.
    LONG_LINE = "long line"
    #: An over-long line comes after the queued lines (``_refused``): nothing
    #: more is cut, and its bytes and all after them are held, as fed, in
    #: ``_pieces`` (raw mode may still claim them).
    REFUSED = "refused"
    #: The error was raised (``_error``): input is ignored.
    SPENT = "spent"


_LINES = _State.LINES
_LONG_LINE = _State.LONG_LINE
_REFUSED = _State.REFUSED
_SPENT = _State.SPENT


class LineParser(FrameQueue):
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
        "_unchecked",
        "_state",
        "_partial",
        "_pieces",
        "_pieces_size",
        "_tail",
        "_refused",
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
        # The queue of whole lines (FrameQueue): every one within the limit.
        super().__init__()
        self._delimiter = delimiter
        self._max_length = max_length
        # The most bytes a chunk can be cut into with no line over the limit
        # possible: a whole line in it is shorter by a delimiter, and the
        # piece left at its end may still end with a delimiter's first bytes.
        self._unchecked = max_length + len(delimiter) - 1
        self._state = _LINES
        # LINES: the line still waiting for its delimiter, in one piece.
        self._partial = b""
        # LONG_LINE: that line in pieces, never re-copied while it grows;
        # REFUSED: the bytes held.  And how many bytes they hold.
        self._pieces: list[bytes] = []
        self._pieces_size = 0
        # LONG_LINE: its last len(delimiter) - 1 bytes, where a delimiter
        # straddling two chunks would start.
        self._tail = b""
        # REFUSED: the error of the over-long line, raised once the lines
        # before it are handed out.  SPENT: the error raised, again and again.
        self._refused: LineTooLongError | None = None
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
        held = len(self._partial) + self._pieces_size
        return sum(map(len, waiting)) + len(waiting) * len(self._delimiter) + held

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Take more bytes."""
        partial = self._partial
        if self._state is not _LINES or len(partial) > len(data):
            self._feed_otherwise(data)
            return
        # A chunk at least as long as the partial line: searching the
        # partial line again with it costs less than the bookkeeping of a
        # straddling delimiter, and stays linear (each byte is searched at
        # most twice: once when it came, once with a next chunk at least as
        # long).  The sum is bytes whatever bytes-like ``data`` is (a copy
        # of a bytearray, which may change after this call).
        buffer = partial + data
        self.bytes_scanned += len(buffer)
        pieces = buffer.split(self._delimiter)
        if (
            len(buffer) > self._unchecked
            and not self._surely_within_limit(buffer)
            and (index := self._first_over_limit(pieces)) is not None
        ):
            self._refuse(pieces, index)
            return
        self._partial = pieces.pop()
        if pieces:
            if length_hint(self._pending):
                self._queue(pieces)
            else:
                # FrameQueue._queue's common case, inlined on this path
                # that runs once per chunk: none waiting.
                self._frames = pieces
                self._pending = iter(pieces)

    def next_frame(self) -> bytes | None:
        """The next line, or ``None`` until another delimiter arrives."""
        if (line := next(self._pending, None)) is not None:
            return line
        if self._error is not None:
            raise self._error
        if self._refused is not None:
            raise self._spend(self._refused)
        return None

    next_line = next_frame

    def frames(self) -> Iterator[bytes]:
        """Every whole line available now, in order."""
        return iter_frames(self)

    def take_buffer(self) -> bytes:
        """Remove and return everything held, as the bytes that were fed."""
        delimiter = self._delimiter
        waiting = b"".join(line + delimiter for line in self._pending)
        held = waiting + self._partial + b"".join(self._pieces)
        self._drop_queued()
        if self._state is not _SPENT:
            # An over-long line not yet reached goes with its bytes.
            self._cut_lines(b"")
        return held

    # ------------------------------------------------------------ internals

    def _feed_otherwise(self, data: bytes | bytearray | memoryview) -> None:
        """:meth:`feed` off its common path: a partial line longer than the
        chunk, or no cutting at all."""
        state = self._state
        if not data or state is _SPENT:
            return
        if type(data) is not bytes:
            data = bytes(data)
        if state is _REFUSED:
            # Nothing after an over-long line is cut: the bytes are held
            # only for take_buffer, until next_frame reaches the error.
            self._hold_piece(data)
            return
        if state is _LINES:
            # The partial line is longer than the chunk: from now on it is
            # kept in pieces and only new bytes are searched.
            partial = self._partial
            self._state = _LONG_LINE
            self._partial = b""
            self._pieces = [partial]
            self._pieces_size = len(partial)
            self._tail = partial[1 - len(self._delimiter) :] if len(self._delimiter) > 1 else b""
        if self._pieces_size <= len(data):
            # The chunk is as long as the line so far: back to one piece, and
            # the common path.
            self._cut_lines(b"".join(self._pieces))
            self.feed(data)
            return
        end = self._end_of_partial_line(data)
        if end < 0:
            self.bytes_scanned += len(data)
            self._hold_piece(data)
            if self._pieces_size > self._unchecked:
                # Over the limit whatever comes next.
                self._refused = self._too_long(self._pieces_size)
                self._state = _REFUSED
            return
        self.bytes_scanned += end
        pieces = self._pieces
        start = end - len(self._delimiter)
        if start >= 0:
            pieces.append(data[:start])
            line = b"".join(pieces)
        else:
            # The delimiter straddles: it starts in the pieces.
            joined = b"".join(pieces)
            line = joined[: len(joined) + start]
        self._cut_lines(b"")
        if len(line) > self._max_length:
            self._refuse([line, data[end:]], 0)
            return
        self._queue([line])
        self.feed(data[end:])

    def _cut_lines(self, partial: bytes) -> None:
        """Back to the LINES state, with ``partial`` as the partial line."""
        self._state = _LINES
        self._partial = partial
        self._pieces = []
        self._pieces_size = 0
        self._tail = b""
        self._refused = None

    def _hold_piece(self, piece: bytes) -> None:
        self._pieces.append(piece)
        self._pieces_size += len(piece)
        width = len(self._delimiter)
        if width > 1:
            self._tail = (self._tail + piece)[1 - width :]

    def _surely_within_limit(self, buffer: bytes) -> bool:
        """Whether ``buffer`` certainly splits into lines within the limit
        (and a last piece that may still end in time); False when it may not.

        Hops from delimiter to delimiter, each time to the last one a line
        within the limit could end with: one ``rfind`` per ``max_length``
        bytes or so, which reads each byte about once, backwards from the
        end of its window, whatever the number of lines.  A delimiter that
        overlaps itself (``b"aa"``) may be found where ``split`` would not
        cut, but never more than ``len(delimiter) - 1`` bytes after a cut
        ``split`` makes: the windows are sized so that every line ``split``
        makes still fits, and a borderline case answers False (and is
        measured line by line).
        """
        limit = self._max_length
        delimiter = self._delimiter
        width = len(delimiter)
        rfind = buffer.rfind
        end = len(buffer)
        position = 0
        while end - position > limit + 1 - width:
            found = rfind(delimiter, position, position + limit + 1)
            if found < 0:
                return False
            position = found + width
        return True

    def _first_over_limit(self, pieces: list[bytes]) -> int | None:
        """The index of the first piece over the limit (the last piece, the
        partial line, only once no delimiter can end it in time), or None."""
        limit = self._max_length
        for index in range(len(pieces) - 1):
            if len(pieces[index]) > limit:
                return index
        if len(pieces[-1]) > self._unchecked:
            return len(pieces) - 1
        return None

    def _refuse(self, pieces: list[bytes], index: int) -> None:
        """Queue the lines before ``pieces[index]``, an over-long one; hold it
        and the rest uncut (as fed) behind its error."""
        if index:
            self._queue(pieces[:index])
        self._cut_lines(b"")
        self._hold_piece(self._delimiter.join(pieces[index:]))
        self._refused = self._too_long(len(pieces[index]))
        self._state = _REFUSED

    def _end_of_partial_line(self, data: bytes) -> int:
        """Where the delimiter that ends the (long) partial line ends in ``data``, or -1.

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

    def _spend(self, error: LineTooLongError) -> LineTooLongError:
        """Spend the parser on ``error``, just reached; return it to raise."""
        # Nothing after an over-long line is trusted: drop it all.
        self._drop_queued()
        self._cut_lines(b"")
        self._state = _SPENT
        self._error = error
        return error

    def _too_long(self, length: int) -> LineTooLongError:
        return LineTooLongError(
            f"line longer than {self._max_length} bytes",
            limit=self._max_length,
            length=length,
        )

"""The machinery the length-prefixed and netstring parsers share.

Both cut whole frames as bytes are fed, in one loop over each chunk, check
them against the limit there, and queue them
(:mod:`~weft.protocols.framing._queue`), so FrameReceiver's delivery loop
takes frames with no call per frame.  A bad header stops the cutting where
it is; its error is raised by :meth:`CuttingParser.next_frame` once the
frames before it are out, so the good frames come first whatever the
chunking.  The bytes of a frame still arriving are kept as pieces and
joined once, when the frame can be whole, so a long frame in many small
chunks costs linear time.
"""

from __future__ import annotations

from collections.abc import Iterator
from operator import length_hint

from weft.protocols.errors import ArgumentError, FrameTooLongError, ProtocolError
from weft.protocols.framing._parser import iter_frames
from weft.protocols.framing._queue import FrameQueue

__all__ = ["CuttingParser"]


class CuttingParser(FrameQueue):
    """Base of the parsers that cut frames as they are fed; subclasses cut (:meth:`_cut`)."""

    __slots__ = ("_max_length", "_rest", "_rest_size", "_need", "_refused", "_error")

    def __init__(self, max_length: int, need: int) -> None:
        if max_length < 0:
            raise ArgumentError(f"max_length must be >= 0, not {max_length}")
        # The queue of whole frames (FrameQueue): every one within the limit.
        super().__init__()
        self._max_length = max_length
        # The bytes after the last whole frame, as fed, and how many; and
        # how many it takes before cutting can go on.
        self._rest: list[bytes] = []
        self._rest_size = 0
        self._need = need
        # The error of a bad header at the front of _rest, raised once the
        # frames before it are handed out; and the error once raised.
        self._refused: ProtocolError | None = None
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
        """How many bytes are held."""
        return sum(len(self._encode(frame)) for frame in self._waiting()) + self._rest_size

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Take more bytes."""
        if self._error is not None or not data:
            return
        if type(data) is not bytes:
            data = bytes(data)
        rest = self._rest
        size = self._rest_size + len(data)
        if size < self._need or self._refused is not None:
            rest.append(data)
            self._rest_size = size
            return
        if rest:
            rest.append(data)
            data = b"".join(rest)
        frames, offset, self._need = self._cut(data)
        if frames:
            if length_hint(self._pending):
                self._queue(frames)
            else:
                # FrameQueue._queue's common case, inlined on this path
                # that runs once per chunk: none waiting.
                self._frames = frames
                self._pending = iter(frames)
        # What is left is kept until the frame it starts can be whole.
        end = len(data)
        self._rest = [data[offset:]] if offset < end else []
        self._rest_size = end - offset

    def next_frame(self) -> bytes | None:
        """The next payload, or ``None`` until one has all arrived."""
        if (frame := next(self._pending, None)) is not None:
            return frame
        if self._error is not None:
            raise self._error
        if self._refused is not None:
            raise self._spend(self._refused)
        return None

    def frames(self) -> Iterator[bytes]:
        """Every whole payload available now, in order."""
        return iter_frames(self)

    def take_buffer(self) -> bytes:
        """Remove and return everything held, as the bytes that were fed."""
        held = b"".join(map(self._encode, self._pending)) + b"".join(self._rest)
        self._reset()
        return held

    # ------------------------------------------------------ for subclasses

    def _cut(self, data: bytes) -> tuple[list[bytes], int, int]:
        """Cut the whole frames at the front of ``data``.

        Returns them, where the rest of ``data`` starts, and how many bytes
        from there it takes before cutting can go on.  A bad header stops
        the cutting at its start, with its error in ``_refused``.
        """
        raise NotImplementedError

    def _encode(self, payload: bytes) -> bytes:
        """``payload`` as it was on the wire."""
        raise NotImplementedError

    def _first_need(self) -> int:
        """The bytes it takes to start cutting (a whole prefix, say)."""
        raise NotImplementedError

    def _too_long(self, length: int, what: str = "frame") -> FrameTooLongError:
        return FrameTooLongError(
            f"{what} of {length} bytes is over the limit of {self._max_length}",
            limit=self._max_length,
            length=length,
        )

    # ----------------------------------------------------------- internals

    def _spend(self, error: ProtocolError) -> ProtocolError:
        """Nothing after a bad header is trusted: drop it all, keep ``error``."""
        self._reset()
        self._error = error
        return error

    def _reset(self) -> None:
        self._drop_queued()
        self._rest = []
        self._rest_size = 0
        self._need = self._first_need()
        self._refused = None

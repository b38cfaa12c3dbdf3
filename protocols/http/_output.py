"""What an HTTP connection writes: bytes and file regions, in order, under
flow control.

A file region (:class:`~weft.protocols.contract.FileRegion`, a stretch of an
open file that a handler hands over) goes to the transport's ``write_file``
when it has one (a socket's: ``os.sendfile``, nothing held in Python).  When
it has none (a TLS layer, a plain asyncio transport), the region is read
here in pieces of :data:`PIECE_SIZE` (one TLS record), each only while the
transport is not paused, so a client that does not read costs at most the
transport's high-water mark plus one piece.  Whatever is written after a
region waits behind it until it is all out.

Protocols never open files: this module only passes regions on, reads them
through the contract's ``read``, and closes them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from weft.protocols.contract import FileRegion, Transport, file_writer_of

__all__ = ["PIECE_SIZE", "Output"]

#: How much of a file region is read at a time when the transport cannot
#: send files itself: one TLS record's worth.
PIECE_SIZE = 16 * 1024


class Output:
    """The one way a connection writes.

    ``paused`` mirrors the transport's write flow control (the protocol sets
    it in ``pause_writing`` and calls :meth:`resume` in ``resume_writing``).
    ``written`` counts the bytes handed to the transport, regions included,
    so that the owner can tell whether a paused client makes progress
    (bytes written minus bytes still buffered).  ``on_error`` hears an
    ``OSError`` from reading a region (the file was cut short): the
    connection cannot send a complete body any more.
    """

    __slots__ = ("_on_error", "_queue", "_transport", "_write_file", "paused", "written")

    def __init__(self, transport: Transport, on_error: Callable[[OSError], object]) -> None:
        self._transport = transport
        self._write_file = file_writer_of(transport)
        self._on_error = on_error
        # What waits behind a region being read here: bytes, and the region
        # itself at the head.  Empty whenever the transport sends files.
        self._queue: deque[bytes | FileRegion] = deque()
        self.paused = False
        self.written = 0

    @property
    def closing(self) -> bool:
        """Whether the transport is closing or lost (what is written now is dropped)."""
        return self._transport.is_closing()

    @property
    def busy(self) -> bool:
        """Whether a file region is still being read into the transport (what
        is written meanwhile waits behind it)."""
        return bool(self._queue)

    def write(self, data: bytes) -> None:
        """Write ``data`` after everything written before."""
        if self._queue:
            self._queue.append(data)
        else:
            self.written += len(data)
            self._transport.write(data)

    def write_region(self, region: FileRegion) -> None:
        """Send ``region``'s bytes after everything written before, and close
        it once they are out (or when :meth:`close` drops it)."""
        if self._write_file is not None:
            # Only the fallback ever queues, and never on such a transport.
            self.written += len(region)
            self._write_file(region)
            return
        self._queue.append(region)
        self._flush()

    def resume(self) -> None:
        """The transport takes more: go on reading a region into it."""
        self.paused = False
        if self._queue:
            self._flush()

    def close(self) -> None:
        """The connection is going: drop what waits, closing every region."""
        queue = self._queue
        while queue:
            item = queue.popleft()
            if not isinstance(item, bytes):
                item.close()

    def _flush(self) -> None:
        queue = self._queue
        transport = self._transport
        while queue and not self.paused:
            if transport.is_closing():
                self.close()  # nobody will read it: never read a file into the void
                return
            head = queue[0]
            if isinstance(head, bytes):
                queue.popleft()
                self.written += len(head)
                transport.write(head)
                continue
            try:
                piece = head.read(PIECE_SIZE)
            except OSError as exc:
                self.close()
                self._on_error(exc)
                return
            if not len(head):
                queue.popleft()
                head.close()
            if piece:
                self.written += len(piece)
                transport.write(piece)  # may pause us, from inside the call

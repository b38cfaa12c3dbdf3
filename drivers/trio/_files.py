"""Sending a file region down a Trio stream: ``os.sendfile`` where there is a descriptor.

Trio's streams have no ``sendfile``.  When the stream under a transport is
one whose descriptor weft can see (a ``trio.SocketStream``, a
``trio.lowlevel.FdStream``, a pipe pair of the driver's), the region is
sent straight from the file with :func:`~weft.drivers._core.file_sending.send_from_file`,
waiting for writability with ``trio.lowlevel.wait_writable`` when the
kernel's buffer is full: nothing goes through Python.  Any other stream,
or a file the kernel cannot ``sendfile`` from, gets the region a
:data:`~weft.drivers._core.file_sending.PIECE_SIZE` piece at a time through
``send_all``: one piece in memory per connection.

The transport's sending loop is the only sender on the stream, so writing
to its descriptor directly never races Trio's own ``send_all``.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from weft.drivers._core.file_sending import PIECE_SIZE, send_from_file, sendfile_refused
from weft.protocols.contract import FileRegion

__all__ = ["output_descriptor", "send_region"]


def output_descriptor(stream: trio.abc.Stream) -> int | None:
    """The descriptor ``stream`` writes to, when weft can see it; else None."""
    if isinstance(stream, trio.SocketStream):
        return stream.socket.fileno()
    if isinstance(stream, trio.lowlevel.FdStream):
        return stream.fileno()
    finder = getattr(stream, "output_fileno", None)
    if callable(finder):
        found = finder()
        return found if isinstance(found, int) else None
    return None


async def send_region(stream: trio.abc.Stream, region: FileRegion, sent: Callable[[int], object]) -> None:
    """Send all of ``region`` down ``stream``, calling ``sent(count)`` as bytes go; close it either way.

    Raises what the stream raises (``trio.BrokenResourceError``), and
    ``OSError`` when the file cannot be read or ends before the region.
    """
    try:
        fd = output_descriptor(stream)
        if fd is not None and fd >= 0 and await _sendfile(fd, region, sent):
            return
        while len(region):
            piece = region.read(PIECE_SIZE)
            await stream.send_all(piece)
            sent(len(piece))
    finally:
        region.close()


async def _sendfile(fd: int, region: FileRegion, sent: Callable[[int], object]) -> bool:
    """Send the region with ``os.sendfile``; False if the kernel refuses these two files (send by hand)."""
    await trio.lowlevel.checkpoint_if_cancelled()
    while len(region):
        try:
            count = send_from_file(fd, region)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(fd)
            continue
        except OSError as exc:
            if sendfile_refused(exc):
                return False  # the rest goes a piece at a time
            if isinstance(exc, ConnectionError):  # the peer went away, not the file
                raise trio.BrokenResourceError(f"sending a file failed: {exc}") from exc
            raise
        sent(count)
        await trio.lowlevel.checkpoint()
    return True

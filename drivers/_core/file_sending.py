"""One step of sending a file region: what every OS driver's ``write_file`` shares.

A transport that has a :class:`~weft.protocols.contract.FileRegion` at the
head of its queue sends it with :func:`send_from_file`: one ``os.sendfile``
from the region's file to the connection's descriptor, at most
:data:`SENDFILE_CHUNK` bytes, nothing copied through Python.  The kernel
takes what fits in the socket's (or pipe's) buffer and says ``EAGAIN`` when
it is full, like any non-blocking write, so the transport waits for
writability exactly as it does for queued bytes.

Linux takes any output descriptor since 2.6.33 (sockets, pipes, terminals,
regular files), but the *input* must be a file the kernel can map: a region
over a pipe or some ``/proc`` files is refused (``EINVAL``, ``ESPIPE``), and
other systems refuse more.  :func:`sendfile_refused` tells such a refusal
from a failed send; the transport then reads the region a
:data:`PIECE_SIZE` piece at a time and writes the piece as it writes bytes,
only when nothing is queued ahead of it, so memory stays at one piece per
connection.
"""

from __future__ import annotations

import errno
import os

from weft.protocols.contract import FileRegion

__all__ = ["PIECE_SIZE", "SENDFILE_CHUNK", "send_from_file", "sendfile_refused"]

#: Bytes asked of one ``sendfile``: a connection whose peer reads as fast as
#: the kernel sends (loopback) could otherwise keep the loop for a whole
#: file, starving the others (nginx's ``sendfile_max_chunk`` is 2 MiB too).
SENDFILE_CHUNK = 2 * 1024 * 1024

#: Bytes read per piece when the kernel refuses ``sendfile`` for a region:
#: the reactor's read size, under glibc's mmap threshold.
PIECE_SIZE = 64 * 1024

# The kernel cannot sendfile between these descriptors: not a failed send.
_REFUSALS = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ESPIPE})


def send_from_file(out_fd: int, region: FileRegion) -> int:
    """Send the region's next bytes (at most :data:`SENDFILE_CHUNK`) to ``out_fd``; return how many.

    The region moves past what was sent.  Raises what ``os.sendfile``
    raises (``BlockingIOError`` when ``out_fd`` is full; an ``OSError`` for
    which :func:`sendfile_refused` is true when the kernel cannot do it),
    and ``OSError`` when the file ended before the region did.
    """
    sent = os.sendfile(out_fd, region.fileno(), region.offset, min(len(region), SENDFILE_CHUNK))
    region.consumed(sent)  # 0 with bytes left: the file was cut short (OSError)
    return sent


def sendfile_refused(exc: OSError) -> bool:
    """Whether ``exc`` (from :func:`send_from_file`) means the kernel cannot
    sendfile between these two descriptors, rather than that sending failed."""
    return exc.errno in _REFUSALS

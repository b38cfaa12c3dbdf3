"""File regions on the asyncio driver: sent with ``os.sendfile``, past asyncio's transport.

asyncio's own zero-copy path, ``loop.sendfile()``, is a coroutine that works
only on a selector loop's socket transports (uvloop has none), pauses
reading while it runs, and makes ``write()`` raise meanwhile.  So the
adapter sends regions itself.  From the moment a region is queued, a
connection's output takes a detour through a :class:`FileSender`:

* the region, and whatever is written after it, wait in the sender's
  queue (the adapter's ``write()`` puts bytes there while it exists);
* once asyncio's own buffer is empty (what was written before the region
  is out), the sender writes to a *duplicate* of the connection's
  descriptor: ``os.sendfile`` for a region, ``os.writev`` for the bytes
  behind it.  It is asked at once, and when the kernel is full it waits
  for writability with ``loop.add_writer`` on the duplicate: asyncio and
  uvloop refuse ``add_writer`` on a descriptor their transport owns, and
  the duplicate is another descriptor of the same socket or pipe;
* once the queue is empty, the writer is removed and the duplicate closed
  (in that order: epoll keeps a registration for as long as the file
  description is open, and asyncio's own descriptor keeps it open), and
  writes go straight to asyncio again.

asyncio's transport sees no write while the detour lasts, so nothing
interleaves; it goes on reading, so a reset or an EOF from the peer is
noticed as usual, and the adapter drops the sender (removing the writer,
closing the duplicate and every region) when the connection ends: a
duplicate left open would keep the socket open after asyncio closed it.

A descriptor the loop cannot watch (a regular file or ``/dev/null`` given
to ``connect_pipes``: epoll refuses it) is always ready: the sender sends
one step per turn of the loop instead.  When the kernel refuses
``sendfile`` for a region (see :mod:`weft.drivers._core.file_sending`), the
region is read a piece at a time and the piece written as bytes are.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections import deque
from itertools import islice
from typing import Any, Protocol

from weft.drivers._core.file_sending import PIECE_SIZE, SENDFILE_CHUNK, send_from_file, sendfile_refused
from weft.drivers._core.transport_base import drop_sent
from weft.protocols.contract import FileRegion

__all__ = ["FileSender"]

# writev takes at most this many buffers (Linux's IOV_MAX).
_MAX_BUFFERS = 1024


class _Owner(Protocol):
    """The transport a sender works for (an AsyncioTransport)."""

    def _file_progress(self) -> None:
        """Bytes left the queue: flow control may resume."""

    def _file_failed(self, exc: OSError) -> None:
        """Sending failed: end the connection with ``exc`` (which drops the sender)."""

    def _files_sent(self) -> None:
        """The queue is empty and the sender stopped: writes go to asyncio again."""


class FileSender:
    """A connection's output from its first file region on (see the module docstring).

    Made by :class:`~weft.drivers.asyncio._transport.AsyncioTransport` when a
    region is queued; :meth:`start` once asyncio's transport is up; gone
    once the queue is sent (the owner hears ``_files_sent``) or dropped.
    """

    __slots__ = (
        "_always_ready",
        "_fd",
        "_loop",
        "_next_turn",
        "_owner",
        "_sendfile_refused",
        "_watching",
        "_writer",
        "queue",
        "size",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, owner: _Owner) -> None:
        self._loop = loop
        self._owner = owner
        #: What waits: a region at the head, then bytes and regions written after it.
        self.queue: deque[FileRegion | bytes | memoryview] = deque()
        #: Bytes waiting in the queue (what is left of each region included).
        self.size = 0
        self._writer: Any = None  # asyncio's transport, asked how much it holds
        self._fd = -1  # the duplicate written to; -1 before start and once stopped
        self._watching = False  # add_writer is on for the duplicate
        # The loop cannot watch the descriptor: one step per turn instead.
        self._always_ready = False
        self._next_turn: asyncio.Handle | None = None
        # The kernel refused sendfile here: regions are read in pieces.
        self._sendfile_refused = False

    @property
    def started(self) -> bool:
        """Whether :meth:`start` was called."""
        return self._writer is not None

    def add(self, item: FileRegion | bytes) -> None:
        """Queue a region, or bytes written after one."""
        self.queue.append(item)
        self.size += len(item)

    def start(self, writer: Any, *, at_once: bool) -> None:
        """Begin sending beside asyncio's transport ``writer``; with ``at_once``,
        try now (as ``write()`` does) before waiting for writability."""
        self._writer = writer
        try:
            self._fd = os.dup(_descriptor_of(writer))
        except OSError as exc:
            self._owner._file_failed(
                OSError(exc.errno, f"cannot send a file: no descriptor to send it on ({exc.strerror})")
            )
            return
        if at_once:
            self._send()
        elif self._fd >= 0:
            self._wait()

    def drop(self) -> None:
        """Stop, and close every region still queued (the connection is ending)."""
        self._stop()
        queue = self.queue
        while queue:
            item = queue.popleft()
            if not isinstance(item, bytes | memoryview):
                item.close()
        self.size = 0

    # ------------------------------------------------------------ sending

    def _send(self) -> None:
        """Send what the kernel takes (at most about one sendfile chunk), then
        wait, or finish once the queue is empty."""
        self._next_turn = None
        if self._fd < 0:
            return  # dropped since the event
        if self._writer.get_write_buffer_size():
            # asyncio still holds bytes written before the region; they go
            # first (its own writer sends them; this one fires again after).
            self._wait()
            return
        queue = self.queue
        before = self.size
        try:
            while queue and before - self.size < SENDFILE_CHUNK and self._step(queue[0]):
                pass
        except OSError as exc:
            self._owner._file_failed(exc)  # drops this sender
            return
        if queue:
            self._wait()
            if self.size < before:
                self._owner._file_progress()
            return
        self._stop()
        self._owner._files_sent()

    def _step(self, head: FileRegion | bytes | memoryview) -> int:
        """One system call for the head of the queue; how many bytes it sent (0: full)."""
        try:
            if isinstance(head, bytes | memoryview):
                sent = self._write_bytes()
            elif not self._sendfile_refused:
                try:
                    sent = send_from_file(self._fd, head)
                except OSError as exc:
                    if not sendfile_refused(exc):
                        raise
                    self._sendfile_refused = True
                    return self._step(head)
                if not len(head):
                    self.queue.popleft()
                    head.close()
            else:
                sent = self._write_piece(head)
        except (BlockingIOError, InterruptedError):
            return 0
        self.size -= sent
        return sent

    def _write_bytes(self) -> int:
        """``writev`` of the bytes at the head of the queue (up to the next region)."""
        queue = self.queue
        pieces: list[bytes | memoryview] = []
        for item in islice(queue, _MAX_BUFFERS):
            if not isinstance(item, bytes | memoryview):
                break
            pieces.append(item)
        sent = os.writev(self._fd, pieces)
        drop_sent(queue, sent)
        return sent

    def _write_piece(self, region: FileRegion) -> int:
        """The kernel refused sendfile: read a piece of ``region`` and write it;
        what the kernel does not take goes back to the head of the queue."""
        piece = region.read(PIECE_SIZE)
        if not len(region):
            self.queue.popleft()
            region.close()
        try:
            sent = os.write(self._fd, piece)
        except (BlockingIOError, InterruptedError):
            sent = 0
        if sent < len(piece):
            self.queue.appendleft(memoryview(piece)[sent:])
        return sent

    # ------------------------------------------------------------ waiting

    def _wait(self) -> None:
        """Be called again once the descriptor is writable (or next turn, if always ready)."""
        if self._watching:
            return
        if self._always_ready:
            if self._next_turn is None:
                self._next_turn = self._loop.call_soon(self._send)
            return
        try:
            self._loop.add_writer(self._fd, self._send)
        except PermissionError:
            # epoll refuses what never blocks (a regular file, /dev/null).
            self._always_ready = True
            self._wait()
            return
        self._watching = True

    def _stop(self) -> None:
        """Stop waiting and close the duplicate: the writer goes first, while
        the descriptor still names the file description it was added for."""
        if self._watching:
            self._watching = False
            self._loop.remove_writer(self._fd)
        if self._next_turn is not None:
            self._next_turn.cancel()
            self._next_turn = None
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


def _descriptor_of(writer: Any) -> int:
    """The descriptor asyncio's transport ``writer`` writes to: its pipe's or its socket's."""
    holder = writer.get_extra_info("pipe") or writer.get_extra_info("socket")
    if holder is None:
        raise OSError(errno.ENOTSUP, f"{type(writer).__name__} offers neither a pipe nor a socket")
    return int(holder.fileno())

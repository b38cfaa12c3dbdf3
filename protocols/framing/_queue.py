"""The frames a parser has cut and not yet handed out, behind one iterator.

weft's parsers cut every whole frame as bytes are fed, check it against
their limits there and then, and keep the frames in a list.  One iterator
over that list, ``_pending``, is the parser's position in it: a frame taken
from it is handed out.  FrameReceiver's delivery loop iterates ``_pending``
itself, so it hands out frames with no call per frame and nothing to look
at per frame but the transport closing.  Whatever must stop the delivery
between two frames (a pause, raw mode, the buffer taken for STARTTLS) ends
that very iterator: :meth:`FrameQueue._hold` moves it to the end of the
list in O(1), and a new iterator takes over from the frame it had reached,
so the loop stops with no flag to test per frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from operator import length_hint
from typing import Protocol, cast

__all__ = ["FrameQueue"]


class _ListPosition(Protocol):
    """A list iterator as its pickling support lets it be moved (``__setstate__``)."""

    def __setstate__(self, index: int, /) -> None: ...


def _move(position: Iterator[bytes], index: int) -> None:
    """Put the list iterator ``position`` at ``index`` of its list.  An
    exhausted iterator has forgotten its list and stays exhausted."""
    cast(_ListPosition, position).__setstate__(index)


def _end(position: Iterator[bytes], size: int) -> None:
    """Exhaust the list iterator ``position`` over a list of ``size`` items
    without taking them, so that it forgets its list: frames added to that
    list later are not its to hand out."""
    _move(position, size)
    next(position, None)


class FrameQueue:
    """The queue of frames a parser has cut; the base of weft's own parsers."""

    __slots__ = ("_frames", "_pending")

    def __init__(self) -> None:
        # Whole frames not yet handed out, and the iterator over them that
        # is the parser's position (shared with FrameReceiver's loop).
        self._frames: list[bytes] = []
        self._pending: Iterator[bytes] = iter(self._frames)

    def _queue(self, frames: list[bytes]) -> None:
        """Queue ``frames``, just cut, after those not yet handed out."""
        if waiting := length_hint(self._pending):
            queued = self._frames
            if 2 * waiting >= len(queued):
                # Frames waiting, and at most as many handed out: the live
                # iterator goes on to the new ones (O(new frames)).
                queued += frames
                return
            # More handed out than waiting (a reader taking fewer frames
            # than come): those go, the waiting ones move to a new list, in
            # time linear in the frames dropped.  Taking them ends the
            # iterator a delivery loop may hold.
            frames = [*self._pending, *frames]
        # An exhausted list iterator has forgotten its list: a new one.
        self._frames = frames
        self._pending = iter(frames)

    def _drop_queued(self) -> None:
        """Forget every frame not yet handed out (ending the iterator)."""
        _end(self._pending, len(self._frames))
        self._frames = []
        self._pending = iter(self._frames)

    def _waiting(self) -> list[bytes]:
        """The frames not yet handed out, left in place."""
        return self._frames[len(self._frames) - length_hint(self._pending) :]

    def _hold(self) -> None:
        """End the iterator a delivery loop holds; the frames it has not
        reached stay queued behind a new one.  O(1), however many."""
        frames = self._frames
        left = length_hint(self._pending)
        _end(self._pending, len(frames))
        resumed = iter(frames)
        _move(resumed, len(frames) - left)
        self._pending = resumed

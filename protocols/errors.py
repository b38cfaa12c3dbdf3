"""Every exception weft raises on purpose, in one hierarchy.

::

    WeftError
    ├── ArgumentError (also ValueError)      a value given to weft is out of range
    │   └── UnencodableFrameError            an outgoing frame cannot be framed
    ├── ProtocolError                        the peer's bytes break the protocol
    │   ├── FrameTooLongError                a frame is over its size limit
    │   │   └── LineTooLongError             ... and the frame is a line
    │   └── MalformedFrameError              bytes that cannot be a frame
    ├── WriteAfterEofError (also RuntimeError)  write() after write_eof()
    ├── ClosedResourceError (also RuntimeError) using something already closed
    ├── BusyResourceError (also RuntimeError)   a second reader or writer for an fd
    ├── InvalidStateError (also RuntimeError)   a future's result asked too early, or set twice
    ├── NoClockError (also LookupError)         a transport offers no clock
    └── NotSettledError (also RuntimeError)     a memory pump never went quiet

Where Python code conventionally catches a builtin (``ValueError`` for a bad
argument, ``RuntimeError`` for a call in the wrong state) the weft class
derives from it too, so both ``except WeftError`` and the conventional clause
work.  Wrong *types* raise the builtin ``TypeError``, as everywhere in Python.
"""

from __future__ import annotations

__all__ = [
    "ArgumentError",
    "BusyResourceError",
    "ClosedResourceError",
    "FrameTooLongError",
    "InvalidStateError",
    "LineTooLongError",
    "MalformedFrameError",
    "NoClockError",
    "NotSettledError",
    "ProtocolError",
    "UnencodableFrameError",
    "WeftError",
    "WriteAfterEofError",
]


class WeftError(Exception):
    """The base of every exception weft raises on purpose."""


class ArgumentError(WeftError, ValueError):
    """A value handed to weft is outside what it accepts."""


class UnencodableFrameError(ArgumentError):
    """An outgoing frame cannot be framed (a line holding its own delimiter,
    a payload too long for its length prefix)."""


class ProtocolError(WeftError):
    """The peer sent bytes that break the rules of the protocol."""


class FrameTooLongError(ProtocolError):
    """A frame is longer than the limit its parser was given.

    ``limit`` is that limit in bytes.  ``length`` is the frame's length when
    known (a length prefix announces it), otherwise the number of bytes seen
    when the parser gave up, which is already over the limit.
    """

    def __init__(self, message: str, *, limit: int, length: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.length = length


class LineTooLongError(FrameTooLongError):
    """A line is longer than the limit its parser was given."""


class MalformedFrameError(ProtocolError):
    """Bytes that cannot start or end a frame (a netstring without its colon,
    say)."""


class WriteAfterEofError(WeftError, RuntimeError):
    """``write()`` was called after ``write_eof()``."""


class ClosedResourceError(WeftError, RuntimeError):
    """An operation on something that is already closed."""


class BusyResourceError(WeftError, RuntimeError):
    """Something already in use was claimed again: a second reader (or writer)
    for a file descriptor that has one.  asyncio silently replaces the first,
    which then never hears another event; weft refuses."""


class InvalidStateError(WeftError, RuntimeError):
    """A future's result was asked for before it was set, or set twice."""


class NoClockError(WeftError, LookupError):
    """A transport offers no clock (``get_extra_info("clock")`` is ``None``)."""


class NotSettledError(WeftError, RuntimeError):
    """A memory pump was asked to run until quiet, and it never went quiet."""

"""Every exception weft raises on purpose, in one hierarchy.

::

    WeftError
    ├── ArgumentError (also ValueError)      a value given to weft is out of range
    │   ├── UnencodableFrameError            an outgoing frame cannot be framed
    │   └── DatagramAddressError (also TypeError)  sendto() given an address it cannot send to
    ├── DatagramTooLargeError (also OSError, errno EMSGSIZE)  a datagram over the size one can have
    ├── ProtocolError                        the peer's bytes break the protocol
    │   ├── FrameTooLongError                a frame is over its size limit
    │   │   └── LineTooLongError             ... and the frame is a line
    │   └── MalformedFrameError              bytes that cannot be a frame
    ├── WriteAfterEofError (also RuntimeError)  write() after write_eof()
    ├── ClosedResourceError (also RuntimeError) using something already closed
    ├── BusyResourceError (also RuntimeError)   a second reader or writer for an fd
    ├── InvalidStateError (also RuntimeError)   a call in the wrong state: a future's result
    │   │                                        asked too early, or set twice
    │   └── NotConnectedError (also AttributeError)  a protocol used before connection_made
    ├── NoClockError (also LookupError)         a transport offers no clock
    └── NotSettledError (also RuntimeError)     a memory pump never went quiet

Where Python code conventionally catches a builtin (``ValueError`` for a bad
argument, ``RuntimeError`` for a call in the wrong state) the weft class
derives from it too, so both ``except WeftError`` and the conventional clause
work.  Wrong *types* raise the builtin ``TypeError``, as everywhere in Python.
"""

from __future__ import annotations

import errno

__all__ = [
    "ArgumentError",
    "BusyResourceError",
    "ClosedResourceError",
    "DatagramAddressError",
    "DatagramTooLargeError",
    "FrameTooLongError",
    "InvalidStateError",
    "LineTooLongError",
    "MalformedFrameError",
    "NoClockError",
    "NotConnectedError",
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


class DatagramAddressError(ArgumentError, TypeError):
    """``sendto()`` was given an address it cannot send to.

    On an unconnected endpoint: no address at all, or one that is not a
    numeric address of the endpoint's family (a host *name*, which only a
    blocking lookup could turn into an address; an IPv4 address on an IPv6
    endpoint; a string where a ``(host, port)`` pair belongs).  On a
    connected one: an address other than its peer's.  A ``ValueError`` (what
    asyncio raises for the connected case) and a ``TypeError`` (what the
    socket module raises for an address of the wrong shape), so either
    clause catches it.  The endpoint goes on.
    """


class DatagramTooLargeError(WeftError, OSError):
    """A datagram is larger than one can be: 65,507 bytes of UDP over IPv4,
    65,527 over IPv6, and, on other sockets, whatever the kernel refuses
    with ``EMSGSIZE`` (whose ``errno`` it carries too).

    ``sendto()`` raises it for a datagram over the limit it knows; one the
    kernel refuses reaches the protocol's ``error_received`` instead, as
    asyncio reports it.  Either way the endpoint goes on.  ``size`` is the
    datagram's length (``None`` when the report did not say); ``limit`` the
    largest allowed, or ``None`` when only the kernel knew.
    """

    def __init__(self, message: str, *, size: int | None, limit: int | None) -> None:
        super().__init__(errno.EMSGSIZE, message)
        self.size = size
        self.limit = limit

    def __str__(self) -> str:
        return str(self.strerror)


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
    """A call made in a state that does not allow it: a future's result
    asked for before it was set, or set twice; a protocol used before it
    was connected (:class:`NotConnectedError`)."""


class NotConnectedError(InvalidStateError, AttributeError):
    """A protocol was used before its connection was made: ``send_line``,
    ``subscribe``, ``publish``... called before ``connection_made`` gave it
    a transport.  The message names the call and what to do first.

    Also an ``AttributeError``, the builtin for an attribute that is not
    there yet: ``getattr(protocol, "transport", None)`` and ``hasattr``
    still answer "not connected" instead of raising.
    """


class NoClockError(WeftError, LookupError):
    """A transport offers no clock (``get_extra_info("clock")`` is ``None``)."""


class NotSettledError(WeftError, RuntimeError):
    """A memory pump was asked to run until quiet, and it never went quiet."""

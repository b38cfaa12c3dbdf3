"""What can go wrong resolving a name, as exceptions under :class:`~weft.protocols.errors.WeftError`.

::

    WeftError
    └── DNSError                             a lookup failed
        ├── DNSTimeoutError (also TimeoutError)   no answer after every attempt
        ├── DNSNameError (also LookupError)       the name does not exist (NXDOMAIN)
        ├── DNSServerError                        the server answered with another error code
        └── DNSTruncatedError                     the answer did not fit a datagram (TC set)

An answer whose bytes are not DNS raises
:class:`~weft.protocols.errors.MalformedFrameError` from the parser, and
is ignored by the resolver (a forged or broken datagram must not end a
lookup that a good answer may still complete).
"""

from __future__ import annotations

from weft.protocols.errors import WeftError

__all__ = ["DNSError", "DNSNameError", "DNSServerError", "DNSTimeoutError", "DNSTruncatedError"]


class DNSError(WeftError):
    """A lookup failed; ``name`` is the name looked up."""

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name


class DNSTimeoutError(DNSError, TimeoutError):
    """No answer came, after every attempt and its timeout."""


class DNSNameError(DNSError, LookupError):
    """The server says the name does not exist (NXDOMAIN)."""


class DNSServerError(DNSError):
    """The server answered with an error code other than NXDOMAIN (``rcode``:
    2 SERVFAIL, 5 REFUSED...), or could not be reached (``rcode`` None, the
    network's error as the ``__cause__``)."""

    def __init__(self, message: str, *, name: str, rcode: int | None) -> None:
        super().__init__(message, name=name)
        self.rcode = rcode


class DNSTruncatedError(DNSError):
    """The answer had the TC bit set: it needs TCP, which this stub does not speak."""

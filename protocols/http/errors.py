"""What can go wrong in an HTTP/1.1 exchange, as exceptions under :class:`~weft.protocols.errors.WeftError`.

::

    ProtocolError
    └── HTTPError                          an HTTP exchange failed
        ├── MalformedHTTPError             bytes that are not HTTP/1.1 (400)
        ├── HeadersTooLargeError           a head over its limit (431)
        ├── BodyTooLargeError              a body over its limit (413)
        └── HTTPConnectionClosedError (also ConnectionError)
    WeftError
    └── HTTPUsageError (also RuntimeError)  a response or request used out of order

When h11 found the fault, its exception is the ``__cause__``.
"""

from __future__ import annotations

from weft.protocols.errors import ProtocolError, WeftError

__all__ = [
    "BodyTooLargeError",
    "HTTPConnectionClosedError",
    "HTTPError",
    "HTTPUsageError",
    "HeadersTooLargeError",
    "MalformedHTTPError",
]


class HTTPError(ProtocolError):
    """An HTTP exchange failed: the peer broke the protocol, a limit, or the connection."""


class MalformedHTTPError(HTTPError):
    """The peer sent bytes that are not valid HTTP/1.1 (a server answers 400)."""


class HeadersTooLargeError(HTTPError):
    """A request or response head (start line and header fields) is over
    ``HTTPLimits.max_head_size`` (a server answers 431).

    ``limit`` is that limit; ``size`` the head's size when it was known,
    otherwise the bytes seen when the reader gave up (already over it).
    """

    def __init__(self, message: str, *, limit: int, size: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.size = size


class BodyTooLargeError(HTTPError):
    """A message body is over its limit (a server answers 413).

    ``limit`` is that limit; ``size`` the declared Content-Length, or the
    bytes received when the limit was passed.
    """

    def __init__(self, message: str, *, limit: int, size: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.size = size


class HTTPConnectionClosedError(HTTPError, ConnectionError):
    """The connection ended, or can no longer be used, before the exchange completed."""


class HTTPUsageError(WeftError, RuntimeError):
    """A response or request was used out of order: a body written before its
    head, a second head, a write after the end, more bytes than the declared
    Content-Length."""

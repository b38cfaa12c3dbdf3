"""What can go wrong in an HTTP/1.1 exchange, as exceptions under :class:`~weft.protocols.errors.WeftError`.

::

    ProtocolError
    └── HTTPError                          an HTTP exchange failed
        ├── MalformedHTTPError             bytes that are not HTTP/1.1 (400)
        ├── HeadersTooLargeError           a head over its limit (431)
        ├── BodyTooLargeError              a body over its limit (413)
        ├── HTTPTimeoutError (also TimeoutError)  a deadline passed (408, 503)
        └── HTTPConnectionClosedError (also ConnectionError)
    WeftError
    ├── HTTPUsageError (also RuntimeError)  a response or request used out of order
    └── HTTPStateError (also RuntimeError)  a connection moved between states it may not (a bug)

When h11 found the fault, its exception is the ``__cause__``.
"""

from __future__ import annotations

from weft.protocols.errors import ProtocolError, WeftError

__all__ = [
    "BodyTooLargeError",
    "HTTPConnectionClosedError",
    "HTTPError",
    "HTTPStateError",
    "HTTPTimeoutError",
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


class HTTPTimeoutError(HTTPError, TimeoutError):
    """A deadline of the connection passed: the peer was too slow sending a
    body (a server answers 408), or the handler too slow answering (503).

    ``timeout`` is the limit that passed, in seconds.  A body reader hears it
    through its ``on_error``.
    """

    def __init__(self, message: str, *, timeout: float) -> None:
        super().__init__(message)
        self.timeout = timeout


class HTTPConnectionClosedError(HTTPError, ConnectionError):
    """The connection ended, or can no longer be used, before the exchange completed."""


class HTTPUsageError(WeftError, RuntimeError):
    """A response or request was used out of order: a body written before its
    head, a second head, a write after the end, more bytes than the declared
    Content-Length."""


class HTTPStateError(WeftError, RuntimeError):
    """A connection was asked to move from one state to another it cannot
    reach from there.  This is a bug in weft (or in code that reaches into a
    connection's internals): please report it with the traceback."""

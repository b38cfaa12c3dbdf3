"""What an HTTP server answers when it is at its connection limit.

A server that cannot take one more connection (``--max-connections``) still
answers it, at once, rather than leaving the client waiting: with a complete
``503 Service Unavailable`` response that tells the client when to try again
and that the connection closes.  The bytes are built here, once; the driver
sends them before any request is read, so they do not depend on one::

    reply = busy_response()                 # b"HTTP/1.1 503 Service Unavailable\\r\\n..."
    serve(factory, max_connections=100, busy_reply=reply)

(nginx's ``limit_conn`` and uvicorn's ``--limit-concurrency`` answer 503 the
same way.)
"""

from __future__ import annotations

from http import HTTPStatus

from weft.protocols.errors import ArgumentError

__all__ = ["DEFAULT_RETRY_AFTER", "busy_response"]

#: Seconds a refused client is asked to wait before trying again.  Short:
#: connections come and go quickly, and the client's own back-off (if it
#: has one) does the rest.
DEFAULT_RETRY_AFTER = 1


def busy_response(retry_after: int = DEFAULT_RETRY_AFTER) -> bytes:
    """A complete ``503 Service Unavailable`` response with ``Retry-After:
    retry_after`` and ``Connection: close``, and a one-line text body.

    Raises :class:`~weft.protocols.errors.ArgumentError` unless
    ``retry_after`` is a whole number of seconds ``>= 0`` (the only form
    besides a date that ``Retry-After`` allows).
    """
    if isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0:
        raise ArgumentError(f"retry_after must be a whole number of seconds >= 0, not {retry_after!r}")
    status = HTTPStatus.SERVICE_UNAVAILABLE
    phrase = status.phrase.encode("ascii")
    body = b"%d %s: the server is at its connection limit; try again shortly\n" % (status, phrase)
    return (
        b"HTTP/1.1 %d %s\r\n"
        b"content-type: text/plain; charset=utf-8\r\n"
        b"content-length: %d\r\n"
        b"retry-after: %d\r\n"
        b"connection: close\r\n"
        b"\r\n%s" % (status, phrase, len(body), retry_after, body)
    )

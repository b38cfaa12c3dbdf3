"""The glue between weft's HTTP protocols and h11: measuring heads, turning
h11's errors into weft's, and canned error responses."""

from __future__ import annotations

import functools
from http import HTTPStatus

import h11

from weft.protocols.http.errors import HeadersTooLargeError, HTTPError, MalformedHTTPError

__all__ = ["HeadMeter", "canned_response", "reason_phrase", "remote_error", "target_parts"]


class HeadMeter:
    """Measures each message head h11 parses, whatever the chunking.

    h11 checks its ``max_incomplete_event_size`` only while it waits for more
    data, so a head over the limit that arrives in one piece passes it
    (h11 issue #182).  The meter counts the bytes fed since the previous
    message ended; once a head is parsed, what h11 still holds is not part of
    it, so the head's size is exact.
    """

    def __init__(self, connection: h11.Connection) -> None:
        self._connection = connection
        self._start = 0  # bytes buffered in h11 when the current message began
        self._fed = 0  # bytes fed since

    def fed(self, size: int) -> None:
        """``size`` more bytes were handed to h11."""
        self._fed += size

    def mark(self) -> None:
        """The previous message has just ended: what h11 holds starts the next."""
        self._start = len(self._connection.trailing_data[0])
        self._fed = 0

    def head_size(self) -> int:
        """The size of the head h11 has just parsed (call it then, and once)."""
        size = self._start + self._fed - len(self._connection.trailing_data[0])
        self.mark()
        return size

    def pending(self) -> int:
        """Bytes of the next message received so far (0: the peer is silent)."""
        return self._start + self._fed


def remote_error(exc: h11.RemoteProtocolError, max_head_size: int) -> HTTPError:
    """The weft error for an h11 ``RemoteProtocolError`` (which becomes its cause)."""
    error: HTTPError
    if exc.error_status_hint == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE:
        error = HeadersTooLargeError(
            f"head over its limit of {max_head_size} bytes", limit=max_head_size, size=max_head_size + 1
        )
    else:
        error = MalformedHTTPError(f"malformed HTTP: {exc}")
    error.__cause__ = exc
    return error


@functools.lru_cache(maxsize=128)
def reason_phrase(status: int) -> bytes:
    """The standard reason phrase of ``status`` (empty for unknown codes)."""
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def canned_response(status: int) -> bytes:
    """A complete ``Connection: close`` response with a one-line text body,
    for answering a request the server will not hand to its handler."""
    phrase = reason_phrase(status)
    body = b"%d %s\n" % (status, phrase)
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, phrase, len(body), body)
    )


def target_parts(target: str) -> tuple[str, str]:
    """``(path, query)`` of a request target, undecoded.

    An absolute-form target (``http://host/p?q``, sent to proxies) gives its
    path and query too; ``*`` (``OPTIONS *``) gives ``("*", "")``.
    """
    if "://" in target.partition("?")[0]:
        rest = target.split("://", 1)[1]
        slash = rest.find("/")
        question = rest.find("?")
        if slash == -1 or (question != -1 and question < slash):
            target = "/" + rest[question:] if question != -1 else "/"
        else:
            target = rest[slash:]
    path, _, query = target.partition("?")
    return path, query

"""The glue between weft's HTTP protocols and h11: measuring heads (and
finding obsolete line folding in them), the framing rules h11 leaves to its
user, turning h11's errors into weft's, and canned error responses.

One function here reads h11's private state, :func:`chunk_bytes_announced`;
nothing else in weft does.
"""

from __future__ import annotations

import functools
import re
from http import HTTPStatus

import h11

from weft.protocols.http._errors import HeadersTooLargeError, HTTPError, MalformedHTTPError

__all__ = [
    "HeadMeter",
    "canned_response",
    "chunk_bytes_announced",
    "framing_fault",
    "host_fault",
    "reason_phrase",
    "remote_error",
    "target_parts",
]


class HeadMeter:
    """Measures each message head h11 parses, whatever the chunking, and
    tells whether it used obsolete line folding.

    h11 checks its ``max_incomplete_event_size`` only while it waits for more
    data, so a head over the limit that arrives in one piece passes it
    (h11 issue #182).  The meter counts the bytes fed since the previous
    message ended; once a head is parsed, what h11 still holds is not part of
    it, so the head's size is exact.

    h11 also unfolds obs-fold (a header line continued by a line that starts
    with a space or a tab) without a trace, so the meter keeps the bytes fed
    while a head is awaited (references to the chunks, no copy: at most the
    head's limit and one read) and looks for a line break followed by a
    space or a tab in exactly the head's bytes.  Nothing is kept while a
    body arrives.
    """

    __slots__ = ("_chunks", "_connection", "_fed", "_start")

    def __init__(self, connection: h11.Connection) -> None:
        self._connection = connection
        self._start = b""  # what h11 held when the current message began
        self._fed = 0  # bytes fed since
        self._chunks: list[bytes] | None = []  # those bytes, while a head is awaited

    def fed(self, data: bytes) -> None:
        """``data`` was handed to h11."""
        self._fed += len(data)
        chunks = self._chunks
        if chunks is not None:
            chunks.append(data)

    def mark(self) -> None:
        """The previous message has just ended: what h11 holds starts the next."""
        self._start = self._connection.trailing_data[0]
        self._fed = 0
        self._chunks = []

    def head(self, *, body_follows: bool = True) -> tuple[int, bool]:
        """``(size, folded)`` of the head h11 has just parsed (call it then, and
        once): its size in bytes, and whether a field in it was folded.

        ``body_follows``: false after an interim (1xx) response, whose end is
        its head: the next head is then measured from here.
        """
        start, chunks = self._start, self._chunks or []
        rest = self._connection.trailing_data[0]
        size = len(start) + self._fed - len(rest)
        if len(start) >= size:
            data = start
        elif not start and len(chunks) == 1:
            data = chunks[0]
        else:
            data = b"".join([start, *chunks])
        # Inside a head every LF ends a line (h11 splits lines at LF), so an
        # LF followed by SP or HTAB is exactly a folded line.
        folded = data.find(b"\n ", 0, size) >= 0 or data.find(b"\n\t", 0, size) >= 0
        self._fed = 0
        if body_follows:
            # Until the message ends (mark), the bytes fed are its body: not kept.
            self._start = b""
            self._chunks = None
        else:
            self._start = rest
            self._chunks = []
        return size, folded

    def pending(self) -> int:
        """Bytes of the next message received so far (0: the peer is silent)."""
        return len(self._start) + self._fed


def framing_fault(http_version: bytes, content_length: bool, chunked: bool) -> str | None:
    """Why a message's framing cannot be trusted, or ``None`` if it can.

    RFC 9112 section 6.1: a message with both Transfer-Encoding and
    Content-Length "ought to be handled as an error" (it is how requests are
    smuggled past a proxy that frames by the other header), and an HTTP/1.0
    message with Transfer-Encoding "MUST" be treated as having faulty
    framing.  nginx refuses both with 400; so does weft, on both sides.
    (h11 itself lets Transfer-Encoding win and keeps the connection.)
    """
    if not chunked:
        return None
    if http_version == b"1.0":
        return "Transfer-Encoding in an HTTP/1.0 message"
    if content_length:
        return "both Content-Length and Transfer-Encoding"
    return None


# RFC 9112 section 3.2 / RFC 3986 section 3.2.2: Host is uri-host [":" port],
# uri-host an IP literal in brackets or a reg-name (unreserved characters,
# percent-escapes and sub-delims; empty is allowed).  Anything else (a space,
# a slash, an "@", a control character) cannot name this server.
_VALID_HOST = re.compile(
    r"(?:\[[0-9A-Za-z:._~!$&'()*+,;=%-]+\]|[0-9A-Za-z._~!$&'()*+,;=%-]*)(?::[0-9]*)?"
).fullmatch


def host_fault(value: str) -> str | None:
    """Why ``value`` cannot be a Host header's value, or ``None`` if it can.

    RFC 9112 section 3.2: a server "MUST respond with a 400 (Bad Request)
    status code to any HTTP/1.1 request message that ... contains ... a
    Host header field with an invalid field value".  (h11 already refuses a
    missing Host in HTTP/1.1 and more than one Host line.)
    """
    if _VALID_HOST(value) is None:
        return f"an invalid Host header ({value[:64]!r})"
    return None


def chunk_bytes_announced(connection: h11.Connection) -> int | None:
    """Bytes of the chunk being received that h11 has not handed out yet,
    once its size line is read; ``None`` when that cannot be known.

    h11 reads a chunk's size line and then waits for the chunk, however
    large (a size of ``ffffffffffffffffff`` is 2**72 bytes), handing out
    its bytes as they come; it exposes the size only in the private state
    of its chunked reader (``Connection._reader._bytes_in_chunk``, h11 0.14
    to 0.16).  This is the one place weft reads it, so that a body can be
    refused as soon as a chunk is announced over its limit.  If h11 changes,
    this returns ``None`` and the limit is enforced as the bytes arrive
    instead (``tests/protocols/test_http_framing.py`` fails, to say so).
    """
    reader = getattr(connection, "_reader", None)
    remaining = getattr(reader, "_bytes_in_chunk", None)
    return remaining if type(remaining) is int else None


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


def canned_response(status: int, *, head_only: bool = False, date: bytes | None = None) -> bytes:
    """A complete ``Connection: close`` response with a one-line text body,
    for answering a request the server will not hand to its handler (or
    answers in its place).  ``head_only``: the answer to a HEAD request,
    which has the body's Content-Length but not the body.  ``date``: the
    ``Date`` header's value (none without one)."""
    phrase = reason_phrase(status)
    body = b"%d %s\n" % (status, phrase)
    dated = b"date: %s\r\n" % date if date is not None else b""
    return (
        b"HTTP/1.1 %d %s\r\n%scontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s"
        % (status, phrase, dated, len(body), b"" if head_only else body)
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

"""The quick path: the commonest request head read, and the commonest
response written, without h11, with h11 the reference for both.

Most requests a server sees are an HTTP/1.1 head with no body (``GET``,
``HEAD``, a ``DELETE``), and most answers are a whole response with a
Content-Length.  h11 spends about 50 µs of Python on such an exchange,
through its general machinery: events, a state machine for each side,
header normalization on every event.  This module does the same exchange in
a few regular-expression matches:

* :func:`read_head` reads one request head, but only when it is plainly
  valid and simple: every line ends in CRLF, the request line and every
  field are in a strict subset of the grammar h11 accepts, HTTP/1.1, one
  Host, and no field that changes the framing or the connection's course
  (Content-Length, Transfer-Encoding, Expect, Upgrade, a Connection other
  than ``keep-alive``; no ``CONNECT``).  Anything else, valid or not, gives
  ``None``: the server hands the bytes to h11, which decides;
* :func:`write_response` writes a whole response with a Content-Length equal
  to its body, fields h11 would accept and send unchanged; anything else
  gives ``None``, and the server lets h11 write it.

So each function either gives exactly what h11 gives for the same input or
declines: ``tests/protocols/test_http_quick.py`` holds them to that, on
generated requests and responses, every chunking, and the malformed and
smuggling catalogue, against h11 itself.
"""

from __future__ import annotations

import re

__all__ = ["QuickHead", "read_head", "write_response"]

# RFC 9110 section 5.6.2: token.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
# The request line, HTTP/1.1 only; the target is visible ASCII (h11's rule).
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/1\.1").fullmatch
# A field line: visible ASCII in the value, spaces and tabs inside it, optional
# whitespace around it (h11 also takes obs-text and some control bytes: those
# go to h11).
_FIELD_LINE = re.compile(
    rb"(" + _TOKEN + rb"):[ \t]*((?:[\x21-\x7e]+(?:[ \t]+[\x21-\x7e]+)*)?)[ \t]*"
).fullmatch
# What h11 sends unchanged in a response: a token, and a value of its grammar
# (no NUL, no whitespace but inner spaces and tabs).
_FIELD_NAME = re.compile(_TOKEN).fullmatch
_FIELD_VALUE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?").fullmatch

# Fields that change how a request is framed or where the connection goes:
# such a request is h11's to read.
_H11_ONLY = frozenset((b"content-length", b"transfer-encoding", b"expect", b"upgrade", b"te", b"trailer"))

#: What :func:`read_head` gives: ``(method, target, raw fields, fields by
#: lower-case name)``; the names in the raw fields keep their case.
QuickHead = tuple[bytes, bytes, list[tuple[bytes, bytes]], dict[str, list[str]]]


def read_head(head: bytes) -> QuickHead | None:
    """The request in ``head`` (its bytes up to and without the blank line's
    CRLF: ``head`` ends with the last field line's CRLF), or ``None`` when it is
    not the simple kind this module reads (h11 then reads it)."""
    lines = head.split(b"\r\n")
    # head ends in CRLF: the last piece is empty.  A bare CR or LF left in a
    # line matches none of the patterns below: h11 reads that head.
    if lines.pop():
        return None
    request_line = _REQUEST_LINE(lines[0])
    if request_line is None:
        return None
    method = request_line[1]
    if method == b"CONNECT":
        return None
    raw: list[tuple[bytes, bytes]] = []
    index: dict[str, list[str]] = {}
    hosts = 0
    for line in lines[1:]:
        field = _FIELD_LINE(line)
        if field is None:
            return None
        name, value = field[1], field[2]
        lower = name.lower()
        if lower in _H11_ONLY:
            return None
        if lower == b"host":
            hosts += 1
        elif lower == b"connection" and value.lower() != b"keep-alive":
            return None
        raw.append((name, value))
        key = lower.decode("ascii")
        values = index.get(key)
        if values is None:
            index[key] = [value.decode("ascii")]
        else:
            values.append(value.decode("ascii"))
    if hosts != 1:  # h11 refuses none (in HTTP/1.1) and several
        return None
    return method, request_line[2], raw, index


# Field names already checked, by their bytes: their lower-case form.  Bounded:
# names are few, but a handler could make them up per request.
_KNOWN_NAMES: dict[bytes, bytes] = {}
_KNOWN_NAMES_MAX = 512


def write_response(
    status: int, reason: bytes, fields: list[tuple[bytes, bytes]], body: bytes, *, head_only: bool
) -> tuple[bytes, bool] | None:
    """``(the response's bytes, whether it asks to close)`` for a whole response
    to an HTTP/1.1 keep-alive request, as h11 writes it; ``None`` when h11 is
    to write it (a field h11 would refuse or rewrite, no Content-Length or one
    that is not ``len(body)``, a status whose body h11 frames otherwise).

    ``head_only``: the answer to a HEAD request, without the body.
    """
    if status == 204 or status == 304 or not 200 <= status <= 999:
        return None
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    length = b"%d" % len(body)
    lengths = 0
    closes = False
    known = _KNOWN_NAMES
    for name, value in fields:
        lower = known.get(name)
        if lower is None:
            if _FIELD_NAME(name) is None:
                return None
            lower = name.lower()
            if len(known) < _KNOWN_NAMES_MAX:
                known[name] = lower
        if _FIELD_VALUE(value) is None:
            return None
        if lower == b"content-length":
            if value != length:
                return None
            lengths += 1
        elif lower == b"connection":
            closes = closes or b"close" in [token.strip().lower() for token in value.split(b",")]
        elif lower == b"transfer-encoding" or lower == b"host":
            return None  # h11 rewrites the one and moves the other first
        parts.append(b"%s: %s\r\n" % (name, value))
    if lengths != 1:
        return None
    parts.append(b"\r\n")
    if body and not head_only:
        parts.append(body)
    return b"".join(parts), closes

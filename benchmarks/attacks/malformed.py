"""Malformed and smuggling HTTP requests, a table of them, each with the answer it must get.

Each row is sent on a connection of its own to ``weft serve http --root
SITE``.  Once the first answer is in, a follow-up request for
``/marker.txt`` is sent: if the connection stayed open it is answered, which
tells "kept alive" from "closed" without waiting on a timer.  A row passes when

* its answer is one of the row's statuses (the first is the answer weft
  aims for, as nginx 1.22 gives it where nginx is strict; the others are
  answers RFC 9110/9112 also allow; 0 means "closed without an answer");
* the connection closed if the row says it must (after a framing error
  nothing that follows on the connection can be trusted), stayed open if
  it must, and was never left hanging (neither closed nor answering);
* exactly one answer came before the marker's: a smuggled request (always
  ``GET /smuggled.txt``, whose body is ``SMUGGLED``) is never answered;
* no answer ever shows ``TOP-SECRET``, the file beside the served root.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from .clients import ClientError, ResponseReader, connect, request
from .context import Attack
from .results import Figure, equals, holds, report
from .workspace import MARKER, SECRET, SMUGGLED

#: How long one row may take before it counts as unanswered.
ROW_TIMEOUT = 3.0

HOST = b"Host: attack.test\r\n"
#: The request a smuggling row hides after its first: it must never be answered.
SMUGGLED_REQUEST = b"GET /smuggled.txt HTTP/1.1\r\n" + HOST + b"\r\n"
MARKER_REQUEST = request("/marker.txt")

#: The answer statuses of a request the server must refuse as malformed.
BAD = (400,)
#: Answers to a request whose body is broken: refused, or answered before the body was judged.
BAD_BODY = (400, 200)
#: The same for a body over the 1 MiB limit.
TOO_BIG = (413, 400, 200)
#: Answers to a traversal attempt: refused, forbidden or not found, never the file.
NOT_THERE = (400, 403, 404)


@dataclass(frozen=True)
class Malformed:
    """One malformed request and the answer it must get."""

    name: str
    raw: bytes
    #: The acceptable statuses, nginx's (or the RFC's) first; 0: closed without an answer.
    statuses: tuple[int, ...]
    #: Whether the connection must close after the answer (None: either).
    close: bool | None
    group: str


def _get(line: bytes = b"GET /small.txt HTTP/1.1", headers: bytes = HOST, body: bytes = b"") -> bytes:
    return line + b"\r\n" + headers + b"\r\n" + body


def _bad(name: str, raw: bytes, group: str, statuses: tuple[int, ...] = BAD) -> Malformed:
    """A request that must be refused, with the connection closed."""
    return Malformed(name, raw, statuses, True, group)


def _framed(
    name: str, headers: bytes, body: bytes, statuses: tuple[int, ...] = BAD, line: bytes = b""
) -> Malformed:
    """A request whose body framing is ambiguous or broken, a smuggled request after it."""
    start = line or b"GET /small.txt HTTP/1.1"
    return Malformed(name, _get(start, HOST + headers, body + SMUGGLED_REQUEST), statuses, True, "framing")


def _chunked_get(body: bytes) -> bytes:
    return _get(b"GET /small.txt HTTP/1.1", HOST + b"Transfer-Encoding: chunked\r\n", body)


def _chunked(name: str, body: bytes, statuses: tuple[int, ...] = BAD_BODY) -> Malformed:
    """A GET with a broken chunked body.  The file server may answer at the
    head, before it judges the body it discards (200); then the connection
    must still close on the bad chunk, and nothing after it be answered."""
    return Malformed(name, _chunked_get(body), statuses, True, "chunked")


def _traversal(name: str, target: bytes) -> Malformed:
    return Malformed(name, _get(b"GET " + target + b" HTTP/1.1"), NOT_THERE, None, "traversal")


_BIG = 70 * 1024

ROWS: tuple[Malformed, ...] = (
    # ---------------------------------------------------------- request line
    _bad("garbage-request-line", b"HELLO\r\n\r\n", "request line"),
    _bad("missing-method", _get(b" /small.txt HTTP/1.1"), "request line"),
    _bad("missing-target", _get(b"GET HTTP/1.1"), "request line"),
    Malformed("target-without-slash", _get(b"GET small.txt HTTP/1.1"), BAD, None, "request line"),
    Malformed("asterisk-with-get", _get(b"GET * HTTP/1.1"), BAD, None, "request line"),
    _bad("space-in-target", _get(b"GET /small .txt HTTP/1.1"), "request line"),
    _bad("tab-in-request-line", _get(b"GET\t/small.txt HTTP/1.1"), "request line"),
    _bad("nul-in-target", _get(b"GET /small\x00.txt HTTP/1.1"), "request line"),
    _bad("control-in-target", _get(b"GET /small\x01.txt HTTP/1.1"), "request line"),
    _bad("del-in-target", _get(b"GET /small\x7f.txt HTTP/1.1"), "request line"),
    _bad("nul-in-method", _get(b"G\x00ET /small.txt HTTP/1.1"), "request line"),
    _bad("leading-nul", b"\x00" + _get(), "request line"),
    Malformed("lowercase-method", _get(b"get /small.txt HTTP/1.1"), (400, 405, 501), None, "request line"),
    Malformed("unknown-method", _get(b"FOO /small.txt HTTP/1.1"), (405, 501), None, "request line"),
    Malformed(
        "very-long-method",
        _get(b"A" * 9000 + b" /small.txt HTTP/1.1"),
        (414, 400, 405, 431, 501),
        None,
        "request line",
    ),
    # RFC 9112 2.2: a server SHOULD ignore an empty line before the request line.
    Malformed("leading-empty-line", b"\r\n" + _get(), (200, 400), None, "request line"),
    Malformed(
        "bare-lf-line-ends", b"GET /small.txt HTTP/1.1\nHost: attack.test\n\n", (200,), False, "request line"
    ),
    _bad("bare-cr-in-head", _get(headers=HOST + b"X-A: b\rX-B: c\r\n"), "request line"),
    # ---------------------------------------------------------------- version
    _bad("version-lowercase", _get(b"GET /small.txt http/1.1"), "version"),
    _bad("version-2.0", _get(b"GET /small.txt HTTP/2.0"), "version", (505, 400)),
    _bad("version-9.9", _get(b"GET /small.txt HTTP/9.9"), "version", (505, 400)),
    Malformed("version-1.2", _get(b"GET /small.txt HTTP/1.2"), (200, 505), None, "version"),
    _bad("version-two-digit-minor", _get(b"GET /small.txt HTTP/1.10"), "version", (400, 505)),
    _bad("version-no-minor", _get(b"GET /small.txt HTTP/1"), "version"),
    _bad("version-misspelt", _get(b"GET /small.txt HTTX/1.1"), "version"),
    _bad("version-trailing-space", _get(b"GET /small.txt HTTP/1.1 "), "version"),
    _bad("version-then-junk", _get(b"GET /small.txt HTTP/1.1 junk"), "version"),
    # ---------------------------------------------------------------- headers
    _bad("space-before-colon", _get(headers=HOST + b"X-Foo : bar\r\n"), "headers"),
    _bad("header-without-colon", _get(headers=HOST + b"X-Foo bar\r\n"), "headers"),
    _bad("empty-header-name", _get(headers=HOST + b": bar\r\n"), "headers"),
    Malformed("bad-char-in-name", _get(headers=HOST + b"X(Foo): bar\r\n"), (400, 200), None, "headers"),
    Malformed("underscore-in-name", _get(headers=HOST + b"X_Foo: bar\r\n"), (200,), False, "headers"),
    _bad("nul-in-value", _get(headers=HOST + b"X-Foo: a\x00b\r\n"), "headers"),
    _bad("nul-in-name", _get(headers=HOST + b"X-F\x00oo: b\r\n"), "headers"),
    _bad("cr-in-value", _get(headers=HOST + b"X-Foo: a\rb\r\n"), "headers"),
    Malformed("control-in-value", _get(headers=HOST + b"X-Foo: a\x01b\r\n"), (400, 200), None, "headers"),
    _bad("obs-fold", _get(headers=HOST + b"X-Foo: a\r\n  b\r\n"), "headers"),
    _bad("obs-fold-tab", _get(headers=HOST + b"X-Foo: a\r\n\tb\r\n"), "headers"),
    _bad("whitespace-before-first-header", _get(headers=b" " + HOST), "headers"),
    _bad("host-missing", _get(headers=b""), "headers"),
    _bad("host-twice", _get(headers=HOST + b"Host: other.test\r\n"), "headers"),
    _bad("host-with-space", _get(headers=b"Host: attack test\r\n"), "headers"),
    _bad("host-with-slash", _get(headers=b"Host: attack.test/x\r\n"), "headers"),
    _bad("too-many-headers", _get(headers=HOST + b"X-A: b\r\n" * 10000), "size", (431, 400)),
    _bad("header-too-long", _get(headers=HOST + b"X-A: " + b"b" * _BIG + b"\r\n"), "size", (431, 400)),
    _bad("target-too-long", _get(b"GET /" + b"a" * _BIG + b" HTTP/1.1"), "size", (414, 431, 400)),
    _bad(
        "unterminated-huge-head",
        b"GET /small.txt HTTP/1.1\r\n" + HOST + b"X-A: " + b"b" * _BIG,
        "size",
        (431, 400),
    ),
    # ------------------------------------------------- framing and smuggling
    _framed("cl-and-te", b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
    _framed("te-and-cl", b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n"),
    _framed(
        "cl-and-te-http10",
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"0\r\n\r\n",
        line=b"GET /small.txt HTTP/1.0",
    ),
    _framed("te-on-http10", b"Transfer-Encoding: chunked\r\n", b"0\r\n\r\n", line=b"GET /small.txt HTTP/1.0"),
    _framed("cl-twice-differing", b"Content-Length: 0\r\nContent-Length: 5\r\n", b"hello"),
    # Identical values are not ambiguous (RFC 9110 8.6 lets a server take them): no smuggled request.
    Malformed(
        "cl-twice-same",
        _get(headers=HOST + b"Content-Length: 5\r\nContent-Length: 5\r\n", body=b"hello"),
        (400, 200),
        None,
        "framing",
    ),
    Malformed(
        "cl-list",
        _get(headers=HOST + b"Content-Length: 5, 5\r\n", body=b"hello"),
        (400, 200),
        None,
        "framing",
    ),
    _framed("cl-negative", b"Content-Length: -1\r\n", b""),
    _framed("cl-plus-sign", b"Content-Length: +5\r\n", b"hello"),
    _framed("cl-hex", b"Content-Length: 0x5\r\n", b"hello"),
    _framed("cl-two-numbers", b"Content-Length: 5 5\r\n", b"hello"),
    _framed("cl-empty", b"Content-Length: \r\n", b""),
    _framed("cl-huge", b"Content-Length: 99999999999999999999\r\n", b"", (413, 400)),
    _framed("cl-over-body-limit", b"Content-Length: 2000000\r\n", b"hello", (413,)),
    _framed("te-unknown", b"Transfer-Encoding: gzip\r\n", b"", (501, 400)),
    _framed("te-chunked-not-last", b"Transfer-Encoding: chunked, gzip\r\n", b"0\r\n\r\n", (400, 501)),
    _framed("te-gzip-then-chunked", b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n", (501, 400)),
    _framed(
        "te-chunked-twice",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        b"0\r\n\r\n",
        (400, 501),
    ),
    _framed("te-obs-fold", b"Transfer-Encoding:\r\n chunked\r\n", b"0\r\n\r\n"),
    _framed(
        "te-obs-fold-after-cl", b"Content-Length: 5\r\nTransfer-Encoding: x\r\n chunked\r\n", b"0\r\n\r\n"
    ),
    _framed("te-space-before-colon", b"Transfer-Encoding : chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n"),
    _framed("te-vertical-tab", b"Transfer-Encoding:\x0bchunked\r\n", b"0\r\n\r\n", (400, 501)),
    _framed("te-quoted", b'Transfer-Encoding: "chunked"\r\n', b"0\r\n\r\n", (501, 400)),
    _framed("te-xchunked", b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n", (501, 400)),
    # ---------------------------------------------------------------- chunked
    _chunked("chunk-size-not-hex", b"zz\r\nhello\r\n0\r\n\r\n"),
    _chunked("chunk-size-negative", b"-1\r\nhello\r\n0\r\n\r\n"),
    _chunked("chunk-size-huge", b"ffffffffffffffffff\r\nhello", TOO_BIG),
    _chunked("chunk-size-over-body-limit", b"200000\r\nhello", TOO_BIG),
    _chunked("chunk-size-40-digits", b"f" * 40 + b"\r\nhello"),
    # A server that ignores extensions, or replaces a NUL in a trailer with a
    # space (RFC 9110 5.5), may go on; it must not hang.
    Malformed(
        "chunk-extension-nul", _chunked_get(b"5;\x00x\r\nhello\r\n0\r\n\r\n"), BAD_BODY, None, "chunked"
    ),
    _chunked("chunk-without-crlf", b"5\r\nhelloXX0\r\n\r\n"),
    Malformed(
        "chunk-trailer-nul", _chunked_get(b"5\r\nhello\r\n0\r\nX-T\x00: a\r\n\r\n"), BAD_BODY, None, "chunked"
    ),
    _chunked(
        "chunked-body-over-limit", (b"10000\r\n" + b"a" * 0x10000 + b"\r\n") * 17 + b"0\r\n\r\n", TOO_BIG
    ),
    # -------------------------------------------------------------- traversal
    _traversal("dot-dot", b"/../secret.txt"),
    _traversal("dot-dot-encoded", b"/%2e%2e/secret.txt"),
    _traversal("dot-dot-encoded-upper", b"/%2E%2E/secret.txt"),
    _traversal("half-encoded-dot-dot", b"/.%2e/secret.txt"),
    _traversal("encoded-slash", b"/..%2fsecret.txt"),
    _traversal("double-encoded", b"/%252e%252e/secret.txt"),
    _traversal("backslash", b"/..\\secret.txt"),
    _traversal("encoded-backslash", b"/%5c..%5csecret.txt"),
    _traversal("up-from-subdirectory", b"/sub/../../secret.txt"),
    _traversal("dot-dot-semicolon", b"/..;/secret.txt"),
    _traversal("overlong-utf8-dots", b"/%c0%ae%c0%ae/secret.txt"),
    _traversal("symlink-out-of-root", b"/link-out"),
    _traversal("absolute-form", b"http://attack.test/../secret.txt"),
    _traversal("encoded-nul", b"/secret.txt%00.txt"),
    _traversal("dot-then-dot-dot", b"/./../secret.txt"),
    _traversal("encoded-slashes-from-subdirectory", b"/sub/..%2f..%2fsecret.txt"),
)


@dataclass
class Outcome:
    """What the server did with one row."""

    row: Malformed
    #: Every status answered before the marker's (0 when it closed without a word).
    statuses: list[int] = field(default_factory=list)
    closed: bool = False
    marker_answered: bool = False
    smuggled: bool = False
    leaked: bool = False
    #: Why the row could not be judged (no answer in time, a garbled answer).
    problem: str | None = None

    @property
    def answer(self) -> int | None:
        """The status of the first answer, 0 for "closed without one", None if none came."""
        if self.statuses:
            return self.statuses[0]
        return 0 if self.closed else None

    def failures(self) -> list[str]:
        """What went wrong, in words (empty: the row passed)."""
        wrong = []
        if self.problem is not None:
            wrong.append(self.problem)
        if self.answer not in self.row.statuses:
            wrong.append(f"answered {self.answer}, expected {'/'.join(map(str, self.row.statuses))}")
        if len(self.statuses) > 1:
            wrong.append(f"{len(self.statuses)} answers")
        if self.smuggled:
            wrong.append("answered the smuggled request")
        if self.leaked:
            wrong.append("showed the secret")
        if self.row.close is True and not self.closed:
            wrong.append("kept the connection open")
        if self.row.close is False and self.closed:
            wrong.append("closed the connection")
        if self.row.close is not True and not self.closed and not self.marker_answered:
            # Neither closed nor usable: the connection is held for nothing.
            wrong.append("left the connection hanging (neither closed nor answering the next request)")
        return wrong


def send_row(port: int, row: Malformed, *, timeout: float = ROW_TIMEOUT) -> Outcome:
    """Send one row (then the marker, if the connection is still open) and judge the answers."""
    outcome = Outcome(row)
    reader = ResponseReader()
    deadline = time.monotonic() + timeout
    try:
        sock = connect(port, timeout=timeout)
    except OSError as exc:
        outcome.problem = f"could not connect: {exc}"
        return outcome
    with sock:
        try:
            sock.sendall(row.raw)
        except OSError:
            pass  # refused mid-way (a reset): what it answered first is still readable
        sent_marker = False
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                data = b""
            if not data:
                reader.closed()
                outcome.closed = True
                break
            try:
                reader.feed(data)
            except ClientError as exc:
                outcome.problem = str(exc)
                break
            finals = [response for response in reader.responses if response.status >= 200]
            if finals and not sent_marker:
                sent_marker = True
                with contextlib.suppress(OSError):
                    sock.sendall(MARKER_REQUEST)
            if any(MARKER in response.body for response in finals):
                break
        if not outcome.closed and not reader.responses and outcome.problem is None:
            outcome.problem = f"no answer within {timeout:g} s"
    for response in reader.responses:
        if response.status < 200:
            continue
        if MARKER in response.body:
            outcome.marker_answered = True
            continue
        outcome.statuses.append(response.status)
        outcome.smuggled |= SMUGGLED in response.body
        outcome.leaked |= SECRET in response.body
    return outcome


def send_rows(port: int, rows: Sequence[Malformed] = ROWS, *, timeout: float = ROW_TIMEOUT) -> list[Outcome]:
    """Every row, on connections of their own, many at once; the outcomes in the rows' order."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda row: send_row(port, row, timeout=timeout), rows))


def malformed_http(attack: Attack) -> list[Figure]:
    """The table of malformed and smuggling requests against ``weft serve http``."""
    server = attack.http()
    outcomes = send_rows(server.port)
    failed = [outcome for outcome in outcomes if outcome.failures()]
    for outcome in failed:
        attack.notes.append(f"{outcome.row.name}: {'; '.join(outcome.failures())}")
    groups = sorted({row.group for row in ROWS})
    figures = [equals("as expected", len(outcomes) - len(failed), len(outcomes))]
    for group in groups:
        mine = [outcome for outcome in outcomes if outcome.row.group == group]
        wrong = sum(1 for outcome in mine if outcome.failures())
        if wrong:
            figures.append(report(f"{group} wrong", f"{wrong}/{len(mine)}"))
    figures += [
        equals("smuggled answered", sum(outcome.smuggled for outcome in outcomes), 0),
        equals("secret shown", sum(outcome.leaked for outcome in outcomes), 0),
        holds("server alive", server.alive()),
    ]
    return figures

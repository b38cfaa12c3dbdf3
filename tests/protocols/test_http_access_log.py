"""The HTTP server's access log: a Common Log Format line per response, its time
from the fake wall clock, on the memory driver."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.http import request
from weft.drivers._core.file_region import FileSlice
from weft.drivers.testing import FakeClock, MemoryConnection, connect
from weft.protocols.http import AccessLog, HTTPLimits, HTTPServerProtocol, Request, ResponseWriter
from weft.protocols.http._access_log import _escaped

WALL = 1_000_000_000.0  # 09/Sep/2001:01:46:40 +0000
PEER = ("192.0.2.7", 40000)

Handler = Callable[[Request, ResponseWriter], object]


class Lines(logging.Handler):
    """Keeps each record, and its line as the Common Log Format has it."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def lines(self) -> list[str]:
        return [record.getMessage() for record in self.records]


@pytest.fixture
def access() -> Iterator[tuple[logging.Logger, Lines]]:
    logger = logging.getLogger("tests.access")
    lines = Lines()
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, lines
    finally:
        logger.removeHandler(lines)


def hello(request: Request, response: ResponseWriter) -> None:
    response.send(200, {"content-type": "text/plain"}, b"hello")


def serve(logger: logging.Logger, handler: Handler = hello, **options: Any) -> MemoryConnection:
    protocol = HTTPServerProtocol(handler, access_log=AccessLog(logger), limits=options.pop("limits", None))
    return connect(protocol, clock=FakeClock(wall=WALL), extra={"peername": PEER}, **options)


def test_a_response_is_one_common_log_format_line(access: tuple[logging.Logger, Lines]) -> None:
    """Host, ident and user as -, the wall clock's time in UTC, the request
    line, the status and the body's size."""
    logger, lines = access
    conn = serve(logger)
    conn.deliver(request("GET", "/index.html?x=1"))
    conn.clock.advance(1.5)
    conn.deliver(request("HEAD", "/index.html"))
    assert lines.lines == [
        '192.0.2.7 - - [09/Sep/2001:01:46:40 +0000] "GET /index.html?x=1 HTTP/1.1" 200 5',
        '192.0.2.7 - - [09/Sep/2001:01:46:41 +0000] "HEAD /index.html HTTP/1.1" 200 -',
    ]
    # The parts, for a structured (JSON) formatter:
    assert lines.records[0].args == (
        "192.0.2.7",
        "09/Sep/2001:01:46:40 +0000",
        "GET /index.html?x=1 HTTP/1.1",
        200,
        5,
    )


def test_streamed_file_and_failed_responses_are_logged(
    access: tuple[logging.Logger, Lines], tmp_path: Any
) -> None:
    """A streamed body counts every write; a file region its length; a
    handler that fails is logged as the 500 the client got."""
    logger, lines = access
    (tmp_path / "f.bin").write_bytes(b"x" * 1000)

    def answer(request: Request, response: ResponseWriter) -> None:
        if request.path == "/stream":
            response.start(200)
            response.write(b"abc")
            response.end(b"de")
        elif request.path == "/file":
            response.send_file(200, [], FileSlice.open(tmp_path / "f.bin"))
        else:
            raise RuntimeError("handler bug")

    conn = serve(logger, answer)
    for path in ("/stream", "/file", "/fail"):
        conn.deliver(request("GET", path))
    assert [line.split('"', 1)[1] for line in lines.lines] == [
        "GET /stream HTTP/1.1\" 200 5",
        "GET /file HTTP/1.1\" 200 1000",
        "GET /fail HTTP/1.1\" 500 22",
    ]


def test_the_servers_own_refusals_are_logged(access: tuple[logging.Logger, Lines]) -> None:
    """A request the server refuses before its handler could see it (one
    that does not parse, an invalid Host) is logged with "-" for its
    request line; a head that never ends as a 408."""
    logger, lines = access
    serve(logger).deliver(b"NOT HTTP AT ALL\r\n\r\n")
    serve(logger).deliver(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n")
    slow = serve(logger, limits=HTTPLimits(head_timeout=5))
    slow.deliver(b"GET / HTTP/1.1\r\n")
    slow.clock.advance(5)
    assert lines.lines == [
        '192.0.2.7 - - [09/Sep/2001:01:46:40 +0000] "-" 400 16',
        '192.0.2.7 - - [09/Sep/2001:01:46:40 +0000] "-" 400 16',
        '192.0.2.7 - - [09/Sep/2001:01:46:45 +0000] "-" 408 20',
    ]


def test_a_request_line_is_escaped_so_the_log_line_parses(access: tuple[logging.Logger, Lines]) -> None:
    """A quote and a backslash in the target (h11 lets both through) are
    written \\xHH, as nginx writes them, and so would any byte outside
    printable ASCII."""
    logger, lines = access
    serve(logger).deliver(b'GET /a"b\\c HTTP/1.1\r\nHost: t\r\n\r\n')
    assert lines.lines[0].endswith('"GET /a\\x22b\\x5Cc HTTP/1.1" 200 5')
    assert _escaped("/caf\xe9\x7f\x1b") == "/caf\\xE9\\x7F\\x1B"
    assert _escaped("/plain?q=1") == "/plain?q=1"


def test_a_unix_socket_peer_is_a_dash(access: tuple[logging.Logger, Lines]) -> None:
    """A peer with no (host, port) address, as on a UNIX socket, is logged as -."""
    logger, lines = access
    conn = connect(HTTPServerProtocol(hello, access_log=AccessLog(logger)), extra={"peername": ""})
    conn.deliver(request("GET", "/"))
    assert lines.lines[0].startswith("- - - [")


def test_a_logger_that_does_not_log_info_costs_no_formatting(
    access: tuple[logging.Logger, Lines], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the logger above INFO nothing is formatted: neither the time nor
    the request line is computed, and the logger is not called to log."""
    logger, lines = access
    logger.setLevel(logging.WARNING)

    def fail(*args: object) -> str:
        raise AssertionError("formatted while disabled")

    monkeypatch.setattr("weft.protocols.http._access_log.log_time", fail)
    monkeypatch.setattr("weft.protocols.http._access_log._escaped", fail)
    monkeypatch.setattr(logger, "info", fail)
    conn = serve(logger)
    conn.deliver(request("GET", "/"))
    assert conn.take_written().startswith(b"HTTP/1.1 200 ")
    assert lines.lines == []


def test_without_an_access_log_nothing_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The default server has no access log: nothing reaches weft.access."""
    assert HTTPServerProtocol(hello).access_log is None
    with caplog.at_level(logging.DEBUG, logger="weft.access"):
        connect(HTTPServerProtocol(hello)).deliver(request("GET", "/"))
    assert [record for record in caplog.records if record.name == "weft.access"] == []

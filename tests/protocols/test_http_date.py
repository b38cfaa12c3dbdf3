"""The HTTP server's Date header: from the transport's wall clock (the memory
driver's FakeClock here), on every response, formatted per RFC 9110."""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.support.http import read_replies, request
from weft.drivers.testing import FakeClock, MemoryConnection, connect
from weft.drivers.testing._fake_clock import DEFAULT_WALL_TIME
from weft.protocols.contract import TimerHandle, WallClock
from weft.protocols.http import HTTPLimits, HTTPServerProtocol, Request, ResponseWriter
from weft.protocols.http._dates import http_date, log_time


def hello(request: Request, response: ResponseWriter) -> None:
    response.send(200, {"content-type": "text/plain"}, b"hello")


def serve(handler: Callable[[Request, ResponseWriter], object] = hello, **options: Any) -> MemoryConnection:
    return connect(HTTPServerProtocol(handler, limits=options.pop("limits", None)), **options)


def dates(conn: MemoryConnection) -> list[str | None]:
    return [reply.headers.get("date") for reply in read_replies(conn.take_written(), eof=conn.eof_written)]


def test_every_response_has_the_wall_clocks_date() -> None:
    """Date is the fake wall clock's time, in IMF-fixdate; it follows the
    clock as it advances and when it is set."""
    clock = FakeClock(wall=784111777.5)  # RFC 9110's example, half a second in
    conn = serve(clock=clock)
    conn.deliver(request("GET", "/"))
    assert dates(conn) == ["Sun, 06 Nov 1994 08:49:37 GMT"]
    clock.advance(0.4)  # the same second
    conn.deliver(request("GET", "/"))
    assert dates(conn) == ["Sun, 06 Nov 1994 08:49:37 GMT"]
    clock.advance(0.2)
    conn.deliver(request("GET", "/"))
    assert dates(conn) == ["Sun, 06 Nov 1994 08:49:38 GMT"]
    clock.set_wall_time(951782400)  # 2000-02-29, a leap day
    conn.deliver(request("GET", "/"))
    assert dates(conn) == ["Tue, 29 Feb 2000 00:00:00 GMT"]


def test_a_handlers_own_date_is_kept_and_not_doubled() -> None:
    """A handler that sets Date (any case) gets its own, once."""

    def dated(request: Request, response: ResponseWriter) -> None:
        response.send(200, [("DATE", "Mon, 01 Jan 2024 00:00:00 GMT")], b"x")

    conn = serve(dated)
    conn.deliver(request("GET", "/"))
    data = conn.take_written()
    assert data.lower().count(b"date:") == 1
    assert read_replies(data)[0].headers["date"] == "Mon, 01 Jan 2024 00:00:00 GMT"


def test_streamed_and_error_responses_are_dated() -> None:
    """A streamed response, the 500 for a failing handler, the server's own
    400 and its 408 all carry Date."""
    expected = http_date(DEFAULT_WALL_TIME).decode()

    def streamed(request: Request, response: ResponseWriter) -> None:
        response.start(200)
        response.end(b"streamed")

    conn = serve(streamed)
    conn.deliver(request("GET", "/"))
    assert dates(conn) == [expected]

    def failing(request: Request, response: ResponseWriter) -> None:
        raise RuntimeError("handler bug")

    conn = serve(failing)
    conn.deliver(request("GET", "/"))
    assert dates(conn) == [expected]

    conn = serve()
    conn.deliver(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n")  # an invalid Host: 400
    assert dates(conn) == [expected]

    conn = serve(limits=HTTPLimits(head_timeout=5))
    conn.deliver(b"GET / HTTP/1.1\r\n")  # a head that never ends: 408
    conn.clock.advance(5)
    assert dates(conn) == [http_date(DEFAULT_WALL_TIME + 5).decode()]


class _MonotonicOnly:
    """A clock that measures time but cannot tell it (a plain asyncio loop's, say)."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock.now()

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        return self._clock.call_later(delay, callback, *args)


class _Transport:
    """Just enough transport for a server whose clock tells no wall time."""

    def __init__(self) -> None:
        self.clock = _MonotonicOnly(FakeClock())
        self.written = bytearray()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.clock if name == "clock" else default

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def test_without_a_wall_clock_no_date_is_sent() -> None:
    """RFC 9110 section 6.6.1: a server without a clock sends no Date; the
    response is otherwise the same."""
    transport = _Transport()
    assert not isinstance(transport.clock, WallClock)
    protocol = HTTPServerProtocol(hello)
    protocol.connection_made(transport)
    protocol.data_received(request("GET", "/"))
    [reply] = read_replies(bytes(transport.written))
    assert (reply.status, reply.body, "date" in reply.headers) == (200, b"hello", False)


def test_the_fake_clocks_wall_time_moves_with_it_and_is_settable() -> None:
    """advance() moves the wall clock with now(); set_wall_time() moves only the wall clock."""
    clock = FakeClock(start=10.0, wall=1000.0)
    clock.advance(2.5)
    assert (clock.now(), clock.wall_time()) == (12.5, 1002.5)
    clock.set_wall_time(5.0)
    assert (clock.now(), clock.wall_time()) == (12.5, 5.0)
    clock.advance(1)
    assert clock.wall_time() == 6.0


def test_a_memory_transports_clock_is_a_wall_clock() -> None:
    """The clock a transport offers tells the FakeClock's wall time."""
    clock = FakeClock(wall=123.0)
    conn = serve(clock=clock)
    offered = conn.transport.get_extra_info("clock")
    assert isinstance(offered, WallClock)
    assert offered.wall_time() == 123.0


@given(st.integers(min_value=0, max_value=253402300799))  # to 9999-12-31T23:59:59Z
def test_the_formats_match_the_stdlibs(second: int) -> None:
    """IMF-fixdate agrees with email.utils.formatdate, the log time with
    time.strftime, for every second the four-digit years allow (leap days,
    centuries, 2000 included)."""
    assert http_date(second + 0.75).decode() == formatdate(second, usegmt=True)
    assert log_time(second) == time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second))

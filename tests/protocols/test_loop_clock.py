"""clock_of's fallback, the running asyncio loop's clock, and what weft's
protocols do where there is no clock at all.

The protocols never import asyncio (tests/test_architecture.py); these tests
run them inside and outside a running loop, with transports that offer no
clock, and check both halves of the rule: a loop's clock when a loop runs in
the thread, NoClockError (loud, and reaching the HTTP client's on_error)
when none does.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
from typing import Any

import pytest

from tests.support import TIMEOUT
from tests.support.tls import HOSTNAME, client_context
from weft.drivers.testing import RecordingProtocol, connect
from weft.protocols._loop_clock import LoopClock
from weft.protocols.contract import clock_of
from weft.protocols.errors import ArgumentError, NoClockError
from weft.protocols.http import HTTPClientProtocol, HTTPConnectionClosedError, HTTPServerProtocol
from weft.protocols.tls import TLSProtocol, start_tls


class Clockless:
    """A transport with no clock (as asyncio's): records what is done to it."""

    def __init__(self) -> None:
        self.aborted = False
        self.written = b""
        self.protocol: Any = None

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return self.aborted

    def is_reading(self) -> bool:
        return not self.aborted

    def write(self, data: bytes) -> None:
        self.written += data

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.aborted = True


def in_a_loop(main: Any) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(main(), TIMEOUT)

    return asyncio.run(bounded())


# ------------------------------------------------------------- the fallback


def test_a_transports_own_clock_comes_first() -> None:
    """A transport that offers a clock gets that clock, loop or no loop."""
    protocol = RecordingProtocol()
    connect(protocol)

    async def main() -> object:
        return clock_of(protocol.transport)

    assert in_a_loop(main) is protocol.transport.get_extra_info("clock")


def test_without_a_clock_or_a_loop_clock_of_raises() -> None:
    """No clock and no running loop (asyncio imported, no loop running):
    NoClockError, which says what to do."""
    with pytest.raises(NoClockError, match="no asyncio event loop is running"):
        clock_of(Clockless())


def test_a_loop_in_another_thread_is_no_clock_for_this_one() -> None:
    """The loop must run in the caller's thread: from a worker thread of a
    running loop, clock_of still raises."""

    async def main() -> BaseException | None:
        try:
            await asyncio.to_thread(clock_of, Clockless())
        except NoClockError as error:
            return error
        return None

    assert isinstance(in_a_loop(main), NoClockError)


def test_without_asyncio_imported_clock_of_raises_and_imports_nothing() -> None:
    """In a program that never imported asyncio, clock_of raises NoClockError
    and still has not imported it: the fallback only reads sys.modules."""
    script = (
        "import sys\n"
        "from weft.protocols.contract import clock_of\n"
        "from weft.protocols.errors import NoClockError\n"
        "class Clockless:\n"
        "    def get_extra_info(self, name, default=None):\n"
        "        return default\n"
        "try:\n"
        "    clock_of(Clockless())\n"
        "except NoClockError:\n"
        "    print('NoClockError', 'asyncio' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT, check=True
    )
    assert result.stdout == "NoClockError False\n"


def test_inside_a_running_loop_the_clock_is_the_loops() -> None:
    """Inside a running loop, a transport with no clock gets a LoopClock over
    that loop: its now() is the loop's time()."""

    async def main() -> tuple[Any, float, float, float]:
        loop = asyncio.get_running_loop()
        clock = clock_of(Clockless())
        before = loop.time()
        now = clock.now()
        return clock, before, now, loop.time()

    clock, before, now, after = in_a_loop(main)
    assert isinstance(clock, LoopClock)
    assert before <= now <= after


def test_the_loop_clock_runs_calls_in_order_and_cancels() -> None:
    """Calls with no delay (or a negative one) run in the order scheduled,
    before a later one; a cancelled call never runs."""

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        clock = clock_of(Clockless())
        ran: list[str] = []
        done = asyncio.Event()

        def later() -> None:
            ran.append("later")
            done.set()

        clock.call_later(0.001, later)
        for name in ("a", "b", "c"):
            clock.call_later(-1 if name == "b" else 0, ran.append, name)
        cancelled = clock.call_later(0, ran.append, "cancelled")
        cancelled.cancel()
        assert cancelled.cancelled()
        await done.wait()
        assert loop.is_running()
        return ran

    assert in_a_loop(main) == ["a", "b", "c", "later"]


def test_the_loop_clock_refuses_a_nan_delay() -> None:
    """asyncio takes a NaN delay and corrupts its timer heap; the clock refuses it."""

    async def main() -> None:
        clock = clock_of(Clockless())
        with pytest.raises(ArgumentError, match="NaN"):
            clock.call_later(math.nan, print)

    in_a_loop(main)


def test_a_loop_clock_call_that_raises_aborts_its_transport() -> None:
    """A timer that raises is reported to the loop's exception handler, with
    the transport, and that transport is aborted; other calls run on."""
    transport = Clockless()

    async def main() -> tuple[list[dict[str, Any]], list[str]]:
        loop = asyncio.get_running_loop()
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: reported.append(context))
        clock = clock_of(transport)
        ran: list[str] = []
        done = asyncio.Event()

        def boom() -> None:
            raise RuntimeError("on purpose")

        def after() -> None:
            ran.append("after")
            done.set()

        clock.call_later(0, boom)
        clock.call_later(0, after)
        await done.wait()
        return reported, ran

    reported, ran = in_a_loop(main)
    assert ran == ["after"]
    assert transport.aborted
    [context] = reported
    assert isinstance(context["exception"], RuntimeError)
    assert context["transport"] is transport


# --------------------------------------------------- no clock at all: loudly


def test_the_http_client_without_a_clock_fails_its_requests() -> None:
    """With no clock and no loop, HTTPClientProtocol's connection_made raises
    NoClockError, having failed every request made before (on_error hears an
    HTTPConnectionClosedError caused by the NoClockError) and aborted the
    transport: nothing is left waiting."""
    client = HTTPClientProtocol(host="test")
    errors: list[Exception] = []
    client.request("GET", "/", on_response=lambda response: None, on_error=errors.append)
    transport = Clockless()
    with pytest.raises(NoClockError):
        client.connection_made(transport)
    [error] = errors
    assert isinstance(error, HTTPConnectionClosedError)
    assert isinstance(error.__cause__, NoClockError)
    assert transport.aborted
    assert transport.written == b""
    with pytest.raises(HTTPConnectionClosedError, match="cannot be used"):
        client.request("GET", "/again", on_response=lambda response: None)
    client.connection_lost(None)  # what the driver says next: nothing more happens
    assert len(errors) == 1


def test_the_http_server_without_a_clock_aborts() -> None:
    """HTTPServerProtocol's connection_made without a clock aborts the
    connection and raises NoClockError, so no client waits on a server with
    no deadlines; later data is ignored."""
    server = HTTPServerProtocol(lambda request, response: response.send(200))
    transport = Clockless()
    with pytest.raises(NoClockError):
        server.connection_made(transport)
    assert transport.aborted
    server.data_received(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
    server.connection_lost(None)
    assert transport.written == b""


def test_the_tls_layer_without_a_clock_aborts_and_tells_the_application_nothing() -> None:
    """TLSProtocol's connection_made without a clock aborts the connection and
    raises NoClockError; the application, never told of the connection,
    hears nothing of its end either."""
    app = RecordingProtocol()
    layer = TLSProtocol(app, client_context(), server_side=False, server_hostname=HOSTNAME)
    transport = Clockless()
    with pytest.raises(NoClockError):
        layer.connection_made(transport)
    assert transport.aborted
    layer.connection_lost(None)
    assert app.events == []


def test_start_tls_without_a_clock_ends_the_connection_with_the_error() -> None:
    """weft's start_tls on a connection whose transport has no clock (and no
    loop running) raises NoClockError and aborts the connection; the
    protocol, which had its connection already, hears it end with that error."""
    app = RecordingProtocol()
    transport = Clockless()
    app.connection_made(transport)
    with pytest.raises(NoClockError):
        start_tls(transport, app, client_context(), server_side=False, server_hostname=HOSTNAME)  # type: ignore[arg-type]
    assert transport.aborted
    transport.protocol.connection_lost(None)  # what the driver says next
    assert app.names == ["connection_made", "connection_lost"]
    assert isinstance(app.events[-1][1], NoClockError)

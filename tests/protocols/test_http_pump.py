"""The h11 pump and the writable waiters the HTTP server and client share
(``weft.protocols.http._pump``), alone, and as the client now uses them."""

from __future__ import annotations

from typing import Any, cast

import h11
import pytest

from weft.drivers.testing import FakeClock, connect
from weft.protocols.contract import Transport
from weft.protocols.http import (
    ClientResponse,
    HTTPClientProtocol,
    HTTPUsageError,
    MalformedHTTPError,
)
from weft.protocols.http._errors import HTTPError
from weft.protocols.http._pump import FEED_SIZE, H11Pump, WritableWaiters


class ReadingSwitch:
    """The part of a transport the pump touches: its reading, paused or not."""

    def __init__(self) -> None:
        self.reading = True
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.reading = False
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.reading = True
        self.calls.append("resume")


class Owner:
    """A protocol's side of the pump: records what it is handed, wants events while ``wanting``."""

    def __init__(self, role: type[h11.CLIENT] | type[h11.SERVER] = h11.SERVER) -> None:
        self.wanting = True
        self.events: list[Any] = []
        self.errors: list[HTTPError] = []
        self.refused: list[h11.LocalProtocolError] = []
        self.held_by_h11: list[int] = []  # what h11 held each time it asked for data
        self.wire = H11Pump(
            role,
            max_head_size=1024,
            wants_event=lambda: self.wanting,
            handle=self.handle,
            need_data=lambda: self.held_by_h11.append(len(self.wire.connection.trailing_data[0])),
            peer_error=self.errors.append,
            cannot_send=self.refused.append,
        )
        self.switch = ReadingSwitch()
        self.wire.transport = cast(Transport, self.switch)

    def handle(self, event: Any) -> None:
        self.events.append(type(event).__name__)
        if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            self.wanting = False  # one message, then the protocol answers it


def get(target: str = "/", extra: bytes = b"") -> bytes:
    return b"GET " + target.encode() + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n"


def post(body: bytes) -> bytes:
    return b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


# ------------------------------------------------------------------ the pump


def test_the_pump_reads_on_only_while_h11_waits_for_bytes() -> None:
    """Half a head: h11 needs data and reading goes on.  A whole message the
    protocol stops after: reading pauses, so nothing more piles up in h11."""
    owner = Owner()
    owner.wire.feed(b"GET / HT")
    owner.wire.pump()
    assert owner.events == []
    assert owner.switch.calls == ["resume"]
    owner.wire.feed(b"TP/1.1\r\nHost: x\r\n\r\n" + get("/next"))
    owner.wire.pump()
    assert owner.events == ["Request", "EndOfMessage"]
    assert owner.switch.calls == ["resume", "pause"]
    assert owner.wire.connection.trailing_data[0] == get("/next")  # waits in h11, unread


def test_a_large_read_reaches_h11_a_piece_at_a_time() -> None:
    """A read over FEED_SIZE is handed to h11 in pieces, each when h11 asks for
    more: h11 never holds more than one piece, and the body arrives whole."""
    owner = Owner()
    body = bytes(range(256)) * 1024  # 256 KiB: asyncio's read size
    owner.wire.feed(post(body))
    assert owner.wire.pending() > len(body)  # held by the pump, not h11
    owner.wire.pump()
    assert owner.events[0] == "Request"
    assert owner.events[-1] == "EndOfMessage"
    assert max(owner.held_by_h11, default=0) <= FEED_SIZE
    assert owner.events.count("Data") >= len(body) // FEED_SIZE


def test_the_end_of_the_stream_reaches_h11_after_every_piece() -> None:
    """The peer's EOF right behind a large read: h11 hears it only once the
    pieces before it are in, so the message completes and then the connection closes."""
    owner = Owner()
    owner.wire.feed(post(b"z" * (3 * FEED_SIZE)))
    owner.wire.feed_eof()
    owner.wire.pump()
    assert owner.events[-1] == "EndOfMessage"
    owner.wire.encode(h11.Response(status_code=204, headers=[]), h11.EndOfMessage())
    owner.wire.connection.start_next_cycle()
    owner.wanting = True
    owner.wire.pump()
    assert owner.events[-1] == "ConnectionClosed"


def test_bytes_that_are_not_http_reach_the_protocol_as_a_weft_error() -> None:
    """h11's RemoteProtocolError becomes MalformedHTTPError (h11's the cause), once."""
    owner = Owner()
    owner.wire.feed(b"NOT HTTP AT ALL\r\n\r\n")
    owner.wire.pump()
    [error] = owner.errors
    assert isinstance(error, MalformedHTTPError)
    assert isinstance(error.__cause__, h11.RemoteProtocolError)


def test_an_event_h11_refuses_drops_the_connection_then_raises() -> None:
    """encode() of an event h11 refuses: the protocol's cannot_send runs first
    (it drops the connection), then HTTPUsageError, caused by h11's error."""
    owner = Owner(h11.CLIENT)
    with pytest.raises(HTTPUsageError, match="cannot send Data") as caught:
        owner.wire.encode(h11.Data(data=b"no request yet"))
    assert len(owner.refused) == 1
    assert caught.value.__cause__ is owner.refused[0]


def test_encode_returns_the_events_bytes_in_order_as_one_piece() -> None:
    """Several events, one bytes object: head, body, end (one write, one packet)."""
    owner = Owner(h11.CLIENT)
    data = owner.wire.encode(
        h11.Request(method="POST", target="/", headers=[("host", "x"), ("content-length", "2")]),
        h11.Data(data=b"hi"),
        h11.EndOfMessage(),
    )
    assert data.startswith(b"POST / HTTP/1.1\r\n")
    assert data.endswith(b"\r\n\r\nhi")


def test_a_stopped_pump_does_nothing_and_drops_what_waited() -> None:
    """After stop(): pump() takes no event, touches no reading, and the pieces
    not yet fed are gone."""
    owner = Owner()
    owner.wire.feed(post(b"q" * (2 * FEED_SIZE)))
    owner.wire.stop()
    owner.wire.pump()
    assert owner.events == []
    assert owner.switch.calls == []
    assert owner.wire.pending() <= FEED_SIZE + 100  # only what h11 already had


# ---------------------------------------------------------- the writable waiters


class Message:
    """A response or a streamed request, as the waiters see it."""

    def __init__(self, in_turn: bool = True) -> None:
        self._in_turn = in_turn
        self._writes_over = False


class Connection:
    """Takes more until ``full``."""

    def __init__(self) -> None:
        self.full = False


def waiters() -> tuple[WritableWaiters, Connection, FakeClock]:
    connection = Connection()
    waiting = WritableWaiters(lambda: not connection.full)
    waiting.clock = FakeClock()
    return waiting, connection, waiting.clock


def test_callbacks_run_in_order_on_the_next_turn_not_inside_the_call() -> None:
    """Given while the connection takes more: nothing runs inside add(); on the
    next clock turn each runs once, in order."""
    waiting, _connection, clock = waiters()
    message = Message()
    order: list[int] = []
    waiting.add(message, lambda: order.append(1))
    waiting.add(message, lambda: order.append(2))
    assert order == []
    clock.advance(0)
    assert order == [1, 2]


def test_a_callback_that_fills_the_connection_holds_the_rest() -> None:
    """One at a time while the connection takes more: the first that fills it
    leaves the others waiting for the next run (resume_writing's)."""
    waiting, connection, _clock = waiters()
    message = Message()
    order: list[str] = []

    def fill() -> None:
        order.append("fill")
        connection.full = True

    waiting.add(message, fill)
    waiting.add(message, lambda: order.append("after"))
    waiting.run()
    assert order == ["fill"]
    connection.full = False
    waiting.run()
    assert order == ["fill", "after"]


def test_a_callback_given_during_a_run_waits_for_the_next_turn() -> None:
    """A callback that asks again (the connection still takes more) is not run
    in the same run: a writer polling on_writable cannot spin the loop."""
    waiting, _connection, clock = waiters()
    message = Message()
    runs: list[int] = []

    def again() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            waiting.add(message, again)

    waiting.add(message, again)
    waiting.run()
    assert runs == [0]
    waiting.run()
    assert runs == [0, 1]
    clock.advance(0)  # the turns scheduled meanwhile
    assert runs == [0, 1, 2]


def test_a_message_not_in_turn_waits_and_a_finished_one_is_dropped() -> None:
    """A queued request's callback waits until it goes out; a finished
    message's callback never runs."""
    waiting, _connection, _clock = waiters()
    queued, finished = Message(in_turn=False), Message()
    order: list[str] = []
    waiting.add(queued, lambda: order.append("queued"))
    waiting.add(finished, lambda: order.append("finished"))
    finished._writes_over = True
    waiting.run()
    assert order == []
    assert waiting.waiting_for(queued)
    queued._in_turn = True
    waiting.run()
    assert order == ["queued"]
    assert not waiting.waiting_for(queued)


def test_clear_drops_every_callback() -> None:
    """clear() (the connection is done): nothing runs after, even if scheduled."""
    waiting, _connection, clock = waiters()
    called: list[bool] = []
    waiting.add(Message(), lambda: called.append(True))
    waiting.clear()
    clock.advance(0)
    assert called == []


# --------------------------------------------------------------- the client


def test_the_client_takes_a_large_response_read_whole_in_pieces() -> None:
    """A 256 KiB chunked response in one read: the client, on the shared pump,
    hands it to h11 in pieces and its body arrives whole and in order."""
    client = HTTPClientProtocol(host="example.com")
    conn = connect(client)
    results: list[tuple[int, bytes]] = []
    client.fetch("GET", "/", on_complete=lambda response, body: results.append((response.status, body)))
    body = bytes(range(256)) * 1024
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in _pieces(body, 10_000))
    conn.deliver(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n")
    assert results == [(200, body)]


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_the_clients_streamed_request_waits_for_the_connection_one_callback_at_a_time() -> None:
    """A streamed request's on_writable callbacks: the first that fills the
    transport holds the second until resume_writing, as on the server."""
    client = HTTPClientProtocol(host="example.com")
    conn = connect(client, peer_reads=False)
    conn.transport.set_write_buffer_limits(high=1000)
    responses: list[ClientResponse] = []
    handle = client.request("PUT", "/up", streaming=True, on_response=responses.append)
    order: list[str] = []

    def fill() -> None:
        order.append("fill")
        handle.write(b"f" * 2000)

    handle.on_writable(fill)
    handle.on_writable(lambda: order.append("second"))
    conn.clock.advance(0)
    assert order == ["fill"]
    assert not handle.writable
    conn.read()  # the server takes it all: resume_writing
    assert order == ["fill", "second"]

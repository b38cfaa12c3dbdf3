"""The HTTP/1.1 server protocol: one per connection, calling a handler per request.

A connection serves one request at a time.  The handler gets the
:class:`~weft.protocols.http._messages.Request` and a
:class:`~weft.protocols.http._response.ResponseWriter`, and answers whenever it
likes; the next request (pipelined or not) is parsed only once that response
is complete, so responses always go out in order.  h11 does the parsing and
the framing; this module adds what h11 leaves to its user:

* framing that cannot be desynchronised: Content-Length with
  Transfer-Encoding, Transfer-Encoding in HTTP/1.0, and obsolete line
  folding are refused with 400, and a chunk announced over the body's limit
  with 413 before any of it is awaited (nginx's rules, RFC 9112 section 6);
* the limits, whatever the chunking of the input;
* a deadline on every state the connection can wait in (the states are
  :class:`~weft.protocols.http._lifecycle.ServerState`; one lazily moved
  timer serves them all);
* fairness: a client that pipelines and never reads is answered only as
  fast as it reads, and at most ``max_requests_per_turn`` requests per turn;
* ``100 Continue`` on demand, file regions sent without being held in
  memory, and what to do when a handler fails;
* an access log, when given one (:class:`~weft.protocols.http._access_log.AccessLog`:
  a Common Log Format line per response, the server's own error responses
  included);
* a ``Date`` header on every response (the server's own error responses
  included) when the transport's clock tells the time of day (a
  :class:`~weft.protocols.contract.WallClock`: every weft driver's), as
  RFC 9110 section 6.6.1 asks of a server with a clock.  A handler's own
  ``Date`` is kept.  The value changes once a second and is formatted once
  a second (:mod:`weft.protocols.http._dates`).

See https://github.com/weft-project/weft/blob/main/docs/http.md.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, cast

import h11

from weft.protocols.contract import Clock, FileRegion, Protocol, TimerHandle, Transport, clock_of
from weft.protocols.errors import NoClockError
from weft.protocols.http._access_log import AccessLog
from weft.protocols.http._body import BodyStream
from weft.protocols.http._dates import http_date
from weft.protocols.http._errors import (
    BodyTooLargeError,
    HeadersTooLargeError,
    HTTPConnectionClosedError,
    HTTPError,
    HTTPStateError,
    HTTPTimeoutError,
    HTTPUsageError,
    MalformedHTTPError,
)
from weft.protocols.http._headers import Headers
from weft.protocols.http._lifecycle import LINGER_TIMEOUT, TRANSITIONS, ServerState
from weft.protocols.http._limits import HTTPLimits
from weft.protocols.http._messages import Request
from weft.protocols.http._output import Output
from weft.protocols.http._pump import H11Pump, WritableWaiters
from weft.protocols.http._quick import QuickHead, read_head, write_response
from weft.protocols.http._response import ResponseWriter
from weft.protocols.http._wire import (
    canned_response,
    chunk_bytes_announced,
    framing_fault,
    host_fault,
    reason_phrase,
)

__all__ = ["LINGER_TIMEOUT", "HTTPServerProtocol", "Handler"]

logger = logging.getLogger("weft.protocols.http")

#: What a server calls for each request: ``handler(request, response)``.
Handler = Callable[[Request, ResponseWriter], object]

#: Whether servers read simple request heads and write whole responses
#: themselves (:mod:`weft.protocols.http._quick`), h11 taking over for
#: anything else.  The tests turn it off to compare with h11 alone.
QUICK_PATH = True

_S = ServerState
_FRESH, _IDLE, _HEAD, _HANDLING = _S.FRESH, _S.IDLE, _S.HEAD, _S.HANDLING
_RECEIVING, _RESPONDING, _DISCARDING = _S.RECEIVING, _S.RESPONDING, _S.DISCARDING
_DRAINING, _LINGERING, _CLOSED = _S.DRAINING, _S.LINGERING, _S.CLOSED


def _status_for(error: HTTPError) -> int:
    """The status that refuses a request for ``error``."""
    if isinstance(error, HeadersTooLargeError):
        return HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
    if isinstance(error, BodyTooLargeError):
        return HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    return HTTPStatus.BAD_REQUEST


class _Exchange:
    """One request and its response."""

    __slots__ = ("body", "chunked", "length", "must_close", "quick", "request", "response")

    def __init__(
        self,
        request: Request,
        response: ResponseWriter,
        length: int | None,
        chunked: bool,
        quick: bytes | None = None,
    ) -> None:
        self.request = request
        self.response = response
        self.body = request.body
        #: The declared Content-Length (0 when the request has no body), or
        #: None for a chunked body.
        self.length = length
        self.chunked = chunked
        self.must_close = False
        #: The request's head, while h11 has not seen it (read by the quick
        #: path); None once h11 has (or always had) the exchange.
        self.quick = quick


class HTTPServerProtocol(Protocol):
    """Serves HTTP/1.1 on one connection, calling ``handler(request, response)``
    for each request.

    ``limits`` (an :class:`~weft.protocols.http._limits.HTTPLimits`) bounds
    heads, bodies and every wait; out-of-limit, malformed or ambiguous
    requests are answered by the server itself (400, 408, 413, 431, 505, and
    503 for a handler that does not answer in time) and the connection
    closes.  A handler that raises is logged (logger
    ``"weft.protocols.http"``) and answered 500, or, if its response had
    started, the connection is aborted.  :attr:`state` says where the
    connection is (a :class:`~weft.protocols.http._lifecycle.ServerState`).

    ``access_log`` (an :class:`~weft.protocols.http._access_log.AccessLog`)
    logs a line per response; ``None`` (the default) logs nothing and costs
    one test per response.

    Needs a transport with a clock (every weft driver's).
    """

    def __init__(
        self, handler: Handler, *, limits: HTTPLimits | None = None, access_log: AccessLog | None = None
    ) -> None:
        self.handler = handler
        self.limits = limits if limits is not None else HTTPLimits()
        self.access_log = access_log
        self._peer_host = "-"
        # h11, fed and pumped (the pump is shared with the client).
        self._wire = H11Pump(
            h11.SERVER,
            max_head_size=self.limits.max_head_size,
            wants_event=self._wants_event,
            handle=self._handle,
            need_data=self._need_data,
            peer_error=self._peer_error,
            cannot_send=self._cannot_send,
        )
        self._h11 = self._wire.connection
        self._meter = self._wire.meter
        self._transport: Transport | None = None
        self._clock: Clock | None = None
        # The clock's wall time, when it tells one: for Date.
        self._wall_time: Callable[[], float] | None = None
        self._output: Output | None = None
        self._state = _FRESH
        self._closed = False  # LINGERING or CLOSED: no more HTTP on this connection
        self._eof_received = False
        # The server is stopping: every exchange from now on ends the connection.
        self._stopping = False
        self._exchange: _Exchange | None = None
        self._writable = WritableWaiters(self._is_writable, self._call)
        # Fairness: requests begun in this turn of the loop, and the call
        # that goes on in the next one once there were too many.
        self._begun_this_turn = 0
        self._next_turn: TimerHandle | None = None
        # Deadlines (monotonic clock times; None: none).  ``_due`` is the
        # current state's; ``_send_due`` runs while writing is paused, with
        # ``_send_mark`` = (buffer size, bytes written) when it was last set.
        # One timer serves both, and is moved only when a deadline comes
        # earlier than it: when it fires it acts on what is due and goes back
        # to sleep until the next deadline.  A keep-alive request costs a few
        # assignments, never a timer scheduled and cancelled.
        self._due: float | None = None
        self._head_due = 0.0  # when the head now awaited must be in
        self._send_due: float | None = None
        self._send_mark = (0, 0)
        self._timer: TimerHandle | None = None
        self._timer_at = math.inf
        # The quick path (see _quick.py): while on, received bytes wait in
        # _qbuf (from _qpos on) rather than in h11, which sees them only for
        # a request or a response the quick path leaves to it.
        self._quick = QUICK_PATH
        self._qbuf = b""
        self._qpos = 0
        self._qeof = False  # the peer's EOF came while the quick path was on

    @property
    def state(self) -> ServerState:
        """Where the connection is in its life (see :mod:`weft.protocols.http._lifecycle`)."""
        return self._state

    # ------------------------------------------------------------ the contract

    def connection_made(self, transport: Any) -> None:
        """Start the clock on the first request's head.

        Without a clock (:func:`~weft.protocols.contract.clock_of` raises
        :class:`~weft.protocols.errors.NoClockError`: no weft clock and no
        running asyncio loop) no deadline could be kept, so the connection
        is aborted at once and the error raised on to the driver, which
        reports it: a client is never left waiting on a server that would
        not time it out.
        """
        self._transport = self._wire.transport = transport
        try:
            self._clock = self._writable.clock = clock_of(transport)
        except NoClockError:
            self._shut(HTTPConnectionClosedError("the connection has no clock"))
            self._become_closed()
            transport.abort()
            raise
        self._wall_time = getattr(self._clock, "wall_time", None)
        if self.access_log is not None:
            peer = transport.get_extra_info("peername")
            if isinstance(peer, tuple) and peer:
                self._peer_host = str(peer[0])
        self._output = Output(transport, self._file_failed)
        self._head_due = self._clock.now() + self.limits.head_timeout
        self._set_due(self._head_due)

    def data_received(self, data: bytes) -> None:
        """Hand the bytes to h11 and act on what they complete."""
        if self._closed:
            return  # lingering: dropped
        state = self._state
        if state is _IDLE or state is _FRESH:
            self._enter(_HEAD, self._head_due)
        elif state is _RECEIVING or state is _DISCARDING:
            # Later than before: the timer need not move.
            self._due = self._now() + self.limits.body_timeout
        if self._quick:
            if self._qpos >= len(self._qbuf):
                self._qbuf, self._qpos = bytes(data), 0
            else:
                self._qbuf, self._qpos = self._qbuf[self._qpos :] + data, 0
        else:
            self._wire.feed(data)
        self._pump()

    def eof_received(self) -> bool:
        """The client will send no more: finish the request in hand, then close."""
        self._eof_received = True
        if self._state is _LINGERING:  # the lingering close is over
            self._become_closed()
            return False
        if not self._closed:
            if self._quick:
                self._qeof = True
            else:
                self._wire.feed_eof()
            self._pump()
        return True

    def pause_writing(self) -> None:
        """The client is not keeping up: responses report not writable, and
        the send deadline starts."""
        output = self._output
        if output is None:
            return
        output.paused = True
        transport = self._transport
        if not self._closed and transport is not None:
            self._send_due = self._now() + self.limits.send_timeout
            self._send_mark = (transport.get_write_buffer_size(), output.written)
            self._schedule(self._send_due)

    def resume_writing(self) -> None:
        """The client caught up: go on sending, call what waits in
        ``on_writable``, and start the next request if it waited."""
        output = self._output
        if output is None:
            return
        self._send_due = None
        output.resume()
        if output.paused or output.busy or self._closed:
            return
        self._writable.run()
        exchange = self._exchange
        if self._state is _DRAINING and exchange is not None:
            self._after_response(exchange)

    def server_stopping(self) -> None:
        """The server is stopping gracefully: close now if no request is in
        hand (a new connection, an idle keep-alive one); else answer it with
        ``Connection: close`` (if its response has not started) and close
        after it, as uvicorn and nginx do.  Without this an idle keep-alive
        client would hold the stop for its keep-alive timeout."""
        if self._closed:
            return
        self._stopping = True
        if self._state is _IDLE or self._state is _FRESH:
            self._close()
        elif self._exchange is not None:
            self._exchange.must_close = True

    def connection_lost(self, exc: BaseException | None) -> None:
        """The connection is gone: stop timers, tell a body reader."""
        self._shut(HTTPConnectionClosedError("the connection was lost"), cause=exc)
        self._become_closed()

    # ------------------------------------------------------- states and time

    def _enter(self, state: ServerState, due: float | None) -> None:
        """Move to ``state``, whose deadline is ``due``."""
        if state not in TRANSITIONS[self._state]:
            raise HTTPStateError(
                f"an HTTP server connection cannot go from {self._state.name} to {state.name}"
            )
        self._state = state
        self._due = due
        if due is not None and due < self._timer_at:
            self._move_timer(due)

    def _set_due(self, due: float | None) -> None:
        """Give the current state a new deadline."""
        self._due = due
        if due is not None and due < self._timer_at:
            self._move_timer(due)

    def _schedule(self, due: float) -> None:
        if due < self._timer_at:
            self._move_timer(due)

    def _move_timer(self, due: float) -> None:
        clock = self._clock
        if clock is None or self._state is _CLOSED:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        self._timer = clock.call_later(due - clock.now(), self._timer_fired)

    def _now(self) -> float:
        clock = self._clock
        return clock.now() if clock is not None else 0.0

    def _date(self) -> bytes | None:
        """The ``Date`` header's value now, or ``None`` without a wall clock."""
        wall_time = self._wall_time
        return http_date(wall_time()) if wall_time is not None else None

    def _handler_due(self) -> float | None:
        timeout = self.limits.handler_timeout
        return None if timeout is None else self._now() + timeout

    def _timer_fired(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        if self._state is _CLOSED:
            return
        # A hair of slack: the clock's own float arithmetic may land a
        # timer a rounding error before the deadline it was set for.
        now = self._now() + 1e-6
        send_due = self._send_due
        if send_due is not None and send_due <= now and not self._send_progressed():
            self._send_timed_out()
            return
        due = self._due
        if due is not None and due <= now:
            self._due = None
            self._deadline_passed()
        for later in (self._due, self._send_due):
            if later is not None:
                self._schedule(later)

    def _deadline_passed(self) -> None:
        """The current state's deadline passed: act as the state says."""
        state = self._state
        if state is _FRESH or state is _IDLE:
            self._close()
        elif state is _HEAD:
            self._head_timed_out()
        elif state is _HANDLING:
            self._handler_timed_out()
        elif state is _RECEIVING:
            self._body_timed_out()
        elif state is _DISCARDING:
            logger.info(
                "closing an HTTP connection: no byte of the unread body for %s s", self.limits.body_timeout
            )
            self._close_lingering()
        elif state is _LINGERING:
            self._become_closed()
            if self._transport is not None:
                self._transport.close()

    def _head_timed_out(self) -> None:
        if self._pending() and self._transport is not None:
            logger.info("refusing an HTTP request: its head took over %s s", self.limits.head_timeout)
            self._transport.write(canned_response(HTTPStatus.REQUEST_TIMEOUT, date=self._date()))
            self._log_canned(HTTPStatus.REQUEST_TIMEOUT, None, head_only=False)
            self._close_lingering()
            return
        self._close()

    def _handler_timed_out(self) -> None:
        exchange = self._exchange
        timeout = self.limits.handler_timeout
        if exchange is None or timeout is None:
            return
        error = HTTPTimeoutError(
            f"the handler did not start its response to {exchange.request!r} within {timeout} s",
            timeout=timeout,
        )
        logger.warning("HTTP handler timed out: %s; answering 503", error)
        exchange.response._abandon()
        self._call(exchange.body._fail, error)
        self._refuse(error, status=HTTPStatus.SERVICE_UNAVAILABLE, quiet=True)

    def _body_timed_out(self) -> None:
        exchange = self._exchange
        timeout = self.limits.body_timeout
        if exchange is None:
            return
        error = HTTPTimeoutError(f"no byte of the request body for {timeout} s", timeout=timeout)
        if not exchange.response.started:
            exchange.response._abandon()
        self._call(exchange.body._fail, error)
        self._refuse(error, status=HTTPStatus.REQUEST_TIMEOUT)

    def _send_progressed(self) -> bool:
        """The send deadline passed: did the client take anything since it was set?
        If so, it starts again from now."""
        transport, output = self._transport, self._output
        if transport is None or output is None:
            return False
        size, written = transport.get_write_buffer_size(), output.written
        mark_size, mark_written = self._send_mark
        if mark_size + (written - mark_written) - size <= 0:
            return False
        self._send_mark = (size, written)
        self._send_due = self._now() + self.limits.send_timeout
        return True

    def _send_timed_out(self) -> None:
        logger.info(
            "aborting an HTTP connection: the client took nothing of the response for %s s",
            self.limits.send_timeout,
        )
        self._abort()

    # --------------------------------------------------------------- the pump

    def _pump(self) -> None:
        """Take events from h11 while someone wants them (see H11Pump)."""
        wire = self._wire
        if wire.pumping:
            return  # the pump running further up the stack takes the next event
        if self._next_turn is None:
            self._begun_this_turn = 0  # a new turn of the loop: fairness starts again
        if self._quick:
            self._quick_pump()
            if self._quick:
                return
        wire.pump()

    def _pending(self) -> int:
        """Bytes of the next request received so far (0: the client is silent)."""
        return len(self._qbuf) - self._qpos + self._wire.pending()

    # ------------------------------------------------------- the quick path

    def _quick_pump(self) -> None:
        """The pump of the quick path: read simple heads from ``_qbuf`` and
        begin their exchanges while the connection wants requests; hand
        everything to h11 at the first head that is not simple (or is not
        going to be: a blank line h11 would see, a first byte h11 refuses,
        more than a head's limit, the peer's EOF).  Reading goes on only
        while a head is awaited, as H11Pump does."""
        wire, transport = self._wire, self._transport
        if wire.stopped or transport is None:
            return
        wire.pumping = True
        need_data = False
        limits = self.limits
        try:
            while self._quick and not wire.stopped:
                exchange = self._exchange
                if exchange is not None:
                    if exchange.quick is not None and exchange.body.wants_data:
                        self._quick_body_end(exchange)  # a body-less request: its end is known
                        continue
                    break
                if self._next_turn is not None:
                    break
                buf, pos = self._qbuf, self._qpos
                if self._begun_this_turn >= limits.max_requests_per_turn and pos < len(buf):
                    self._defer_to_next_turn()
                    break
                end = buf.find(b"\r\n\r\n", pos)
                if end < 0:
                    rest = len(buf) - pos
                    if not self._qeof and (
                        rest == 0
                        or (
                            rest <= limits.max_head_size
                            and buf[pos] > 0x20
                            and buf.find(b"\n\n", pos) < 0
                            and buf.find(b"\n\r\n", pos) < 0
                        )
                    ):
                        need_data = True
                        break
                    self._quick_to_h11()
                    break
                parsed = read_head(buf[pos : end + 2]) if end + 4 - pos <= limits.max_head_size else None
                if parsed is None:
                    self._quick_to_h11()
                    break
                if end + 4 == len(buf):
                    self._qbuf, self._qpos = b"", 0
                else:
                    self._qpos = end + 4
                self._begin_quick(parsed, buf[pos : end + 4])
        finally:
            wire.pumping = False
        if self._quick and not wire.stopped:
            if need_data:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def _quick_to_h11(self) -> None:
        """The quick path ends here: what waits goes to h11, which reads on."""
        rest = self._qbuf[self._qpos :]
        self._qbuf, self._qpos, self._quick = b"", 0, False
        self._meter.mark()
        if rest:
            self._wire.feed(rest)
        if self._qeof:
            self._wire.feed_eof()

    def _quick_sync(self, exchange: _Exchange) -> None:
        """h11 is to write this quick exchange's response: it reads the head
        first (the same request the quick path read), then what followed it."""
        head = exchange.quick
        if head is None:
            return
        exchange.quick = None
        connection = self._h11
        rest = self._qbuf[self._qpos :]
        self._qbuf, self._qpos, self._quick = b"", 0, False
        self._meter.mark()
        connection.receive_data(head)
        connection.next_event()  # the request
        if exchange.body.done:
            connection.next_event()  # its end (it has no body)
            self._meter.mark()
        if rest:
            self._wire.feed(rest)
        if self._qeof:
            self._wire.feed_eof()

    def _quick_body_end(self, exchange: _Exchange) -> None:
        """The end of a quick request's (empty) body, once its handler wants it:
        what h11's EndOfMessage does on the other path."""
        self._call(exchange.body._end)
        if exchange is self._exchange and not self._closed:
            if exchange.response.finished:
                self._after_response(exchange)
            else:
                self._settle(exchange)

    def _begin_quick(self, parsed: QuickHead, head: bytes) -> None:
        """A request read by the quick path: HTTP/1.1, one Host, no body."""
        method, target, raw, index = parsed
        fault = host_fault(index["host"][0])
        if fault is not None:
            self._refuse(MalformedHTTPError(fault))
            return
        request = Request(
            method.decode("ascii"),
            target.decode("latin-1"),
            Headers._parsed(raw, index),
            "1.1",
            BodyStream(self, limit=self.limits.max_body_size),
        )
        self._open(request, ResponseWriter(self, head_only=method == b"HEAD"), 0, False, head)

    def _send_quick(
        self, writer: ResponseWriter, status: int, pairs: list[tuple[bytes, bytes]], body: bytes
    ) -> bool:
        """(ResponseWriter) write a whole response to a quick exchange without
        h11, if it is the simple kind (see :func:`write_response`); whether it was."""
        exchange = self._exchange
        output = self._output
        if (
            exchange is None
            or exchange.quick is None
            or writer is not exchange.response
            or writer._started
            or output is None
            or self._closed
            or type(status) is not int
            or not 200 <= status <= 599
        ):
            return False
        pairs = self._response_starting(pairs, complete=True)
        written = write_response(status, reason_phrase(status), pairs, body, head_only=writer._head_only)
        if written is None:
            return False  # h11 writes it (_response_starting may run twice: it adds nothing twice)
        data, closes = written
        if closes:
            exchange.must_close = True
        output.write(data)
        return True

    def _need_data(self) -> None:
        """(H11Pump) h11 waits for bytes: a chunk's size may be known by now."""
        exchange = self._exchange
        if exchange is not None and exchange.chunked:
            self._check_chunk(exchange)

    def _wants_event(self) -> bool:
        exchange = self._exchange
        if exchange is None:
            if self._next_turn is not None:
                return False
            if self._begun_this_turn >= self.limits.max_requests_per_turn and self._pending():
                self._defer_to_next_turn()
                return False
            return True
        return self._h11.their_state is h11.SEND_BODY and exchange.body.wants_data

    def _defer_to_next_turn(self) -> None:
        """Enough requests of this connection for one turn: the rest wait
        for the next, so other connections get theirs."""
        if self._next_turn is None and self._clock is not None:
            self._next_turn = self._clock.call_later(0, self._next_turn_came)

    def _next_turn_came(self) -> None:
        self._next_turn = None
        self._pump()

    def _handle(self, event: object) -> None:
        exchange = self._exchange
        kind = type(event)
        if kind is h11.Request:
            self._begin(cast(h11.Request, event))
        elif exchange is None:
            if kind is h11.ConnectionClosed:
                self._close()
        elif kind is h11.Data:
            self._call(exchange.body._deliver, bytes(cast(h11.Data, event).data))
            if exchange.chunked and not self._closed:
                self._check_chunk(exchange)
        elif kind is h11.EndOfMessage:
            self._meter.mark()
            self._call(exchange.body._end)
            if exchange is self._exchange and not self._closed:
                if exchange.response.finished:
                    self._after_response(exchange)
                else:
                    self._settle(exchange)

    def _check_chunk(self, exchange: _Exchange) -> None:
        """A chunk's size is known before its bytes: refuse it now if it takes
        the body over its limit, rather than wait for it."""
        announced = chunk_bytes_announced(self._h11)
        if announced and not exchange.body.done:
            self._call(exchange.body._announce, announced)

    def _begin(self, event: h11.Request) -> None:
        limits = self.limits
        size, folded = self._meter.head()
        if size > limits.max_head_size:
            self._refuse(
                HeadersTooLargeError(
                    f"request head of {size} bytes, over the limit of {limits.max_head_size}",
                    limit=limits.max_head_size,
                    size=size,
                )
            )
            return
        if folded:
            self._refuse(MalformedHTTPError("a header field is folded over lines (obs-fold)"))
            return
        version = event.http_version
        if version != b"1.1" and version != b"1.0":
            self._refuse(
                MalformedHTTPError(f"HTTP/{version.decode('ascii', 'replace')} is not supported"),
                status=HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
            )
            return
        headers = Headers(event.headers.raw_items())
        host = headers._lookup("host")
        if host is not None and (fault := host_fault(host[0])) is not None:
            self._refuse(MalformedHTTPError(fault))
            return
        declared = headers._lookup("content-length")
        chunked = headers._lookup("transfer-encoding") is not None
        if chunked:
            fault = framing_fault(version, declared is not None, chunked)
            if fault is not None:
                self._refuse(MalformedHTTPError(f"ambiguous framing: {fault}"))
                return
        length = None if chunked else int(declared[0]) if declared is not None else 0
        if limits.max_body_size is not None and length is not None and length > limits.max_body_size:
            self._refuse(
                BodyTooLargeError(
                    f"declared body of {length} bytes, over the limit of {limits.max_body_size}",
                    limit=limits.max_body_size,
                    size=length,
                )
            )
            return
        body = BodyStream(self, limit=limits.max_body_size)
        request = Request(
            event.method.decode("ascii"),
            event.target.decode("latin-1"),
            headers,
            version.decode("ascii"),
            body,
        )
        self._open(request, ResponseWriter(self, head_only=event.method == b"HEAD"), length, chunked, None)

    def _open(
        self,
        request: Request,
        response: ResponseWriter,
        length: int | None,
        chunked: bool,
        quick: bytes | None,
    ) -> None:
        """Begin the exchange of ``request``: call the handler."""
        exchange = self._exchange = _Exchange(request, response, length, chunked, quick)
        if self._stopping:  # one test per request: a request whose head was coming at the stop
            exchange.must_close = True
        self._begun_this_turn += 1
        self._enter(_HANDLING, self._handler_due())
        self._call(self.handler, request, response)

    def _settle(self, exchange: _Exchange) -> None:
        """Something changed in an exchange whose response is not complete
        (its body was asked for, paused or ended; its response started): be
        in the state that says what the connection now waits for."""
        if self._closed or exchange is not self._exchange or exchange.response.finished:
            return
        state = self._state
        if exchange.body.wants_data:
            if state is not _RECEIVING:
                self._enter(_RECEIVING, self._now() + self.limits.body_timeout)
        elif exchange.response.started:
            if state is not _RESPONDING:
                self._enter(_RESPONDING, None)
        elif state is not _HANDLING:
            self._enter(_HANDLING, self._handler_due())

    # ------------------------------------------------- after a response

    def _response_finished(self) -> None:
        """(ResponseWriter) the response is complete."""
        exchange = self._exchange
        if exchange is None or self._closed:
            return
        if self.access_log is not None:
            request, response = exchange.request, exchange.response
            self.access_log.log(
                self._peer_host,
                request.method,
                request.target,
                request.http_version,
                response._status,
                response._body_size,
                self._wall_time() if self._wall_time is not None else None,
            )
        self._after_response(exchange)

    def _log_canned(self, status: int, request: Request | None, *, head_only: bool) -> None:
        """Log a response the server wrote itself (``request`` ``None``: none was parsed)."""
        access_log = self.access_log
        if access_log is None:
            return
        size = 0 if head_only else len(b"%d %s\n" % (status, reason_phrase(status)))
        access_log.log(
            self._peer_host,
            request.method if request is not None else None,
            request.target if request is not None else "",
            request.http_version if request is not None else "",
            status,
            size,
            self._wall_time() if self._wall_time is not None else None,
        )

    def _after_response(self, exchange: _Exchange) -> None:
        """The response is complete: go on to the next request, drop or read
        the rest of the body first, wait for the client to take the
        response, or close."""
        connection = self._h11
        output = self._output
        body = exchange.body
        if exchange.quick is not None:
            # h11 never saw this exchange: the request had no body, the
            # response was whole.
            closing = exchange.must_close
            if not closing and not body.asked:
                body._end()
            their_state: type[h11._util.Sentinel] = h11.DONE if body.done else h11.SEND_BODY
        else:
            closing = exchange.must_close or connection.our_state is not h11.DONE
            their_state = connection.their_state
            if not closing and exchange.length == 0 and not body.asked and their_state is h11.SEND_BODY:
                # A request without a body (most are): its end is already known,
                # so take it here rather than through a round of discarding.
                connection.next_event()
                self._meter.mark()
                body._end()
            their_state = connection.their_state
        if output is not None and (
            (closing and output.busy)
            or (not closing and their_state is h11.DONE and (output.busy or output.paused))
        ):
            # Fairness: the next request (or the close) waits until the
            # client has taken this response; resume_writing comes back here.
            # (A body still to read or drop is read first.)
            if self._state is not _DRAINING:
                self._enter(_DRAINING, None)
            if self._transport is not None:
                self._transport.pause_reading()
            return
        if closing:
            self._close()
        elif their_state is h11.DONE:
            self._next_cycle()
        elif their_state is h11.SEND_BODY:
            if not body.asked or body._discarding:
                body._start_discarding(self.limits.max_discard_size)
                if self._state is not _DISCARDING:
                    self._enter(_DISCARDING, self._now() + self.limits.body_timeout)
            elif self._state is not _RECEIVING:
                # The handler answered and still reads (or holds) its body.
                self._enter(_RECEIVING, self._now() + self.limits.body_timeout)
            self._pump()
        else:
            self._close()

    def _next_cycle(self) -> None:
        exchange = self._exchange
        if exchange is None or exchange.quick is None:
            self._h11.start_next_cycle()
            if QUICK_PATH and not self._quick and self._wire.drained():
                self._quick = True  # h11 holds nothing more: the quick path reads on
        self._exchange = None
        now = self._now()
        self._head_due = now + self.limits.head_timeout
        if self._pending():
            self._enter(_HEAD, self._head_due)
        else:
            self._enter(_IDLE, now + self.limits.keep_alive_timeout)
        self._pump()

    # --------------------------------------------- the response's owner

    def _send(self, *events: h11.Event) -> None:
        """(ResponseWriter) encode ``events`` and write them, in one write."""
        exchange = self._exchange
        if exchange is not None and exchange.quick is not None:
            self._quick_sync(exchange)
        data = self._wire.encode(*events)
        output = self._output
        if data and output is not None:
            output.write(data)

    def _cannot_send(self, exc: h11.LocalProtocolError) -> None:
        """(H11Pump) h11 refused an event of the response: the framing is lost."""
        self._abort()

    def _send_file(self, region: FileRegion, *, head: h11.Response | None = None, end: bool = False) -> None:
        """(ResponseWriter) frame ``region`` as body data between ``head`` and
        the end, and send it all in order; ``region`` is closed whatever happens."""
        exchange = self._exchange
        if exchange is not None and exchange.quick is not None:
            self._quick_sync(exchange)
        connection = self._h11
        pieces: list[bytes | FileRegion] = []
        try:
            if head is not None:
                pieces.append(connection.send(head) or b"")
            # h11 only takes len() of what it passes through (for sendfile).
            framed = connection.send_with_data_passthrough(h11.Data(data=cast(bytes, region)))
            pieces.extend(framed or ())
            if end:
                pieces.append(connection.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError as exc:
            region.close()
            self._abort()
            raise HTTPUsageError(f"cannot send a file region: {exc}") from exc
        output = self._output
        if output is None or self._closed:
            region.close()
            return
        handed = False
        waiting: list[bytes] = []
        for piece in pieces:
            if piece is region:
                if waiting:
                    output.write(b"".join(waiting))
                    waiting.clear()
                output.write_region(region)
                handed = True
            elif piece:
                waiting.append(cast(bytes, piece))
        if waiting:
            output.write(b"".join(waiting))
        if not handed:
            region.close()

    def _response_starting(
        self, pairs: list[tuple[bytes, bytes]], *, complete: bool
    ) -> list[tuple[bytes, bytes]]:
        """(ResponseWriter) add ``Date``; decide whether this connection can be reused."""
        wall_time = self._wall_time
        if wall_time is not None:
            for name, _ in pairs:
                if name.lower() == b"date":
                    break  # the handler's own
            else:
                pairs.insert(0, (b"date", http_date(wall_time())))
        exchange = self._exchange
        if exchange is None:
            return pairs
        body = exchange.body
        connection = self._h11
        if exchange.quick is not None:
            pass  # no body, no 100 Continue: nothing to decide
        elif connection.they_are_waiting_for_100_continue and (not body.wants_data or body._discarding):
            # The client holds its body back until told to send it: it may
            # send it anyway, later, so nothing after it can be trusted.
            exchange.must_close = True
        elif (
            not exchange.must_close
            and (not body.asked or body._discarding)
            and exchange.length != 0
            and not body.done
            and connection.their_state is h11.SEND_BODY
        ):
            # The unread body will be dropped after the response, if it is
            # small enough; too big already, and the connection closes instead.
            left = exchange.length - body.received if exchange.length is not None else None
            if left is None and exchange.chunked:
                left = chunk_bytes_announced(connection)
            if left is not None and left > self.limits.max_discard_size:
                exchange.must_close = True
        if exchange.must_close and not any(
            name.lower() == b"connection" and b"close" in value.lower() for name, value in pairs
        ):
            pairs = [*pairs, (b"connection", b"close")]
        if not complete and self._state is _HANDLING:
            self._enter(_RESPONDING, None)
        return pairs

    def _is_writable(self) -> bool:
        """(ResponseWriter) whether the transport takes more."""
        output = self._output
        return (
            output is not None
            and not output.paused
            and not output.busy
            and not self._closed
            # A reset is known to the transport a turn before connection_lost
            # reaches us: a handler writing "while writable" must stop now,
            # not read a whole file into a connection that drops it.
            and not output.closing
        )

    def _when_writable(self, writer: ResponseWriter, callback: Callable[[], object]) -> None:
        """(ResponseWriter) call back once the transport takes more."""
        if not self._closed:
            self._writable.add(writer, callback)

    def _file_failed(self, exc: OSError) -> None:
        """(Output) a file region could not be read: the body cannot be completed."""
        logger.error("HTTP response aborted: a file could not be sent: %s", exc)
        exchange = self._exchange
        if exchange is not None:
            exchange.response._abandon()
        self._abort()

    # --------------------------------------------------- the body's source

    def _body_demanded(self, stream: BodyStream) -> None:
        """(BodyStream) the handler wants its body now."""
        exchange = self._exchange
        if exchange is None or exchange.body is not stream or self._closed:
            return
        if self._h11.they_are_waiting_for_100_continue:
            if stream._discarding or exchange.response.started:
                exchange.must_close = True
                return
            self._send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
        self._settle(exchange)
        self._pump()

    def _body_paused(self, stream: BodyStream) -> None:
        """(BodyStream) the handler paused its body: the wait is on it now, not the client."""
        exchange = self._exchange
        if exchange is not None and exchange.body is stream:
            self._settle(exchange)

    def _body_too_large(self, stream: BodyStream, exc: BodyTooLargeError) -> None:
        """(BodyStream) the body went over its limit: 413, or a close."""
        exchange = self._exchange
        if exchange is None or exchange.body is not stream or self._closed:
            stream._fail(exc)
            return
        if exchange.response.finished:
            # Read after the response: a body being discarded grew past
            # max_discard_size (or a handler read on past its limit).
            logger.info("closing an HTTP connection instead of reading on: %s", exc)
            self._call(stream._fail, exc)
            self._close_lingering()
            return
        exchange.must_close = True
        exchange.response._abandon()  # the server answers this one
        self._call(stream._fail, exc)
        self._refuse(exc)

    # ---------------------------------------------------------- failures

    def _call(self, callback: Callable[..., object], *args: Any) -> None:
        """Run a handler's code; if it raises, log it and answer 500 (or abort)."""
        try:
            callback(*args)
        except Exception as exc:
            self._handler_failed(exc)

    def _handler_failed(self, exc: Exception) -> None:
        exchange = self._exchange
        request = exchange.request if exchange is not None else None
        logger.error("HTTP handler failed on %r", request, exc_info=exc)
        if exchange is None or self._closed:
            return
        response = exchange.response
        if response.abandoned:
            return  # the server is answering already (a 413, a 400) or the connection is gone
        response._abandon()
        if response.started:
            self._abort()
            return
        if not exchange.body.done:
            # The handler is gone: nothing more of its body goes to it.
            exchange.body._start_discarding(self.limits.max_discard_size)
        body = b"Internal Server Error\n"
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
        writer = ResponseWriter(self, head_only=response._head_only)
        exchange.response = writer
        try:
            writer.send(500, headers, body)
        except HTTPUsageError:
            pass  # h11 refused: the connection is already aborted
        writer._abandon()

    def _peer_error(self, error: HTTPError) -> None:
        """h11 refused the peer's bytes: tell a body reader, answer, close."""
        exchange = self._exchange
        if exchange is not None:
            exchange.must_close = True
            if not exchange.response.started:
                exchange.response._abandon()  # the server answers this one
            self._call(exchange.body._fail, error)
        self._refuse(error)

    def _refuse(self, error: HTTPError, *, status: int | None = None, quiet: bool = False) -> None:
        """Answer with ``error``'s status (or ``status``) unless a response began, then close."""
        if not quiet:
            logger.info("refusing an HTTP request: %s", error)
        exchange = self._exchange
        head_only = False
        if exchange is not None:
            exchange.must_close = True
            response = exchange.response
            head_only = response._head_only
            response._abandon()
            if response.started and not response.finished:
                self._abort()
                return
            if response.started:
                self._close()
                return
        if self._closed:
            return
        if status is None:
            status = _status_for(error)
        if self._output is not None:
            self._output.write(canned_response(status, head_only=head_only, date=self._date()))
            self._log_canned(status, exchange.request if exchange is not None else None, head_only=head_only)
        self._close_lingering()

    # ---------------------------------------------------------- the end

    def _close(self) -> None:
        """Close after flushing what was written."""
        transport = self._transport
        self._shut(HTTPConnectionClosedError("the server closed the connection"))
        self._become_closed()
        if transport is not None:
            transport.close()

    def _close_lingering(self) -> None:
        """Close after an error response without losing the response.

        The client may still be sending (the body of a refused request), and
        closing a socket with unread bytes makes the kernel send a reset,
        which can destroy the response before the client has read it.  So,
        as Apache and nginx do: half-close, discard whatever still comes for
        up to ``limits.linger_timeout`` seconds or until the client's EOF,
        then close.
        """
        transport = self._transport
        self._shut(HTTPConnectionClosedError("the server closed the connection"))
        if transport is None or self._state is _CLOSED:
            return
        if self._clock is None or self._eof_received or not transport.can_write_eof():
            # (After the client's EOF there is nothing left to wait for.)
            self._become_closed()
            transport.close()
            return
        transport.write_eof()
        transport.resume_reading()  # to see the client's EOF
        self._send_due = None
        self._enter(_LINGERING, self._now() + self.limits.linger_timeout)

    def _abort(self) -> None:
        """Close at once, dropping what was written."""
        transport = self._transport
        self._shut(HTTPConnectionClosedError("the server aborted the connection"))
        self._become_closed()
        if transport is not None:
            transport.abort()

    def _become_closed(self) -> None:
        """The end of the road: no state, no deadline, no timer."""
        if self._state is not _CLOSED:
            self._enter(_CLOSED, None)
        self._due = self._send_due = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf

    def _shut(self, error: HTTPConnectionClosedError, cause: BaseException | None = None) -> None:
        """No more HTTP on this connection: drop what waits, abandon the
        response, fail an unfinished body (its reader hears ``error``)."""
        if self._closed:
            return
        self._closed = True
        self._wire.stop()
        if self._next_turn is not None:
            self._next_turn.cancel()
            self._next_turn = None
        self._writable.clear()
        if self._output is not None:
            self._output.close()
        exchange = self._exchange
        if exchange is not None:
            exchange.response._abandon()
            if not exchange.body.done:
                error.__cause__ = cause
                self._call(exchange.body._fail, error)
